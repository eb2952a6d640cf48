"""sentence-transformers on the GPU over the same sentences `agentdb bench embed` uses
(benches/text/st_baseline.py's copy of its generator), fp32 and fp16, per batch size. Prints one JSON object.

    python3 benches/gpu/st_baseline.py MODEL_DIR --texts 4096 --batches 1,32,256
"""
import argparse
import json
import os
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "text"))
from st_baseline import sentences  # noqa: E402  the recipe of server/src/bench.rs `sentences`


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--texts", type=int, default=4096)
    p.add_argument("--batches", default="1,32,256")
    a = p.parse_args()
    texts = sentences(a.texts)
    rows = []
    for name, dtype in [("fp32", torch.float32), ("fp16", torch.float16)]:
        m = SentenceTransformer(a.model, device="cuda", model_kwargs={"dtype": dtype})
        for bs in [int(b) for b in a.batches.split(",")]:
            n = min(len(texts), max(256, bs * 8)) if bs == 1 else len(texts)
            m.encode(texts[:bs], batch_size=bs)
            torch.cuda.synchronize()
            t = time.perf_counter()
            m.encode(texts[:n], batch_size=bs, convert_to_numpy=True)
            torch.cuda.synchronize()
            rows.append({"dtype": name, "batch": bs, "texts": n, "texts_per_s": n / (time.perf_counter() - t)})
        del m
        torch.cuda.empty_cache()
    print(json.dumps({"baseline": "sentence-transformers", "torch": torch.__version__,
                      "gpu": torch.cuda.get_device_name(0), "rows": rows}))


if __name__ == "__main__":
    main()

"""sentence-transformers on the GPU over the same sentences `agentdb bench embed` uses
(its generator, reproduced), fp32 and fp16, per batch size. Prints one JSON object.

    python3 benches/gpu/st_baseline.py MODEL_DIR --texts 4096 --batches 1,32,256
"""
import argparse
import json
import time

import torch
from sentence_transformers import SentenceTransformer

SUBJECTS = ["The engineer", "A small dog", "Our quarterly report", "The river", "My neighbour",
            "The new database", "A violinist", "The committee"]
VERBS = ["describes", "crosses", "improves", "ignores", "celebrates", "measures", "questions", "repairs"]
OBJECTS = ["the old bridge near the station", "a surprising increase in cloud revenue",
           "the melody of an early symphony", "every index in the cluster", "the garden after a long winter",
           "a forecast of heavy rain", "the latency of each request", "the rules of the tournament"]
TAILS = ["", " before the meeting on Friday", " while everyone else was asleep",
         " with great care and a lot of patience", " because nobody else had time to do it properly this year"]


def sentences(n):
    return [f"{SUBJECTS[i % 8]} {VERBS[(i // 8) % 8]} {OBJECTS[(i // 64) % 8]}{TAILS[(i // 7) % 5]}." for i in range(n)]


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

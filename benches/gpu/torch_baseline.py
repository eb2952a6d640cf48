"""Baseline for `agentdb bench gpu` on the same GPU: PyTorch matmul + topk over the same
shapes (n x dim base, batches of queries, k), fp16 and fp32, timed with CUDA events
(median of repeated runs), plus the device-to-device copy bandwidth that the roofline
uses. Prints one JSON object.

    python3 benches/gpu/torch_baseline.py --n 1000000 --dim 768 --batches 1,64,1024
"""
import argparse
import json
import statistics

import torch


def timed(fn, seconds=2.0, min_reps=5):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times, total = [], 0.0
    while total < seconds * 1e3 or len(times) < min_reps:
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        t = a.elapsed_time(b)
        times.append(t)
        total += t
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--batches", default="1,64,1024")
    p.add_argument("--seconds", type=float, default=2.0)
    a = p.parse_args()
    dev = torch.device("cuda")
    torch.manual_seed(1)
    # Copy bandwidth (bytes read + written), the memory roofline's denominator.
    x = torch.empty(2 << 30, dtype=torch.uint8, device=dev)
    y = torch.empty_like(x)
    ms = timed(lambda: y.copy_(x), seconds=1.0)
    copy_gbs = 2 * x.numel() / (ms / 1e3) / 1e9
    del x, y
    rows = []
    for dtype, name in [(torch.float16, "fp16"), (torch.float32, "fp32")]:
        base = (torch.rand(a.n, a.dim, device=dev, dtype=torch.float32) * 2 - 1).to(dtype)
        for bs in [int(b) for b in a.batches.split(",")]:
            q = (torch.rand(bs, a.dim, device=dev) * 2 - 1).to(dtype)

            def run():
                return torch.topk(torch.matmul(q, base.T), a.k, dim=1)

            ms = timed(run, seconds=a.seconds)
            bytes_ = a.n * a.dim * base.element_size()
            rows.append({
                "precision": name, "batch": bs, "ms_per_batch": ms, "qps": bs / (ms / 1e3),
                "effective_gbs": bytes_ / (ms / 1e3) / 1e9,
            })
        del base
        torch.cuda.empty_cache()
    print(json.dumps({
        "baseline": "torch.matmul + torch.topk", "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0), "n": a.n, "dim": a.dim, "k": a.k,
        "copy_gbs": copy_gbs, "rows": rows,
    }))


if __name__ == "__main__":
    main()

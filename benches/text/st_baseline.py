#!/usr/bin/env python3
"""Python sentence-transformers on the same all-MiniLM-L6-v2 folder and the same
sentences as `agentdb bench embed`, at the same batch sizes and thread count. Prints one
JSON object with texts/s per batch size. (That both compute the same embeddings is
tested in models/tests/text_encoder.rs against sentence-transformers' reference values.)

usage: st_baseline.py MODEL_DIR N_TEXTS THREADS BATCHES(comma-separated)
"""
import json, sys, time

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


def sentences(n):  # the same recipe as server/src/bench.rs `sentences`
    return [f"{SUBJECTS[i % 8]} {VERBS[(i // 8) % 8]} {OBJECTS[(i // 64) % 8]}{TAILS[(i // 7) % 5]}." for i in range(n)]


def main():
    model_dir, n, threads, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(threads)
    model = SentenceTransformer(model_dir, device="cpu")
    texts = sentences(n)
    model.encode(texts[:8], batch_size=8)  # warm-up
    rows = []
    for bs in [int(b) for b in batches.split(",")]:
        t = time.perf_counter()
        model.encode(texts, batch_size=bs, normalize_embeddings=True, show_progress_bar=False)
        rows.append({"batch": bs, "texts_per_s": n / (time.perf_counter() - t)})
    print(json.dumps({"torch": torch.__version__, "threads": threads, "rows": rows}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""How the calibrated fusion's numbers were chosen (docs/SEARCH.md, issue 18).

Builds the eval set with its 30 distractors, ingests it into a fresh server, and runs
every query with --top-k 100 --explain, so each list's full ranking (rank and raw score
of every source) is known. Then, offline:
  - fits a logistic calibration per list type on the *tune* half of the queries
    (features: similarity and 1/rank for dense lists; 1/rank, the idf-weighted share of
    the query matched and a match in a short field for the keyword list), keyframes
    tied to images;
  - compares fusion schemes on both halves, with and without the distractors:
    RRF (sum), RRF (max), z-score max, and the calibrated max.

usage: fit_fusion.py [--keep-json FILE]   (needs numpy, pinned by .ci/models.sh)
"""
import json, math, os, re, subprocess, sys, tempfile, time
from collections import defaultdict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("AGENTDB_BIN", os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/agentdb/target")), "release", "agentdb"))


def collect(work):
    ds = os.path.join(work, "dataset")
    subprocess.run([sys.executable, os.path.join(HERE, "make_dataset.py"), ds, "--distractors"], check=True,
                   stdout=subprocess.DEVNULL)
    log = os.path.join(work, "log")
    srv = subprocess.Popen([BIN, "serve", "--data-dir", os.path.join(work, "data"), "--listen", "127.0.0.1:0",
                            "--set", "http_listen=127.0.0.1:0"], stdout=open(log, "w"), stderr=subprocess.DEVNULL)
    try:
        addr = None
        for _ in range(600):
            m = re.search(r"^agentdb listening on (\S+)", open(log).read(), re.M)
            if m:
                addr = m.group(1)
                break
            time.sleep(0.1)
        if not addr:
            sys.exit("the server did not start")
        cli = lambda *a: subprocess.run([BIN, *a, "--server", "http://" + addr], check=True,
                                        capture_output=True).stdout
        cli("collection", "create", "fit", "--multimodal")
        cli("ingest", "fit", os.path.join(ds, "media"), "--json")
        rows = []
        for line in open(os.path.join(ds, "queries.jsonl")):
            q = json.loads(line)
            args = ["search", "fit", "--top-k", "100", "--json", "--explain"]
            if "text" in q:
                args += ["--text", q["text"]]
            elif "image" in q:
                args += ["--image", os.path.join(ds, q["image"])]
            else:
                args += ["--audio", os.path.join(ds, q["audio"])]
            hits = [json.loads(l) for l in cli(*args).decode().splitlines() if l.strip()]
            q["hits"] = [{"source": h["source"].split("/media/")[-1],
                          "explain": [{"list": e["list"], "rank": e["rank"], "score": e["score"],
                                       "matched": e.get("matched", []), "coverage": e.get("coverage", 0.0)}
                                      for e in h.get("explain", [])]}
                         for h in hits]
            rows.append(q)
        return rows
    finally:
        srv.terminate()
        srv.wait()


SHORT_FIELDS = {"ocr", "labels", "filename", "title", "tags", "meta"}


def lists_of(q, with_distractors):
    """Each list's sources, best first: [(source, raw score, (coverage, short field))]."""
    L = defaultdict(list)
    for h in q["hits"]:
        if not with_distractors and h["source"].startswith("other/"):
            continue
        for e in h["explain"]:
            short = any(m.partition(": ")[0] in SHORT_FIELDS for m in e["matched"])
            L[e["list"]].append((h["source"], e["score"], (e["coverage"], short)))
    for k in L:
        L[k].sort(key=lambda x: -x[1])
    return L


def list_type(name):
    return "keyword" if name == "keyword" else name.split("/")[-1]


def feats(name, l, i):
    if name == "keyword":
        coverage, short = l[i][2]
        return [1 / (i + 1), coverage, float(short)]
    return [l[i][1], 1 / (i + 1)]


def rank_of(q, ranked):
    rel = [r.replace("media/", "") for r in q["relevant"]]
    return next((i + 1 for i, s in enumerate(ranked[:10]) if s in rel), None)


def evaluate(rows, scheme, with_distractors, half):
    n = r1 = r5 = 0
    rr = 0.0
    for q in rows:
        if q["half"] != half:
            continue
        sc = scheme(lists_of(q, with_distractors))
        r = rank_of(q, sorted(sc, key=lambda s: -sc[s]))
        n += 1
        if r:
            r1 += r == 1
            r5 += r <= 5
            rr += 1 / r
    return r1 / n, r5 / n, rr / n


def rrf(agg):
    def scheme(L):
        s = defaultdict(float)
        for l in L.values():
            for i, (src, _, _) in enumerate(l):
                s[src] = agg(s[src], 1 / (61 + i))
        return s
    return scheme


def z_max(L):
    s = defaultdict(lambda: -1e9)
    for name, l in L.items():
        sc = np.array([x for _, x, _ in l])
        for i, (src, x, _) in enumerate(l):
            z = x / sc.max() if name == "keyword" else (x - sc.mean()) / max(sc.std(), 0.02) * 0.1
            s[src] = max(s[src], z)
    return s


def fit(X, y, iters=20000, lr=5.0, l2=0.1):
    X = np.hstack([np.array(X), np.ones((len(X), 1))])
    y = np.array(y)
    w = np.zeros(X.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-X @ w))
        w -= lr * (X.T @ (p - y) / len(y) + l2 * np.r_[w[:-1], 0] / len(y))
    return w


def calibrated(P):
    def scheme(L):
        s = defaultdict(lambda: -1e9)
        for name, l in L.items():
            w = P.get(list_type(name), P["_rank"])
            for i, (src, _, _) in enumerate(l):
                f = feats(name, l, i) if list_type(name) in P else [1 / (i + 1)]
                s[src] = max(s[src], float(np.r_[f, 1.0] @ w))
        return s
    return scheme


def main():
    keep = sys.argv[sys.argv.index("--keep-json") + 1] if "--keep-json" in sys.argv else None
    with tempfile.TemporaryDirectory() as work:
        rows = collect(work)
    if keep:
        json.dump(rows, open(keep, "w"))
    data = defaultdict(lambda: ([], []))
    rank_only = ([], [])
    for q in rows:
        if q["half"] != "tune":
            continue
        rel = [r.replace("media/", "") for r in q["relevant"]]
        for name, l in lists_of(q, True).items():
            for i, (src, _, _) in enumerate(l):
                y = 1.0 if src in rel else 0.0
                data[list_type(name)][0].append(feats(name, l, i))
                data[list_type(name)][1].append(y)
                if name != "keyword":
                    rank_only[0].append([1 / (i + 1)])
                    rank_only[1].append(y)
    P = {t: fit(X, y) for t, (X, y) in data.items() if sum(y) > 0}
    P["keyframe"] = P["image"]  # same classifier and bridge (docs/SEARCH.md)
    P["_rank"] = fit(*rank_only)
    print("calibrations (tune half; dense: similarity, 1/rank, bias; keyword: 1/rank, coverage, short field, bias)")
    for t, w in sorted(P.items()):
        X, y = rank_only if t == "_rank" else data.get(t, ([], []))
        print(f"  {t:<9} {np.round(w, 3).tolist()}  ({len(y)} items, {int(sum(y))} relevant)")
    schemes = [("rrf (sum)", rrf(lambda a, b: a + b)), ("rrf (max)", rrf(max)), ("z-score max", z_max),
               ("calibrated", calibrated(P))]
    print(f"\n{'fusion':<12} {'distractors':<12} {'half':<5} {'S@1':>6} {'S@5':>6} {'MRR':>6}")
    for name, scheme in schemes:
        for d in (False, True):
            for half in ("tune", "test"):
                r1, r5, mrr = evaluate(rows, scheme, d, half)
                print(f"{name:<12} {'yes' if d else 'no':<12} {half:<5} {r1:6.3f} {r5:6.3f} {mrr:6.3f}")


if __name__ == "__main__":
    main()

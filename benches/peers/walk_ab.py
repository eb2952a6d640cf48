"""The HNSW graph walk over fp32 rows against fp16 rows (`search.hnsw_walk`), served, on
the side-by-side benchmark's data (../shared/peers/make_data.py: 100k x 384, HNSW32,
efConstruction 128, efSearch 10), with in-process FAISS batched in the same invocation
as the yardstick. One data directory is built once; the server is restarted on it with
each setting in turn, three rounds interleaved, so both read the same graph. Per round:
a packed SearchBatch of 1,000 queries (QPS, recall@10), one query per call from one
thread, and the server's RSS after the searches.

  GRPC_ENABLE_FORK_SUPPORT=false ~/.cache/peers-venv/bin/python benches/peers/walk_ab.py [AGENTDB_BIN [OTHER_BIN]]

With OTHER_BIN (a build of another commit, same data format) each round also runs it
with both settings: a code change's A/B on the same graph.

Run from the checkout (imports sdk/python's stubs); see docs/PERFORMANCE.md."""
import os, sys, json, time, tempfile, shutil, numpy as np, faiss

sys.path.insert(0, os.path.join(os.getcwd(), "sdk", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agentdb._proto import agentdb_pb2 as pb, agentdb_pb2_grpc as pbg  # noqa: E402
from _bench import Server, run_threads, timed_batches, recall_at  # noqa: E402

BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/agentdb/target/release/agentdb")
BINS = [BIN] + sys.argv[2:3]
D = os.environ.get("PEERS_DATA", os.path.expanduser("~/.cache/peers-data"))
SECS = float(os.environ.get("WALK_AB_SECS", "8"))
ROUNDS = int(os.environ.get("WALK_AB_ROUNDS", "3"))
base = np.load(D + "/base.npy").astype(np.float32)
qs = np.load(D + "/queries.npy").astype(np.float32)
gt = np.load(D + "/gt.npy")
K = 10
SETS = ["search.hnsw_ef_construction=128", "search.hnsw_ef_search=10"]
out = {"rounds": []}


def faiss_batched(ix):
    qps, ids = timed_batches(lambda Q: ix.search(Q, K)[1].tolist(), qs, 1000, SECS)
    return qps, recall_at(ids, gt)


ix = faiss.IndexHNSWFlat(384, 32, faiss.METRIC_INNER_PRODUCT)
ix.hnsw.efConstruction = 128
ix.add(base)
ix.hnsw.efSearch = 10
faiss.omp_set_num_threads(2)
out["faiss_batch_1000_qps_before"], out["faiss_recall@10"] = faiss_batched(ix)

d = tempfile.mkdtemp(prefix="agentdb-walk-")
srv = Server(BIN, pb, pbg, SETS, data_dir=d)
srv.cols.Create(pb.CreateCollectionRequest(name="b", spaces=[pb.SpaceSpec(dim=384, metric=pb.METRIC_INNER_PRODUCT,
                                                                          index="HNSW32")]))
for s0 in range(0, len(base), 1000):
    srv.items.Upsert(pb.UpsertRequest(collection="b", items=[
        pb.Item(id=str(s0 + i), vectors={"": pb.Vector(packed=v.tobytes())})
        for i, v in enumerate(base[s0:s0 + 1000])]))
srv.cols.Flush(pb.FlushRequest(collection="b", optimize=True), timeout=3600)
srv.close()


def batch(items):
    def f(Q):
        r = items.SearchBatch(pb.SearchBatchRequest(collection="b", top_k=K,
                                                    vectors=[pb.Vector(packed=q.tobytes()) for q in Q]))
        return [[int(h.id) for h in x.hits] for x in r.results]
    return f


VARIANTS = [(b, w) for b in BINS for w in ("fp32", "fp16")]


def label(b, walk):
    return walk if len(BINS) == 1 else f"{walk} {b}"


for r in range(ROUNDS):
    for b, walk in VARIANTS:
        srv = Server(b, pb, pbg, SETS + [f"search.hnsw_walk={walk}"], data_dir=d)
        reqs = [pb.SearchRequest(collection="b", vector=pb.Vector(packed=q.tobytes()), top_k=K) for q in qs]
        batch(srv.items)(qs)  # warm: segment loaded, pages touched
        qps, ids = timed_batches(batch(srv.items), qs, 1000, SECS)
        seq = run_threads(lambda i: srv.stub().Search(reqs[i]), len(qs), threads=1, secs=SECS / 2)
        single = [[int(h.id) for h in srv.items.Search(reqs[i]).hits] for i in range(len(qs))]
        out["rounds"].append({"walk": label(b, walk), "batch_1000_qps": round(qps), "recall@10": recall_at(ids, gt),
                              "single_recall@10": recall_at(single, gt), "sequential_qps": round(seq),
                              "rss_mb": round(srv.rss_mb())})
        print(json.dumps(out["rounds"][-1]), flush=True)
        srv.close()
out["faiss_batch_1000_qps_after"], _ = faiss_batched(ix)
for walk in (label(b, w) for b, w in VARIANTS):
    rs = [x for x in out["rounds"] if x["walk"] == walk]
    out[f"{walk}_batch_1000_qps_median"] = float(np.median([x["batch_1000_qps"] for x in rs]))
    out[f"{walk}_sequential_qps_median"] = float(np.median([x["sequential_qps"] for x in rs]))
out["du_mb"] = round(sum(os.path.getsize(os.path.join(a, f)) for a, _, fs in os.walk(d) for f in fs) / 2**20, 1)
shutil.rmtree(d, ignore_errors=True)
os.path.exists(d + ".log") and os.remove(d + ".log")
print(json.dumps(out, indent=1))

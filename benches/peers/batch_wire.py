"""What a Python client pays to send vectors, measured in one invocation on the
side-by-side benchmark's data (../shared/peers/make_data.py: 100k x 384): in-process
FAISS HNSW32 (efSearch 10, efConstruction 128; batched search on 2 OpenMP threads, and
one query per call from 2 threads) against AgentDB served over gRPC with the query
vectors sent as `Vector.values` (a Python float per element, what
../shared/peers/bench_peers.py sends) and as `Vector.packed` (NumPy's `tobytes()`),
through raw stubs and through the Python SDK (`agentdb.Client`, which sends packed).
Also the client's own cost of building one 1,000-query request each way, without a
server, and the upsert time of the 100k vectors each way.

  ~/.cache/peers-venv/bin/python benches/peers/batch_wire.py [AGENTDB_BIN]

BATCH_WIRE_SET="key=value ..." adds server settings (e.g. search.hnsw_walk=fp16).

Run from the checkout (imports sdk/python); see docs/PERFORMANCE.md."""
import os, sys, time, json, numpy as np, faiss

# The SDK from this checkout, and its checked-in stubs (tests/test_proto_sync.py keeps
# them equal to proto/proto) for the raw calls.
sys.path.insert(0, os.path.join(os.getcwd(), "sdk", "python"))
import agentdb  # noqa: E402
from agentdb._proto import agentdb_pb2 as pb, agentdb_pb2_grpc as pbg  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402

BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/agentdb/target/release/agentdb")
D = os.environ.get("PEERS_DATA", os.path.expanduser("~/.cache/peers-data"))
SECS = float(os.environ.get("BATCH_WIRE_SECS", "8"))
base = np.load(D + "/base.npy").astype(np.float32)
qs = np.load(D + "/queries.npy").astype(np.float32)
gt = np.load(D + "/gt.npy")
K = 10


def recall(ids):
    return _bench.recall_at(ids, gt, K)


def timed_batches(fn, chunk, secs=SECS):
    """Whole passes over the queries in chunks of `chunk`, for at least `secs`."""
    qps, ids = _bench.timed_batches(fn, qs, chunk, secs)
    return qps, recall(ids)


def run_threads(fn, threads=2, secs=SECS):
    return _bench.run_threads(fn, len(qs), threads, secs)


out = {}
# The client's own cost of one 1,000-query SearchBatchRequest, each way (no server).
for name, mk in (("values", lambda Q: [pb.Vector(values=q) for q in Q.tolist()]),
                 ("packed", lambda Q: [pb.Vector(packed=q.tobytes()) for q in Q])):
    best = 1e9
    for _ in range(5):
        t = time.perf_counter()
        pb.SearchBatchRequest(collection="b", vectors=mk(qs), top_k=K).SerializeToString()
        best = min(best, time.perf_counter() - t)
    out[f"client_encode_1000_ms_{name}"] = best * 1e3

# FAISS in-process.
ix = faiss.IndexHNSWFlat(384, 32, faiss.METRIC_INNER_PRODUCT)
ix.hnsw.efConstruction = 128
ix.add(base)
ix.hnsw.efSearch = 10
faiss.omp_set_num_threads(2)
for chunk in (100, 1000):
    out[f"faiss_batch_{chunk}_qps"], out["faiss_recall@10"] = timed_batches(lambda Q: ix.search(Q, K)[1].tolist(), chunk)
faiss.omp_set_num_threads(1)
out["faiss_qps_2threads"] = run_threads(lambda i: ix.search(qs[i:i + 1], K))
del ix

# AgentDB served.
# BATCH_WIRE_SET: extra server settings, e.g. "search.hnsw_walk=fp16".
srv = _bench.Server(BIN, pb, pbg, ["search.hnsw_ef_construction=128", "search.hnsw_ef_search=10"]
                    + os.environ.get("BATCH_WIRE_SET", "").split())
addr, cols, items = srv.addr, srv.cols, srv.items
for name in ("values", "packed"):
    cols.Create(pb.CreateCollectionRequest(name=name, spaces=[pb.SpaceSpec(dim=384, metric=pb.METRIC_INNER_PRODUCT,
                                                                          index="HNSW32")]))
    t = time.time()
    for s0 in range(0, len(base), 1000):
        blk = base[s0:s0 + 1000]
        vecs = ([pb.Vector(values=v) for v in blk.tolist()] if name == "values"
                else [pb.Vector(packed=v.tobytes()) for v in blk])
        items.Upsert(pb.UpsertRequest(collection=name, items=[
            pb.Item(id=str(s0 + i), vectors={"": v}) for i, v in enumerate(vecs)]))
    out[f"agentdb_upsert_s_{name}"] = time.time() - t
    cols.Flush(pb.FlushRequest(collection=name, optimize=True), timeout=3600)


def batch(col, packed):
    def f(Q):
        vecs = [pb.Vector(packed=q.tobytes()) for q in Q] if packed else [pb.Vector(values=q) for q in Q.tolist()]
        r = items.SearchBatch(pb.SearchBatchRequest(collection=col, vectors=vecs, top_k=K))
        return [[int(h.id) for h in x.hits] for x in r.results]
    return f


stub = srv.stub


for name in ("values", "packed"):
    for chunk in (100, 1000):
        out[f"agentdb_batch_{chunk}_qps_{name}"], out[f"agentdb_batch_recall@10_{name}"] = \
            timed_batches(batch(name, name == "packed"), chunk)
    # One query per call, the request built inside the call as a client holding arrays would.
    if name == "values":
        out["agentdb_qps_2threads_values"] = run_threads(lambda i: stub().Search(pb.SearchRequest(
            collection="values", vector=pb.Vector(values=qs[i].tolist()), top_k=K)))
    else:
        out["agentdb_qps_2threads_packed"] = run_threads(lambda i: stub().Search(pb.SearchRequest(
            collection="packed", vector=pb.Vector(packed=qs[i].tobytes()), top_k=K)))

# The Python SDK (sends packed).
try:
    c = agentdb.Client(addr)
    for chunk in (100, 1000):
        out[f"sdk_batch_{chunk}_qps"], out["sdk_batch_recall@10"] = timed_batches(
            lambda Q: [[int(h.id) for h in r] for r in c.search_batch("packed", Q, top_k=K)], chunk)
    out["sdk_qps_2threads"] = run_threads(lambda i: c.search("packed", vector=qs[i], top_k=K))
except Exception as e:  # noqa: BLE001 - keep the numbers above
    out["sdk_error"] = repr(e)[:300]
srv.close()
print(json.dumps(out, indent=1))

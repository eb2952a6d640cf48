"""QPS at 2 and 10 Python client threads, in one invocation on the side-by-side
benchmark's data (../shared/peers/make_data.py: 100k x 384): in-process FAISS HNSW32
(efSearch 10, efConstruction 128), hnswlib (ef 12) and Chroma (ef_search 24) at the
settings the side-by-side run tuned to recall@10 >= 0.95, and AgentDB served over gRPC (Search with
params.ef 10, and Count, the smallest RPC: what the Python gRPC client itself can
issue, the ceiling for any server measured through it).

  ~/.cache/peers-venv/bin/python benches/peers/client_ceiling.py [AGENTDB_BIN]

Run from the checkout (reads proto/proto); see docs/PERFORMANCE.md."""
import os, sys, time, json, tempfile, shutil, numpy as np, faiss
from grpc_tools import protoc
import grpc_tools
STUBS = tempfile.mkdtemp(prefix="agentdb-stubs-")
protoc.main(["protoc", "-Iproto/proto", f"-I{os.path.join(os.path.dirname(grpc_tools.__file__), '_proto')}",
             f"--python_out={STUBS}", f"--grpc_python_out={STUBS}", "proto/proto/agentdb/v1/agentdb.proto"])
sys.path.insert(0, STUBS)
from agentdb.v1 import agentdb_pb2 as pb, agentdb_pb2_grpc as pbg
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/agentdb/target/release/agentdb")
D = os.environ.get("PEERS_DATA", os.path.expanduser("~/.cache/peers-data"))
base = np.load(D + "/base.npy"); qs = np.load(D + "/queries.npy"); gt = np.load(D + "/gt.npy")
def run_threads(fn, threads, secs=8.0):
    return _bench.run_threads(fn, len(qs), threads, secs)
out = {}
# FAISS in-process
ix = faiss.IndexHNSWFlat(384, 32, faiss.METRIC_INNER_PRODUCT); ix.hnsw.efConstruction = 128
t = time.time(); ix.add(base); out["faiss_build_s"] = time.time() - t
ix.hnsw.efSearch = 10
faiss.omp_set_num_threads(1)
for th in (2, 10):
    out[f"faiss_qps_{th}"] = run_threads(lambda i: ix.search(qs[i:i+1], 10), th)
del ix
# hnswlib (ef 12) and Chroma (ef_search 24): the settings the side-by-side run tuned to
# recall@10 >= 0.95; skipped when not installed.
try:
    import hnswlib
    h = hnswlib.Index(space="ip", dim=base.shape[1])
    h.init_index(max_elements=len(base), ef_construction=128, M=32)
    h.add_items(base, np.arange(len(base)), num_threads=2)
    h.set_ef(12)
    for th in (2, 10):
        out[f"hnswlib_qps_{th}"] = run_threads(lambda i: h.knn_query(qs[i], k=10, num_threads=1), th)
    del h
except ImportError:
    pass
try:
    import chromadb
    cdir = tempfile.mkdtemp(prefix="chroma-ceiling-")
    client = chromadb.PersistentClient(path=cdir)
    col = client.create_collection("bench", configuration={"hnsw": {"space": "cosine", "ef_search": 24}})
    bs = min(5000, client.get_max_batch_size())
    for s0 in range(0, len(base), bs):
        col.add(ids=[str(i) for i in range(s0, min(s0 + bs, len(base)))], embeddings=base[s0:s0 + bs])
    for th in (2, 10):
        out[f"chroma_qps_{th}"] = run_threads(lambda i: col.query(query_embeddings=[qs[i]], n_results=10, include=[]), th)
    del col, client
    shutil.rmtree(cdir, ignore_errors=True)
except ImportError:
    pass
# AgentDB served
srv = _bench.Server(BIN, pb, pbg, ["search.hnsw_ef_construction=128"])
cols, items, stub = srv.cols, srv.items, srv.stub
cols.Create(pb.CreateCollectionRequest(name="b", spaces=[pb.SpaceSpec(dim=384, metric=pb.METRIC_INNER_PRODUCT, index="HNSW32")]))
t = time.time()
for s0 in range(0, len(base), 1000):
    vl = base[s0:s0+1000].tolist()
    items.Upsert(pb.UpsertRequest(collection="b", items=[pb.Item(id=str(s0+i), vectors={"": pb.Vector(values=v)}, payload_json=json.dumps({"tag": (s0+i) % 10})) for i, v in enumerate(vl)]))
cols.Flush(pb.FlushRequest(collection="b", optimize=True)); out["agentdb_build_s"] = time.time() - t
sreq = [pb.SearchRequest(collection="b", vector=pb.Vector(values=q.tolist()), top_k=10, params=pb.SearchParams(ef=10)) for q in qs]
creq = pb.CountRequest(collection="b")
for th in (2, 10):
    out[f"agentdb_search_qps_{th}"] = run_threads(lambda i: stub().Search(sreq[i]), th)
    out[f"agentdb_count_qps_{th}"] = run_threads(lambda i: stub().Count(creq), th)
hits = [[int(h.id) for h in items.Search(sreq[i]).hits] for i in range(len(qs))]
out["agentdb_recall@10"] = float(np.mean([len(set(h) & set(gt[i][:10].tolist())) / 10 for i, h in enumerate(hits)]))
srv.close(); shutil.rmtree(STUBS, ignore_errors=True)
print(json.dumps(out, indent=1))

"""Helpers shared by the scripts in benches/peers: client threads issuing one query per
call, and an AgentDB server started on a loopback port and stopped again."""
import os, socket, subprocess, tempfile, threading, time, shutil

import grpc


def run_threads(fn, n, threads=2, secs=8.0):
    """Calls per second of `fn(i)` from `threads` threads for `secs`, i cycling over
    range(n) (thread t takes t, t+threads, ...)."""
    stop = time.time() + secs
    counts = [0] * threads

    def w(t):
        i = t
        while time.time() < stop:
            fn(i % n)
            i += threads
            counts[t] += 1
    ts = [threading.Thread(target=w, args=(t,)) for t in range(threads)]
    t0 = time.time()
    [t.start() for t in ts]
    [t.join() for t in ts]
    return sum(counts) / (time.time() - t0)


GRPC_OPTS = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]


class Server:
    """`agentdb serve` on 127.0.0.1 (CPU, no HTTP), with `--set` pairs, over `data_dir`
    (a fresh temporary one when None, removed by `close`). `pb`/`pbg` are the stubs'
    modules; `channel` is ready when the constructor returns."""

    def __init__(self, binary, pb, pbg, sets=(), data_dir=None):
        self.own = data_dir is None
        self.dir = data_dir or tempfile.mkdtemp(prefix="agentdb-bench-")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{s.getsockname()[1]}"
        s.close()
        cmd = [binary, "serve", "--data-dir", self.dir, "--listen", self.addr, "--device", "cpu",
               "--set", "http_listen="]
        for kv in sets:
            cmd += ["--set", kv]
        self.log = self.dir.rstrip("/") + ".log"
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        self.channel = grpc.insecure_channel(self.addr, options=GRPC_OPTS)
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited; see {self.log}")
            try:
                grpc.channel_ready_future(self.channel).result(timeout=1)
                pbg.ServerStub(self.channel).Status(pb.StatusRequest(), timeout=5)
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.2)
        self.cols, self.items = pbg.CollectionsStub(self.channel), pbg.ItemsStub(self.channel)
        self.local = threading.local()
        self.pbg = pbg

    def stub(self):
        """An ItemsStub on a channel of this thread's own."""
        st = getattr(self.local, "st", None)
        if st is None:
            c = grpc.insecure_channel(self.addr, options=GRPC_OPTS)
            grpc.channel_ready_future(c).result(timeout=30)
            st = self.local.st = self.pbg.ItemsStub(c)
        return st

    def rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def close(self):
        self.channel.close()
        self.proc.terminate()
        self.proc.wait()
        if self.own:
            shutil.rmtree(self.dir, ignore_errors=True)
            if os.path.exists(self.log):
                os.remove(self.log)


def timed_batches(fn, qs, chunk, secs=8.0):
    """Queries per second of whole passes over `qs` in chunks of `chunk` (`fn(Q)` returns
    a list of id lists), for at least `secs`; also the first pass's ids."""
    n, ids, t0 = 0, None, time.perf_counter()
    while True:
        got = []
        for s in range(0, len(qs), chunk):
            got.extend(fn(qs[s:s + chunk]))
        n += len(qs)
        ids = ids or got
        if time.perf_counter() - t0 >= secs:
            return n / (time.perf_counter() - t0), ids


def recall_at(ids, gt, k=10):
    return sum(len(set(h) & set(gt[i][:k].tolist())) / k for i, h in enumerate(ids)) / len(ids)

"""The checked-in stubs under agentdb/_proto are what gen_proto.sh makes from proto/proto:
a proto change without regenerating fails here."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest

SDK = Path(__file__).resolve().parent.parent
PROTOS = SDK.parent.parent / "proto" / "proto"


def test_generated_stubs_match_the_protos(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools regenerates the stubs (run_tests.sh installs it)")
    if not (PROTOS / "agentdb" / "v1" / "agentdb.proto").exists():
        pytest.skip(f"no protos at {PROTOS}")
    out = tmp_path / "_proto"
    subprocess.run(["bash", str(SDK / "gen_proto.sh"), str(out)], check=True,
                   env=dict(os.environ, PYTHON=sys.executable))
    checked_in = SDK / "agentdb" / "_proto"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in checked_in.iterdir() if p.suffix in (".py", ".pyi")), names
    assert {"agentdb_pb2.py", "agentdb_pb2.pyi", "agentdb_pb2_grpc.py", "orchestration_pb2.py"} <= set(names)
    _, mismatch, errors = filecmp.cmpfiles(out, checked_in, names, shallow=False)
    assert not mismatch and not errors, f"stale stubs {mismatch or errors}: run sdk/python/gen_proto.sh"
    text = (checked_in / "orchestration_pb2.py").read_text()
    assert "from . import agentdb_pb2" in text and "from agentdb.v1" not in text


def test_every_rpc_is_reachable_from_the_clients():
    """Each RPC in the protos is called by some method of the clients (by path)."""
    import agentdb._convert as ops
    from agentdb._transport import METHODS

    source = "".join((SDK / "agentdb" / "_convert.py").read_text().split())
    missing = []
    for path in METHODS:
        service, method = path.rsplit("/", 2)[1].split(".")[-1], path.rsplit("/", 1)[1]
        if f'"{service}","{method}"' not in source and path not in (ops.SUBSCRIBE_PATH, ops.INGEST_PATH):
            missing.append(path)
    assert not missing, missing

"""Copy an installed model folder with its safetensors weights stored as fp16 (half the
bytes, so it travels to a GPU machine under the transfer limit) and a manifest whose
checksum matches the new file. Loaders widen the values back to fp32.

    python3 benches/gpu/model_f16.py ~/.cache/agentdb/models/all-minilm-l6-v2 OUT_DIR
"""
import hashlib
import json
import shutil
import struct
import sys

import numpy as np

src, dst = sys.argv[1], sys.argv[2]
shutil.copytree(src, dst, dirs_exist_ok=True)
manifest = json.load(open(f"{src}/agentdb-model.json"))
raw = open(f"{src}/{manifest['weights']}", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
body = raw[8 + n:]
out_header, chunks, off = {}, [], 0
for name, t in header.items():
    if name == "__metadata__":
        out_header[name] = t
        continue
    a, b = t["data_offsets"]
    data = body[a:b]
    dtype = t["dtype"]
    if dtype == "F32":
        data = np.frombuffer(data, dtype="<f4").astype("<f2").tobytes()
        dtype = "F16"
    out_header[name] = {"dtype": dtype, "shape": t["shape"], "data_offsets": [off, off + len(data)]}
    chunks.append(data)
    off += len(data)
h = json.dumps(out_header, separators=(",", ":")).encode()
h += b" " * ((8 - len(h) % 8) % 8)
blob = struct.pack("<Q", len(h)) + h + b"".join(chunks)
open(f"{dst}/{manifest['weights']}", "wb").write(blob)
manifest["sha256"] = hashlib.sha256(blob).hexdigest()
manifest["source"] = manifest.get("source", "") + " (weights stored as fp16)"
json.dump(manifest, open(f"{dst}/agentdb-model.json", "w"))
print(f"{dst}: {len(blob)} bytes of fp16 weights")

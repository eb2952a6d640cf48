#!/usr/bin/env python3
"""Convert a PyTorch state dict (legacy pre-1.6 format or the zip format) to safetensors
without importing torch. Used by the set-up for model packages that ship a `.pth`.

usage: pth_to_safetensors.py IN.pth OUT.safetensors
Only float32 tensors in contiguous or strided layout are supported; anything else fails
loudly (a silently wrong tensor is worse than no model).
"""
import collections, io, json, pickle, struct, sys, zipfile

DTYPES = {"FloatStorage": ("F32", 4, "f"), "LongStorage": ("I64", 8, "q"), "IntStorage": ("I32", 4, "i")}


class StorageType:
    def __init__(self, name):
        self.name = name


def rebuild_tensor(storage, offset, size, stride, *rest):
    return ("tensor", storage, offset, tuple(size), tuple(stride))


class Unpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return rebuild_tensor
        if module == "torch" and name.endswith("Storage"):
            return StorageType(name)
        raise pickle.UnpicklingError(f"unsupported global {module}.{name}")

    def persistent_load(self, pid):
        # legacy: ('storage', type, key, location, numel, view_metadata); zip: ('storage', type, key, location, numel)
        typ, key = pid[1], str(pid[2])
        if not isinstance(typ, StorageType) or typ.name not in DTYPES:
            raise pickle.UnpicklingError(f"unsupported storage {pid[1]}")
        self.storages.setdefault(key, {"type": typ.name, "numel": pid[4]})
        return key


def load_legacy(f):
    for _ in range(3):  # magic number, protocol version, sys info
        pickle.load(f)
    storages = {}
    obj = Unpickler(f, storages).load()
    keys = pickle.load(f)
    data = {}
    for key in keys:
        (numel,) = struct.unpack("<q", f.read(8))
        st = storages[key]
        nbytes = numel * DTYPES[st["type"]][1]
        data[key] = f.read(nbytes)
        if len(data[key]) != nbytes:
            raise SystemExit("truncated storage " + key)
    return obj, storages, data


def load_zip(path):
    z = zipfile.ZipFile(path)
    names = z.namelist()
    prefix = names[0].split("/")[0]
    storages = {}
    obj = Unpickler(io.BytesIO(z.read(f"{prefix}/data.pkl")), storages).load()
    data = {k: z.read(f"{prefix}/data/{k}") for k in storages}
    return obj, storages, data


def main():
    src, dst = sys.argv[1:3]
    if zipfile.is_zipfile(src):
        obj, storages, data = load_zip(src)
    else:
        with open(src, "rb") as f:
            obj, storages, data = load_legacy(f)
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    header, blobs, pos = {}, [], 0
    for name, t in obj.items():
        if not (isinstance(t, tuple) and t and t[0] == "tensor"):
            raise SystemExit(f"{name}: not a tensor")
        _, key, offset, size, stride = t
        dtype, width, fmt = DTYPES[storages[key]["type"]]
        raw = data[key]
        numel = 1
        for s in size:
            numel *= s
        # contiguous row-major strides?
        want, acc = [], 1
        for s in reversed(size):
            want.insert(0, acc)
            acc *= s
        if list(stride) == want or numel <= 1:
            out = raw[offset * width:(offset + numel) * width]
        else:
            vals = struct.unpack(f"<{len(raw) // width}{fmt}", raw)
            flat = []
            def walk(dim, base):
                if dim == len(size):
                    flat.append(vals[base])
                    return
                for i in range(size[dim]):
                    walk(dim + 1, base + i * stride[dim])
            walk(0, offset)
            out = struct.pack(f"<{numel}{fmt}", *flat)
        if len(out) != numel * width:
            raise SystemExit(f"{name}: storage too short")
        header[name] = {"dtype": dtype, "shape": list(size), "data_offsets": [pos, pos + len(out)]}
        blobs.append(out)
        pos += len(out)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(dst + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    import os
    os.replace(dst + ".tmp", dst)
    print(f"converted {len(header)} tensors to {dst}")


if __name__ == "__main__":
    main()

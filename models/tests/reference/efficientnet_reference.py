#!/usr/bin/env python3
"""Independent NumPy reference for EfficientNet-Lite0 (NCHW, unfused BatchNorm,
explicit TensorFlow SAME padding), used to produce the logits fixture that the Rust
implementation is tested against pixel for pixel (no resizing: a centre crop).

usage: efficientnet_reference.py MODEL.safetensors PHOTO.png OUT.json
needs numpy and pillow (only to regenerate the fixture; the tests read the JSON).
"""
import json, struct, sys
import numpy as np
from PIL import Image

def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        base = 8 + n
        buf = open(path, "rb").read()
    out = {}
    for k, v in hdr.items():
        if v["dtype"] != "F32":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(buf[base + a:base + b], dtype="<f4").reshape(v["shape"])
    return out

W = None

def bn(x, p):
    g, b, m, v = W[p + ".weight"], W[p + ".bias"], W[p + ".running_mean"], W[p + ".running_var"]
    return (x - m[:, None, None]) / np.sqrt(v[:, None, None] + 1e-3) * g[:, None, None] + b[:, None, None]

def pad_same(x, k, s):
    _, h, w = x.shape
    oh, ow = -(-h // s), -(-w // s)
    ph = max((oh - 1) * s + k - h, 0)
    pw = max((ow - 1) * s + k - w, 0)
    return np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))), oh, ow

def conv(x, w, s, groups=1):
    cout, cin_g, k, _ = w.shape
    xp, oh, ow = pad_same(x, k, s)
    out = np.zeros((cout, oh, ow), dtype=np.float64)
    if groups == 1:
        for ky in range(k):
            for kx in range(k):
                patch = xp[:, ky:ky + s * oh:s, kx:kx + s * ow:s]  # [cin, oh, ow]
                out += np.einsum("oc,chw->ohw", w[:, :, ky, kx], patch)
    else:  # depthwise
        for ky in range(k):
            for kx in range(k):
                patch = xp[:, ky:ky + s * oh:s, kx:kx + s * ow:s]
                out += w[:, 0, ky, kx][:, None, None] * patch
    return out

relu6 = lambda x: np.clip(x, 0, 6)

STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]

def forward(x):
    x = relu6(bn(conv(x, W["_conv_stem.weight"], 2), "_bn0"))
    i = 0
    for reps, k, s, e, cin, cout in STAGES:
        for r in range(reps):
            ci, st = (cin, s) if r == 0 else (cout, 1)
            b = f"_blocks.{i}"
            inp = x
            if e != 1:
                x = relu6(bn(conv(x, W[b + "._expand_conv.weight"], 1), b + "._bn0"))
            x = relu6(bn(conv(x, W[b + "._depthwise_conv.weight"], st, groups=x.shape[0]), b + "._bn1"))
            x = bn(conv(x, W[b + "._project_conv.weight"], 1), b + "._bn2")
            if st == 1 and ci == cout:
                x = x + inp
            i += 1
    x = relu6(bn(conv(x, W["_conv_head.weight"], 1), "_bn1"))
    x = x.mean(axis=(1, 2))
    return W["_fc.weight"] @ x + W["_fc.bias"]

if __name__ == "__main__":
    model, photo, out = sys.argv[1:4]
    W = {k: v.astype(np.float64) for k, v in load(model).items()}
    img = np.asarray(Image.open(photo).convert("RGB"), dtype=np.float64)
    h, w, _ = img.shape
    y0, x0 = (h - 224) // 2, (w - 224) // 2
    x = (img[y0:y0 + 224, x0:x0 + 224] / 255.0 - 0.5) / 0.5
    logits = forward(x.transpose(2, 0, 1))
    json.dump({"photo": photo.split("/")[-1], "crop": [x0, y0], "logits": [round(float(v), 5) for v in logits]},
              open(out, "w"))
    top = np.argsort(-logits)[:5]
    print("top-5 classes:", top.tolist(), [round(float(logits[t]), 3) for t in top])

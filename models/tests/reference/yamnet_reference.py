#!/usr/bin/env python3
"""Independent NumPy implementation of YAMNet's front end (TensorFlow's
models/research/audioset/yamnet/features.py: 25 ms periodic-Hann STFT every 10 ms, FFT
512, magnitude, 64 HTK mel bands 125-7500 Hz as tf.signal.linear_to_mel_weight_matrix
builds them, log(mel + 0.001), 96-frame patches every 48 frames, the waveform zero-padded
to one patch and whole hops) run through the float YAMNet graph with ONNX Runtime.

Usage: yamnet_reference.py MODEL.onnx LABELS.txt PCM_F32LE_16K
         prints the recording's top classes (mean sigmoid over its patches);
       yamnet_reference.py MODEL.onnx --fixture OUT.json
         writes the fixture models/tests/sound.rs compares the Rust front end and model
         with: for the synthetic signal below, log-mel values on a grid and every
         patch's logits.
"""
import json
import sys

import numpy as np

RATE = 16000
WIN, HOP, FFT, MELS = 400, 160, 512, 64
PATCH, PATCH_HOP = 96, 48


def mel_matrix():
    bins = FFT // 2 + 1
    hz_to_mel = lambda f: 1127.0 * np.log1p(np.asarray(f, np.float64) / 700.0)
    lin = np.linspace(0.0, RATE / 2.0, bins)[1:]
    spec_mel = hz_to_mel(lin)[:, None]
    edges = np.linspace(hz_to_mel(125.0), hz_to_mel(7500.0), MELS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    w = np.maximum(0.0, np.minimum((spec_mel - lower) / (center - lower), (upper - spec_mel) / (upper - center)))
    return np.vstack([np.zeros((1, MELS)), w])  # [257, 64]


def log_mel(x):
    x = np.asarray(x, np.float64)
    min_len = int((0.96 + 0.025 - 0.010) * RATE)
    n = max(len(x), min_len)
    hop = int(0.48 * RATE)
    hops = int(np.ceil((n - min_len) / hop))
    x = np.concatenate([x, np.zeros(min_len - len(x) if len(x) < min_len else 0)])
    x = np.concatenate([x, np.zeros(hop * hops - (n - min_len))])
    frames = 1 + (len(x) - WIN) // HOP
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN) / WIN)  # periodic Hann
    idx = np.arange(WIN)[None, :] + HOP * np.arange(frames)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * window, FFT))
    return np.log(spec @ mel_matrix() + 0.001)  # [frames, 64]


def patches(lm):
    starts = range(0, lm.shape[0] - PATCH + 1, PATCH_HOP)
    return np.stack([lm[s:s + PATCH] for s in starts])[:, None].astype(np.float32)


def synth():
    """2.1 s: two tones, a rising chirp and a deterministic buzz (the Rust test makes
    the same samples)."""
    i = np.arange(int(2.1 * RATE), dtype=np.float64)
    t = i / RATE
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.15 * np.sin(2 * np.pi * 1320 * t)
         + 0.2 * np.sin(2 * np.pi * (200 + 900 * t) * t) + 0.05 * ((i * 7919 % 1000) / 500 - 1))
    return x.astype(np.float32)


def main():
    import onnxruntime as ort
    model = sys.argv[1]
    s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    if sys.argv[2] == "--fixture":
        lm = log_mel(synth())
        p = patches(lm)
        logits = s.run(None, {"audio": p})[0]
        grid = [[f, b, round(float(lm[f, b]), 5)] for f in range(0, lm.shape[0], 7) for b in range(0, MELS, 9)]
        json.dump({"frames": int(lm.shape[0]), "log_mel": grid,
                   "logits": [[round(float(v), 4) for v in row] for row in logits]}, open(sys.argv[3], "w"))
        return
    names = open(sys.argv[2]).read().splitlines()
    x = np.fromfile(sys.argv[3], dtype="<f4")
    p = patches(log_mel(x))
    logits = s.run(None, {"audio": p})[0]
    scores = (1 / (1 + np.exp(-logits))).mean(0)
    top = np.argsort(-scores)[:8]
    print(f"{p.shape[0]} patches: " + ", ".join(f"{names[i]} {scores[i]:.2f}" for i in top))


if __name__ == "__main__":
    main()

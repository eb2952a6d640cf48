"""Reference log-mel features for models/tests/clap.rs, computed by `transformers` itself.

`ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad", frequency_min=50, frequency_max=14_000)` with the other
settings at their defaults, which are `laion/clap-htsat-unfused`'s (48 kHz, n_fft 1024,
hop 480, 64 mel bands 50 Hz - 14 kHz, 10 s windows). Run once (needs
`pip install transformers numpy`); the output is committed:

    python3 models/tests/reference/clap_features_reference.py

Writes models/tests/fixtures/clap_features.json: for each test signal (the formulas
below, repeated in the Rust test), selected frames of the 1001 x 64 features and the
mean of every band over all frames.
"""
import json
import os

import sys
import types

import numpy as np
import transformers

# The extractor's module imports torch only for the fused models' mel resize (not used
# with truncation="rand_trunc"); an empty stand-in lets it load without a 2 GB wheel.
sys.modules.setdefault("torch", types.ModuleType("torch"))
from transformers.models.clap.feature_extraction_clap import ClapFeatureExtractor  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RATE = 48_000
FRAMES = [0, 1, 2, 3, 100, 500, 999, 1000]


def tones(n):
    """1.3 s: 440 Hz + 3 kHz + a deterministic sawtooth-ish ripple (repeat-padded)."""
    i = np.arange(n, dtype=np.float64)
    x = 0.5 * np.sin(2 * np.pi * 440 * i / RATE) + 0.25 * np.sin(2 * np.pi * 3000 * i / RATE + 0.3)
    x += 0.05 * (((i * 7919) % 1000) / 500.0 - 1.0)
    return x.astype(np.float32)


def chirp(n):
    """Exactly one window (10 s): a rising chirp from 100 Hz, no padding."""
    t = np.arange(n, dtype=np.float64) / RATE
    return (0.3 * np.sin(2 * np.pi * (100 * t + 250 * t * t))).astype(np.float32)


fe = ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad", frequency_min=50, frequency_max=14_000)
assert fe.sampling_rate == RATE and fe.nb_max_samples == 480_000, (fe.sampling_rate, fe.nb_max_samples)
cases = {"tones_1.3s": tones(62_400), "chirp_10s": chirp(480_000)}
out = {"transformers": transformers.__version__, "frames": FRAMES, "cases": {}}
for name, x in cases.items():
    feats = fe(x, sampling_rate=RATE, return_tensors="np")["input_features"]
    assert feats.shape == (1, 1, 1001, 64), feats.shape
    f = feats[0, 0].astype(np.float64)
    out["cases"][name] = {
        "rows": {str(r): [round(v, 5) for v in f[r].tolist()] for r in FRAMES},
        "band_means": [round(v, 5) for v in f.mean(axis=0).tolist()],
    }
path = os.path.join(HERE, "..", "fixtures", "clap_features.json")
with open(path, "w") as fh:
    json.dump(out, fh, indent=0)
print("wrote", os.path.normpath(path), "with transformers", transformers.__version__)

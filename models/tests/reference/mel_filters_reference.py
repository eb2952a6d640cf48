#!/usr/bin/env python3
"""Reference for the Whisper mel filterbank that `agentdb_models::whisper::mel_filters`
computes: librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) (Slaney mel scale, Slaney
area normalisation), the matrix OpenAI ships as mel_80 in whisper/assets/mel_filters.npz.

librosa's algorithm written out with NumPy only (float64, cast to float32 at the end as
librosa does). Prints the fixture numbers the Rust test (models/tests/whisper.rs) checks:
every non-zero weight of a few rows, the row sums and the total.

    python3 models/tests/reference/mel_filters_reference.py
"""
import numpy as np

SR, N_FFT, N_MELS = 16000, 400, 80
F_SP = 200.0 / 3  # Slaney: linear below 1 kHz, 200/3 Hz per mel
MIN_LOG_HZ = 1000.0
MIN_LOG_MEL = MIN_LOG_HZ / F_SP
LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(f):
    f = np.asanyarray(f, dtype=np.float64)
    return np.where(f >= MIN_LOG_HZ, MIN_LOG_MEL + np.log(np.maximum(f, 1e-10) / MIN_LOG_HZ) / LOGSTEP, f / F_SP)


def mel_to_hz(m):
    m = np.asanyarray(m, dtype=np.float64)
    return np.where(m >= MIN_LOG_MEL, MIN_LOG_HZ * np.exp(LOGSTEP * (m - MIN_LOG_MEL)), F_SP * m)


def mel_filters():
    fftfreqs = np.linspace(0, SR / 2, 1 + N_FFT // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SR / 2), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    weights = np.zeros((N_MELS, 1 + N_FFT // 2))
    for i in range(N_MELS):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : N_MELS + 2] - mel_f[:N_MELS]))[:, None]
    return weights.astype(np.float32)


if __name__ == "__main__":
    m = mel_filters()
    assert m.shape == (N_MELS, 1 + N_FFT // 2)
    for row in (0, 1, 10, 40, 79):
        nz = np.nonzero(m[row])[0]
        print(f"row {row}: " + ", ".join(f"({c}, {m[row, c]:.8f})" for c in nz))
    print("row sums 0, 20, 60:", ", ".join(f"{m[r].sum():.8f}" for r in (0, 20, 60)))
    print(f"total: {m.sum():.8f}")

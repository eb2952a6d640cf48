//! Signal processing shared by the audio front ends (YAMNet, Whisper, CLAP): a radix-2
//! FFT and librosa's Slaney mel filterbank.

/// In-place iterative radix-2 FFT (length a power of two).
pub fn fft(re: &mut [f64], im: &mut [f64]) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let ang = -2.0 * std::f64::consts::PI / len as f64;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (wr, wi) = ((ang * k as f64).cos(), (ang * k as f64).sin());
                let (a, b) = (start + k, start + k + len / 2);
                let (xr, xi) = (re[b] * wr - im[b] * wi, re[b] * wi + im[b] * wr);
                re[b] = re[a] - xr;
                im[b] = im[a] - xi;
                re[a] += xr;
                im[a] += xi;
            }
        }
        len <<= 1;
    }
}

/// A periodic Hann window of `n` samples (`np.hanning(n + 1)[:-1]`, torch's default).
pub fn periodic_hann(n: usize) -> Vec<f64> {
    (0..n).map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()).collect()
}

/// librosa's `filters.mel(sr=rate, n_fft, n_mels, fmin, fmax)` (Slaney mel scale,
/// Slaney area normalisation; `transformers`' `mel_filter_bank(..., norm="slaney",
/// mel_scale="slaney")` is the same bank): `n_mels × (n_fft/2 + 1)`, row-major.
pub fn slaney_mel(rate: f64, n_fft: usize, n_mels: usize, fmin: f64, fmax: f64) -> Vec<f32> {
    // Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    let hz_to_mel = |f: f64| if f >= MIN_LOG_HZ { MIN_LOG_MEL + (f / MIN_LOG_HZ).ln() / logstep } else { f / F_SP };
    let mel_to_hz = |m: f64| if m >= MIN_LOG_MEL { MIN_LOG_HZ * (logstep * (m - MIN_LOG_MEL)).exp() } else { F_SP * m };
    let n_freqs = n_fft / 2 + 1;
    let fft_freq = |k: usize| (rate / 2.0) * k as f64 / (n_freqs - 1) as f64;
    let (lo, hi) = (hz_to_mel(fmin), hz_to_mel(fmax));
    let edges: Vec<f64> =
        (0..n_mels + 2).map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1).max(1) as f64)).collect();
    let mut out = vec![0f32; n_mels * n_freqs];
    for (m, row) in out.chunks_mut(n_freqs).enumerate() {
        let (lo, mid, hi) = (edges[m], edges[m + 1], edges[m + 2]);
        let enorm = 2.0 / (hi - lo);
        for (k, v) in row.iter_mut().enumerate() {
            let f = fft_freq(k);
            let rise = (f - lo) / (mid - lo);
            let fall = (hi - f) / (hi - mid);
            *v = (rise.min(fall).max(0.0) * enorm) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_matches_a_direct_dft() {
        let x: Vec<f64> = (0..16).map(|i| ((i * 7 % 5) as f64 - 2.0) * 0.3).collect();
        let (mut re, mut im) = (x.clone(), vec![0.0; 16]);
        fft(&mut re, &mut im);
        for k in 0..16 {
            let (mut r, mut i) = (0.0, 0.0);
            for (n, v) in x.iter().enumerate() {
                let a = -2.0 * std::f64::consts::PI * (k * n) as f64 / 16.0;
                r += v * a.cos();
                i += v * a.sin();
            }
            assert!((re[k] - r).abs() < 1e-9 && (im[k] - i).abs() < 1e-9, "bin {k}");
        }
    }

    #[test]
    fn slaney_bank_covers_only_its_band() {
        let m = slaney_mel(48_000.0, 1024, 64, 50.0, 14_000.0);
        let bins = 513;
        for b in 0..64 {
            assert!(m[b * bins..(b + 1) * bins].iter().any(|&w| w > 0.0), "band {b} empty");
        }
        // Nothing below 50 Hz (bin 1 is 46.9 Hz) or above 14 kHz is weighted.
        let top = (14_000.0f64 / 24_000.0 * 512.0).ceil() as usize;
        for b in 0..64 {
            let row = &m[b * bins..(b + 1) * bins];
            assert!(row[..2].iter().chain(&row[top + 1..]).all(|&w| w == 0.0), "band {b} leaks");
        }
    }
}

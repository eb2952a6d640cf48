//! Audio: decoding WAV, FLAC, MP3, Ogg Vorbis and AAC/M4A with symphonia into mono
//! float samples, with the duration limit enforced from the container header when it
//! states one and while decoding when it does not, then resampling to a model's rate
//! (windowed-sinc, so speech keeps its band and loses nothing to aliasing).

use crate::error::{Error, Result};
use std::io::Cursor;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

#[derive(Debug, Clone, Copy)]
pub struct AudioLimits {
    /// Longest audio accepted, in seconds.
    pub max_seconds: f64,
}

impl Default for AudioLimits {
    fn default() -> Self {
        AudioLimits { max_seconds: 3600.0 }
    }
}

/// Decoded audio: mono samples in [-1, 1] at `rate` Hz.
#[derive(Debug, Clone)]
pub struct Audio {
    pub samples: Vec<f32>,
    pub rate: u32,
    /// Container/codec name for messages, e.g. "wav/pcm_s16le".
    pub format: String,
    /// Channels in the file (the samples are their mean).
    pub channels: u16,
}

impl Audio {
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / self.rate.max(1) as f64
    }
}

fn bad(what: &str, e: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("corrupt or truncated audio ({what}): {e}"))
}

/// Decode the first audio track of `bytes` (format detected from content) to mono.
///
/// symphonia panics on some malformed headers (a WAV stating 0 Hz builds a time base
/// with a zero denominator): such a file is refused as corrupt, like any other.
pub fn decode_audio(bytes: &[u8], lim: AudioLimits) -> Result<Audio> {
    match std::panic::catch_unwind(|| decode_audio_unguarded(bytes, lim)) {
        Ok(r) => r,
        Err(p) => {
            let why = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the decoder failed".into());
            Err(bad("header", why))
        }
    }
}

fn decode_audio_unguarded(bytes: &[u8], lim: AudioLimits) -> Result<Audio> {
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes.to_vec())), MediaSourceStreamOptions::default());
    let probed = symphonia::default::get_probe()
        .format(&Hint::new(), mss, &FormatOptions::default(), &MetadataOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(_) => Error::InvalidInput("not audio in a supported format".into()),
            other => bad("container", other),
        })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| Error::InvalidInput("the file has no audio track".into()))?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let codec = symphonia::default::get_codecs()
        .get_codec(params.codec)
        .map(|d| d.short_name.to_string())
        .unwrap_or_else(|| "unknown".into());
    let rate = params.sample_rate.ok_or_else(|| Error::InvalidInput("audio track states no sample rate".into()))?;
    if rate == 0 || rate > 384_000 {
        return Err(Error::InvalidInput(format!("audio sample rate {rate} Hz is not plausible")));
    }
    if let Some(frames) = params.n_frames {
        let secs = frames as f64 / rate as f64;
        if secs > lim.max_seconds {
            return Err(Error::InvalidInput(format!(
                "audio is {secs:.1} s long, above limits.max_audio_seconds ({})",
                lim.max_seconds
            )));
        }
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| Error::InvalidInput(format!("unsupported audio codec {codec}: {e}")))?;
    let max_samples = (lim.max_seconds * rate as f64) as usize;
    let mut samples: Vec<f32> = Vec::new();
    let mut buf: Option<SampleBuffer<f32>> = None;
    let mut decoded_any = false;
    let mut errors = 0usize;
    let mut file_channels = params.channels.map_or(0, |c| c.count());
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => {
                if decoded_any {
                    break; // a damaged tail: keep what decoded
                }
                return Err(bad(&codec, e));
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymError::DecodeError(e)) => {
                // Skip a damaged packet, but not forever.
                errors += 1;
                if errors > 100 {
                    return Err(bad(&codec, e));
                }
                continue;
            }
            Err(SymError::IoError(_)) => break,
            Err(e) => return Err(bad(&codec, e)),
        };
        let spec = *decoded.spec();
        let channels = spec.channels.count().max(1);
        file_channels = file_channels.max(channels);
        let b = buf.get_or_insert_with(|| SampleBuffer::new(decoded.capacity() as u64, spec));
        if b.capacity() < decoded.capacity() * channels {
            *b = SampleBuffer::new(decoded.capacity() as u64, spec);
        }
        b.copy_interleaved_ref(decoded);
        for frame in b.samples().chunks(channels) {
            samples.push(frame.iter().sum::<f32>() / channels as f32);
        }
        decoded_any = true;
        if samples.len() > max_samples {
            return Err(Error::InvalidInput(format!(
                "audio runs past limits.max_audio_seconds ({}) while decoding",
                lim.max_seconds
            )));
        }
    }
    if samples.is_empty() {
        return Err(bad(&codec, "no audio samples could be decoded"));
    }
    if let Some(i) = samples.iter().position(|s| !s.is_finite()) {
        return Err(Error::InvalidInput(format!("decoded audio has a non-finite sample at {i}")));
    }
    Ok(Audio { samples, rate, format: codec, channels: file_channels.clamp(1, u16::MAX as usize) as u16 })
}

/// Encode mono samples in [-1, 1] as a 16-bit PCM WAV file (for recordings made by
/// tools and tests; values outside the range are clipped).
pub fn encode_wav16(samples: &[f32], rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut v = Vec::with_capacity(44 + samples.len() * 2);
    v.extend(b"RIFF");
    v.extend((36 + data_len).to_le_bytes());
    v.extend(b"WAVEfmt ");
    v.extend(16u32.to_le_bytes());
    v.extend(1u16.to_le_bytes()); // PCM
    v.extend(1u16.to_le_bytes()); // mono
    v.extend(rate.to_le_bytes());
    v.extend((rate * 2).to_le_bytes());
    v.extend(2u16.to_le_bytes());
    v.extend(16u16.to_le_bytes());
    v.extend(b"data");
    v.extend(data_len.to_le_bytes());
    for s in samples {
        v.extend(((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    v
}

/// Resample with a Hann-windowed sinc low-pass at 0.95 × the lower Nyquist frequency.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || samples.is_empty() {
        return samples.to_vec();
    }
    let ratio = to as f64 / from as f64;
    let cutoff = 0.95 * ratio.min(1.0); // relative to the input Nyquist
    let half = 16.0 / cutoff; // filter half-width in input samples
    let n_out = ((samples.len() as f64) * ratio).floor() as usize;
    let mut out = Vec::with_capacity(n_out);
    for j in 0..n_out {
        let t = j as f64 / ratio; // position in input samples
        let lo = (t - half).ceil().max(0.0) as usize;
        let hi = ((t + half).floor() as usize).min(samples.len() - 1);
        let (mut acc, mut wsum) = (0.0f64, 0.0f64);
        for (i, s) in samples.iter().enumerate().take(hi + 1).skip(lo) {
            let x = i as f64 - t;
            let sinc = if x.abs() < 1e-9 {
                1.0
            } else {
                let a = std::f64::consts::PI * x * cutoff;
                a.sin() / a
            };
            let w = 0.5 + 0.5 * (std::f64::consts::PI * x / half).cos();
            let k = sinc * w;
            acc += *s as f64 * k;
            wsum += k;
        }
        out.push(if wsum.abs() > 1e-12 { (acc / wsum) as f32 } else { 0.0 });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, rate: u32, secs: f32) -> Vec<f32> {
        (0..(rate as f32 * secs) as usize)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn a_wav_stating_zero_hz_is_refused_not_a_panic() {
        let mut wav = encode_wav16(&[0.0; 1000], 16000);
        wav[24..28].copy_from_slice(&0u32.to_le_bytes());
        let err = decode_audio(&wav, AudioLimits::default()).unwrap_err().to_string();
        assert!(err.contains("corrupt or truncated audio"), "{err}");
    }

    #[test]
    fn wav_round_trip_and_limits() {
        let s = tone(440.0, 22050, 1.5);
        let a = decode_audio(&encode_wav16(&s, 22050), AudioLimits::default()).unwrap();
        assert_eq!(a.rate, 22050);
        assert_eq!(a.samples.len(), s.len());
        assert!((a.seconds() - 1.5).abs() < 1e-3);
        let err = decode_audio(&encode_wav16(&s, 22050), AudioLimits { max_seconds: 1.0 }).unwrap_err().to_string();
        assert!(err.contains("max_audio_seconds"), "{err}");
    }

    #[test]
    fn bad_audio_is_an_error_not_a_panic() {
        let w = encode_wav16(&tone(440.0, 16000, 0.5), 16000);
        assert!(decode_audio(b"RIFF\x00\x00", AudioLimits::default()).is_err());
        assert!(decode_audio(b"hello world, not audio", AudioLimits::default()).is_err());
        assert!(decode_audio(&w[..44], AudioLimits::default()).is_err(), "header only: no samples");
        // A truncated body keeps what decoded.
        let cut = decode_audio(&w[..w.len() / 2], AudioLimits::default()).unwrap();
        assert!(cut.samples.len() < 8000 && cut.samples.len() > 3000);
        // Random bytes after a valid header, and every prefix of the file.
        let mut noisy = w.clone();
        for b in noisy.iter_mut().skip(60).step_by(3) {
            *b ^= 0xa5;
        }
        let _ = decode_audio(&noisy, AudioLimits::default());
        for cut in (0..200).step_by(7) {
            let _ = decode_audio(&w[..cut], AudioLimits::default());
        }
    }

    #[test]
    fn resampling_keeps_a_tone_and_its_length() {
        let s = tone(440.0, 44100, 1.0);
        let r = resample(&s, 44100, 16000);
        assert_eq!(r.len(), 16000);
        // Compare with the ideal 440 Hz tone at 16 kHz away from the edges.
        let ideal = tone(440.0, 16000, 1.0);
        let err = r[200..15800].iter().zip(&ideal[200..15800]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(err < 0.01, "max error {err}");
        // A tone above the new Nyquist is removed, not aliased.
        let high = resample(&tone(10000.0, 44100, 1.0), 44100, 16000);
        let rms = (high[200..15800].iter().map(|v| v * v).sum::<f32>() / 15600.0).sqrt();
        assert!(rms < 0.01, "aliased energy {rms}");
    }
}

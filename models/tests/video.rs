//! Video decoding against files made at test time with the `ffmpeg` CLI (installed by
//! `.ci/setup.sh`): two scenes (a moving test pattern for 3 s, then solid blue for 3 s,
//! so exactly one hard cut at 3 s) with a sine tone, as MP4 (H.264/AAC), WebM
//! (VP9/Opus) and MKV (MPEG-4 Part 2/Vorbis); plus damaged and over-limit inputs.

use agentdb_models::video::{decode_video, Video, VideoLimits};
use agentdb_models::Error;
use std::collections::HashMap;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const W: u32 = 320;
const H: u32 = 240;
const SECONDS: f32 = 6.0;
const CUT: f32 = 3.0;
/// Scene threshold used throughout: the cut from the test pattern to blue differs by
/// ~0.2; consecutive pattern frames by far less.
const SCENE: f32 = 0.1;
/// Work on any one of these small files must end well within this.
const BOUND: Duration = Duration::from_secs(20);

/// Two scenes of `W`×`H` at 25 fps: testsrc2 for `CUT` s, then blue.
fn two_scenes() -> String {
    format!(
        "testsrc2=s={W}x{H}:r=25:d={CUT}[a];color=c=blue:s={W}x{H}:r=25:d={}[b];[a][b]concat=n=2:v=1:a=0[v]",
        SECONDS - CUT
    )
}

fn ffmpeg(dir: &std::path::Path, args: &[&str], out: &str) -> Vec<u8> {
    let path = dir.join(out);
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args)
        .arg(&path)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the ffmpeg CLI ({e}): run .ci/setup.sh to install it"));
    assert!(status.success(), "ffmpeg failed making {out}: {args:?}");
    std::fs::read(&path).unwrap()
}

/// Every test file, made once per test process (the temp dir is removed after).
fn media(name: &str) -> &'static [u8] {
    static MEDIA: OnceLock<HashMap<&'static str, Vec<u8>>> = OnceLock::new();
    MEDIA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let scenes = two_scenes();
        let tone = format!("sine=frequency=440:sample_rate=44100:duration={SECONDS}");
        let av = |v: &[&'static str]| -> Vec<String> {
            let mut a: Vec<String> =
                ["-filter_complex", scenes.as_str(), "-f", "lavfi", "-i", tone.as_str(), "-map", "[v]", "-map", "0:a"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
            a.extend(v.iter().map(|s| s.to_string()));
            a
        };
        let run = |args: Vec<String>, out: &str| {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            ffmpeg(d, &refs, out)
        };
        let h264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"];
        let mut m = HashMap::new();
        let mut mp4 = av(&h264);
        mp4.extend(["-c:a", "aac", "-metadata", "title=Two scenes"].map(String::from));
        m.insert("mp4", run(mp4.clone(), "a.mp4"));
        mp4.extend(["-movflags", "+faststart"].map(String::from));
        m.insert("mp4-faststart", run(mp4, "b.mp4"));
        let webm =
            av(&["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k", "-c:a", "libopus"]);
        m.insert("webm", run(webm, "a.webm"));
        let mkv = av(&["-c:v", "mpeg4", "-q:v", "4", "-c:a", "libvorbis"]);
        m.insert("mkv", run(mkv, "a.mkv"));
        let silent = ["-filter_complex", &scenes, "-map", "[v]", "-c:v", "libx264", "-preset", "veryfast", "-an"];
        m.insert("no-audio", ffmpeg(d, &silent, "silent.mp4"));
        // Streamed WebM (no duration in the header) and MPEG-TS (timestamps start at 1.4 s).
        let live =
            av(&["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus", "-live", "1"]);
        m.insert("webm-live", run(live, "live.webm"));
        m.insert("ts", run(av(&h264.iter().chain(&["-c:a", "aac"]).copied().collect::<Vec<_>>()), "a.ts"));
        m.insert("audio-only", ffmpeg(d, &["-f", "lavfi", "-i", &tone, "-c:a", "aac"], "tone.m4a"));
        m.insert("png", ffmpeg(d, &["-f", "lavfi", "-i", "testsrc2=s=64x48", "-frames:v", "1"], "still.png"));
        m
    })[name]
        .as_ref()
}

fn decode(bytes: &[u8], lim: VideoLimits, interval: f32) -> agentdb_models::Result<Video> {
    let t0 = Instant::now();
    let r = decode_video(bytes, lim, interval, SCENE);
    assert!(t0.elapsed() < BOUND, "decoding took {:?}", t0.elapsed());
    r
}

fn invalid(r: agentdb_models::Result<Video>) -> String {
    match r {
        Err(Error::InvalidInput(m)) => m,
        Err(e) => panic!("expected InvalidInput, got {e:?}"),
        Ok(v) => panic!("expected an error, got a video of {} s with {} keyframes", v.duration, v.keyframes.len()),
    }
}

/// Mean colour of an RGB image.
fn mean_rgb(img: &image::RgbImage) -> [f32; 3] {
    let mut s = [0f64; 3];
    for p in img.pixels() {
        for c in 0..3 {
            s[c] += p[c] as f64;
        }
    }
    let n = (img.width() * img.height()) as f64;
    s.map(|v| (v / n) as f32)
}

/// The checks every two-scene file must pass, at 1 s and 2 s intervals.
fn check_two_scenes(name: &str, container: &str, codec: &str, rate: u32) {
    let bytes = media(name);
    let t0 = Instant::now();
    let v = decode(bytes, VideoLimits::default(), 1.0).unwrap();
    let secs = t0.elapsed().as_secs_f32();
    eprintln!(
        "{name}: {} bytes, {:.1} s decoded in {secs:.3} s ({:.0} s of video per s)",
        bytes.len(),
        v.duration,
        v.duration / secs
    );
    assert!((v.duration - SECONDS).abs() < 0.1, "{name}: duration {}", v.duration);
    assert_eq!((v.width, v.height), (W, H));
    assert_eq!(v.container, container);
    assert_eq!(v.video_codec, codec);

    // One frame per second, the cut at 3 s falling on a slot and flagged.
    let times: Vec<f32> = v.keyframes.iter().map(|k| k.t).collect();
    assert_eq!(v.keyframes.len(), 6, "{name}: keyframes at {times:?}");
    for (i, k) in v.keyframes.iter().enumerate() {
        assert!((k.t - i as f32).abs() < 0.05, "{name}: keyframe {i} at {}", k.t);
        assert_eq!(k.image.dimensions(), (W, H));
        assert_eq!(k.scene_change, i == 3, "{name}: keyframe {i} at {} scene_change", k.t);
    }
    // Before the cut the pattern, after it blue.
    let [r, g, b] = mean_rgb(&v.keyframes[4].image);
    assert!(b > 200.0 && r < 30.0 && g < 30.0, "{name}: frame after the cut is {r},{g},{b}");
    let [r, g, b] = mean_rgb(&v.keyframes[1].image);
    assert!(!(b > 200.0 && r < 30.0 && g < 30.0), "{name}: frame before the cut is blue ({r},{g},{b})");

    // Every 2 s: 0, 2, the cut (not on a slot), 4.
    let v2 = decode(bytes, VideoLimits::default(), 2.0).unwrap();
    let k = &v2.keyframes;
    let times: Vec<f32> = k.iter().map(|k| k.t).collect();
    assert_eq!(k.len(), 4, "{name}: keyframes at {times:?}");
    assert!(k[0].t < 0.05 && (k[1].t - 2.0).abs() < 0.05 && (k[3].t - 4.0).abs() < 0.05, "{name}: {times:?}");
    assert!(k[2].t >= CUT - 0.01 && k[2].t <= CUT + 0.2 && k[2].scene_change, "{name}: cut keyframe {:?}", times);
    assert_eq!(k.iter().filter(|k| k.scene_change).count(), 1);

    let (samples, r) = v.audio.as_ref().expect("audio track");
    assert_eq!(*r, rate, "{name}: audio rate");
    let len_s = samples.len() as f32 / rate as f32;
    assert!((len_s - SECONDS).abs() < 0.1, "{name}: audio is {len_s} s");
    // A 440 Hz sine at ffmpeg's default amplitude 1/8: RMS ≈ 0.088.
    let mid = &samples[rate as usize..2 * rate as usize];
    let rms = (mid.iter().map(|s| s * s).sum::<f32>() / mid.len() as f32).sqrt();
    assert!((0.05..0.15).contains(&rms), "{name}: audio RMS {rms}");
}

#[test]
fn mp4_h264_aac() {
    check_two_scenes("mp4", "mp4", "h264", 44100);
    let v = decode(media("mp4"), VideoLimits::default(), 1.0).unwrap();
    assert_eq!(v.title.as_deref(), Some("Two scenes"));
}

#[test]
fn webm_vp9_opus() {
    check_two_scenes("webm", "webm", "vp9", 48000);
}

#[test]
fn mkv_mpeg4_vorbis() {
    check_two_scenes("mkv", "matroska", "mpeg4", 44100);
}

#[test]
fn no_duration_in_the_header() {
    let v = decode(media("webm-live"), VideoLimits::default(), 1.0).unwrap();
    assert!((v.duration - SECONDS).abs() < 0.1, "duration {}", v.duration);
    assert_eq!(v.keyframes.len(), 6);
    // The limit is then enforced while decoding.
    let lim = VideoLimits { max_seconds: 2.0, ..Default::default() };
    let m = invalid(decode(media("webm-live"), lim, 1.0));
    assert!(m.contains("limits.max_video_seconds (2) while decoding"), "{m}");
}

#[test]
fn mpeg_ts_times_from_the_start() {
    let v = decode(media("ts"), VideoLimits::default(), 1.0).unwrap();
    assert_eq!(v.container, "mpegts");
    let times: Vec<f32> = v.keyframes.iter().map(|k| k.t).collect();
    assert_eq!(times.len(), 6, "{times:?}");
    assert!(times[0] < 0.1 && (times[3] - CUT).abs() < 0.1 && v.keyframes[3].scene_change, "{times:?}");
    let (samples, rate) = v.audio.unwrap();
    assert!((samples.len() as f32 / rate as f32 - SECONDS).abs() < 0.1);
}

#[test]
fn no_audio_track() {
    let v = decode(media("no-audio"), VideoLimits::default(), 1.0).unwrap();
    assert!(v.audio.is_none());
    assert_eq!(v.keyframes.len(), 6);
    assert!(v.title.is_none());
}

#[test]
fn not_a_video() {
    let m = invalid(decode(media("audio-only"), VideoLimits::default(), 1.0));
    assert!(m.contains("no video stream"), "{m}");
    let m = invalid(decode(media("png"), VideoLimits::default(), 1.0));
    assert!(m.contains("still image"), "{m}");
    let m = invalid(decode(&[], VideoLimits::default(), 1.0));
    assert!(m.contains("empty"), "{m}");
    let m = invalid(decode(media("mp4"), VideoLimits::default(), 0.0));
    assert!(m.contains("interval"), "{m}");
}

#[test]
fn limits_refused_from_the_header() {
    for name in ["mp4", "webm", "mkv"] {
        let lim = VideoLimits { max_seconds: 2.0, ..Default::default() };
        let m = invalid(decode(media(name), lim, 1.0));
        assert!(m.contains("limits.max_video_seconds (2)") && m.contains("6.0 s long"), "{name}: {m}");
        let lim = VideoLimits { max_pixels: 1000, ..Default::default() };
        let m = invalid(decode(media(name), lim, 1.0));
        assert!(m.contains("limits.max_image_pixels (1000)") && m.contains("76800 pixels"), "{name}: {m}");
    }
}

#[test]
fn max_frames_spreads_the_keyframes() {
    let lim = VideoLimits { max_frames: 3, ..Default::default() };
    let v = decode(media("mp4"), lim, 1.0).unwrap();
    let times: Vec<f32> = v.keyframes.iter().map(|k| k.t).collect();
    assert_eq!(times.len(), 3, "{times:?}");
    assert!(times[0] < 0.05 && times[2] > 3.5, "keyframes cover the video: {times:?}");
    // Audio is still decoded to the end.
    let (samples, rate) = v.audio.unwrap();
    assert!((samples.len() as f32 / rate as f32 - SECONDS).abs() < 0.1);

    let lim = VideoLimits { max_frames: 0, ..Default::default() };
    let v = decode(media("mp4"), lim, 1.0).unwrap();
    assert!(v.keyframes.is_empty() && v.audio.is_some());
}

#[test]
fn scene_detection_off_and_fine_intervals() {
    // Threshold 1: no scene changes, just the interval.
    let v = decode_video(media("mp4"), VideoLimits::default(), 2.0, 1.0).unwrap();
    assert_eq!(v.keyframes.iter().map(|k| k.scene_change).collect::<Vec<_>>(), [false; 3]);
    // An interval below the 0.5 s minimum gap gives one frame per 0.5 s.
    let v = decode(media("mp4"), VideoLimits::default(), 0.1).unwrap();
    let times: Vec<f32> = v.keyframes.iter().map(|k| k.t).collect();
    assert_eq!(v.keyframes.len(), 12, "{times:?}");
    for w in v.keyframes.windows(2) {
        assert!(w[1].t - w[0].t >= 0.47, "{} then {}", w[0].t, w[1].t);
    }
}

/// Damaged input gives InvalidInput or a shorter valid result, never a panic or a hang.
fn damaged(name: &str, what: &str, bytes: &[u8]) {
    match decode(bytes, VideoLimits::default(), 1.0) {
        Err(Error::InvalidInput(m)) => eprintln!("{name} {what}: refused: {m}"),
        Err(e) => panic!("{name} {what}: expected InvalidInput, got {e:?}"),
        Ok(v) => {
            eprintln!("{name} {what}: {} keyframes, {:.2} s", v.keyframes.len(), v.duration);
            // Damage may look like scene changes, but never more than one per 0.5 s.
            assert!(v.keyframes.len() <= 13 && v.duration <= SECONDS + 0.5);
            for k in &v.keyframes {
                assert_eq!(k.image.dimensions(), (v.width, v.height));
            }
        }
    }
}

#[test]
fn truncated_and_corrupt() {
    // MP4 with the index at the end: cut short, it cannot be opened at all.
    let mp4 = media("mp4");
    let m = invalid(decode(&mp4[..mp4.len() * 3 / 10], VideoLimits::default(), 1.0));
    assert!(m.starts_with("corrupt or truncated video: "), "{m}");

    // Random bytes.
    let mut x = 0x2545F4914F6CDD1Du64;
    let noise: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let m = invalid(decode(&noise, VideoLimits::default(), 1.0));
    assert!(m.starts_with("corrupt or truncated video: "), "{m}");

    for name in ["mp4", "mp4-faststart", "webm", "mkv", "no-audio"] {
        let b = media(name);
        for frac in [1, 3, 5, 9] {
            damaged(name, &format!("cut to {frac}0%"), &b[..b.len() * frac / 10]);
        }
        let mut z = b.to_vec();
        let n = z.len();
        z[n / 3..2 * n / 3].fill(0);
        damaged(name, "middle zeroed", &z);
        let mut flipped = b.to_vec();
        for i in (n / 10..n).step_by(997) {
            flipped[i] ^= 0x5a;
        }
        damaged(name, "bytes flipped", &flipped);
        // Mislabelled: another format's header glued onto the data.
        let mut glued = media("png").to_vec();
        glued.extend_from_slice(&b[64..]);
        damaged(name, "wrong header", &glued);
    }
}

#[test]
fn several_threads_at_once() {
    let base = decode(media("webm"), VideoLimits::default(), 1.0).unwrap();
    let handles: Vec<_> = ["webm", "mp4", "webm", "mkv"]
        .into_iter()
        .map(|name| std::thread::spawn(move || (name, decode(media(name), VideoLimits::default(), 1.0).unwrap())))
        .collect();
    for h in handles {
        let (name, v) = h.join().unwrap();
        assert_eq!(v.keyframes.len(), 6, "{name}");
        if name == "webm" {
            assert_eq!(v.audio.as_ref().unwrap().0, base.audio.as_ref().unwrap().0);
            for (a, b) in v.keyframes.iter().zip(&base.keyframes) {
                assert_eq!((a.t, &a.image), (b.t, &b.image));
            }
        }
    }
}

/// Decode speed on longer, larger files (prints seconds of video per second):
/// `cargo test --release -p agentdb-models --test video -- --ignored --nocapture`.
#[test]
#[ignore]
fn decode_speed() {
    let dir = tempfile::tempdir().unwrap();
    let src = "testsrc2=s=1280x720:r=30:d=30";
    let tone = "sine=frequency=440:sample_rate=48000:duration=30";
    let files = [
        (
            "720p H.264/AAC",
            "a.mp4",
            vec!["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac"],
        ),
        (
            "720p VP9/Opus",
            "a.webm",
            vec!["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M", "-c:a", "libopus"],
        ),
    ];
    for (what, out, codec) in files {
        let mut args = vec!["-f", "lavfi", "-i", src, "-f", "lavfi", "-i", tone];
        args.extend(codec);
        let bytes = ffmpeg(dir.path(), &args, out);
        let t0 = Instant::now();
        let v = decode_video(&bytes, VideoLimits::default(), 2.0, SCENE).unwrap();
        let secs = t0.elapsed().as_secs_f32();
        eprintln!(
            "{what}: {:.1} MB, {:.1} s decoded in {secs:.2} s = {:.1} s of video per s ({} keyframes)",
            bytes.len() as f32 / 1e6,
            v.duration,
            v.duration / secs,
            v.keyframes.len()
        );
    }
}

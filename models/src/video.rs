//! Video: decoding MP4/MOV (H.264, H.265, AV1, ...), WebM (VP8/VP9, Opus/Vorbis), MKV
//! and whatever else the system's FFmpeg libraries (through `ffmpeg-next`) demux,
//! into sampled keyframes and a mono audio track.
//!
//! - **Input** comes from memory: the bytes are wrapped in a custom `AVIOContext`
//!   (`ffmpeg-next`'s `StreamIo`), so nothing is written to disk. The container is
//!   detected from content, never from a name.
//! - **Limits** are checked from the header before any decoding (duration, frame size),
//!   and again while decoding (packet timestamps, every decoded frame's size, audio
//!   length), so a file whose header lies or states nothing is still bounded: work stops
//!   at `max_seconds` of media with an error.
//! - **Keyframes**: every frame of the first video stream is decoded; a frame is kept
//!   once per `interval_s` seconds and whenever the scene changes (mean absolute
//!   difference of a 32×32 grey thumbnail between consecutive frames above
//!   `scene_threshold`). Two kept frames are never closer than 0.5 s: a cut that comes
//!   sooner is kept as soon as 0.5 s have passed. When the header states the duration,
//!   the interval widens to `duration / max_frames` if needed and scene-change frames
//!   never take the slots the remaining interval frames need, so the keyframes cover
//!   the whole video rather than its first `max_frames` samples. Kept frames are
//!   converted to RGB with swscale.
//! - **Audio**: the first audio stream, if any, decoded and converted to f32 with
//!   swresample at its native rate, then averaged to mono. The video is the main
//!   content: audio whose codec cannot be decoded is left out (`audio: None`, with a
//!   warning), and audio damaged part-way keeps what decoded before the damage.
//! - **Damage**: a file that cannot be opened, has no video stream or yields no frame is
//!   refused with [`Error::InvalidInput`] ("corrupt or truncated video: …"); a file
//!   damaged part-way gives what decoded before the damage.
//!
//! FFmpeg is initialised once per process and its log silenced (errors come back as
//! values); [`decode_video`] is safe to call from several threads at once.
//!
//! Decoding needs the `video` cargo feature (on by default), which links the system's
//! FFmpeg libraries. Without it the types and [`keyframe_size`] are still here and
//! [`decode_video`] checks its arguments, then returns [`Error::ModelNotFound`] saying
//! that video decoding is not in this build.

use crate::error::{Error, Result};

/// Bounds on the work one video may cause.
#[derive(Debug, Clone, Copy)]
pub struct VideoLimits {
    /// Longest video (and audio track) accepted, in seconds.
    pub max_seconds: f64,
    /// Largest frame accepted, in pixels (width × height).
    pub max_pixels: u64,
    /// Most keyframes returned.
    pub max_frames: usize,
}

impl Default for VideoLimits {
    fn default() -> Self {
        VideoLimits { max_seconds: 3600.0, max_pixels: 50_000_000, max_frames: 256 }
    }
}

/// One sampled frame.
#[derive(Debug, Clone)]
pub struct Keyframe {
    /// Presentation time in seconds from the start of the video.
    pub t: f32,
    /// The frame, scaled down to `KEYFRAME_SIDE` on its shorter side when larger.
    pub image: image::RgbImage,
    /// The frame was kept because the scene changed (it may also fall on the interval).
    pub scene_change: bool,
}

/// A decoded video: header facts, sampled keyframes and the mono audio track.
#[derive(Debug, Clone)]
pub struct Video {
    /// Seconds: from the header when it states one, else the extent of the decoded media.
    pub duration: f32,
    /// Frame size of the video stream.
    pub width: u32,
    pub height: u32,
    /// Container name: "mp4", "mov", "webm", "matroska", or FFmpeg's demuxer name.
    pub container: String,
    /// Codec of the video stream, e.g. "h264", "vp9".
    pub video_codec: String,
    /// Sampled frames in time order.
    pub keyframes: Vec<Keyframe>,
    /// Mono samples in [-1, 1] and their rate in Hz; `None` without an audio stream (or
    /// when it cannot be decoded at all).
    pub audio: Option<(Vec<f32>, u32)>,
    /// The container's "title" tag, if any.
    pub title: Option<String>,
}

/// Shorter side of stored keyframes (larger frames are scaled down, aspect kept).
pub const KEYFRAME_SIDE: u32 = 512;

/// The size a `w`×`h` frame is stored at: unchanged when its shorter side is at most
/// `KEYFRAME_SIDE`, else scaled down to it.
pub fn keyframe_size(w: u32, h: u32) -> (u32, u32) {
    let short = w.min(h);
    if short <= KEYFRAME_SIDE {
        return (w, h);
    }
    let s = KEYFRAME_SIDE as f64 / short as f64;
    (((w as f64 * s).round() as u32).max(1), ((h as f64 * s).round() as u32).max(1))
}

/// Decode `bytes` (container detected from content): sample keyframes of the first
/// video stream, one every `interval_s` seconds plus one at each scene change whose
/// thumbnail difference exceeds `scene_threshold` (in [0, 1]; 1 or more turns scene
/// detection off), and decode the first audio stream to mono. See the module notes.
///
/// The bytes are copied once (FFmpeg's I/O callbacks need an owned buffer). Memory is
/// bounded by `max_frames` RGB keyframes of at most `max_pixels` each, plus the audio.
pub fn decode_video(bytes: &[u8], lim: VideoLimits, interval_s: f32, scene_threshold: f32) -> Result<Video> {
    if !(interval_s.is_finite() && interval_s > 0.0) {
        return Err(Error::InvalidInput(format!(
            "keyframe interval must be a positive number of seconds, not {interval_s}"
        )));
    }
    if scene_threshold.is_nan() {
        return Err(Error::InvalidInput("scene-change threshold must be a number".into()));
    }
    if bytes.is_empty() {
        return Err(Error::InvalidInput("the video is empty".into()));
    }
    #[cfg(feature = "video")]
    {
        ffmpeg::decode_video(bytes, lim, interval_s, scene_threshold)
    }
    #[cfg(not(feature = "video"))]
    {
        let _ = lim;
        Err(Error::ModelNotFound("video decoding is not in this build (built without the `video` feature)".into()))
    }
}

/// The FFmpeg side: demuxing, decoding, keyframe sampling and audio conversion.
#[cfg(feature = "video")]
mod ffmpeg {
    use super::{keyframe_size, Keyframe, Video, VideoLimits};
    use crate::error::{Error, Result};
    use ff::format::stream::Disposition;
    use ff::media::Type as Media;
    use ff::software::scaling::{context::Context as Scaler, flag::Flags};
    use ff::util::format::{pixel::Pixel, sample::Sample, sample::Type as SampleLayout};
    use ff::util::frame::{audio::Audio as AudioFrame, video::Video as VideoFrame};
    use ff::{ChannelLayout, Rational};
    use ffmpeg_next as ff;
    use std::io::Cursor;
    use std::sync::OnceLock;

    /// Kept frames are never closer than this, in seconds.
    const MIN_GAP_S: f64 = 0.5;
    /// Side of the grey thumbnail that scene changes are measured on.
    const THUMB: usize = 32;
    /// Slack for timestamps that fall a hair before an interval boundary, in seconds.
    const EPS_S: f64 = 1e-3;
    /// Consecutive unreadable packets (or undecodable video packets) before giving up.
    const MAX_CONSECUTIVE_ERRORS: usize = 256;

    fn bad(e: impl std::fmt::Display) -> Error {
        Error::InvalidInput(format!("corrupt or truncated video: {e}"))
    }

    fn too_long(what: &str, lim: &VideoLimits) -> Error {
        Error::InvalidInput(format!("{what} runs past limits.max_video_seconds ({}) while decoding", lim.max_seconds))
    }

    /// Initialise FFmpeg once per process and silence its log (errors are returned).
    fn init() -> Result<()> {
        static INIT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
        INIT.get_or_init(|| {
            let r = ff::init().map_err(|e| format!("cannot initialise FFmpeg: {e}"));
            ff::util::log::set_level(ff::util::log::Level::Quiet);
            r
        })
        .clone()
        .map_err(Error::Inference)
    }

    /// [`super::decode_video`] after its argument checks.
    pub(super) fn decode_video(bytes: &[u8], lim: VideoLimits, interval_s: f32, scene_threshold: f32) -> Result<Video> {
        init()?;

        // The stream must be 'static for FFmpeg's callbacks: it owns a copy of the bytes.
        let io = ff::format::context::StreamIo::from_read_seek(Cursor::new(bytes.to_vec()))
            .map_err(|e| Error::Inference(format!("cannot set up FFmpeg input: {e}")))?;
        let mut ictx = ff::format::input_from_stream(io, None, None)
            .map_err(|e| bad(format!("cannot open the container ({e})")))?;

        let demuxer = ictx.format().name().to_string();
        if demuxer.ends_with("_pipe") || demuxer == "image2" {
            return Err(Error::InvalidInput(format!("not a video: a still image ({demuxer})")));
        }
        let container = container_name(&demuxer, bytes, &ictx);
        let title = ictx.metadata().get("title").map(str::trim).filter(|t| !t.is_empty()).map(String::from);

        // The first real video stream (not a cover picture) and the first audio stream.
        let vstream = ictx
            .streams()
            .find(|s| s.parameters().medium() == Media::Video && !s.disposition().contains(Disposition::ATTACHED_PIC))
            .ok_or_else(|| Error::InvalidInput("the file has no video stream".into()))?;
        let astream = ictx.streams().find(|s| s.parameters().medium() == Media::Audio);

        // Media times are reported from the container's start time.
        // SAFETY: `ictx` wraps a valid, opened format context for as long as it lives.
        let start = unsafe { (*ictx.as_ptr()).start_time };
        let start_s =
            if start == ff::ffi::AV_NOPTS_VALUE { 0.0 } else { start as f64 / f64::from(ff::ffi::AV_TIME_BASE) };
        let header_duration = header_duration(&ictx, &vstream);
        if let Some(d) = header_duration {
            if d > lim.max_seconds {
                return Err(Error::InvalidInput(format!(
                    "video is {d:.1} s long, above limits.max_video_seconds ({})",
                    lim.max_seconds
                )));
            }
        }

        let video_codec = vstream.parameters().id().name().to_string();
        let vindex = vstream.index();
        let vtb = vstream.time_base();
        let fps = [vstream.avg_frame_rate(), vstream.rate()]
            .into_iter()
            .map(f64::from)
            .find(|r| r.is_finite() && *r > 0.0 && *r <= 1000.0)
            .unwrap_or(25.0);
        let vdec = ff::codec::context::Context::from_parameters(vstream.parameters())
            .and_then(|mut c| {
                c.set_threading(ff::codec::threading::Config {
                    kind: ff::codec::threading::Type::Frame,
                    ..ff::codec::threading::Config::count(decoder_threads())
                });
                c.decoder().video()
            })
            .map_err(|e| Error::InvalidInput(format!("cannot decode video codec {video_codec}: {e}")))?;
        let (width, height) = (vdec.width(), vdec.height());
        if width == 0 || height == 0 {
            return Err(bad(format!("the {video_codec} stream states no frame size")));
        }
        check_pixels(width, height, &lim)?;

        let mut audio = astream.and_then(|s| AudioTrack::open(&s, lim.max_seconds));

        let mut sampler = Sampler::new(&lim, interval_s, scene_threshold, header_duration, fps);
        let mut video = VideoTrack {
            dec: vdec,
            tb: vtb,
            start_s,
            fps,
            next_t: 0.0,
            frames: 0,
            errors: 0,
            done: false,
            scaler: None,
        };

        // Demux: every packet read is bounded by the count and its timestamp by the limit.
        let max_packets = (lim.max_seconds.max(1.0) * 2000.0) as usize + 10_000;
        let (mut packets, mut read_errors) = (0usize, 0usize);
        // End of the last packet read, in seconds.
        let mut media_end = 0.0f64;
        let mut packet = ff::Packet::empty();
        loop {
            match packet.read(&mut ictx) {
                Ok(()) => read_errors = 0,
                Err(ff::Error::Eof) => break,
                Err(ff::Error::InvalidData) if read_errors < MAX_CONSECUTIVE_ERRORS => {
                    read_errors += 1;
                    continue;
                }
                Err(e) => {
                    // A damaged tail: keep what decoded so far (checked below).
                    tracing::debug!("video demuxing stopped: {e}");
                    break;
                }
            }
            packets += 1;
            if packets > max_packets {
                return Err(too_long("the video", &lim));
            }
            let index = packet.stream();
            let tb = match &audio {
                _ if index == vindex => vtb,
                Some(a) if a.index == index => a.tb,
                _ => continue, // a stream this function does not decode
            };
            if let Some(ts) = packet.pts().or(packet.dts()) {
                let end = f64::from(tb) * ts.saturating_add(packet.duration().max(0)) as f64 - start_s;
                if end > lim.max_seconds + 1.0 {
                    return Err(too_long("the video", &lim));
                }
                media_end = media_end.max(end);
            }
            if index == vindex {
                if !(video.done || sampler.full()) {
                    video.send(Some(&packet), &mut sampler, &lim)?;
                }
            } else if let Some(a) = audio.as_mut().filter(|a| a.index == index && !a.done) {
                a.send(Some(&packet))?;
            }
        }
        if !(video.done || sampler.full()) {
            video.send(None, &mut sampler, &lim)?;
        }
        if let Some(a) = audio.as_mut().filter(|a| !a.done) {
            a.send(None)?;
        }
        if video.frames == 0 && lim.max_frames > 0 {
            return Err(bad(format!("no {video_codec} frame could be decoded")));
        }

        let audio = audio.and_then(AudioTrack::finish);
        let decoded_s = audio.as_ref().map_or(0.0, |(s, r)| s.len() as f64 / f64::from(*r)).max(video.next_t);
        let media_s = media_end.max(decoded_s);
        // The header's duration, unless the media ends well before it (a truncated file).
        let duration = match header_duration {
            Some(h) if media_s > 0.0 && media_s < h - MIN_GAP_S => media_s,
            Some(h) => h,
            None => media_s,
        };
        Ok(Video {
            duration: duration as f32,
            width,
            height,
            container,
            video_codec,
            keyframes: sampler.kept,
            audio,
            title,
        })
    }

    /// Frame threads per video decoder: a few, so one video decodes faster without one
    /// request taking every core of a server that decodes several at once.
    fn decoder_threads() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(4)
    }

    fn check_pixels(width: u32, height: u32, lim: &VideoLimits) -> Result<()> {
        let px = u64::from(width) * u64::from(height);
        if px > lim.max_pixels {
            return Err(Error::InvalidInput(format!(
                "video frame is {width}x{height} = {px} pixels, above limits.max_image_pixels ({})",
                lim.max_pixels
            )));
        }
        Ok(())
    }

    /// Duration from the header: the container's, else the video stream's.
    fn header_duration(ictx: &ff::format::context::Input, vstream: &ff::format::stream::Stream) -> Option<f64> {
        let container = Some(ictx.duration())
            .filter(|d| *d > 0 && *d != ff::ffi::AV_NOPTS_VALUE)
            .map(|d| d as f64 / f64::from(ff::ffi::AV_TIME_BASE));
        let stream = Some(vstream.duration())
            .filter(|d| *d > 0 && *d != ff::ffi::AV_NOPTS_VALUE)
            .map(|d| d as f64 * f64::from(vstream.time_base()));
        container.or(stream).filter(|d| d.is_finite())
    }

    /// A short container name. FFmpeg names demuxers by family ("mov,mp4,m4a,3gp,3g2,mj2",
    /// "matroska,webm"): tell the members apart by the MP4 brand and the EBML doc type.
    fn container_name(demuxer: &str, bytes: &[u8], ictx: &ff::format::context::Input) -> String {
        match demuxer {
            "mov,mp4,m4a,3gp,3g2,mj2" => match ictx.metadata().get("major_brand").map(str::trim) {
                Some("qt") => "mov".into(),
                _ => "mp4".into(),
            },
            "matroska,webm" => {
                let head = &bytes[..bytes.len().min(64)];
                if head.windows(4).any(|w| w == b"webm") {
                    "webm".into()
                } else {
                    "matroska".into()
                }
            }
            other => other.split(',').next().unwrap_or(other).to_string(),
        }
    }

    /// Decides which decoded frames are kept.
    struct Sampler {
        interval: f64,
        threshold: f32,
        max_frames: usize,
        duration: Option<f64>,
        /// Time of the next interval slot.
        due: f64,
        /// Half a frame: how far frame times may miss the minimum gap.
        slack: f64,
        last_kept: Option<f64>,
        prev_thumb: Option<Vec<u8>>,
        /// A cut was seen and no frame has been kept since.
        cut_pending: bool,
        kept: Vec<Keyframe>,
    }

    impl Sampler {
        fn new(lim: &VideoLimits, interval_s: f32, threshold: f32, duration: Option<f64>, fps: f64) -> Sampler {
            let mut interval = f64::from(interval_s).max(MIN_GAP_S);
            if let (Some(d), true) = (duration, lim.max_frames > 0) {
                interval = interval.max(d / lim.max_frames as f64);
            }
            Sampler {
                interval,
                threshold,
                max_frames: lim.max_frames,
                duration,
                due: 0.0,
                slack: (0.5 / fps).min(0.05) + EPS_S,
                last_kept: None,
                prev_thumb: None,
                cut_pending: false,
                kept: Vec::new(),
            }
        }

        fn full(&self) -> bool {
            self.kept.len() >= self.max_frames
        }

        /// Given a decoded frame's time and thumbnail, say whether to keep it and whether
        /// it is kept for a scene change.
        fn decide(&mut self, t: f64, thumb: Vec<u8>) -> Option<bool> {
            if let Some(prev) = &self.prev_thumb {
                if scene_difference(prev, &thumb) > self.threshold {
                    self.cut_pending = true;
                }
            }
            self.prev_thumb = Some(thumb);
            if self.full() {
                return None;
            }
            // Too soon after the last kept frame (within the frame timing's resolution):
            // a due slot or pending cut waits for a later frame.
            if self.last_kept.is_some_and(|l| t - l < MIN_GAP_S - self.slack) {
                return None;
            }
            let slot = t + EPS_S >= self.due;
            let scene = self.cut_pending && (slot || self.kept.len() + self.slots_left() < self.max_frames);
            if !(slot || scene) {
                return None;
            }
            self.cut_pending = false;
            self.last_kept = Some(t);
            if slot {
                self.due = self.next_slot(t);
            }
            Some(scene)
        }

        /// The first interval slot after `t`.
        fn next_slot(&self, t: f64) -> f64 {
            ((t + EPS_S) / self.interval).floor().max(0.0) * self.interval + self.interval
        }

        /// Interval slots still to come (0 when the duration is unknown).
        fn slots_left(&self) -> usize {
            match self.duration {
                Some(d) if d > self.due + EPS_S => ((d - self.due - EPS_S) / self.interval).ceil() as usize,
                _ => 0,
            }
        }
    }

    /// Mean absolute difference of two grey thumbnails, in [0, 1].
    fn scene_difference(a: &[u8], b: &[u8]) -> f32 {
        let sum: u64 = a.iter().zip(b).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
        sum as f32 / (255.0 * a.len().max(1) as f32)
    }

    /// The video decoder and what is needed to time and convert its frames.
    struct VideoTrack {
        dec: ff::decoder::Video,
        tb: Rational,
        start_s: f64,
        fps: f64,
        /// Expected time of the next frame (used when a frame has no timestamp).
        next_t: f64,
        frames: usize,
        /// Consecutive packets that failed to decode.
        errors: usize,
        /// Decoding stopped at damage (after some frames decoded).
        done: bool,
        /// swscale contexts for the current frame format and size: to RGB and to a grey thumbnail.
        scaler: Option<((Pixel, u32, u32), Scaler, Scaler)>,
    }

    impl VideoTrack {
        /// Send a packet (`None`: end of stream) and handle every frame it releases.
        fn send(&mut self, packet: Option<&ff::Packet>, sampler: &mut Sampler, lim: &VideoLimits) -> Result<()> {
            let sent = match packet {
                Some(p) => self.dec.send_packet(p),
                None => self.dec.send_eof(),
            };
            let mut failure = match sent {
                // EAGAIN cannot happen (every frame is drained after each packet); EOF is harmless.
                Ok(()) | Err(ff::Error::Eof) | Err(ff::Error::Other { errno: ff::error::EAGAIN }) => None,
                Err(e) => Some(e),
            };
            let mut frame = VideoFrame::empty();
            while !sampler.full() {
                match self.dec.receive_frame(&mut frame) {
                    Ok(()) => self.frame(&frame, sampler, lim)?,
                    Err(ff::Error::Eof) | Err(ff::Error::Other { errno: ff::error::EAGAIN }) => break,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            match failure {
                None => self.errors = 0,
                // A damaged packet: later ones may decode, but not after many failures in a row.
                Some(e) => {
                    self.errors += 1;
                    if self.errors > MAX_CONSECUTIVE_ERRORS {
                        if self.frames == 0 {
                            return Err(bad(e));
                        }
                        tracing::debug!("video: decoding stopped at damage: {e}");
                        self.done = true;
                    }
                }
            }
            Ok(())
        }

        fn frame(&mut self, frame: &VideoFrame, sampler: &mut Sampler, lim: &VideoLimits) -> Result<()> {
            let (w, h, fmt) = (frame.width(), frame.height(), frame.format());
            if w == 0 || h == 0 || fmt == Pixel::None {
                return Ok(());
            }
            check_pixels(w, h, lim)?;
            let t = match frame.timestamp().or(frame.pts()) {
                Some(ts) => (ts as f64 * f64::from(self.tb) - self.start_s).max(0.0),
                None => self.next_t,
            };
            if t > lim.max_seconds {
                return Err(too_long("the video", lim));
            }
            self.frames += 1;
            self.next_t = t + 1.0 / self.fps;

            // Keyframes are kept at most KEYFRAME_SIDE pixels on their shorter side: the
            // encoders resize to 224-256 anyway, and 256 full 4K frames would take 6 GB.
            let (ow, oh) = keyframe_size(w, h);
            if self.scaler.as_ref().is_none_or(|(key, _, _)| *key != (fmt, w, h)) {
                let to_rgb = Scaler::get(fmt, w, h, Pixel::RGB24, ow, oh, Flags::AREA)
                    .map_err(|e| Error::InvalidInput(format!("unsupported video pixel format {fmt:?}: {e}")))?;
                let to_grey = Scaler::get(fmt, w, h, Pixel::GRAY8, THUMB as u32, THUMB as u32, Flags::AREA)
                    .map_err(|e| Error::InvalidInput(format!("unsupported video pixel format {fmt:?}: {e}")))?;
                self.scaler = Some(((fmt, w, h), to_rgb, to_grey));
            }
            let Some((_, to_rgb, to_grey)) = self.scaler.as_mut() else { unreachable!("set above") };

            let thumb = match luma_thumbnail(frame) {
                Some(t) => t,
                None => {
                    let mut grey = VideoFrame::empty();
                    to_grey.run(frame, &mut grey).map_err(bad)?;
                    copy_plane(&grey, THUMB as u32, THUMB as u32, 1)
                }
            };
            if let Some(scene_change) = sampler.decide(t, thumb) {
                let mut rgb = VideoFrame::empty();
                to_rgb.run(frame, &mut rgb).map_err(bad)?;
                let image = image::RgbImage::from_raw(ow, oh, copy_plane(&rgb, ow, oh, 3))
                    .ok_or_else(|| Error::Inference("RGB frame has the wrong size".into()))?;
                sampler.kept.push(Keyframe { t: t as f32, image, scene_change });
            }
            Ok(())
        }
    }

    /// The tightly packed rows of plane 0 (`bpp` bytes per pixel).
    fn copy_plane(frame: &VideoFrame, w: u32, h: u32, bpp: usize) -> Vec<u8> {
        let (row, stride, data) = (w as usize * bpp, frame.stride(0), frame.data(0));
        let mut out = Vec::with_capacity(row * h as usize);
        for y in 0..h as usize {
            out.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        out
    }

    /// A THUMB×THUMB grey thumbnail read straight from the luma plane of 8-bit YUV frames
    /// (block means over a sparse grid of points); `None` for other formats.
    fn luma_thumbnail(frame: &VideoFrame) -> Option<Vec<u8>> {
        use Pixel as P;
        match frame.format() {
            P::YUV420P
            | P::YUVJ420P
            | P::YUV422P
            | P::YUVJ422P
            | P::YUV444P
            | P::YUVJ444P
            | P::YUV440P
            | P::YUVJ440P
            | P::YUV411P
            | P::YUV410P
            | P::NV12
            | P::NV21
            | P::GRAY8
            | P::YUVA420P => {}
            _ => return None,
        }
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let (stride, data) = (frame.stride(0), frame.data(0));
        if w < THUMB || h < THUMB || data.len() < stride * (h - 1) + w {
            return None;
        }
        const POINTS: usize = 4; // per block side
        let mut out = Vec::with_capacity(THUMB * THUMB);
        for by in 0..THUMB {
            let (y0, y1) = (by * h / THUMB, (by + 1) * h / THUMB);
            for bx in 0..THUMB {
                let (x0, x1) = (bx * w / THUMB, (bx + 1) * w / THUMB);
                let mut sum = 0u32;
                for i in 0..POINTS {
                    let y = y0 + (y1 - y0) * (2 * i + 1) / (2 * POINTS);
                    for j in 0..POINTS {
                        let x = x0 + (x1 - x0) * (2 * j + 1) / (2 * POINTS);
                        sum += u32::from(data[y * stride + x]);
                    }
                }
                out.push((sum / (POINTS * POINTS) as u32) as u8);
            }
        }
        Some(out)
    }

    /// The audio decoder, its converter to packed f32 and the mono samples so far.
    struct AudioTrack {
        index: usize,
        tb: Rational,
        dec: ff::decoder::Audio,
        resampler: Option<((Sample, u64, u32), ff::software::resampling::Context)>,
        rate: u32,
        max_seconds: f64,
        samples: Vec<f32>,
        /// Consecutive packets that failed to decode.
        errors: usize,
        /// Decoding stopped at damage; the samples so far are kept.
        done: bool,
    }

    impl AudioTrack {
        /// Open a decoder for `stream`; `None` (with a warning) when it cannot be decoded.
        fn open(stream: &ff::format::stream::Stream, max_seconds: f64) -> Option<AudioTrack> {
            let codec = stream.parameters().id().name();
            let dec = match ff::codec::context::Context::from_parameters(stream.parameters())
                .and_then(|c| c.decoder().audio())
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("video: audio codec {codec} cannot be decoded ({e}); keeping the video only");
                    return None;
                }
            };
            let rate = dec.rate();
            if rate == 0 || rate > 384_000 {
                tracing::warn!("video: audio sample rate {rate} Hz is not plausible; keeping the video only");
                return None;
            }
            Some(AudioTrack {
                index: stream.index(),
                tb: stream.time_base(),
                dec,
                resampler: None,
                rate,
                max_seconds,
                samples: Vec::new(),
                errors: 0,
                done: false,
            })
        }

        /// Send a packet (`None`: end of stream) and collect what it decodes to; `Err` when
        /// the audio runs past the duration limit. Damage sets `done`.
        fn send(&mut self, packet: Option<&ff::Packet>) -> Result<()> {
            let sent = match packet {
                Some(p) => self.dec.send_packet(p),
                None => self.dec.send_eof(),
            };
            let mut ok =
                matches!(sent, Ok(()) | Err(ff::Error::Eof) | Err(ff::Error::Other { errno: ff::error::EAGAIN }));
            let mut frame = AudioFrame::empty();
            loop {
                match self.dec.receive_frame(&mut frame) {
                    Ok(()) => {
                        if let Err(e) = self.convert(&mut frame) {
                            tracing::warn!("video: cannot convert the audio ({e}); keeping what converted");
                            self.done = true;
                            return Ok(());
                        }
                        if self.samples.len() as f64 > self.max_seconds * f64::from(self.rate) {
                            return Err(Error::InvalidInput(format!(
                                "the audio track runs past limits.max_video_seconds ({}) while decoding",
                                self.max_seconds
                            )));
                        }
                    }
                    Err(ff::Error::Eof) | Err(ff::Error::Other { errno: ff::error::EAGAIN }) => break,
                    Err(_) => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                self.errors = 0;
            } else {
                self.errors += 1;
                if self.errors > MAX_CONSECUTIVE_ERRORS {
                    tracing::warn!("video: the audio track is damaged; keeping what decoded before");
                    self.done = true;
                }
            }
            Ok(())
        }

        /// Convert a decoded frame to packed f32 (same layout and rate, with swresample) and
        /// append its channel mean.
        fn convert(&mut self, frame: &mut AudioFrame) -> std::result::Result<(), String> {
            let channels = frame.channels();
            if channels == 0 || frame.samples() == 0 {
                return Ok(());
            }
            if frame.channel_layout().channels() != i32::from(channels) {
                // Unordered or unstated layouts: the default one for the channel count.
                frame.set_channel_layout(ChannelLayout::default(i32::from(channels)));
            }
            if self.samples.is_empty() && (1..=384_000).contains(&frame.rate()) {
                self.rate = frame.rate(); // what the decoder really produces
            }
            let key = (frame.format(), frame.channel_layout().bits(), frame.rate());
            if self.resampler.as_ref().is_none_or(|(k, _)| *k != key) {
                let r = frame
                    .resampler(Sample::F32(SampleLayout::Packed), frame.channel_layout(), self.rate)
                    .map_err(|e| e.to_string())?;
                self.resampler = Some((key, r));
            }
            let Some((_, resampler)) = self.resampler.as_mut() else { unreachable!("set above") };
            let mut out = AudioFrame::empty();
            resampler.run(frame, &mut out).map_err(|e| e.to_string())?;
            let ch = usize::from(channels);
            let bytes = out.data(0).get(..out.samples() * ch * 4).ok_or("short converted frame")?;
            let scale = 1.0 / ch as f32;
            self.samples.extend(
                bytes.chunks_exact(ch * 4).map(|s| {
                    s.chunks_exact(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])).sum::<f32>() * scale
                }),
            );
            Ok(())
        }

        /// The mono samples (non-finite ones zeroed) and their rate; `None` if none decoded.
        fn finish(self) -> Option<(Vec<f32>, u32)> {
            if self.samples.is_empty() {
                return None;
            }
            let samples =
                self.samples.into_iter().map(|s| if s.is_finite() { s.clamp(-1.0, 1.0) } else { 0.0 }).collect();
            Some((samples, self.rate))
        }
    }
}

//! Text in images (photos of signs, scanned pages, slides, video keyframes) read by
//! Tesseract through its C API (`tesseract-sys`; Debian's `libtesseract5` and the
//! `tesseract-ocr-<lang>` data packages).
//!
//! The image is decoded by our own decoder (with its pixel limits) and handed to
//! Tesseract as raw grey pixels, so Leptonica's decoders never see untrusted bytes.
//! Images are brought to a size Tesseract reads well and that bounds its work (small
//! frames are enlarged, huge scans reduced to `max_pixels`), and every recognition runs
//! under a deadline (Tesseract's own monitor), so a hostile image costs at most that.
//! Words below a confidence threshold are dropped: natural photos otherwise yield
//! a scatter of made-up short words.
//!
//! Recognition needs the `ocr` cargo feature (on by default), which links Debian's
//! libtesseract and liblept. Without it the types and [`find_tessdata`] are still here
//! and [`Ocr::new`] returns [`Error::ModelNotFound`] saying that OCR is not in this build.

use crate::error::{Error, Result};
use image::imageops::FilterType;
use image::RgbImage;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct OcrConfig {
    /// Folder with `<lang>.traineddata` (None: the Debian locations are searched).
    pub tessdata: Option<PathBuf>,
    /// Tesseract language(s), e.g. `eng` or `eng+deu`.
    pub languages: String,
    /// Words below this confidence (0–100) are dropped.
    pub min_confidence: f32,
    /// Recognition deadline per image.
    pub timeout_ms: u64,
    /// Larger images are reduced to this many pixels before recognition.
    pub max_pixels: u64,
}

impl Default for OcrConfig {
    fn default() -> Self {
        OcrConfig {
            tessdata: None,
            languages: "eng".into(),
            min_confidence: 60.0,
            timeout_ms: 10_000,
            max_pixels: 8_000_000,
        }
    }
}

/// Debian's tessdata folders (tesseract 5 and 4).
const TESSDATA_DIRS: [&str; 3] =
    ["/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata", "/usr/share/tessdata"];

/// Where the data for every language of `languages` is installed, if anywhere.
pub fn find_tessdata(explicit: Option<&Path>, languages: &str) -> Result<PathBuf> {
    let langs: Vec<&str> = languages.split('+').filter(|l| !l.is_empty()).collect();
    if langs.is_empty() || langs.iter().any(|l| !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) {
        return Err(Error::InvalidInput(format!("OCR languages '{languages}' must look like 'eng' or 'eng+deu'")));
    }
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.to_path_buf()],
        None => TESSDATA_DIRS.iter().map(PathBuf::from).collect(),
    };
    for dir in &candidates {
        if langs.iter().all(|l| dir.join(format!("{l}.traineddata")).is_file()) {
            return Ok(dir.clone());
        }
    }
    Err(Error::ModelNotFound(format!(
        "no Tesseract data for '{languages}' in {} (install tesseract-ocr-eng, or tesseract-ocr-<lang> for others)",
        candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )))
}

pub struct Ocr {
    config: OcrConfig,
    #[cfg(feature = "ocr")]
    engines: tess::Engines,
}

/// Recognised text and its mean word confidence.
#[derive(Debug, Clone, PartialEq)]
pub struct OcrText {
    pub text: String,
    pub words: usize,
    pub mean_confidence: f32,
}

#[cfg(not(feature = "ocr"))]
fn not_in_build() -> Error {
    Error::ModelNotFound("OCR is not in this build (built without the `ocr` feature)".into())
}

impl Ocr {
    pub fn new(config: OcrConfig) -> Result<Ocr> {
        #[cfg(feature = "ocr")]
        {
            let dir = find_tessdata(config.tessdata.as_deref(), &config.languages)?;
            let engines = tess::Engines::new(&dir, &config.languages)?;
            Ok(Ocr { config, engines })
        }
        #[cfg(not(feature = "ocr"))]
        {
            let _ = config;
            Err(not_in_build())
        }
    }

    pub fn config(&self) -> &OcrConfig {
        &self.config
    }

    /// Read the text in `img` (blocking; seconds at most, see [`OcrConfig::timeout_ms`]).
    pub fn read(&self, img: &RgbImage) -> Result<OcrText> {
        #[cfg(feature = "ocr")]
        {
            let grey = prepare(img, self.config.max_pixels);
            let (w, h) = grey.dimensions();
            if w < 8 || h < 8 {
                return Ok(OcrText { text: String::new(), words: 0, mean_confidence: 0.0 });
            }
            let tsv = self.engines.recognize(&grey, self.config.timeout_ms)?;
            Ok(parse_tsv(&tsv, self.config.min_confidence))
        }
        #[cfg(not(feature = "ocr"))]
        {
            let _ = img;
            Err(not_in_build())
        }
    }
}

/// The Tesseract side: a pool of initialised engines and one recognition.
#[cfg(feature = "ocr")]
mod tess {
    use crate::error::{Error, Result};
    use parking_lot::Mutex;
    use std::ffi::{CStr, CString};
    use std::path::{Path, PathBuf};
    use tesseract_sys as ts;

    /// One initialised Tesseract engine (not thread-safe: the pool hands each to one
    /// caller at a time).
    struct Engine(*mut ts::TessBaseAPI);

    // SAFETY: a TessBaseAPI may move between threads; it is only used by one at a time
    // (it lives in the pool's mutex or in exactly one caller's hands).
    unsafe impl Send for Engine {}

    impl Drop for Engine {
        fn drop(&mut self) {
            // SAFETY: created by TessBaseAPICreate and not yet deleted.
            unsafe {
                ts::TessBaseAPIEnd(self.0);
                ts::TessBaseAPIDelete(self.0);
            }
        }
    }

    /// Engines for one tessdata folder and language set, created on demand and reused.
    pub(super) struct Engines {
        tessdata: CString,
        languages: CString,
        pool: Mutex<Vec<Engine>>,
    }

    impl Engines {
        pub(super) fn new(tessdata: &Path, languages: &str) -> Result<Engines> {
            let cstr = |s: &str| CString::new(s).map_err(|_| Error::InvalidInput(format!("'{s}' contains a NUL byte")));
            let engines = Engines {
                tessdata: cstr(&tessdata.to_string_lossy())?,
                languages: cstr(languages)?,
                pool: Mutex::new(Vec::new()),
            };
            // Fail now (not on the first image) if the data does not load.
            let e = engines.engine()?;
            engines.pool.lock().push(e);
            Ok(engines)
        }

        fn engine(&self) -> Result<Engine> {
            if let Some(e) = self.pool.lock().pop() {
                return Ok(e);
            }
            // SAFETY: plain C API calls on a handle we own; strings outlive the calls.
            unsafe {
                let h = ts::TessBaseAPICreate();
                if h.is_null() {
                    return Err(Error::Inference("Tesseract: cannot create an engine".into()));
                }
                let e = Engine(h);
                if ts::TessBaseAPIInit3(h, self.tessdata.as_ptr(), self.languages.as_ptr()) != 0 {
                    return Err(Error::ModelLoad {
                        path: PathBuf::from(self.tessdata.to_string_lossy().to_string()),
                        reason: format!("Tesseract cannot load '{}'", self.languages.to_string_lossy()),
                    });
                }
                let (name, value) = (CString::new("debug_file").unwrap(), CString::new("/dev/null").unwrap());
                ts::TessBaseAPISetVariable(h, name.as_ptr(), value.as_ptr());
                ts::TessBaseAPISetPageSegMode(h, ts::TessPageSegMode_PSM_AUTO);
                Ok(e)
            }
        }

        /// Recognise `grey` under a `timeout_ms` deadline; Tesseract's TSV output.
        pub(super) fn recognize(&self, grey: &image::GrayImage, timeout_ms: u64) -> Result<String> {
            let (w, h) = grey.dimensions();
            let engine = self.engine()?;
            let deadline = timeout_ms.min(i32::MAX as u64) as i32;
            // SAFETY: the pixel buffer outlives recognition (TessBaseAPIClear below drops
            // Tesseract's reference before `grey` goes); the monitor is deleted after use.
            let tsv = unsafe {
                let api = engine.0;
                ts::TessBaseAPISetImage(api, grey.as_raw().as_ptr(), w as i32, h as i32, 1, w as i32);
                ts::TessBaseAPISetSourceResolution(api, 300);
                let monitor = ts::TessMonitorCreate();
                ts::TessMonitorSetDeadlineMSecs(monitor, deadline);
                let rc = ts::TessBaseAPIRecognize(api, monitor);
                ts::TessMonitorDelete(monitor);
                let out = if rc != 0 {
                    Err(Error::Inference(format!(
                        "OCR did not finish within {timeout_ms} ms on a {w}x{h} image (ingest.ocr_timeout_ms)"
                    )))
                } else {
                    let p = ts::TessBaseAPIGetTsvText(api, 0);
                    if p.is_null() {
                        Ok(String::new())
                    } else {
                        let s = CStr::from_ptr(p).to_string_lossy().into_owned();
                        ts::TessDeleteText(p);
                        Ok(s)
                    }
                };
                ts::TessBaseAPIClear(api);
                out
            };
            self.pool.lock().push(engine);
            tsv
        }
    }
}

/// Grey pixels at a size Tesseract reads well: small images (video keyframes are at most
/// 512 px) enlarged so text gets enough pixels, large ones reduced to `max_pixels`.
#[cfg_attr(not(feature = "ocr"), allow(dead_code))]
fn prepare(img: &RgbImage, max_pixels: u64) -> image::GrayImage {
    let grey = image::DynamicImage::ImageRgb8(img.clone()).into_luma8();
    let (w, h) = grey.dimensions();
    let px = w as u64 * h as u64;
    let long = w.max(h) as f64;
    let mut scale = if long < 1000.0 { (1000.0 / long).min(3.0) } else { 1.0 };
    if px as f64 * scale * scale > max_pixels as f64 {
        scale = (max_pixels as f64 / px as f64).sqrt();
    }
    if (scale - 1.0).abs() < 0.05 {
        return grey;
    }
    let (nw, nh) = (((w as f64 * scale).round() as u32).max(1), ((h as f64 * scale).round() as u32).max(1));
    image::imageops::resize(&grey, nw, nh, if scale > 1.0 { FilterType::CatmullRom } else { FilterType::Triangle })
}

/// Words from Tesseract's TSV (level 5 rows) at or above `min_conf`, one line of text
/// per recognised line.
#[cfg_attr(not(feature = "ocr"), allow(dead_code))]
fn parse_tsv(tsv: &str, min_conf: f32) -> OcrText {
    let mut lines: Vec<((u32, u32, u32), Vec<String>)> = Vec::new();
    let (mut words, mut conf_sum) = (0usize, 0f32);
    for row in tsv.lines() {
        let c: Vec<&str> = row.split('\t').collect();
        if c.len() < 12 || c[0] != "5" {
            continue;
        }
        let conf: f32 = c[10].parse().unwrap_or(-1.0);
        let word = c[11].trim();
        let alnum = word.chars().filter(|ch| ch.is_alphanumeric()).count();
        // Single letters from photos are nearly always noise; digits are kept.
        let plausible = alnum >= 2 || (alnum == 1 && word.chars().all(|ch| ch.is_ascii_digit()));
        if conf < min_conf || !plausible {
            continue;
        }
        let key = (c[2].parse().unwrap_or(0), c[3].parse().unwrap_or(0), c[4].parse().unwrap_or(0));
        match lines.last_mut() {
            Some((k, ws)) if *k == key => ws.push(word.to_string()),
            _ => lines.push((key, vec![word.to_string()])),
        }
        words += 1;
        conf_sum += conf;
    }
    OcrText {
        text: lines.into_iter().map(|(_, ws)| ws.join(" ")).collect::<Vec<_>>().join("\n"),
        words,
        mean_confidence: if words > 0 { conf_sum / words as f32 } else { 0.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_parsing_keeps_confident_plausible_words_by_line() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
                   5\t1\t1\t1\t1\t1\t0\t0\t10\t10\t96.5\tEXIT\n\
                   5\t1\t1\t1\t1\t2\t0\t0\t10\t10\t91\tONLY\n\
                   5\t1\t1\t1\t2\t1\t0\t0\t10\t10\t30\tgarbage\n\
                   5\t1\t1\t1\t2\t2\t0\t0\t10\t10\t88\tx\n\
                   5\t1\t1\t1\t3\t1\t0\t0\t10\t10\t90\t7\n";
        let t = parse_tsv(tsv, 60.0);
        assert_eq!(t.text, "EXIT ONLY\n7");
        assert_eq!(t.words, 3);
    }

    #[test]
    fn prepare_bounds_size() {
        let small = RgbImage::new(320, 200);
        assert_eq!(prepare(&small, 8_000_000).dimensions(), (960, 600));
        let big = RgbImage::new(4000, 3000);
        let g = prepare(&big, 1_000_000);
        assert!((g.width() as u64 * g.height() as u64) <= 1_001_000);
    }

    #[test]
    fn languages_are_checked() {
        assert!(find_tessdata(None, "../etc").is_err());
        assert!(find_tessdata(Some(Path::new("/nonexistent")), "eng")
            .unwrap_err()
            .to_string()
            .contains("tesseract-ocr-eng"));
    }
}

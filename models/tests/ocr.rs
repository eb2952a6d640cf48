//! OCR through Debian's Tesseract on real images: a scanned page from scikit-image's test
//! photos, text rendered by FFmpeg at test time, photos without text, and the limits.

use agentdb_models::ocr::{Ocr, OcrConfig};
use std::path::PathBuf;
use std::process::Command;

fn photos() -> PathBuf {
    let d = agentdb_models::registry::testdata_dir().join("photos");
    assert!(d.join("page.png").exists(), "{} is missing: run `bash .ci/models.sh --testdata`", d.display());
    d
}

fn load(p: &std::path::Path) -> image::RgbImage {
    let lim = agentdb_models::ImageLimits::default();
    agentdb_models::decode_image(&std::fs::read(p).unwrap(), lim).unwrap()
}

/// A white card with two lines of text, drawn by FFmpeg's drawtext (DejaVu Sans).
fn rendered(dir: &std::path::Path, w: u32, h: u32) -> PathBuf {
    let out = dir.join(format!("card-{w}x{h}.png"));
    let font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    let size = h / 4;
    let vf = format!(
        "drawtext=fontfile={font}:text='INVOICE AX-4471':fontsize={size}:x={x}:y={y1},\
         drawtext=fontfile={font}:text='Harbour Street Bakery':fontsize={s2}:x={x}:y={y2}",
        x = w / 20,
        y1 = h / 8,
        s2 = size * 3 / 4,
        y2 = h / 2 + h / 10
    );
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", &format!("color=white:s={w}x{h}")])
        .args(["-vf", &vf, "-frames:v", "1", "-y"])
        .arg(&out)
        .status()
        .expect("ffmpeg is installed by .ci/setup.sh");
    assert!(st.success());
    out
}

#[test]
fn reads_rendered_text_and_a_scanned_page() {
    let ocr = Ocr::new(OcrConfig::default()).expect("tesseract-ocr-eng is installed by .ci/setup.sh");
    let dir = tempfile::tempdir().unwrap();
    let t = ocr.read(&load(&rendered(dir.path(), 900, 260))).unwrap();
    assert!(t.text.contains("INVOICE") && t.text.contains("AX-4471"), "{t:?}");
    assert!(t.text.contains("Harbour Street Bakery"), "{t:?}");
    assert!(t.mean_confidence > 80.0, "{t:?}");
    // A small frame (like a 512 px video keyframe) is enlarged before recognition.
    let t = ocr.read(&load(&rendered(dir.path(), 480, 140))).unwrap();
    assert!(t.text.contains("Bakery"), "{t:?}");

    let page = ocr.read(&load(&photos().join("page.png"))).unwrap();
    for w in ["markers", "coins", "background"] {
        assert!(page.text.contains(w), "'{w}' not read from page.png: {page:?}");
    }
}

#[test]
fn photos_without_text_give_little_or_nothing() {
    let ocr = Ocr::new(OcrConfig::default()).unwrap();
    for name in ["chelsea.png", "coffee.png", "astronaut.png"] {
        let t = ocr.read(&load(&photos().join(name))).unwrap();
        assert!(t.words <= 3, "{name}: confident noise {t:?}");
    }
}

#[test]
fn limits_bound_the_work() {
    let dir = tempfile::tempdir().unwrap();
    // A 20-megapixel scan is reduced to max_pixels first.
    let big = image::imageops::resize(
        &load(&rendered(dir.path(), 900, 260)),
        9000,
        2600,
        image::imageops::FilterType::Nearest,
    );
    let ocr = Ocr::new(OcrConfig { max_pixels: 2_000_000, ..Default::default() }).unwrap();
    let t = ocr.read(&big).unwrap();
    assert!(t.text.contains("Bakery"), "{t:?}");
    // A deadline too short for the page is an error naming the setting, not a hang.
    let ocr = Ocr::new(OcrConfig { timeout_ms: 1, ..Default::default() }).unwrap();
    let page = load(&photos().join("page.png"));
    let big_page = image::imageops::resize(&page, 2000, 760, image::imageops::FilterType::Triangle);
    let e = ocr.read(&big_page).unwrap_err().to_string();
    assert!(e.contains("ocr_timeout_ms"), "{e}");
    // Missing language data is a clear error.
    let e = Ocr::new(OcrConfig { languages: "xxx".into(), ..Default::default() }).err().unwrap().to_string();
    assert!(e.contains("tesseract-ocr-"), "{e}");
}

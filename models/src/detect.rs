//! Media type detection from content (magic bytes), never from the file name.

/// What a byte string is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modality {
    Text,
    Image,
    Audio,
    Video,
}

impl Modality {
    pub fn as_str(self) -> &'static str {
        match self {
            Modality::Text => "text",
            Modality::Image => "image",
            Modality::Audio => "audio",
            Modality::Video => "video",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType {
    pub mime: &'static str,
    pub modality: Modality,
}

const fn mt(mime: &'static str, modality: Modality) -> Option<MediaType> {
    Some(MediaType { mime, modality })
}

/// Detect the media type of `b`; `None` when it is neither a known binary format nor
/// text (valid UTF-8 without NUL bytes).
pub fn detect(b: &[u8]) -> Option<MediaType> {
    use Modality::*;
    let at = |off: usize, sig: &[u8]| b.len() >= off + sig.len() && &b[off..off + sig.len()] == sig;
    if at(0, &[0xFF, 0xD8, 0xFF]) {
        return mt("image/jpeg", Image);
    }
    if at(0, b"\x89PNG\r\n\x1a\n") {
        return mt("image/png", Image);
    }
    if at(0, b"GIF87a") || at(0, b"GIF89a") {
        return mt("image/gif", Image);
    }
    if at(0, b"RIFF") && at(8, b"WEBP") {
        return mt("image/webp", Image);
    }
    if at(0, b"RIFF") && at(8, b"WAVE") {
        return mt("audio/wav", Audio);
    }
    if at(0, b"BM") && b.len() > 26 && at(6, &[0, 0, 0, 0]) {
        return mt("image/bmp", Image);
    }
    if at(0, b"II*\0") || at(0, b"MM\0*") {
        return mt("image/tiff", Image);
    }
    if at(0, b"fLaC") {
        return mt("audio/flac", Audio);
    }
    if at(0, b"OggS") {
        // Vorbis or Opus audio; Theora video is rare enough to treat as audio's container.
        return if b.windows(6).take(512).any(|w| w == b"theora") {
            mt("video/ogg", Video)
        } else {
            mt("audio/ogg", Audio)
        };
    }
    if at(0, b"ID3") || (b.len() > 2 && b[0] == 0xFF && (b[1] & 0xE0) == 0xE0 && (b[1] & 0x06) != 0) {
        return mt("audio/mpeg", Audio);
    }
    if at(4, b"ftyp") {
        let brand = b.get(8..12).unwrap_or(&[]);
        return if brand == b"M4A " || brand == b"M4B " { mt("audio/mp4", Audio) } else { mt("video/mp4", Video) };
    }
    if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        let head = &b[..b.len().min(64)];
        return if head.windows(4).any(|w| w == b"webm") {
            mt("video/webm", Video)
        } else {
            mt("video/x-matroska", Video)
        };
    }
    let text = std::str::from_utf8(b).ok()?;
    if text.contains('\0') {
        return None;
    }
    if looks_like_markdown(text) {
        mt("text/markdown", Text)
    } else {
        mt("text/plain", Text)
    }
}

/// At least two Markdown constructs (headings, fences, lists, links, emphasis).
fn looks_like_markdown(t: &str) -> bool {
    let mut signals = 0;
    for line in t.lines().take(400) {
        let l = line.trim_start();
        if l.starts_with("# ") || l.starts_with("## ") || l.starts_with("### ") || l.starts_with("```") {
            signals += 2;
        } else if l.starts_with("- ") || l.starts_with("* ") || l.starts_with("> ") {
            signals += 1;
        }
        if l.contains("](") || l.contains("**") {
            signals += 1;
        }
        if signals >= 3 {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_content() {
        assert_eq!(detect(b"\xFF\xD8\xFF\xE0rest").unwrap().mime, "image/jpeg");
        assert_eq!(detect(b"\x89PNG\r\n\x1a\nxxxx").unwrap().mime, "image/png");
        assert_eq!(detect(b"RIFF\0\0\0\0WAVEfmt ").unwrap().modality, Modality::Audio);
        assert_eq!(detect(b"\0\0\0\x20ftypisom").unwrap().mime, "video/mp4");
        assert_eq!(detect(b"\0\0\0\x20ftypM4A ").unwrap().mime, "audio/mp4");
        assert_eq!(detect(b"fLaC\0").unwrap().mime, "audio/flac");
        assert_eq!(detect("plain words, nothing else".as_bytes()).unwrap().mime, "text/plain");
        assert_eq!(detect(b"# Title\n\nSome **bold** text\n- item\n").unwrap().mime, "text/markdown");
        assert!(detect(b"\x00\x01\x02binary").is_none());
        assert!(detect(b"\xC3\x28 invalid utf8").is_none());
    }
}

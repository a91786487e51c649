//! Media types for MMS (RFC 2046 names): which we accept, how aliases normalise, and
//! how a file is recognised by its leading bytes, so a declared type can be checked
//! against what the bytes really are.

/// MIME types (RFC 2046 names, normalised by [`normalize_content_type`]) accepted for
/// outbound MMS: every one of them can be recognised by its leading bytes, and at least
/// one provider we support carries it.
pub const ALLOWED_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "video/mp4",
    "video/3gpp",
    "video/quicktime",
    "audio/mpeg",
    "audio/amr",
    "application/pdf",
    "text/vcard",
    "text/plain",
];

/// The `Content-Type` to store and serve received media under: what its bytes were
/// recognised as when that is one of [`ALLOWED_TYPES`], else
/// `application/octet-stream`. Never the sender's declaration, which could say
/// `text/html` for a file a browser would then render from our link.
pub fn safe_serving_type(sniffed: Option<&str>) -> &str {
    match sniffed {
        Some(t) if ALLOWED_TYPES.contains(&t) => t,
        _ => "application/octet-stream",
    }
}

/// Lower-cases a MIME type, drops parameters (`; charset=...`) and maps common
/// aliases to their registered names (`image/jpg` → `image/jpeg`, `audio/mp3` →
/// `audio/mpeg`, `text/x-vcard` → `text/vcard`, `video/3gp` → `video/3gpp`).
pub fn normalize_content_type(ct: &str) -> String {
    let base = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match base.as_str() {
        "image/jpg" | "image/pjpeg" => "image/jpeg".into(),
        "audio/mp3" | "audio/mpeg3" | "audio/x-mpeg" => "audio/mpeg".into(),
        "text/x-vcard" | "text/directory" => "text/vcard".into(),
        "video/3gp" => "video/3gpp".into(),
        "audio/x-amr" => "audio/amr".into(),
        _ => base,
    }
}

pub fn is_allowed_type(normalized: &str) -> bool {
    ALLOWED_TYPES.contains(&normalized)
}

/// Recognises a file by its leading bytes. Returns the MIME type, or `None` when the
/// bytes match nothing we know. Also names a few common types we refuse (zip, HTML,
/// executables), so a mismatch message can say what the file really is.
pub fn sniff(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some("image/png");
    }
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some("image/jpeg");
    }
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        return Some("image/gif");
    }
    if b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    if b.starts_with(b"%PDF-") {
        return Some("application/pdf");
    }
    if b.starts_with(b"#!AMR-WB\n") {
        return Some("audio/amr-wb");
    }
    if b.starts_with(b"#!AMR\n") {
        return Some("audio/amr");
    }
    // ISO base media (MP4, 3GPP, QuickTime): a box size, then `ftyp` and a major brand.
    if b.len() >= 12 && &b[4..8] == b"ftyp" {
        let brand = &b[8..12];
        return Some(if brand == b"qt  " {
            "video/quicktime"
        } else if brand.starts_with(b"3gp") || brand.starts_with(b"3g2") {
            "video/3gpp"
        } else if brand == b"M4A " || brand == b"M4B " {
            "audio/mp4"
        } else {
            "video/mp4"
        });
    }
    if b.starts_with(b"ID3") {
        return Some("audio/mpeg");
    }
    // MPEG audio frame sync: 11 set bits, a version that is not "reserved" (01) and a
    // layer that is not "reserved" (00; AAC ADTS uses 00 and is not MP3).
    if b.len() >= 2 && b[0] == 0xFF && (b[1] & 0xE0) == 0xE0 && (b[1] >> 3) & 0x03 != 0x01 && (b[1] >> 1) & 0x03 != 0x00 {
        return Some("audio/mpeg");
    }
    if b.starts_with(b"PK\x03\x04") {
        return Some("application/zip");
    }
    if b.starts_with(b"MZ") || b.starts_with(b"\x7fELF") {
        return Some("application/x-executable");
    }
    let text = b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b);
    let head = trim_ascii_start(text);
    if starts_with_ci(head, b"BEGIN:VCARD") {
        return Some("text/vcard");
    }
    if starts_with_ci(head, b"<!DOCTYPE HTML") || starts_with_ci(head, b"<HTML") || starts_with_ci(head, b"<SCRIPT") {
        return Some("text/html");
    }
    if starts_with_ci(head, b"<?XML") || starts_with_ci(head, b"<SVG") {
        return Some("image/svg+xml");
    }
    if !text.is_empty() && is_plain_text(text) {
        return Some("text/plain");
    }
    None
}

fn trim_ascii_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

fn starts_with_ci(b: &[u8], prefix: &[u8]) -> bool {
    b.len() >= prefix.len() && b[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// UTF-8 without control characters other than tab, line feed, form feed and carriage
/// return. A multi-byte character cut at the end of a sniffing window is tolerated.
fn is_plain_text(b: &[u8]) -> bool {
    let valid = match std::str::from_utf8(b) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or_default(),
        Err(_) => return false,
    };
    valid.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\x0c'))
}

/// Whether bytes recognised as `sniffed` may be sent as `declared` (both normalised).
pub fn type_matches(declared: &str, sniffed: Option<&str>) -> bool {
    match (declared, sniffed) {
        (_, None) => false,
        (d, Some(s)) if d == s => true,
        // A vCard is plain text too.
        ("text/plain", Some("text/vcard")) => true,
        _ => false,
    }
}

#[cfg(test)]
mod serving_tests {
    use super::safe_serving_type;

    #[test]
    fn received_media_is_served_as_what_its_bytes_are_or_as_opaque_bytes() {
        assert_eq!(safe_serving_type(Some("image/png")), "image/png");
        assert_eq!(safe_serving_type(Some("text/html")), "application/octet-stream");
        assert_eq!(safe_serving_type(Some("image/svg+xml")), "application/octet-stream");
        assert_eq!(safe_serving_type(None), "application/octet-stream");
    }
}

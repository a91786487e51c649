//! SMS encodings (GSM-7 vs UCS-2) and segment counting / splitting.
//!
//! Rules (providers.md §9, matching Twilio's segment calculator and split-sms):
//! - A body is GSM-7 if every character is in the GSM 03.38 default alphabet (1 septet)
//!   or its extension table (ESC + code = 2 septets); otherwise the whole body is UCS-2,
//!   where every character costs its UTF-16 code units (extension chars cost 1, emoji 2).
//! - One segment holds 160 septets / 70 UCS-2 units. Once a message needs more, each
//!   segment carries a 6-octet UDH and holds 153 septets / 67 units.
//! - Segments are filled greedily, and a segment ends early rather than split an ESC pair
//!   (GSM-7) or a surrogate pair (UCS-2); the remaining capacity is wasted, which is why
//!   the count is not just `ceil(units / 153)`.
//! - An empty body is still one (empty) segment.
//!
//! Grapheme clusters (flags, ZWJ sequences) are *not* kept together, only surrogate pairs:
//! that is what the 3GPP rules require and what providers bill by.
//!
//! [`analyse`] runs for every message: it is a single pass, allocation-free and O(n).

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Encoding {
    #[serde(rename = "GSM-7")]
    Gsm7,
    #[serde(rename = "UCS-2")]
    Ucs2,
}

impl Encoding {
    /// The name used on the wire and in the API ("GSM-7" / "UCS-2").
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Gsm7 => "GSM-7",
            Self::Ucs2 => "UCS-2",
        }
    }

    /// Units (septets or UTF-16 code units) that fit in a message sent as one segment.
    pub const fn single_segment_units(self) -> u32 {
        match self {
            Self::Gsm7 => GSM7_SINGLE,
            Self::Ucs2 => UCS2_SINGLE,
        }
    }

    /// Units per segment once a message is multipart (the rest is the UDH).
    pub const fn multipart_segment_units(self) -> u32 {
        match self {
            Self::Gsm7 => GSM7_MULTI,
            Self::Ucs2 => UCS2_MULTI,
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a body costs to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SegmentInfo {
    pub encoding: Encoding,
    /// Number of SMS segments (billed parts); at least 1.
    pub segments: u32,
    /// Septets for GSM-7 (extension chars count 2), UTF-16 code units for UCS-2.
    pub units: u32,
    /// Unicode scalar values (Rust `char`s) in the body.
    pub chars: u32,
}

const GSM7_SINGLE: u32 = 160;
const GSM7_MULTI: u32 = 153;
const UCS2_SINGLE: u32 = 70;
const UCS2_MULTI: u32 = 67;

/// Septets needed for each ASCII character: 1 for the default alphabet, 2 for the
/// extension table, 0 if GSM-7 cannot represent it (controls other than LF/CR/FF,
/// backtick, DEL). Indexed by byte so the common ASCII case is one load.
const ASCII_SEPTETS: [u8; 128] = {
    let mut t = [0u8; 128];
    t[b'\n' as usize] = 1;
    t[b'\r' as usize] = 1;
    // Printable ASCII is all in the default alphabet except the extension characters
    // below and the backtick, which GSM 03.38 lacks entirely.
    let mut c = 0x20;
    while c < 0x7F {
        t[c] = 1;
        c += 1;
    }
    t[b'`' as usize] = 0;
    // Extension table (ESC 0x1B + code): form feed ^ { } \ [ ~ ] |
    t[0x0C] = 2;
    t[b'^' as usize] = 2;
    t[b'{' as usize] = 2;
    t[b'}' as usize] = 2;
    t[b'\\' as usize] = 2;
    t[b'[' as usize] = 2;
    t[b'~' as usize] = 2;
    t[b']' as usize] = 2;
    t[b'|' as usize] = 2;
    t
};

/// Septets `c` costs in GSM-7: 1 (default alphabet), 2 (extension table), or 0 when
/// the character forces UCS-2.
///
/// Non-ASCII members are spelled as code points: several look exactly like other
/// characters (Greek capital delta U+0394 vs the increment sign U+2206, etc.).
#[inline]
pub const fn gsm7_septets(c: char) -> u8 {
    let cp = c as u32;
    if cp < 0x80 {
        return ASCII_SEPTETS[cp as usize];
    }
    match cp {
        // Latin-1: ¡ £ ¤ ¥ § ¿ Ä Å Æ Ç É Ñ Ö Ø Ü ß à ä å æ è é ì ñ ò ö ø ù ü
        // (GSM 0x09 is capital Ç; lowercase ç U+00E7 is not in the alphabet.)
        0xA1 | 0xA3 | 0xA4 | 0xA5 | 0xA7 | 0xBF | 0xC4 | 0xC5 | 0xC6 | 0xC7 | 0xC9 | 0xD1
        | 0xD6 | 0xD8 | 0xDC | 0xDF | 0xE0 | 0xE4 | 0xE5 | 0xE6 | 0xE8 | 0xE9 | 0xEC | 0xF1
        | 0xF2 | 0xF6 | 0xF8 | 0xF9 | 0xFC => 1,
        // Greek capitals Γ Δ Θ Λ Ξ Π Σ Φ Ψ Ω (those without a Latin look-alike).
        0x393 | 0x394 | 0x398 | 0x39B | 0x39E | 0x3A0 | 0x3A3 | 0x3A6 | 0x3A8 | 0x3A9 => 1,
        // Euro sign, extension table ESC 0x65.
        0x20AC => 2,
        _ => 0,
    }
}

/// Greedy packing of units into segments of `cap`, where an item of `cost` units
/// (an ESC pair, a surrogate pair) must not straddle two segments.
#[derive(Clone, Copy)]
struct Packer {
    total: usize,
    fill: usize,
    /// Segments used if the message turns out to be multipart.
    parts: usize,
}

impl Packer {
    const fn new() -> Self {
        Self { total: 0, fill: 0, parts: 1 }
    }

    #[inline(always)]
    fn push(&mut self, cost: usize, cap: usize) {
        self.total += cost;
        if self.fill + cost > cap {
            self.parts += 1;
            self.fill = 0;
        }
        self.fill += cost;
    }

    /// Segments for the whole message: one if it fits a single segment, else the
    /// greedy multipart count.
    fn segments(&self, single: u32) -> usize {
        if self.total <= single as usize { 1 } else { self.parts }
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The GSM-7 stand-in for a look-alike character that would otherwise force UCS-2
/// (Twilio's and others' "smart encoding" set: typographic quotes, dashes, spaces,
/// ellipsis, bullets), or `None` when the character has none.
pub const fn smart_replacement(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '\u{02BC}' => "'",
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' | '\u{00AB}' | '\u{00BB}' => "\"",
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}' | '\u{2212}' => "-",
        '\u{00A0}' | '\u{2002}' | '\u{2003}' | '\u{2009}' | '\u{200A}' | '\u{202F}' | '\u{205F}' => " ",
        '\u{200B}' | '\u{FEFF}' => "",
        '\u{2026}' => "...",
        '\u{2022}' | '\u{00B7}' => "-",
        '\u{2039}' => "<",
        '\u{203A}' => ">",
        _ => return None,
    })
}

/// `body` with every look-alike replaced by its GSM-7 stand-in ([`smart_replacement`])
/// and how many characters changed. Characters with no stand-in (emoji, Cyrillic...)
/// stay, so such a body is still UCS-2.
pub fn smart_encode(body: &str) -> (String, usize) {
    let mut out = String::with_capacity(body.len());
    let mut changed = 0;
    for c in body.chars() {
        match smart_replacement(c) {
            Some(r) => {
                out.push_str(r);
                changed += 1;
            }
            None => out.push(c),
        }
    }
    (out, changed)
}

/// The distinct characters of `body` that force UCS-2 (none for a GSM-7 body).
pub fn ucs2_forcing_chars(body: &str) -> Vec<char> {
    let mut out: Vec<char> = body.chars().filter(|c| gsm7_septets(*c) == 0).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Encoding, segment count and sizes of `body`.
///
/// One pass that packs both encodings at once (GSM-7 stops at the first character it
/// cannot represent), so no second scan is needed once the encoding is known. No
/// allocation.
pub fn analyse(body: &str) -> SegmentInfo {
    // Pure-ASCII bodies are the common case: chars == bytes == UTF-16 units, and only
    // the GSM packing can differ. `is_ascii` is word-at-a-time in std.
    if body.is_ascii() {
        return analyse_ascii(body.as_bytes()).unwrap_or_else(|| {
            // ASCII but not GSM (backtick, tab, other controls): UCS-2 at 1 unit each.
            let n = body.len();
            ucs2_info(n, n, ucs2_multipart_ascii(n))
        });
    }

    let mut chars = 0usize;
    let mut gsm = Some(Packer::new());
    let mut ucs = Packer::new();
    for c in body.chars() {
        chars += 1;
        ucs.push(c.len_utf16(), UCS2_MULTI as usize);
        if let Some(g) = gsm.as_mut() {
            match gsm7_septets(c) {
                0 => gsm = None,
                cost => g.push(usize::from(cost), GSM7_MULTI as usize),
            }
        }
    }
    match gsm {
        Some(g) => SegmentInfo {
            encoding: Encoding::Gsm7,
            segments: saturate(g.segments(GSM7_SINGLE)),
            units: saturate(g.total),
            chars: saturate(chars),
        },
        None => ucs2_info(ucs.total, chars, ucs.segments(UCS2_SINGLE)),
    }
}

/// GSM-7 analysis of an ASCII body; `None` if some byte is not in GSM-7.
#[inline]
fn analyse_ascii(bytes: &[u8]) -> Option<SegmentInfo> {
    let mut g = Packer::new();
    for &b in bytes {
        match ASCII_SEPTETS[usize::from(b)] {
            0 => return None,
            cost => g.push(usize::from(cost), GSM7_MULTI as usize),
        }
    }
    Some(SegmentInfo {
        encoding: Encoding::Gsm7,
        segments: saturate(g.segments(GSM7_SINGLE)),
        units: saturate(g.total),
        chars: saturate(bytes.len()),
    })
}

/// UCS-2 segments for `n` single-unit characters (no surrogate pairs to work around).
fn ucs2_multipart_ascii(n: usize) -> usize {
    if n <= UCS2_SINGLE as usize { 1 } else { n.div_ceil(UCS2_MULTI as usize) }
}

fn ucs2_info(units: usize, chars: usize, segments: usize) -> SegmentInfo {
    SegmentInfo {
        encoding: Encoding::Ucs2,
        segments: saturate(segments),
        units: saturate(units),
        chars: saturate(chars),
    }
}

/// Units `c` costs in a message of the given encoding.
#[inline]
fn unit_cost(encoding: Encoding, c: char) -> usize {
    match encoding {
        Encoding::Gsm7 => usize::from(gsm7_septets(c)),
        Encoding::Ucs2 => c.len_utf16(),
    }
}

/// The text of each segment, split by the same rules as [`analyse`] (so
/// `split(b).len() == analyse(b).segments`). An empty body gives one empty part.
pub fn split(body: &str) -> Vec<String> {
    let info = analyse(body);
    if info.segments <= 1 {
        return vec![body.to_owned()];
    }
    let cap = info.encoding.multipart_segment_units() as usize;
    let mut parts = Vec::with_capacity(info.segments as usize);
    let mut start = 0;
    let mut fill = 0;
    for (i, c) in body.char_indices() {
        let cost = unit_cost(info.encoding, c);
        if fill + cost > cap {
            parts.push(body[start..i].to_owned());
            start = i;
            fill = 0;
        }
        fill += cost;
    }
    parts.push(body[start..].to_owned());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vectors() -> Value {
        serde_json::from_str(include_str!("../../tests/vectors/vectors.json")).unwrap()
    }

    fn segment_vectors(scheme_prefix: &str) -> Vec<Value> {
        vectors()["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| {
                v["provider"] == "generic"
                    && v["scheme"].as_str().is_some_and(|s| s.starts_with(scheme_prefix))
            })
            .cloned()
            .collect()
    }

    /// Units of a part, costed in the encoding of the whole message.
    fn units_in(encoding: Encoding, s: &str) -> usize {
        s.chars().map(|c| unit_cost(encoding, c)).sum()
    }

    /// Reference implementation straight from the rules, char by char with no fast
    /// paths, to cross-check `analyse` on generated inputs.
    fn reference(body: &str) -> SegmentInfo {
        let encoding =
            if body.chars().all(|c| gsm7_septets(c) > 0) { Encoding::Gsm7 } else { Encoding::Ucs2 };
        let units = units_in(encoding, body);
        let segments = if units <= encoding.single_segment_units() as usize {
            1
        } else {
            let cap = encoding.multipart_segment_units() as usize;
            let (mut n, mut fill) = (1, 0);
            for c in body.chars() {
                let k = unit_cost(encoding, c);
                if fill + k > cap {
                    n += 1;
                    fill = 0;
                }
                fill += k;
            }
            n
        };
        SegmentInfo {
            encoding,
            segments: segments as u32,
            units: units as u32,
            chars: body.chars().count() as u32,
        }
    }

    fn check(body: &str) -> SegmentInfo {
        let info = analyse(body);
        assert_eq!(info, reference(body), "analyse vs reference for {body:?}");
        let parts = split(body);
        assert_eq!(parts.len(), info.segments as usize, "split count for {body:?}");
        assert_eq!(parts.concat(), body, "split loses nothing");
        if parts.len() > 1 {
            for p in &parts {
                assert!(
                    units_in(info.encoding, p) <= info.encoding.multipart_segment_units() as usize
                );
            }
        }
        info
    }

    #[test]
    fn gsm7_table_matches_vectors_map() {
        let v = vectors();
        let map = v["tables"]["gsm7_default_and_extension_map"]["map"].as_object().unwrap();
        assert_eq!(map.len(), 137);
        let mut in_map = std::collections::HashSet::new();
        let (mut basic, mut ext) = (0, 0);
        for (k, septets) in map {
            let cp = u32::from_str_radix(k.strip_prefix("U+").unwrap(), 16).unwrap();
            let c = char::from_u32(cp).unwrap();
            let want = septets.as_array().unwrap().len() as u8;
            if want == 2 {
                assert_eq!(septets[0], "0x1B", "extension entries are ESC-prefixed: {k}");
                ext += 1;
            } else {
                basic += 1;
            }
            assert_eq!(gsm7_septets(c), want, "{k} ({c:?})");
            in_map.insert(c);
        }
        assert_eq!((basic, ext), (127, 10));
        // And nothing outside the map is GSM-7, across all of Unicode.
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            if !in_map.contains(&c) {
                assert_eq!(gsm7_septets(c), 0, "U+{:04X} must not be GSM-7", c as u32);
            }
        }
    }

    #[test]
    fn segment_count_vectors() {
        let vs = segment_vectors("SMS segment count");
        assert_eq!(vs.len(), 23, "14 count + 9 extension-char vectors");
        for v in vs {
            let id = v["id"].as_str().unwrap();
            let body = v["inputs"]["body"].as_str().unwrap();
            let exp = &v["expected"];
            let info = check(body);
            assert_eq!(info.encoding.as_str(), exp["encoding"], "{id}");
            assert_eq!(u64::from(info.segments), exp["segments"].as_u64().unwrap(), "{id}");
            if let Some(n) = exp["unicode_scalars"].as_u64() {
                assert_eq!(u64::from(info.chars), n, "{id} chars");
            }
            if let Some(n) = exp["utf16_code_units"].as_u64() {
                assert_eq!(body.encode_utf16().count() as u64, n, "{id} utf16 (vector sanity)");
                if info.encoding == Encoding::Ucs2 {
                    assert_eq!(u64::from(info.units), n, "{id} units");
                }
            }
            // Twilio's payload size: 7 bits per septet, 16 per UCS-2 unit.
            if let Some(bits) = exp["message_size_bits"].as_u64() {
                let per_unit = if info.encoding == Encoding::Gsm7 { 7 } else { 16 };
                assert_eq!(u64::from(info.units) * per_unit, bits, "{id} message_size_bits");
            }
            // Twilio adds a 48-bit UDH per segment when multipart.
            if let Some(bits) = exp["total_size_bits"].as_u64() {
                let per_unit = if info.encoding == Encoding::Gsm7 { 7 } else { 16 };
                let udh = if info.segments > 1 { 48 * u64::from(info.segments) } else { 0 };
                assert_eq!(u64::from(info.units) * per_unit + udh, bits, "{id} total_size_bits");
            }
        }
    }

    #[test]
    fn segment_split_vectors() {
        let vs = segment_vectors("SMS segment split");
        assert_eq!(vs.len(), 10);
        for v in vs {
            let id = v["id"].as_str().unwrap();
            let body = v["inputs"]["body"].as_str().unwrap();
            let exp = &v["expected"];
            let info = check(body);
            let parts = split(body);
            assert_eq!(parts.len() as u64, exp["segments"].as_u64().unwrap(), "{id}");
            let want = exp["parts"].as_array().unwrap();
            assert_eq!(parts.len(), want.len(), "{id}");
            for (i, (p, w)) in parts.iter().zip(want).enumerate() {
                assert_eq!(
                    p.chars().count() as u64,
                    w["chars"].as_u64().unwrap(),
                    "{id} part {i} chars"
                );
                // split-sms counts UCS-2 parts in bytes (2 per UTF-16 unit); we count units.
                let units = units_in(info.encoding, p) as u64;
                let want_units = match info.encoding {
                    Encoding::Gsm7 => w["units"].as_u64().unwrap(),
                    Encoding::Ucs2 => w["units"].as_u64().unwrap() / 2,
                };
                assert_eq!(units, want_units, "{id} part {i} units");
            }
        }
    }

    #[test]
    fn gsm_single_segment_boundary() {
        let info = check(&"a".repeat(160));
        assert_eq!(
            (info.encoding, info.segments, info.units, info.chars),
            (Encoding::Gsm7, 1, 160, 160)
        );
        let info = check(&"a".repeat(161));
        assert_eq!((info.segments, info.units), (2, 161));
        assert_eq!(split(&"a".repeat(161)).iter().map(String::len).collect::<Vec<_>>(), [153, 8]);
        // 159 + one extension char = 161 septets: multipart.
        assert_eq!(check(&format!("{}{{", "a".repeat(159))).segments, 2);
        assert_eq!(check(&format!("{}{{", "a".repeat(158))).segments, 1);
        // Non-ASCII GSM characters (é, €) take the general path.
        assert_eq!(check(&"é".repeat(160)).segments, 1);
        assert_eq!(check(&"é".repeat(161)).segments, 2);
        assert_eq!(check(&"€".repeat(80)).units, 160);
        assert_eq!(check(&"€".repeat(81)).segments, 2);
    }

    #[test]
    fn gsm_escape_pair_straddles_multipart_boundary() {
        // 152 septets, then '[' would occupy septets 153-154: it moves to segment 2.
        let body = format!("{}[{}", "a".repeat(152), "b".repeat(152));
        let info = check(&body);
        assert_eq!(info.units, 152 + 2 + 152);
        // 306 septets would fit 2 x 153 if the pair could split; it cannot.
        assert_eq!(info.segments, 3);
        let parts = split(&body);
        assert_eq!(parts[0], "a".repeat(152));
        assert!(parts[1].starts_with('['));
        assert_eq!(units_in(Encoding::Gsm7, &parts[1]), 153);
        assert_eq!(parts[2], "b");

        // Exactly 2 x 153 with the ESC pair ending segment 1 cleanly.
        let body = format!("{}€{}", "a".repeat(151), "b".repeat(153));
        let info = check(&body);
        assert_eq!((info.units, info.segments), (306, 2));
        // Same in the non-ASCII path: é forces the general loop.
        let body = format!("é{}€{}", "a".repeat(151), "b".repeat(152));
        assert_eq!(check(&body).segments, 3);
    }

    #[test]
    fn ucs2_boundaries() {
        let info = check(&"☃".repeat(70));
        assert_eq!((info.encoding, info.segments, info.units), (Encoding::Ucs2, 1, 70));
        let info = check(&"☃".repeat(71));
        assert_eq!((info.segments, info.units), (2, 71));
        assert_eq!(
            split(&"☃".repeat(71)).iter().map(|p| p.chars().count()).collect::<Vec<_>>(),
            [67, 4]
        );
        // 35 emoji = 70 units: one segment; 36 = 72: multipart, 33 per segment (66 units).
        assert_eq!(check(&"😀".repeat(35)).segments, 1);
        let info = check(&"😀".repeat(36));
        assert_eq!((info.units, info.segments), (72, 2));
        // One non-GSM char turns GSM extension chars into single units.
        assert_eq!(check(&format!("ç{}", "[".repeat(69))).units, 70);
    }

    #[test]
    fn emoji_straddles_67_unit_boundary() {
        // 66 units, then an emoji needing units 67-68: it ends segment 1 early.
        let body = format!("{}😜{}", "ç".repeat(66), "ç".repeat(66));
        let info = check(&body);
        assert_eq!((info.units, info.segments), (134, 3), "2 x 67 would fit if pairs could split");
        let parts = split(&body);
        assert_eq!(parts[0], "ç".repeat(66));
        assert_eq!(parts[1], format!("😜{}", "ç".repeat(65)));
        assert_eq!(parts[2], "ç");
        // The emoji exactly fills units 66-67: no waste.
        let body = format!("{}😜{}", "ç".repeat(65), "ç".repeat(67));
        assert_eq!(check(&body).segments, 2);
    }

    #[test]
    fn ascii_non_gsm_and_empty() {
        let info = check("");
        assert_eq!(
            (info.encoding, info.segments, info.units, info.chars),
            (Encoding::Gsm7, 1, 0, 0)
        );
        assert_eq!(split(""), vec![String::new()]);
        // Backtick and tab are ASCII but not GSM-7.
        assert_eq!(check("`").encoding, Encoding::Ucs2);
        assert_eq!(check("a\tb").encoding, Encoding::Ucs2);
        assert_eq!(check(&"`".repeat(70)).segments, 1);
        assert_eq!(check(&"`".repeat(71)).segments, 2);
        assert_eq!(check(&"`".repeat(134)).segments, 2);
        assert_eq!(check(&"`".repeat(135)).segments, 3);
    }

    #[test]
    fn matches_reference_on_generated_bodies() {
        // Deterministic mix of 1-septet, 2-septet, non-GSM BMP and astral chars around
        // every boundary length.
        let alphabet = ['a', '[', '€', 'é', 'ç', '😀', '`', '\n', 'Ω'];
        let mut rng = fastrand::Rng::with_seed(7);
        for len in 0..360 {
            for pool in [&alphabet[..2], &alphabet[..5], &alphabet[..]] {
                let body: String = (0..len).map(|_| pool[rng.usize(..pool.len())]).collect();
                check(&body);
            }
        }
    }

    #[test]
    fn serde_names() {
        assert_eq!(serde_json::to_string(&Encoding::Gsm7).unwrap(), "\"GSM-7\"");
        assert_eq!(serde_json::from_str::<Encoding>("\"UCS-2\"").unwrap(), Encoding::Ucs2);
        assert_eq!(Encoding::Ucs2.to_string(), "UCS-2");
    }

    /// Throughput check: `cargo test -p dispatch-common --release --lib encoding -- --ignored --nocapture`
    #[test]
    #[ignore = "benchmark; run in release"]
    fn throughput() {
        let bodies = [
            "Your verification code is 123456. It expires in 10 minutes.",
            "Reminder: bin collection moved to Tuesday {week 2} - reply STOP to opt out",
            "Café opening hours changed: 9–17 Mon–Fri. See you soon 😀",
            "Réunion annulée: merci de confirmer votre présence à l'Hôtel de Ville.",
        ];
        for body in bodies {
            let n = 2_000_000u32;
            let t = std::time::Instant::now();
            let mut acc = 0u32;
            for _ in 0..n {
                acc = acc.wrapping_add(analyse(std::hint::black_box(body)).segments);
            }
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{:>12.0} msg/s  ({} chars, {:?}) acc={acc}",
                f64::from(n) / secs,
                body.chars().count(),
                analyse(body).encoding
            );
        }
    }
}

#[cfg(test)]
mod smart_tests {
    use super::{analyse, smart_encode, ucs2_forcing_chars, Encoding};

    #[test]
    fn look_alikes_become_gsm7_and_real_unicode_stays() {
        let body = "We\u{2019}ll be there \u{2013} \u{201C}soon\u{201D}\u{2026}";
        assert_eq!(analyse(body).encoding, Encoding::Ucs2);
        assert_eq!(ucs2_forcing_chars(body), ['\u{2013}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2026}']);
        let (smart, n) = smart_encode(body);
        assert_eq!((smart.as_str(), n), ("We'll be there - \"soon\"...", 5));
        assert_eq!(analyse(&smart).encoding, Encoding::Gsm7);
        let (kept, n) = smart_encode("Привет \u{2019}");
        assert_eq!((kept.as_str(), n), ("Привет '", 1));
        assert_eq!(analyse(&kept).encoding, Encoding::Ucs2, "Cyrillic has no stand-in");
        assert!(ucs2_forcing_chars("plain text").is_empty());
    }
}

//! Property-based fuzzing of the domain parsers that untrusted input reaches: E.164
//! numbers, sender ids, ids and categories, segment counting and media sniffing.
//!
//! Stable Rust has no coverage-guided fuzzer, so these are proptest properties over
//! arbitrary input and over mutations of valid input. Every target must never panic,
//! and every accepted value must be canonical (it re-parses to itself).
//!
//! Each target runs `FUZZ_CASES` cases (256 by default, enough to catch regressions
//! within the normal test run). A long run, e.g. before a release:
//!
//! ```text
//! FUZZ_CASES=100000 cargo nextest run -p dispatch-domain -E 'test(/fuzz/)'
//! ```
//!
//! Nothing is persisted: a failure prints the minimal input, which belongs in a named
//! regression test next to the fix.

use dispatch_domain::encoding::{self, Encoding, gsm7_septets};
use dispatch_domain::media_type::{ALLOWED_TYPES, normalize_content_type, sniff, type_matches};
use dispatch_domain::phone::PhoneError;
use dispatch_domain::status::DeliveryStatus;
use dispatch_domain::time::parse_iso8601;
use dispatch_domain::{ContentCategory, E164, IdempotencyKey, MessageId, ProviderMessageId, SenderId, TenantId};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use dispatch_domain::fuzzing::fuzz;

/// Any string, biased towards the characters parsers branch on.
fn any_text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(any::<char>(), 0..max).prop_map(|v| v.into_iter().collect()),
        proptest::string::string_regex(&format!("[ +0-9()./\\-#*;=a-zA-Z:\\t\\u{{a0}}\\u{{3000}}\\u{{ff10}}-\\u{{ff19}}\\u{{660}}-\\u{{669}}]{{0,{max}}}"))
            .expect("valid regex"),
    ]
}

/// Applies byte-level-ish mutations to a string at char boundaries: delete, insert
/// or replace a char, duplicate a slice, truncate.
fn mutate(s: String, ops: Vec<(u8, usize, char)>) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for (op, at, c) in ops {
        let at = if chars.is_empty() { 0 } else { at % (chars.len() + 1) };
        match op % 5 {
            0 if at < chars.len() => {
                chars.remove(at);
            }
            1 => chars.insert(at, c),
            2 if at < chars.len() => chars[at] = c,
            3 => {
                let tail: Vec<char> = chars[at..].iter().take(4).copied().collect();
                for (i, t) in tail.into_iter().enumerate() {
                    chars.insert(at + i, t);
                }
            }
            _ => chars.truncate(at.max(1)),
        }
    }
    chars.into_iter().collect()
}

fn mutations() -> impl Strategy<Value = Vec<(u8, usize, char)>> {
    let c = prop_oneof![
        4 => proptest::char::ranges(vec!['0'..='9', ' '..='/'].into()),
        1 => any::<char>(),
    ];
    proptest::collection::vec((any::<u8>(), any::<usize>(), c), 0..4)
}

/// Valid numbers from the unit tests, in E.164 form.
const NUMBERS: &[&str] = &[
    "+12015550123",
    "+18003569377",
    "+3612345678",
    "+390645678901",
    "+393931234567",
    "+441534456789",
    "+447400123456",
    "+447700900123",
    "+4747123456",
    "+4915123456789",
    "+5491123456789",
    "+6433316005",
    "+77710009998",
    "+78001234567",
    "+80012345678",
    "+8613800138000",
    "+97233142764978",
];

const REGIONS: &[&str] = &["US", "GB", "IT", "DE", "RU", "KZ", "NO", "AR", "NZ", "CN", "JE", "VA", "us", "gb", "ZZ", "", "001", "U"];

fn region() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        3 => proptest::sample::select(REGIONS).prop_map(|r| Some(r.to_owned())),
        1 => "[A-Za-z]{2}".prop_map(Some),
        1 => any_text(4).prop_map(Some),
    ]
}

/// A valid number written the way people and providers write numbers.
fn formatted_number() -> impl Strategy<Value = String> {
    (proptest::sample::select(NUMBERS), 0u8..8, proptest::collection::vec(1usize..5, 0..6)).prop_map(
        |(n, style, cuts)| {
            let digits = &n[1..];
            // Separators at arbitrary positions.
            let mut spaced = String::new();
            let mut next = cuts.into_iter().scan(0, |acc, c| {
                *acc += c;
                Some(*acc)
            });
            let mut cut = next.next();
            for (i, d) in digits.chars().enumerate() {
                if Some(i) == cut {
                    spaced.push([' ', '-', '.', ' '][i % 4]);
                    cut = next.next();
                }
                spaced.push(d);
            }
            match style {
                0 => n.to_owned(),
                1 => format!("+{spaced}"),
                2 => format!("00{digits}"),
                3 => format!("011 {spaced}"),
                4 => format!("tel:+{digits}"),
                5 => format!("+{digits} ext. 12"),
                6 => format!(" \t+({spaced}) "),
                _ => spaced,
            }
        },
    )
}

/// An accepted number is canonical: `+` and 2-15 digits after the country code,
/// re-parsing (with or without a region, strictly or not) gives the same number, and
/// it survives a serde round trip.
fn check_e164(input: &str, region: Option<&str>, result: Result<E164, PhoneError>) -> TestCaseResult {
    let n = match result {
        Ok(n) => n,
        Err(e) => {
            // Typed, with a stable code and a message that never echoes the input.
            prop_assert!(!e.code().is_empty());
            let msg = e.to_string();
            prop_assert!(input.trim().len() < 6 || !msg.contains(input.trim()), "error echoes input: {msg}");
            return Ok(());
        }
    };
    let s = n.as_str();
    prop_assert!(s.starts_with('+') && s[1..].bytes().all(|b| b.is_ascii_digit()), "not canonical: {s:?}");
    prop_assert!((3..=18).contains(&s.len()), "odd length: {s:?} from {input:?} / {region:?}");
    prop_assert_eq!(E164::parse(s, None), Ok(n.clone()), "re-parse of {} from {:?}", s, input);
    prop_assert_eq!(s.parse::<E164>(), Ok(n.clone()));
    if let Some(r) = region {
        prop_assert_eq!(E164::parse(s, Some(r)), Ok(n.clone()), "re-parse with region {}", r);
    }
    let json = serde_json::to_string(&n).expect("serialises");
    prop_assert_eq!(serde_json::from_str::<E164>(&json).ok(), Some(n.clone()));
    let cc = format!("+{}", n.country_code());
    prop_assert!(s.starts_with(&cc), "{} does not start with its country code", s);
    let masked = n.masked();
    prop_assert_eq!(masked.len(), s.len());
    prop_assert_eq!(n.digits(), &s[1..]);
    Ok(())
}

#[test]
fn fuzz_e164_arbitrary() {
    fuzz("e164_arbitrary", (any_text(40), region()), |(input, region)| {
        let r = E164::parse(&input, region.as_deref());
        check_e164(&input, region.as_deref(), r)?;
        // The strict form (API fields, stored values) must agree with itself too.
        check_e164(&input, None, input.parse::<E164>())
    });
}

#[test]
fn fuzz_e164_near_valid() {
    fuzz("e164_near_valid", (formatted_number(), mutations(), region()), |(n, ops, region)| {
        let input = mutate(n, ops);
        let r = E164::parse(&input, region.as_deref());
        check_e164(&input, region.as_deref(), r)
    });
}

#[test]
fn fuzz_e164_huge_inputs() {
    // Lengths around the 250-character input limit, and far past it.
    let s = (proptest::sample::select(NUMBERS), 0usize..600, prop_oneof![Just('0'), Just(' '), any::<char>()])
        .prop_map(|(n, pad, c)| format!("{n}{}", std::iter::repeat_n(c, pad).collect::<String>()));
    fuzz("e164_huge", (s, region()), |(input, region)| {
        let r = E164::parse(&input, region.as_deref());
        check_e164(&input, region.as_deref(), r)
    });
}

#[test]
fn fuzz_sender_id() {
    let s = prop_oneof![any_text(20), formatted_number(), "[A-Za-z0-9 .\\-]{0,13}"];
    fuzz("sender_id", s, |input| {
        if let Ok(id) = SenderId::parse(&input) {
            prop_assert_eq!(SenderId::parse(id.as_str()), Ok(id.clone()));
            let json = serde_json::to_string(&id).expect("serialises");
            prop_assert_eq!(serde_json::from_str::<SenderId>(&json).ok(), Some(id.clone()));
        }
        Ok(())
    });
}

/// Bodies that exercise both encodings and every packing edge: GSM basic and
/// extension characters, look-alikes outside GSM, surrogate pairs, controls.
fn sms_body() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        8 => proptest::char::range(' ', '~'),
        3 => proptest::sample::select(vec!['^', '{', '}', '\\', '[', ']', '~', '|', '\u{20ac}', '\x0c']),
        2 => proptest::sample::select(vec!['é', 'ü', 'Ä', 'ñ', 'Δ', 'Ω', '£', '¥', '§', '¿', '\n', '\r']),
        1 => proptest::sample::select(vec!['`', '\t', 'ç', 'ê', '\u{2019}', '\u{00a0}', '\u{0}', '\u{7f}']),
        1 => proptest::sample::select(vec!['😀', '🇬', '𝄞', '\u{10ffff}', '\u{fffd}', 'Ж', '中']),
        1 => any::<char>(),
    ];
    prop_oneof![
        4 => proptest::collection::vec(c.clone(), 0..400).prop_map(|v| v.into_iter().collect()),
        // Long runs of one costly character around the segment boundaries.
        1 => (proptest::sample::select(vec!['a', '{', '€', 'é', '😀', '`']), 60usize..340)
            .prop_map(|(c, n)| std::iter::repeat_n(c, n).collect()),
    ]
}

#[test]
fn fuzz_segments() {
    fuzz("segments", (sms_body(), any::<char>()), |(body, extra)| {
        let info = encoding::analyse(&body);
        prop_assert!(info.segments >= 1);
        prop_assert_eq!(info.chars as usize, body.chars().count());
        let all_gsm = body.chars().all(|c| gsm7_septets(c) > 0);
        prop_assert_eq!(info.encoding == Encoding::Gsm7, all_gsm);
        let units: usize = match info.encoding {
            Encoding::Gsm7 => body.chars().map(|c| usize::from(gsm7_septets(c))).sum(),
            Encoding::Ucs2 => body.encode_utf16().count(),
        };
        prop_assert_eq!(info.units as usize, units);
        if info.units <= info.encoding.single_segment_units() {
            prop_assert_eq!(info.segments, 1);
        }

        // Splitting agrees with counting and loses nothing.
        let parts = encoding::split(&body);
        prop_assert_eq!(parts.len(), info.segments as usize);
        prop_assert_eq!(parts.concat(), body.clone());
        if parts.len() > 1 {
            let cap = info.encoding.multipart_segment_units() as usize;
            for p in &parts {
                let u: usize = match info.encoding {
                    Encoding::Gsm7 => p.chars().map(|c| usize::from(gsm7_septets(c))).sum(),
                    Encoding::Ucs2 => p.encode_utf16().count(),
                };
                prop_assert!(u <= cap, "part of {u} units over {cap}");
            }
        }

        // Appending never makes a message cheaper.
        let mut longer = body.clone();
        longer.push(extra);
        let more = encoding::analyse(&longer);
        prop_assert!(
            more.segments >= info.segments,
            "appending {:?} went from {} to {} segments",
            extra,
            info.segments,
            more.segments
        );
        Ok(())
    });
}

/// Leading bytes of every format the sniffer knows, to start near-valid files from.
const MAGICS: &[&[u8]] = &[
    b"\x89PNG\r\n\x1a\n",
    b"\xFF\xD8\xFF",
    b"GIF87a",
    b"GIF89a",
    b"RIFF\0\0\0\0WEBP",
    b"%PDF-",
    b"#!AMR-WB\n",
    b"#!AMR\n",
    b"\0\0\0\x18ftypqt  ",
    b"\0\0\0\x18ftyp3gp4",
    b"\0\0\0\x18ftypM4A ",
    b"\0\0\0\x18ftypisom",
    b"ID3",
    b"\xFF\xFB",
    b"PK\x03\x04",
    b"MZ",
    b"\x7fELF",
    b"\xEF\xBB\xBF  BEGIN:VCARD",
    b"<!doctype html>",
    b"<svg",
    b"hello\n",
    b"\xE2\x82",
];

#[test]
fn fuzz_media_sniff() {
    let bytes = prop_oneof![
        2 => proptest::collection::vec(any::<u8>(), 0..64),
        3 => (proptest::sample::select(MAGICS), proptest::collection::vec(any::<u8>(), 0..32), any::<usize>())
            .prop_map(|(m, tail, cut)| {
                let mut b = m.to_vec();
                b.extend(tail);
                // Cut anywhere, including inside the magic.
                b.truncate(cut % (b.len() + 1));
                b
            }),
    ];
    let declared = prop_oneof![
        proptest::sample::select(ALLOWED_TYPES).prop_map(str::to_owned),
        Just("Image/JPG; charset=x".to_owned()),
        any_text(30),
    ];
    fuzz("media_sniff", (bytes, declared), |(b, declared)| {
        let sniffed = sniff(&b);
        if let Some(t) = sniffed {
            prop_assert!(t.contains('/') && t.is_ascii(), "odd type {t:?}");
            prop_assert_eq!(normalize_content_type(t), t, "sniffed types are normalised");
        }
        let norm = normalize_content_type(&declared);
        prop_assert_eq!(normalize_content_type(&norm), norm.clone(), "normalising is idempotent");
        prop_assert!(!norm.contains(';'));
        let _ = type_matches(&norm, sniffed);
        Ok(())
    });
}

#[test]
fn fuzz_ids_and_categories() {
    let s = prop_oneof![
        any_text(80),
        "[0-9A-HJKMNP-TV-Za-z]{24,28}",
        "[a-z0-9\\-_]{0,70}",
        "[!-~]{0,260}",
        Just("2026-11-26T01:02:03.456Z".to_owned()),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})",
    ];
    fuzz("ids_and_categories", s, |input| {
        if let Ok(id) = input.parse::<MessageId>() {
            prop_assert_eq!(id.to_string().parse::<MessageId>().ok(), Some(id));
        }
        if let Ok(t) = TenantId::parse(input.as_str()) {
            prop_assert_eq!(TenantId::parse(t.as_str()), Ok(t.clone()));
            prop_assert!(t.as_str().len() <= 63);
        }
        if let Ok(k) = IdempotencyKey::parse(input.as_str()) {
            prop_assert!(k.as_str().len() <= 255);
        }
        if let Ok(p) = ProviderMessageId::parse(input.as_str()) {
            prop_assert!(p.as_str().len() <= 200 && !p.as_str().contains(' '));
        }
        if let Ok(c) = ContentCategory::parse(input.as_str()) {
            prop_assert_eq!(ContentCategory::parse(c.as_str()), Ok(c.clone()));
        }
        if let Some(st) = DeliveryStatus::parse(&input) {
            prop_assert_eq!(st.as_str(), input.as_str());
        }
        if let Some(t) = parse_iso8601(&input) {
            let again = dispatch_domain::time::iso8601(t);
            // Millisecond precision: re-parsing the formatted instant is stable.
            let t2 = parse_iso8601(&again);
            prop_assert!(t2.is_some(), "{again} does not re-parse");
            prop_assert_eq!(dispatch_domain::time::iso8601(t2.expect("checked")), again);
        }
        Ok(())
    });
}

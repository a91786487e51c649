//! E.164 phone numbers, built on the `phonenumber` crate (libphonenumber metadata).
//!
//! An [`E164`] can only be built from a number that libphonenumber considers *valid*
//! (not merely *possible*): a number of plausible length whose digits match no real
//! numbering plan (GB `0740012345`, NANP area code `123`) would be accepted by a carrier
//! API, cost money and never arrive, so it is rejected here, once, at the edge.
//!
//! Performance notes (this runs once per submitted message, not per segment):
//! - The metadata database is `phonenumber::metadata::DATABASE`, a `once_cell::Lazy`
//!   static decoded from an embedded postcard blob on first use. Nothing here loads or
//!   decodes metadata per call; [`E164::warm_up`] forces the decode during Lambda init.
//! - The per-region regexes are compiled lazily into a process-wide LRU cache of 100
//!   entries behind a `Mutex` (hard-coded in `phonenumber::Database::from`). Traffic to a
//!   handful of countries stays warm; traffic spread over many countries recompiles
//!   evicted patterns. That is a property of the crate, not something we can tune here.

use phonenumber::metadata::DATABASE;
use phonenumber::{Metadata, ParseError, PhoneNumber};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// libphonenumber refuses inputs longer than this (MAX_INPUT_STRING_LENGTH); we do the
/// same before handing untrusted text to a regex/nom parser.
const MAX_INPUT_LEN: usize = 250;

/// Why a string is not an acceptable E.164 number.
///
/// Messages deliberately never include the input: these errors end up in API responses
/// and logs, and the input is personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("not a phone number")]
    NotANumber,
    #[error("phone number has no valid country code (use +<country code> or give a region)")]
    InvalidCountryCode,
    #[error("phone number is too short")]
    TooShort,
    #[error("phone number is too long")]
    TooLong,
    #[error("phone number is not a valid number in its numbering plan")]
    InvalidNumber,
    #[error("default region is not a known ISO 3166 alpha-2 region code")]
    UnknownRegion,
}

impl PhoneError {
    /// Stable machine-readable code for API error bodies and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::NotANumber => "not_a_number",
            Self::InvalidCountryCode => "invalid_country_code",
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::InvalidNumber => "invalid_number",
            Self::UnknownRegion => "unknown_region",
        }
    }
}

impl From<ParseError> for PhoneError {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::NoNumber => Self::NotANumber,
            ParseError::InvalidCountryCode => Self::InvalidCountryCode,
            ParseError::TooShortAfterIdd | ParseError::TooShortNsn => Self::TooShort,
            ParseError::TooLong => Self::TooLong,
            // The crate parses the national number into a u64; overflow means too many digits.
            ParseError::MalformedInteger(ref ie)
                if matches!(ie.kind(), std::num::IntErrorKind::PosOverflow) =>
            {
                Self::TooLong
            }
            ParseError::MalformedInteger(_) => Self::NotANumber,
        }
    }
}

/// A valid phone number in E.164 form: `+` followed by the country code and national
/// significant number, digits only (e.g. `+447400123456`).
///
/// Serialises as that string. Deserialising re-validates it (see [`FromStr`]).
/// Equality, hashing and ordering are those of the string: the other fields are derived
/// from it, cached at parse time so the accessors never touch the metadata again.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164 {
    // Field order matters: derived `Ord` compares `number` first, and the rest is a
    // function of it, so ordering is exactly string ordering.
    number: String,
    country_code: u16,
    /// ISO 3166 alpha-2 (ASCII uppercase); `None` for non-geographic codes (+800, +882...).
    region: Option<[u8; 2]>,
}

impl E164 {
    /// Parses a number in international (`+44 7400 123456`, `0044 7400 123456` with a
    /// region whose IDD is `00`) or national (`07400 123456` with region `GB`) format.
    ///
    /// `default_region` is an ISO 3166 alpha-2 code, case-insensitive. It is only used to
    /// interpret national formats and IDD prefixes, but it is always checked, so a bad
    /// configured region fails loudly even when the first numbers seen are `+` numbers.
    /// Without a region, only `+` numbers can be resolved.
    pub fn parse(input: &str, default_region: Option<&str>) -> Result<Self, PhoneError> {
        let region = default_region.map(region_id).transpose()?;

        let input = input.trim();
        if input.is_empty() {
            return Err(PhoneError::Empty);
        }
        if input.len() > MAX_INPUT_LEN {
            return Err(PhoneError::TooLong);
        }

        let parsed = phonenumber::parse(region, input)?;
        // An extension cannot be carried by an SMS destination; dropping it silently
        // would send to a switchboard, so the input is treated as not a valid number.
        if parsed.extension().is_some() {
            return Err(PhoneError::InvalidNumber);
        }

        let country_code = parsed.code().value();
        let nsn = national_significant_number(&parsed);

        // Validity and region come from one region lookup. This deliberately does not use
        // `PhoneNumber::number_type`/`metadata`: they drop Italian-style leading zeros
        // before matching (so +39 06... would be "invalid"), and calling both would do
        // the regex-heavy region lookup twice.
        let meta = metadata_for(country_code, &nsn);
        if !meta.is_some_and(|m| matches_a_number_type(m, &nsn)) {
            return Err(length_error(country_code, nsn.len()));
        }
        let region = meta.and_then(|m| match m.id().as_bytes() {
            &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => Some([a, b]),
            _ => None, // "001": non-geographic entity
        });

        let mut number = String::with_capacity(1 + 3 + nsn.len());
        number.push('+');
        number.push_str(itoa_u16(country_code, &mut [0u8; 5]));
        number.push_str(&nsn);
        Ok(Self { number, country_code, region })
    }

    /// Forces the lazily decoded libphonenumber metadata to load now (call from Lambda
    /// init), so the first request does not pay for it.
    pub fn warm_up() {
        // Any lookup forces the Lazy; `by_id` is a hash lookup and compiles no regex.
        let _ = DATABASE.by_id("GB");
    }

    /// The E.164 string, `+` and digits.
    pub fn as_str(&self) -> &str {
        &self.number
    }

    /// The digits without the leading `+` (Vonage and others want this form).
    pub fn digits(&self) -> &str {
        &self.number[1..]
    }

    /// The country calling code, e.g. 44.
    pub fn country_code(&self) -> u16 {
        self.country_code
    }

    /// ISO 3166 alpha-2 region of the number (e.g. "GB", "JE" for a Jersey number under
    /// +44); `None` for non-geographic numbers such as +800.
    pub fn region(&self) -> Option<String> {
        self.region.map(|r| r.iter().map(|&b| b as char).collect())
    }

    /// The number with the middle digits starred, for logs at info level: keeps the
    /// country code and the last 2-4 digits (fewer for short numbers so that most of the
    /// national number is always hidden), e.g. `+44*******456`.
    pub fn masked(&self) -> String {
        let cc_len = digit_count(self.country_code);
        let nsn = &self.number[1 + cc_len..];
        let keep = (nsn.len() / 3).clamp(2, 4).min(nsn.len() / 2);
        let hidden = nsn.len() - keep;
        let mut out = String::with_capacity(self.number.len());
        out.push_str(&self.number[..1 + cc_len]);
        out.extend(std::iter::repeat_n('*', hidden));
        out.push_str(&nsn[hidden..]);
        out
    }

    /// Same as the free function [`is_valid_region`].
    pub fn is_valid_region(code: &str) -> bool {
        is_valid_region(code)
    }
}

/// Whether `code` is an ISO 3166 alpha-2 region libphonenumber has metadata for
/// (case-insensitive), i.e. one [`E164::parse`] accepts as a default region. For
/// validating configuration at startup.
pub fn is_valid_region(code: &str) -> bool {
    region_id(code).is_ok()
}

/// `Debug` shows the number like a tuple struct, without the cached derived fields.
/// Note it is the full number: use [`E164::masked`] in logs.
impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("E164").field(&self.number).finish()
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.number)
    }
}

/// Strict form for stored values and API fields: must start with `+` (no region is
/// available to interpret a national number), and is fully re-validated.
impl FromStr for E164 {
    type Err = PhoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err(PhoneError::Empty);
        }
        if !t.starts_with('+') {
            return Err(PhoneError::InvalidCountryCode);
        }
        Self::parse(t, None)
    }
}

impl TryFrom<String> for E164 {
    type Error = PhoneError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        // Fast path for the canonical form we store: avoids re-allocating the string.
        let parsed: Self = s.parse()?;
        if parsed.number == s {
            return Ok(Self { number: s, ..parsed });
        }
        Ok(parsed)
    }
}

impl From<E164> for String {
    fn from(n: E164) -> Self {
        n.number
    }
}

impl AsRef<str> for E164 {
    fn as_ref(&self) -> &str {
        &self.number
    }
}

/// Resolves an ISO alpha-2 code (any case) to the crate's region id, requiring metadata.
fn region_id(code: &str) -> Result<phonenumber::country::Id, PhoneError> {
    let bytes = code.as_bytes();
    if bytes.len() != 2 || !bytes.iter().all(u8::is_ascii_alphabetic) {
        return Err(PhoneError::UnknownRegion);
    }
    let upper = [bytes[0].to_ascii_uppercase(), bytes[1].to_ascii_uppercase()];
    // Both bytes are ASCII letters, so this is valid UTF-8.
    let upper = std::str::from_utf8(&upper).map_err(|_| PhoneError::UnknownRegion)?;
    if DATABASE.by_id(upper).is_none() {
        return Err(PhoneError::UnknownRegion);
    }
    upper.parse().map_err(|_| PhoneError::UnknownRegion)
}

/// The national significant number as digits, including Italian-style leading zeros.
fn national_significant_number(n: &PhoneNumber) -> String {
    let national = n.national();
    let mut s = String::with_capacity(17);
    s.extend(std::iter::repeat_n('0', usize::from(national.zeros())));
    s.push_str(&national.value().to_string());
    s
}

/// For a parsed but invalid number, tell "wrong length" apart from "right length, but no
/// such number", following libphonenumber's `isPossibleNumberWithReason`: lengths come
/// from the main region for the calling code (GB for +44, US for +1).
///
/// The crate leaves the general descriptor's possible lengths empty (libphonenumber's
/// metadata build derives them), so they are derived here the same way: the union over
/// the number-type descriptors. Only runs on the rejection path.
fn length_error(country_code: u16, nsn_len: usize) -> PhoneError {
    let Some(meta) = main_metadata(country_code) else {
        return PhoneError::InvalidCountryCode;
    };
    let d = meta.descriptors();
    let types = [
        d.fixed_line(),
        d.mobile(),
        d.toll_free(),
        d.premium_rate(),
        d.shared_cost(),
        d.personal_number(),
        d.voip(),
        d.pager(),
        d.uan(),
        d.voicemail(),
    ];
    let len = u16::try_from(nsn_len).unwrap_or(u16::MAX);
    let (mut min, mut max) = (u16::MAX, 0u16);
    let mut local_only = false;
    for desc in types.into_iter().flatten() {
        for &l in desc.possible_length() {
            min = min.min(l);
            max = max.max(l);
        }
        local_only |= desc.possible_local_length().contains(&len);
    }
    if local_only || min > max {
        // A local-only length (US 7 digits: area code missing) is "possible" to
        // libphonenumber, and no length data at all gives no better answer.
        PhoneError::InvalidNumber
    } else if len < min {
        PhoneError::TooShort
    } else if len > max {
        PhoneError::TooLong
    } else {
        // Includes lengths inside the range that no number type uses: neither "too
        // short" nor "too long", and not a number anyone can be reached on.
        PhoneError::InvalidNumber
    }
}

/// The metadata a number belongs to, as libphonenumber's `getRegionCodeForNumber`: the
/// only region for its calling code, else the first region (main country first) whose
/// leading digits match, or, for regions without leading digits, whose patterns match.
fn metadata_for(country_code: u16, nsn: &str) -> Option<&'static Metadata> {
    let candidates = DATABASE.by_code(&country_code)?;
    if let [only] = candidates[..] {
        return Some(only);
    }
    candidates.into_iter().find(|m| match m.leading_digits() {
        Some(leading) => leading.find(nsn).is_some_and(|found| found.start() == 0),
        None => matches_a_number_type(m, nsn),
    })
}

/// libphonenumber's "valid": the general pattern matches and so does some number type.
/// Mobile and fixed line are tried first because they are what SMS is sent to, so a
/// valid destination usually costs two or three regex matches, not ten.
fn matches_a_number_type(meta: &Metadata, nsn: &str) -> bool {
    let d = meta.descriptors();
    d.general().is_match(nsn)
        && [
            d.mobile(),
            d.fixed_line(),
            d.toll_free(),
            d.premium_rate(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
        ]
        .into_iter()
        .flatten()
        .any(|desc| desc.is_match(nsn))
}

fn main_metadata(country_code: u16) -> Option<&'static Metadata> {
    let candidates = DATABASE.by_code(&country_code)?;
    candidates
        .iter()
        .copied()
        .find(|m| m.is_main_country_for_code())
        .or_else(|| candidates.first().copied())
}

fn digit_count(n: u16) -> usize {
    match n {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        1000..=9999 => 4,
        _ => 5,
    }
}

/// Formats a u16 without allocating (the country code goes straight into the output).
fn itoa_u16(mut n: u16, buf: &mut [u8; 5]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Vectors {
        vectors: Vec<serde_json::Value>,
    }

    fn e164_vectors() -> Vec<serde_json::Value> {
        let raw = include_str!("../../tests/vectors/vectors.json");
        let v: Vectors = serde_json::from_str(raw).expect("vectors.json parses");
        v.vectors
            .into_iter()
            .filter(|v| {
                v["provider"] == "generic"
                    && v["scheme"].as_str().is_some_and(|s| s.starts_with("E.164 parse/normalise"))
            })
            .collect()
    }

    /// What our API promises for a vector's expectation (libphonenumber terms → our codes).
    fn expected_outcome(exp: &serde_json::Value) -> Result<&str, &'static str> {
        if let Some(err) = exp["parse_error"].as_str() {
            return Err(match err {
                "NOT_A_NUMBER" => "not_a_number",
                "INVALID_COUNTRY_CODE" => "invalid_country_code",
                "TOO_SHORT_NSN" | "TOO_SHORT_AFTER_IDD" => "too_short",
                "TOO_LONG" => "too_long",
                other => panic!("unmapped parse_error {other}"),
            });
        }
        if exp["is_valid"].as_bool() == Some(true) {
            return Ok(exp["e164"].as_str().expect("valid vector has e164"));
        }
        Err(match exp["possible_reason"].as_str() {
            Some("TOO_SHORT") => "too_short",
            Some("TOO_LONG") => "too_long",
            Some("IS_POSSIBLE") | Some("IS_POSSIBLE_LOCAL_ONLY") | Some("INVALID_LENGTH") => {
                "invalid_number"
            }
            other => panic!("unmapped possible_reason {other:?}"),
        })
    }

    /// Vectors where phonenumber 0.3.10+9.0.33 and libphonenumber (phonenumbers 9.0.43,
    /// which computed the vectors) disagree: (id, code we return, why).
    /// If the crate is fixed, the test fails and the entry should be removed.
    const KNOWN_DIVERGENCES: &[(&str, &str, &str)] = &[(
        "e164-16",
        "too_short",
        "123-456-7890 / US: libphonenumber keeps all 10 digits (+11234567890, possible but \
         invalid: area code 123 -> invalid_number). The crate's parser strips the leading 1 \
         as a country code without checking the rest matches the general pattern, leaving \
         the 9-digit NSN 234567890 -> too_short. Rejected either way.",
    )];

    #[test]
    fn all_e164_vectors() {
        let vectors = e164_vectors();
        assert_eq!(vectors.len(), 20, "expected 20 E.164 vectors in vectors.json");
        let mut failures = Vec::new();
        for v in &vectors {
            let id = v["id"].as_str().unwrap();
            let input = v["inputs"]["input"].as_str().unwrap();
            let region = v["inputs"]["default_region"].as_str();
            let exp = &v["expected"];
            let got = E164::parse(input, region);
            if let Some((_, our_code, _)) = KNOWN_DIVERGENCES.iter().find(|d| d.0 == id) {
                // Still rejected, as the vector requires; only the reason differs.
                assert!(expected_outcome(exp).is_err(), "{id}: divergence list is for rejections");
                if got.as_ref().err().map(PhoneError::code) != Some(*our_code) {
                    failures.push(format!("{id}: known divergence changed, got {got:?}"));
                }
                continue;
            }
            let ok = match (expected_outcome(exp), &got) {
                (Ok(e164), Ok(n)) => {
                    n.as_str() == e164
                        && exp["country_code"].as_u64() == Some(u64::from(n.country_code()))
                        && n.digits() == &e164[1..]
                }
                (Err(code), Err(e)) => e.code() == code,
                _ => false,
            };
            if !ok {
                failures.push(format!("{id}: expected {:?}, got {got:?}", expected_outcome(exp)));
            }
        }
        assert!(failures.is_empty(), "vector mismatches:\n{}", failures.join("\n"));
    }

    #[test]
    fn regions_and_helpers() {
        let n = E164::parse("07400 123456", Some("gb")).unwrap();
        assert_eq!(n.as_str(), "+447400123456");
        assert_eq!(n.to_string(), "+447400123456");
        assert_eq!(n.digits(), "447400123456");
        assert_eq!(n.country_code(), 44);
        assert_eq!(n.region().as_deref(), Some("GB"));
        assert_eq!(format!("{n:?}"), "E164(\"+447400123456\")");

        let us = E164::parse("(201) 555-0123", Some("Us")).unwrap();
        assert_eq!(us.region().as_deref(), Some("US"));
        assert_eq!(us.country_code(), 1);

        let ca = E164::parse("+1 604 555 5555", None).unwrap();
        assert_eq!(ca.region().as_deref(), Some("CA"), "shared +1 code resolved per number");

        // Italian numbers keep their leading zero in the NSN.
        let rome = E164::parse("06 4567 8901", Some("IT")).unwrap();
        assert_eq!((rome.as_str(), rome.region().as_deref()), ("+390645678901", Some("IT")));
        let vatican = E164::parse("+39 06 698 12345", None).unwrap();
        assert_eq!(vatican.region().as_deref(), Some("VA"));
        let jersey = E164::parse("+44 1534 456789", None).unwrap();
        assert_eq!(jersey.region().as_deref(), Some("JE"));

        let tollfree_intl = E164::parse("+800 1234 5678", None).unwrap();
        assert_eq!(tollfree_intl.country_code(), 800);
        assert_eq!(tollfree_intl.region(), None);

        assert!(E164::is_valid_region("GB"));
        assert!(is_valid_region("gb"));
        assert!(E164::is_valid_region("nz"));
        assert!(!E164::is_valid_region("XX"));
        assert!(!E164::is_valid_region("GBR"));
        assert!(!E164::is_valid_region("001"));
        assert!(!E164::is_valid_region(""));
    }

    /// Our single-lookup validity check must agree with the crate's `is_valid` (which
    /// handles leading zeros correctly), and every metadata example number must parse
    /// as valid.
    #[test]
    fn validity_agrees_with_crate_on_metadata_examples() {
        let mut rng = fastrand::Rng::with_seed(44);
        let mut checked = 0;
        for meta in DATABASE.iter() {
            let d = meta.descriptors();
            let examples = [d.mobile(), d.fixed_line(), d.toll_free(), d.voip()]
                .into_iter()
                .flatten()
                .filter_map(|desc| desc.example());
            for ex in examples {
                let input = format!("+{}{}", meta.country_code(), ex);
                let ours = E164::parse(&input, None);
                let crate_valid = phonenumber::parse(None, &input).is_ok_and(|n| n.is_valid());
                assert_eq!(ours.is_ok(), crate_valid, "{input} ({})", meta.id());
                assert!(ours.is_ok(), "example {input} of {} must be valid", meta.id());
                // Mutate the last digits: validity verdicts must still agree.
                let mut digits: Vec<u8> = input.bytes().collect();
                let last = digits.len() - 1;
                digits[last] = b'0' + rng.u8(..10);
                digits[last - 3] = b'0' + rng.u8(..10);
                let mutated = String::from_utf8(digits).unwrap();
                let crate_valid =
                    phonenumber::parse(None, &mutated).is_ok_and(|n| n.is_valid() && n.extension().is_none());
                assert_eq!(E164::parse(&mutated, None).is_ok(), crate_valid, "{mutated}");
                checked += 1;
            }
        }
        assert!(checked > 400, "only {checked} examples");
    }

    #[test]
    fn error_kinds() {
        let code = |input: &str, region: Option<&str>| E164::parse(input, region).unwrap_err().code();
        assert_eq!(code("", Some("GB")), "empty");
        assert_eq!(code("   ", None), "empty");
        assert_eq!(code("hello", Some("GB")), "not_a_number");
        assert_eq!(code("7400123456", None), "invalid_country_code");
        assert_eq!(code("0740012345", Some("GB")), "invalid_number");
        assert_eq!(code("201555012", Some("US")), "too_short");
        assert_eq!(code("20155501234", Some("US")), "too_long");
        assert_eq!(code("555 0123", Some("US")), "invalid_number"); // local-only length
        assert_eq!(code("+44 74001 234567", None), "too_long");
        assert_eq!(code("+44 7400 123456", Some("ZZ")), "unknown_region");
        assert_eq!(code("07400 123456", Some("England")), "unknown_region");
        assert_eq!(code("+1 201 555 0123 4567 8901 2345", None), "too_long");
        assert_eq!(code(&"1".repeat(MAX_INPUT_LEN + 1), Some("US")), "too_long");
        assert_eq!(code("+44 7400 123456 ext. 12", None), "invalid_number");
        // The message never contains the number.
        let msg = E164::parse("0740012345", Some("GB")).unwrap_err().to_string();
        assert!(!msg.contains("740012345"), "{msg}");
    }

    #[test]
    fn from_str_requires_plus() {
        assert_eq!("+447400123456".parse::<E164>().unwrap().as_str(), "+447400123456");
        assert_eq!("+44 7400 123456".parse::<E164>().unwrap().as_str(), "+447400123456");
        assert_eq!("07400123456".parse::<E164>().unwrap_err(), PhoneError::InvalidCountryCode);
        assert_eq!("".parse::<E164>().unwrap_err(), PhoneError::Empty);
        assert!(E164::try_from("+44740012345".to_string()).is_err());
    }

    #[test]
    fn masking() {
        let m = |s: &str| s.parse::<E164>().unwrap().masked();
        assert_eq!(m("+447400123456"), "+44*******456");
        assert_eq!(m("+12015550123"), "+1*******123");
        assert_eq!(m("+6433316005"), "+64******05");
        assert_eq!(m("+4915123456789"), "+49********789");
        assert_eq!(m("+80012345678"), "+800******78");
        for s in ["+447400123456", "+12015550123", "+6433316005", "+4915123456789"] {
            let masked = m(s);
            assert_eq!(masked.len(), s.len());
            let hidden = masked.chars().filter(|&c| c == '*').count();
            assert!(hidden * 2 >= s.len() - 3, "most of the national number is hidden: {masked}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let n = E164::parse("0151 23456789", Some("DE")).unwrap();
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, "\"+4915123456789\"");
        let back: E164 = serde_json::from_str(&json).unwrap();
        assert_eq!(back, n);
        assert_eq!(back.region().as_deref(), Some("DE"));
        assert!(serde_json::from_str::<E164>("\"015123456789\"").is_err());
        assert!(serde_json::from_str::<E164>("\"+44740012345\"").is_err());
        assert!(serde_json::from_str::<E164>("12").is_err());
    }

    #[test]
    fn ordering_is_string_ordering() {
        let mut v: Vec<E164> = ["+6433316005", "+12015550123", "+447400123456"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        v.sort();
        let s: Vec<&str> = v.iter().map(E164::as_str).collect();
        assert_eq!(s, ["+12015550123", "+447400123456", "+6433316005"]);
    }
}

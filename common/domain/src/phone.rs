//! E.164 phone numbers, built on the `phonenumber` crate's libphonenumber metadata.
//!
//! An [`E164`] can only be built from a number that libphonenumber considers *valid*
//! (not merely *possible*): a number of plausible length whose digits match no real
//! numbering plan (GB `0740012345`, NANP area code `123`) would be accepted by a carrier
//! API, cost money and never arrive, so it is rejected here, once, at the edge.
//!
//! # Why this does not just call `phonenumber::parse` + `is_valid`
//! phonenumber 0.3.10 (metadata 9.0.33) diverges from libphonenumber in ways that reject
//! real numbers or accept invalid ones (each is pinned by a test below):
//! 1. Validity is a prefix match, not a whole-string match, so over-long numbers can be
//!    "valid" (whisperfish/rust-phonenumber#31). We match anchored patterns instead.
//! 2. It never fills in the general descriptor's possible lengths, so its length checks
//!    always fail open: national prefixes are stripped when libphonenumber would keep
//!    them (`+7 800 123 4567` becomes unparseable), and a national number that begins with
//!    the country code loses it (Italian `393 123 4567`, Norwegian `47 12 34 56`).
//! 3. With a default region, `+` numbers are stripped with the *default region's*
//!    national prefix: with region US, `+86 138 0013 8000` loses its leading 1.
//! 4. `PhoneNumber::number_type` drops Italian-style leading zeros before matching.
//!
//! So inputs made of digits and ordinary punctuation (the overwhelming majority) go
//! through a direct port of libphonenumber's `parseHelper` for that subset, over the
//! crate's metadata. Anything else (letters, `tel:` URIs, extensions, digits of rarer
//! scripts) goes through the crate's parser, and the result is still validated here.
//! A differential run of ~190,000 generated inputs (all regions and number types, mutated,
//! in national, international, IDD and formatted forms) against Python `phonenumbers`
//! 9.0.33, the same metadata release, agreed on every E.164 result and error kind.
//!
//! # Performance
//! - The metadata is `phonenumber::metadata::DATABASE`, a `once_cell::Lazy` static
//!   decoded once on first use (call [`E164::warm_up`] during Lambda init). Nothing here
//!   decodes or reloads metadata per call.
//! - The crate compiles regexes lazily into a 100-entry LRU behind a global mutex, keyed
//!   by the full pattern text. Our anchored patterns are compiled once each and kept in
//!   our own map keyed by the pattern's address, so a warm parse of a canonical
//!   `+447400123456` is a handful of small regex matches and no compilation.

use phonenumber::metadata::{DATABASE, Descriptor};
use phonenumber::{Metadata, ParseError, PhoneNumber};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

/// libphonenumber refuses inputs longer than this (MAX_INPUT_STRING_LENGTH); we do the
/// same before handing untrusted text to a regex/nom parser.
const MAX_INPUT_LEN: usize = 250;
/// libphonenumber's bounds on a national significant number.
const MIN_NSN: usize = 2;
const MAX_NSN: usize = 17;

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
    /// Parses a number in international (`+44 7400 123456`, or `0044 7400 123456` with a
    /// region whose international prefix is `00`) or national (`07400 123456` with region
    /// `GB`) format, and accepts it only if it is a valid number.
    ///
    /// `default_region` is an ISO 3166 alpha-2 code, case-insensitive. It is only used to
    /// interpret national formats and international prefixes, but it is always checked,
    /// so a bad configured region fails loudly even while the numbers seen are `+` ones.
    /// Without a region, only `+` numbers can be resolved.
    pub fn parse(input: &str, default_region: Option<&str>) -> Result<Self, PhoneError> {
        let region = default_region.map(region_metadata).transpose()?;

        let input = input.trim();
        if input.is_empty() {
            return Err(PhoneError::Empty);
        }
        if input.len() > MAX_INPUT_LEN {
            return Err(PhoneError::TooLong);
        }

        let (cc, nsn) = match plain_digits(input) {
            Some((plus, digits)) => parse_plain(plus, &digits, region)?,
            None => parse_with_crate(input, region)?,
        };
        build(cc, &nsn)
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

    /// ISO 3166 alpha-2 region of the number (e.g. "GB", or "JE" for a Jersey number
    /// under +44); `None` for non-geographic numbers such as +800.
    pub fn region(&self) -> Option<String> {
        self.region.map(|r| r.iter().map(|&b| char::from(b)).collect())
    }

    /// The number with the middle digits starred, for logs at info level: keeps the
    /// country code and the last 2-4 digits (fewer for short numbers, so that most of
    /// the national number is always hidden), e.g. `+44*******456`.
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

    /// What kind of line the number is, by the metadata of the region it is valid in
    /// (libphonenumber's `getNumberType`).
    pub fn number_type(&self) -> NumberType {
        let nsn = &self.number[1 + digit_count(self.country_code)..];
        let Some(meta) = accept(self.country_code, nsn) else { return NumberType::Unknown };
        number_type_in(meta, nsn)
    }
}

/// libphonenumber's number types, as far as SMS cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberType {
    Mobile,
    FixedLine,
    /// The region does not tell the two apart (the US and Canada, for example).
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    Voip,
    PersonalNumber,
    Pager,
    Uan,
    Voicemail,
    Unknown,
}

impl NumberType {
    /// Whether an SMS can never reach it: only a plain fixed line is refused (a line
    /// the metadata cannot tell from a mobile passes, and VoIP and personal numbers
    /// often take SMS).
    pub fn cannot_receive_sms(self) -> bool {
        matches!(self, Self::FixedLine)
    }
}

/// libphonenumber's `getNumberTypeHelper`, in its order.
fn number_type_in(meta: &'static Metadata, nsn: &str) -> NumberType {
    let d = meta.descriptors();
    if !full_match(d.general(), nsn) {
        return NumberType::Unknown;
    }
    let is = |desc: Option<&'static Descriptor>| desc.is_some_and(|x| full_match(x, nsn));
    for (desc, t) in [
        (d.premium_rate(), NumberType::PremiumRate),
        (d.toll_free(), NumberType::TollFree),
        (d.shared_cost(), NumberType::SharedCost),
        (d.voip(), NumberType::Voip),
        (d.personal_number(), NumberType::PersonalNumber),
        (d.pager(), NumberType::Pager),
        (d.uan(), NumberType::Uan),
        (d.voicemail(), NumberType::Voicemail),
    ] {
        if is(desc) {
            return t;
        }
    }
    if is(d.fixed_line()) {
        // Regions whose mobile and fixed patterns coincide, or numbers both match.
        let same = match (d.fixed_line(), d.mobile()) {
            (Some(f), Some(m)) => f.national_number().as_str() == m.national_number().as_str(),
            _ => false,
        };
        return if same || is(d.mobile()) { NumberType::FixedLineOrMobile } else { NumberType::FixedLine };
    }
    if is(d.mobile()) { NumberType::Mobile } else { NumberType::Unknown }
}

/// Whether `code` is an ISO 3166 alpha-2 region libphonenumber has metadata for
/// (case-insensitive), i.e. one [`E164::parse`] accepts as a default region. For
/// validating configuration at startup.
pub fn is_valid_region(code: &str) -> bool {
    region_metadata(code).is_ok()
}

/// `Debug` shows the number like a tuple struct, without the cached derived fields.
/// Note it is the full number: use [`E164::masked`] in logs.
/// Masked, so a `{:?}` of any struct holding a number never puts it in a log.
impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("E164").field(&self.masked()).finish()
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.number)
    }
}

/// Strict form for stored values and API fields: must start with `+` (there is no
/// region to interpret a national number with), and is fully re-validated.
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
        s.parse()
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

// ---------------------------------------------------------------------------------------
// Parsing

/// Metadata for a default region given as ISO alpha-2 in any case.
fn region_metadata(code: &str) -> Result<&'static Metadata, PhoneError> {
    let bytes = code.as_bytes();
    if bytes.len() != 2 || !bytes.iter().all(u8::is_ascii_alphabetic) {
        return Err(PhoneError::UnknownRegion);
    }
    let upper = [bytes[0].to_ascii_uppercase(), bytes[1].to_ascii_uppercase()];
    let upper = std::str::from_utf8(&upper).map_err(|_| PhoneError::UnknownRegion)?;
    DATABASE.by_id(upper).ok_or(PhoneError::UnknownRegion)
}

/// If `input` is only digits and libphonenumber's punctuation (VALID_PUNCTUATION:
/// spaces, dashes, dots, slashes, brackets, in their ASCII, typographic and fullwidth
/// forms), with at most a leading plus, returns whether it had the plus and its digits
/// as ASCII. This is the form the libphonenumber port below handles; anything else
/// (letters, `tel:`, extensions, `*`/`#`) goes to the crate's parser.
fn plain_digits(input: &str) -> Option<(bool, String)> {
    let (plus, rest) = match input.strip_prefix(['+', '\u{FF0B}']) {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        if let Some(d) = decimal_digit(c) {
            digits.push(d);
        } else if !is_punctuation(c) {
            return None;
        }
    }
    Some((plus, digits))
}

/// ASCII value of a decimal digit in the scripts people commonly type numbers in
/// (libphonenumber accepts every Unicode `Nd` digit; rarer scripts go to the crate).
fn decimal_digit(c: char) -> Option<char> {
    const ZEROS: [u32; 8] = [
        0x30,   // ASCII
        0x660,  // Arabic-Indic
        0x6F0,  // Extended Arabic-Indic (Persian, Urdu)
        0x966,  // Devanagari
        0x9E6,  // Bengali
        0xE50,  // Thai
        0x1040, // Myanmar
        0xFF10, // Fullwidth (CJK input methods)
    ];
    let cp = u32::from(c);
    ZEROS
        .iter()
        .find(|&&zero| (zero..zero + 10).contains(&cp))
        .and_then(|&zero| char::from_digit(cp - zero, 10))
}

fn is_punctuation(c: char) -> bool {
    matches!(
        c,
        ' ' | '-'
            | '.'
            | '/'
            | '('
            | ')'
            | '['
            | ']'
            | '~'
            | '\u{A0}'
            | '\u{AD}'
            | '\u{200B}'
            | '\u{2060}'
            | '\u{2010}'..='\u{2015}'
            | '\u{2053}'
            | '\u{2212}'
            | '\u{223C}'
            | '\u{3000}'
            | '\u{30FC}'
            | '\u{FF08}'
            | '\u{FF09}'
            | '\u{FF0D}'..='\u{FF0F}'
            | '\u{FF3B}'
            | '\u{FF3D}'
            | '\u{FF5E}'
    )
}

/// libphonenumber's `parseHelper` for plain digit strings. Returns (country code, NSN).
fn parse_plain(
    plus: bool,
    digits: &str,
    region: Option<&'static Metadata>,
) -> Result<(u16, String), PhoneError> {
    // isViablePhoneNumber: two bare digits, or three with a plus, at the least.
    if digits.len() < MIN_NSN + usize::from(plus) {
        return Err(PhoneError::NotANumber);
    }
    let idd_rest = |d| region.and_then(|m| strip_idd(m, d));

    // (country code, national number so far, metadata for national-prefix stripping)
    let (cc, national, meta): (u16, Cow<'_, str>, &'static Metadata) = if plus {
        match split_country_code(digits) {
            Ok((cc, rest)) => {
                (cc, rest.into(), main_metadata(cc).ok_or(PhoneError::InvalidCountryCode)?)
            }
            // "+011 64 ...": libphonenumber retries the digits as if typed without the
            // plus, where only an international-prefix reading can supply the code.
            Err(PhoneError::InvalidCountryCode) => {
                let rest = idd_rest(digits).ok_or(PhoneError::InvalidCountryCode)?;
                let (cc, rest) = split_country_code(rest)?;
                (cc, rest.into(), main_metadata(cc).ok_or(PhoneError::InvalidCountryCode)?)
            }
            Err(e) => return Err(e),
        }
    } else if let Some(rest) = idd_rest(digits) {
        let (cc, rest) = split_country_code(rest)?;
        (cc, rest.into(), main_metadata(cc).ok_or(PhoneError::InvalidCountryCode)?)
    } else {
        let meta = region.ok_or(PhoneError::InvalidCountryCode)?;
        (meta.country_code(), national_without_country_code(meta, digits), meta)
    };

    if national.len() < MIN_NSN {
        return Err(PhoneError::TooShort);
    }
    // Strip a national (trunk) prefix, but only if what remains is a plausible length.
    let nsn = match strip_national_prefix(meta, &national) {
        Some(stripped)
            if !matches!(
                length_class(meta, stripped.len()),
                Length::TooShort | Length::LocalOnly | Length::Invalid
            ) =>
        {
            stripped
        }
        _ => national.into_owned(),
    };
    if nsn.len() < MIN_NSN {
        return Err(PhoneError::TooShort);
    }
    if nsn.len() > MAX_NSN {
        return Err(PhoneError::TooLong);
    }
    Ok((cc, nsn))
}

/// libphonenumber's `extractCountryCode`: the first 1-3 digit prefix that is a known
/// calling code (codes are prefix-free). `digits` follow a `+` or an international prefix.
fn split_country_code(digits: &str) -> Result<(u16, &str), PhoneError> {
    if digits.len() <= MIN_NSN {
        return Err(PhoneError::TooShort); // TOO_SHORT_AFTER_IDD
    }
    if digits.starts_with('0') {
        return Err(PhoneError::InvalidCountryCode);
    }
    (1..=3)
        .filter_map(|len| {
            let code: u16 = digits.get(..len)?.parse().ok()?;
            DATABASE.by_code(&code).map(|_| (code, &digits[len..]))
        })
        .next()
        .ok_or(PhoneError::InvalidCountryCode)
}

/// The digits after the default region's international prefix (`00`, `011`, ...), if
/// the number starts with one and the rest does not start with 0 (no country code does).
fn strip_idd<'d>(meta: &'static Metadata, digits: &'d str) -> Option<&'d str> {
    let end = prefix_match_end(meta.international_prefix()?.as_str(), digits)?;
    let rest = &digits[end..];
    (end > 0 && !rest.starts_with('0')).then_some(rest)
}

/// libphonenumber's `maybeExtractCountryCode` for a national-format number: if it starts
/// with the region's own calling code, treat that as a country code only when the
/// number makes more sense without it (does not match the region's patterns but would
/// without the code, or is too long with it).
fn national_without_country_code<'d>(meta: &'static Metadata, digits: &'d str) -> Cow<'d, str> {
    let code = meta.country_code().to_string();
    if let Some(potential) = digits.strip_prefix(code.as_str()) {
        let potential: Cow<'d, str> = match strip_national_prefix(meta, potential) {
            Some(s) => s.into(),
            None => potential.into(),
        };
        let general = meta.descriptors().general();
        if (!full_match(general, digits) && full_match(general, &potential))
            || length_class(meta, digits.len()) == Length::TooLong
        {
            return potential;
        }
    }
    digits.into()
}

/// libphonenumber's `maybeStripNationalPrefixAndCarrierCode`: the number without its
/// national prefix (applying the region's transform rule, as for Argentine mobiles), or
/// `None` if there is none or stripping would turn a plausible number implausible.
fn strip_national_prefix(meta: &'static Metadata, number: &str) -> Option<String> {
    let general = meta.descriptors().general();
    let viable = || full_match(general, number);
    let Some(pattern) = meta.national_prefix_for_parsing() else {
        // Without a parsing pattern libphonenumber uses the national prefix literally.
        let np = meta.national_prefix().filter(|p| !p.is_empty())?;
        let stripped = number.strip_prefix(np)?;
        return (!viable() || full_match(general, stripped)).then(|| stripped.to_owned());
    };
    // lookingAt: the parsing pattern must match at the start.
    let end = prefix_match_end(pattern.as_str(), number)?;
    let transform = meta.national_prefix_transform_rule().filter(|r| !r.is_empty());
    let result = match transform {
        None => number[end..].to_owned(),
        Some(rule) => {
            // Rare (AR, a few others): needs capture groups, so use the crate's regex.
            let caps = pattern.captures(number)?;
            let whole = caps.get(0).filter(|m| m.start() == 0)?;
            let last = caps.len() - 1;
            if caps.get(last).is_none() {
                number[whole.end()..].to_owned()
            } else {
                let group = |i: usize| caps.get(i).map(|m| m.as_str());
                let mut t = expand_java_replacement(rule, last, group);
                t.push_str(&number[whole.end()..]);
                t
            }
        }
    };
    (!viable() || full_match(general, &result)).then_some(result)
}

/// Expands a Java `Matcher.replaceFirst` template (`$1`, `9$1`): `$n` takes as many
/// digits as still name an existing group.
fn expand_java_replacement<'a>(
    rule: &str,
    groups: usize,
    group: impl Fn(usize) -> Option<&'a str>,
) -> String {
    let mut out = String::with_capacity(rule.len() + 8);
    let mut chars = rule.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => {
                let mut n = 0usize;
                while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                    let next = n * 10 + d as usize;
                    if next > groups && n > 0 {
                        break;
                    }
                    n = next;
                    chars.next();
                }
                out.push_str(group(n).unwrap_or(""));
            }
            '\\' => out.extend(chars.next()),
            _ => out.push(c),
        }
    }
    out
}

/// Inputs with letters, `tel:` URIs, extensions or non-ASCII digits: the crate parses,
/// we validate. `+` numbers are parsed without the default region (bug 3 above), with
/// a retry using it for the "+ then international prefix" form.
fn parse_with_crate(
    input: &str,
    region: Option<&'static Metadata>,
) -> Result<(u16, String), PhoneError> {
    let region_id = region.map(|m| m.id().parse::<phonenumber::country::Id>()).transpose();
    let region_id = region_id.map_err(|_| PhoneError::UnknownRegion)?;
    let plus = input.starts_with(['+', '\u{FF0B}']);
    let attempt = |r| -> Result<(u16, String), PhoneError> {
        let parsed = phonenumber::parse(r, input)?;
        // An SMS cannot dial an extension; dropping it would reach a switchboard.
        if parsed.extension().is_some() {
            return Err(PhoneError::InvalidNumber);
        }
        let cc = parsed.code().value();
        let nsn = national_significant_number(&parsed);
        if accept(cc, &nsn).is_some() { Ok((cc, nsn)) } else { Err(length_error(cc, nsn.len())) }
    };
    match attempt(if plus { None } else { region_id }) {
        Err(e) if plus && region_id.is_some() => attempt(region_id).map_err(|_| e),
        other => other,
    }
}

/// The national significant number as digits, including Italian-style leading zeros.
fn national_significant_number(n: &PhoneNumber) -> String {
    let national = n.national();
    let mut s = String::with_capacity(MAX_NSN);
    s.extend(std::iter::repeat_n('0', usize::from(national.zeros())));
    s.push_str(&national.value().to_string());
    s
}

/// Builds the value, or says why the number is not valid.
fn build(cc: u16, nsn: &str) -> Result<E164, PhoneError> {
    let meta = accept(cc, nsn).ok_or_else(|| length_error(cc, nsn.len()))?;
    let region = match meta.id().as_bytes() {
        &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => Some([a, b]),
        _ => None, // "001": non-geographic entity
    };
    let mut number = String::with_capacity(1 + 3 + nsn.len());
    number.push('+');
    number.push_str(&cc.to_string());
    number.push_str(nsn);
    Ok(E164 { number, country_code: cc, region })
}

// ---------------------------------------------------------------------------------------
// Validity (libphonenumber's isValidNumber / getRegionCodeForNumber)

/// The metadata of the region the number is valid in, or `None` if it is not valid.
fn accept(cc: u16, nsn: &str) -> Option<&'static Metadata> {
    let candidates = DATABASE.by_code(&cc)?;
    if let [only] = candidates[..] {
        return matches_a_number_type(only, nsn).then_some(only);
    }
    // Shared calling code: main country first, then the first region whose leading
    // digits match or (for regions without them) whose patterns match.
    let meta = candidates.into_iter().find(|m| match m.leading_digits() {
        Some(leading) => prefix_match_end(leading.as_str(), nsn).is_some(),
        None => matches_a_number_type(m, nsn),
    })?;
    (meta.leading_digits().is_none() || matches_a_number_type(meta, nsn)).then_some(meta)
}

/// libphonenumber's "valid": the general pattern and some number type match the whole
/// NSN. Mobile and fixed line are tried first because they are what SMS goes to, so a
/// valid destination usually costs two or three matches, not eleven.
fn matches_a_number_type(meta: &'static Metadata, nsn: &str) -> bool {
    let d = meta.descriptors();
    [
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
    .any(|desc| full_match(desc, nsn))
        && full_match(d.general(), nsn)
}

/// libphonenumber's `isNumberMatchingDesc`: possible length, then a whole-string match.
fn full_match(desc: &'static Descriptor, nsn: &str) -> bool {
    let lengths = desc.possible_length();
    if !lengths.is_empty() && !u16::try_from(nsn.len()).is_ok_and(|l| lengths.contains(&l)) {
        return false;
    }
    let pattern = desc.national_number();
    match compiled(pattern.as_str(), Anchor::Whole) {
        Some(m) => m(nsn).is_some(),
        None => pattern.find(nsn).is_some_and(|f| f.start() == 0 && f.end() == nsn.len()),
    }
}

/// End of a match of `pattern` (metadata regex source) anchored at the start of `s`,
/// as Java's `lookingAt`. Takes the source because the crate's regex type is not
/// nameable from here.
fn prefix_match_end(pattern: &'static str, s: &str) -> Option<usize> {
    // `compiled` only fails if the regex engine rejects a pattern the crate already
    // compiled unanchored; treating that as "no match" fails closed.
    compiled(pattern, Anchor::Start)?(s)
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Anchor {
    Start,
    Whole,
}

/// A compiled anchored pattern: returns the end of the match at position 0.
type Matcher = Arc<dyn Fn(&str) -> Option<usize> + Send + Sync>;

/// Anchored versions of metadata patterns, compiled once each. Keyed by the address of
/// the pattern text, which lives in the never-dropped metadata static.
static MATCHERS: OnceLock<RwLock<HashMap<(usize, Anchor), Matcher>>> = OnceLock::new();

/// Bound on cached patterns. A service sending to a few dozen countries uses a few
/// hundred; if traffic ever spans everything, start over rather than grow without limit.
const MAX_MATCHERS: usize = 2048;

fn compiled(source: &'static str, anchor: Anchor) -> Option<Matcher> {
    let key = (source.as_ptr() as usize, anchor);
    let map = MATCHERS.get_or_init(Default::default);
    if let Some(m) = map.read().unwrap_or_else(PoisonError::into_inner).get(&key) {
        return Some(Arc::clone(m));
    }
    // Metadata patterns are written with insignificant whitespace (the crate compiles
    // them with `ignore_whitespace`); the newline keeps a trailing comment, if any,
    // from swallowing the closing group.
    let anchored = match anchor {
        Anchor::Start => format!("^(?:{source}\n)"),
        Anchor::Whole => format!("^(?:{source}\n)$"),
    };
    // The `regex` crate is only reachable through the crate's regex cache: compile
    // there, take a clone (cheap, shared internals) and drop the entry again so we do
    // not evict the crate's own patterns.
    let regex = {
        let cache = DATABASE.cache();
        let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
        let regex = cache.configure(&anchored, |b| b.ignore_whitespace(true)).ok()?.clone();
        cache.remove(&anchored);
        regex
    };
    let matcher: Matcher = Arc::new(move |s: &str| regex.find(s).map(|m| m.end()));
    let mut map = map.write().unwrap_or_else(PoisonError::into_inner);
    if map.len() >= MAX_MATCHERS {
        map.clear();
    }
    Some(Arc::clone(map.entry(key).or_insert(matcher)))
}

// ---------------------------------------------------------------------------------------
// Lengths (libphonenumber's testNumberLength)

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Possible,
    LocalOnly,
    TooShort,
    TooLong,
    /// Between the shortest and longest, but not a length any number type uses.
    Invalid,
}

/// libphonenumber's `testNumberLength` for an unknown number type. The crate leaves the
/// general descriptor's possible lengths empty (libphonenumber's metadata build derives
/// them), so they are derived the same way: the union over the number types.
fn length_class(meta: &Metadata, len: usize) -> Length {
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
    let len = u16::try_from(len).unwrap_or(u16::MAX);
    let (mut min, mut max, mut possible, mut local) = (u16::MAX, 0u16, false, false);
    for desc in types.into_iter().flatten() {
        for &l in desc.possible_length() {
            min = min.min(l);
            max = max.max(l);
            possible |= l == len;
        }
        local |= desc.possible_local_length().contains(&len);
    }
    if min > max {
        Length::Invalid // no length data at all
    } else if local && !possible {
        Length::LocalOnly
    } else if len < min {
        Length::TooShort
    } else if len > max {
        Length::TooLong
    } else if possible {
        Length::Possible
    } else {
        Length::Invalid
    }
}

/// For a number that is not valid, tell "wrong length" apart from "right length, but no
/// such number", as libphonenumber's `isPossibleNumberWithReason` does: lengths of the
/// main region for the calling code (GB for +44, US for +1).
fn length_error(cc: u16, nsn_len: usize) -> PhoneError {
    match main_metadata(cc).map(|m| length_class(m, nsn_len)) {
        None => PhoneError::InvalidCountryCode,
        Some(Length::TooShort) => PhoneError::TooShort,
        Some(Length::TooLong) => PhoneError::TooLong,
        // Possible (but not valid), local-only (US 7 digits: the area code is missing)
        // or a length in the gaps: none is too short or too long as such.
        Some(Length::Possible | Length::LocalOnly | Length::Invalid) => PhoneError::InvalidNumber,
    }
}

fn main_metadata(cc: u16) -> Option<&'static Metadata> {
    let candidates = DATABASE.by_code(&cc)?;
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
        assert_eq!(format!("{n:?}"), "E164(\"+44*******456\")", "Debug is masked so logs never hold a full number");

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

    /// Every example number in the metadata must be accepted in international form and
    /// as its bare NSN with its region.
    #[test]
    fn metadata_example_numbers_are_valid() {
        let mut checked = 0;
        let mut failures = Vec::new();
        for meta in DATABASE.iter() {
            let d = meta.descriptors();
            let examples = [d.mobile(), d.fixed_line(), d.toll_free(), d.voip(), d.premium_rate()]
                .into_iter()
                .flatten()
                .filter_map(|desc| desc.example());
            for ex in examples {
                let e164 = format!("+{}{}", meta.country_code(), ex);
                let mut forms = vec![(e164.clone(), None)];
                if meta.id().len() == 2 {
                    forms.push((ex.to_owned(), Some(meta.id())));
                }
                for (input, region) in forms {
                    match E164::parse(&input, region) {
                        Ok(n) if n.as_str() == e164 => {}
                        other => failures.push(format!("{} {input:?}: {other:?}", meta.id())),
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 1000, "only {checked} examples");
        assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    }

    /// Cases where `phonenumber::parse` + `is_valid` get it wrong (module docs, bugs 1-4).
    #[test]
    fn crate_divergences_are_corrected() {
        let ok =
            |input: &str, region: Option<&str>| E164::parse(input, region).map(|n| n.to_string());
        // 1. Prefix matching accepted over-long numbers (rust-phonenumber#31).
        assert!(phonenumber::parse(None, "+97233142764978").unwrap().is_valid());
        assert_eq!(ok("+97233142764978", None), Err(PhoneError::InvalidNumber));
        // 2. National prefix stripped from international numbers / country code taken
        //    from national numbers that merely start with its digits.
        assert_eq!(ok("+7 800 123 4567", None).as_deref(), Ok("+78001234567"));
        assert_eq!(ok("8 800 123 45 67", Some("RU")).as_deref(), Ok("+78001234567"));
        assert_eq!(ok("393 123 4567", Some("IT")).as_deref(), Ok("+393931234567"));
        assert_eq!(ok("47 12 34 56", Some("NO")).as_deref(), Ok("+4747123456"));
        assert_eq!(ok("771 000 9998", Some("KZ")).as_deref(), Ok("+77710009998"));
        // ... while a national number with its country code typed in front still works.
        assert_eq!(ok("44 7400 123456", Some("GB")).as_deref(), Ok("+447400123456"));
        assert_eq!(ok("1 201 555 0123", Some("US")).as_deref(), Ok("+12015550123"));
        // 3. The default region's national prefix applied to other countries' numbers.
        assert_eq!(ok("+86 138 0013 8000", Some("US")).as_deref(), Ok("+8613800138000"));
        assert_eq!(ok("+44 1534 456789", Some("US")).as_deref(), Ok("+441534456789"));
        assert_eq!(ok("+36 1 234 5678", Some("US")).as_deref(), Ok("+3612345678"));
        // 4. Italian leading zero kept and matched.
        assert_eq!(ok("06 4567 8901", Some("IT")).as_deref(), Ok("+390645678901"));
    }

    #[test]
    fn international_prefixes_and_national_prefix_forms() {
        let ok =
            |input: &str, region: Option<&str>| E164::parse(input, region).map(|n| n.to_string());
        assert_eq!(ok("011 44 7400 123456", Some("US")).as_deref(), Ok("+447400123456"));
        assert_eq!(ok("0044 7400 123456", Some("DE")).as_deref(), Ok("+447400123456"));
        assert_eq!(ok("+44 (0) 7400 123456", None).as_deref(), Ok("+447400123456"));
        assert_eq!(ok("+44 (0)7400 123456", Some("US")).as_deref(), Ok("+447400123456"));
        // Argentina: national mobile form 0 11 15 xxxx-xxxx is +54 9 11 xxxx-xxxx.
        assert_eq!(ok("011 15 2345-6789", Some("AR")).as_deref(), Ok("+5491123456789"));
        // Non-plain inputs go through the crate's parser and are validated here.
        assert_eq!(ok("tel:+1-201-555-0123", None).as_deref(), Ok("+12015550123"));
        assert_eq!(ok("1-800-FLOWERS", Some("US")).as_deref(), Ok("+18003569377"));
        // Typographic dashes and fullwidth digits (CJK input methods) are plain digits too.
        assert_eq!(ok("+44\u{2010}7400\u{2010}123456", Some("US")).as_deref(), Ok("+447400123456"));
        assert_eq!(ok("\u{FF0B}\u{FF14}\u{FF14}7400123456", None).as_deref(), Ok("+447400123456"));
        assert_eq!(
            ok("\u{0660}\u{0667}\u{0664}\u{0660}\u{0660}123456", Some("GB")).as_deref(),
            Ok("+447400123456")
        );
        // Viability: two digits after a plus are not a number at all.
        assert_eq!(ok("+12", None), Err(PhoneError::NotANumber));
    }

    #[test]
    fn error_kinds() {
        let code =
            |input: &str, region: Option<&str>| E164::parse(input, region).unwrap_err().code();
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
        // Ofcom's drama range (07700 900xxx) is deliberately invalid in libphonenumber.
        assert_eq!(code("+447700900123", None), "invalid_number");
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

#[cfg(test)]
mod number_type_tests {
    use super::{NumberType, E164};

    #[test]
    fn fixed_lines_are_told_from_mobiles() {
        let t = |n: &str| E164::parse(n, None).unwrap().number_type();
        assert_eq!(t("+447400123456"), NumberType::Mobile);
        assert_eq!(t("+442079460000"), NumberType::FixedLine, "a London landline");
        assert_eq!(t("+12015550123"), NumberType::FixedLineOrMobile, "NANP cannot tell");
        assert_eq!(t("+448001111111"), NumberType::TollFree);
        assert_eq!(t("+61412345678"), NumberType::Mobile);
        assert_eq!(t("+61290000000"), NumberType::FixedLine);
        assert!(NumberType::FixedLine.cannot_receive_sms());
        assert!(!NumberType::FixedLineOrMobile.cannot_receive_sms());
    }
}

//! Masks phone numbers inside free text before it is stored as a message's reason, a
//! history note or an audit detail. Provider error texts quote the number they
//! refused (Twilio: "The 'To' number +15005550001 is not a valid phone number."), and
//! the audit chain is permanent: a full number must never enter it.
//!
//! What counts as a number: a `+` followed by at least 7 digits (spaces, `-`, `.`,
//! `(`, `)` may separate them), or a run of at least 8 digits with nothing
//! alphanumeric on either side (a national number such as 07400123456). Each keeps
//! its `+`, the first two digits after a `+`, and its last three digits, like the
//! logs' masking. Shorter runs (attempt counts, HTTP statuses, delays) stay readable;
//! digits inside ids (ULIDs, provider ids) are left alone.

use std::borrow::Cow;

const MIN_INTERNATIONAL_DIGITS: usize = 7;
const MIN_NATIONAL_DIGITS: usize = 8;

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '.' | '(' | ')')
}

/// `text` with every phone-number-like run masked (unchanged, and not copied, when
/// there is none).
pub fn mask_numbers(text: &str) -> Cow<'_, str> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut i = 0;
    while i < chars.len() {
        if let Some(end) = number_at(&chars, i) {
            out.extend(mask_run(&chars[i..end]));
            changed = true;
            i = end;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    if changed { Cow::Owned(out) } else { Cow::Borrowed(text) }
}

/// The end of a number starting at `i`, if one starts there.
fn number_at(chars: &[char], i: usize) -> Option<usize> {
    let prev_alnum = i > 0 && chars[i - 1].is_alphanumeric();
    if prev_alnum {
        return None;
    }
    let plus = chars[i] == '+';
    let start = if plus { i + 1 } else { i };
    if !chars.get(start).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    // Digits, and separators only between digits.
    let (mut j, mut digits, mut last_digit_end) = (start, 0, start);
    while j < chars.len() {
        let c = chars[j];
        if c.is_ascii_digit() {
            digits += 1;
            last_digit_end = j + 1;
        } else if !(plus && is_separator(c) && chars.get(j + 1).is_some_and(|n| n.is_ascii_digit() || is_separator(*n))) {
            break;
        }
        j += 1;
    }
    let next_alnum = chars.get(last_digit_end).is_some_and(|c| c.is_alphanumeric());
    let enough = if plus { digits >= MIN_INTERNATIONAL_DIGITS } else { digits >= MIN_NATIONAL_DIGITS };
    (enough && !next_alnum).then_some(last_digit_end)
}

fn mask_run(run: &[char]) -> impl Iterator<Item = char> + '_ {
    let total = run.iter().filter(|c| c.is_ascii_digit()).count();
    let keep_head = if run.first() == Some(&'+') { 2 } else { 0 };
    let mut seen = 0;
    run.iter().map(move |c| {
        if !c.is_ascii_digit() {
            return *c;
        }
        seen += 1;
        if seen <= keep_head || seen > total - 3 { *c } else { '*' }
    })
}

#[cfg(test)]
mod tests {
    use super::mask_numbers;

    #[test]
    fn provider_error_texts_lose_their_numbers() {
        assert_eq!(
            mask_numbers("The 'To' number +15005550001 is not a valid phone number."),
            "The 'To' number +15******001 is not a valid phone number."
        );
        assert_eq!(mask_numbers("invalid destination 07400123456"), "invalid destination ********456");
        assert_eq!(mask_numbers("to=+44 7400 123456 refused"), "to=+44 **** ***456 refused");
        assert_eq!(mask_numbers("(+1 (201) 555-0123)"), "(+1 (2**) ***-*123)");
        assert_eq!(mask_numbers("+447400123456,+447400654321"), "+44*******456,+44*******321");
    }

    #[test]
    fn ordinary_reasons_stay_as_they_are() {
        for text in [
            "attempt 3 on sandbox-main failed (HTTP 503); retrying in 120s",
            "gave up after 6 attempts",
            "message 01HZX3Q9W8V7T6S5R4P3N2M1K0 linked",
            "provider id SM1234567890abcdef1234567890abcdef",
            "error 21211",
            "+12345",
            "",
        ] {
            assert!(matches!(mask_numbers(text), std::borrow::Cow::Borrowed(_)), "{text}");
        }
    }
}

//! Logging setup and helpers that keep personal data out of logs.

/// JSON-free, compact logs suitable for CloudWatch; level from `RUST_LOG` (default info).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time() // CloudWatch adds its own timestamp
        .with_ansi(false)
        .try_init();
}

/// Masks a phone number for logs: keeps the leading `+` and country code digits
/// (up to 3) and the last 3 digits. Works on any string, even unparsed input.
pub fn mask_number(n: &str) -> String {
    let chars: Vec<char> = n.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let keep_head = if chars[0] == '+' { 3 } else { 2 };
    let keep_tail = 3;
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < keep_head || i >= chars.len() - keep_tail { *c } else { '*' })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn masks_keep_only_head_and_tail() {
        assert_eq!(super::mask_number("+447400123456"), "+44*******456");
        assert_eq!(super::mask_number("12345"), "*****");
    }
}

//! `dispatchctl preview`: what the API would make of a recipient and a body.

use crate::PreviewArgs;
use dispatch_common::domain::{NumberType, E164};
use dispatch_common::domain::encoding::{self, Encoding};
use serde::Serialize;
use std::process::ExitCode;

/// The one JSON object `preview` prints (field order is the output order).
#[derive(Debug, Serialize)]
struct Preview {
    to: Option<String>,
    valid: bool,
    error: Option<&'static str>,
    /// What kind of line it is (`fixed_line` cannot receive SMS: submit refuses it).
    number_type: Option<NumberType>,
    encoding: Encoding,
    segments: u32,
    /// The characters that force UCS-2, if any.
    ucs2_chars: Vec<String>,
    /// Encoding and segments with smart encoding (look-alikes replaced), and how many
    /// characters it would replace.
    smart_encoding: SmartPreview,
}

#[derive(Debug, Serialize)]
struct SmartPreview {
    replaced: usize,
    encoding: Encoding,
    segments: u32,
}

pub fn run(a: &PreviewArgs) -> anyhow::Result<ExitCode> {
    let parsed = E164::parse(&a.to, a.region.as_deref());
    let seg = encoding::analyse(&a.body);
    let (smart, replaced) = encoding::smart_encode(&a.body);
    let smart_seg = encoding::analyse(&smart);
    let out = Preview {
        valid: parsed.is_ok(),
        error: parsed.as_ref().err().map(|e| e.code()),
        number_type: parsed.as_ref().ok().map(E164::number_type),
        to: parsed.ok().map(|n| n.as_str().to_string()),
        encoding: seg.encoding,
        segments: seg.segments,
        ucs2_chars: encoding::ucs2_forcing_chars(&a.body).into_iter().map(|c| format!("U+{:04X} {c}", u32::from(c))).collect(),
        smart_encoding: SmartPreview { replaced, encoding: smart_seg.encoding, segments: smart_seg.segments },
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(ExitCode::SUCCESS)
}

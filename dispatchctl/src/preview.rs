//! `dispatchctl preview`: what the API would make of a recipient and a body.

use crate::PreviewArgs;
use dispatch_common::domain::E164;
use dispatch_common::domain::encoding::{self, Encoding};
use serde::Serialize;
use std::process::ExitCode;

/// The one JSON object `preview` prints (field order is the output order).
#[derive(Debug, Serialize)]
struct Preview {
    to: Option<String>,
    valid: bool,
    error: Option<&'static str>,
    encoding: Encoding,
    segments: u32,
}

pub fn run(a: &PreviewArgs) -> anyhow::Result<ExitCode> {
    let parsed = E164::parse(&a.to, a.region.as_deref());
    let seg = encoding::analyse(&a.body);
    let out = Preview {
        valid: parsed.is_ok(),
        error: parsed.as_ref().err().map(|e| e.code()),
        to: parsed.ok().map(|n| n.as_str().to_string()),
        encoding: seg.encoding,
        segments: seg.segments,
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(ExitCode::SUCCESS)
}

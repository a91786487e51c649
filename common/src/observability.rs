//! Logging setup and helpers that keep personal data out of logs.
//!
//! Lambda's advanced logging controls decide the format and level: with
//! `AWS_LAMBDA_LOG_FORMAT=JSON` (the template's `LoggingConfig`) every line is one JSON
//! object that CloudWatch Logs Insights can query — the event's fields flattened
//! (`message_id`, `tenant`, `to` masked...), `level`, `function`
//! (`AWS_LAMBDA_FUNCTION_NAME`) and the runtime's invocation span with `requestId` and
//! `xrayTraceId`. Otherwise plain text (the local default). The level comes from
//! `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else info.

use std::io::Write;
use tracing_subscriber::fmt::MakeWriter;

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// `AWS_LAMBDA_LOG_FORMAT` (`JSON` or `Text`, case-insensitive); text when unset.
    pub fn from_env() -> Self {
        match std::env::var("AWS_LAMBDA_LOG_FORMAT") {
            Ok(v) if v.eq_ignore_ascii_case("json") => Self::Json,
            _ => Self::Text,
        }
    }
}

/// The filter directive: `AWS_LAMBDA_LOG_LEVEL` (TRACE..FATAL) wins over `RUST_LOG`.
pub fn level_from_env() -> String {
    match std::env::var("AWS_LAMBDA_LOG_LEVEL") {
        Ok(l) if l.eq_ignore_ascii_case("fatal") => "error".into(),
        Ok(l) if !l.trim().is_empty() => l.to_ascii_lowercase(),
        _ => std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| "info".into()),
    }
}

/// The SDK opens a debug-level span around every AWS call (`DynamoDB.GetItem`,
/// `SQS.SendMessage`...). These directives turn on those spans only, not the SDK's
/// own debug events, so each call's time shows in the logs as a span-close line.
pub const AWS_CALL_SPANS: &str =
    "aws_sdk_dynamodb::operation=debug,aws_sdk_sqs::operation=debug,aws_sdk_s3::operation=debug,aws_sdk_secretsmanager::operation=debug";

/// The filter directives for a level, with the AWS call spans when
/// `DISPATCH_TRACE_AWS_CALLS` is `true`, or when it is unset in Lambda (one short line
/// per AWS call; `false` turns them off). Local runs stay quiet by default.
pub fn directives_from_env() -> String {
    let level = level_from_env();
    let on = match std::env::var("DISPATCH_TRACE_AWS_CALLS") {
        Ok(v) => v.eq_ignore_ascii_case("true") || v == "1",
        Err(_) => std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some(),
    };
    if on { format!("{level},{AWS_CALL_SPANS}") } else { level }
}

/// Installs the process-wide subscriber from the environment, writing to stdout.
pub fn init() {
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into());
    let _ = tracing::subscriber::set_global_default(subscriber(LogFormat::from_env(), &directives_from_env(), &function, std::io::stdout));
}

/// The subscriber for a format, level and function name, writing to `writer`.
pub fn subscriber<W>(format: LogFormat, level: &str, function: &str, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(false);
    match format {
        // CloudWatch adds its own timestamp to text lines.
        LogFormat::Text => Box::new(fmt.without_time().with_writer(writer).finish()),
        LogFormat::Json => Box::new(
            fmt.json()
                // A line when a span closes, with `time.busy`/`time.idle`: the
                // invocation, each provider call and (when enabled) each AWS call, so a
                // slow send can be explained from its request id's lines.
                .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(WithFunction { inner: writer, prefix: format!("{{\"function\":{},", serde_json::json!(function)) })
                .finish(),
        ),
    }
}

/// Adds `"function": <name>` to each JSON line. The formatter hands each event to one
/// `write` call, so the line's opening brace is where the buffer starts.
struct WithFunction<W> {
    inner: W,
    prefix: String,
}

struct FunctionLine<'p, W: Write> {
    inner: W,
    prefix: &'p str,
}

impl<W: Write> Write for FunctionLine<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match buf.strip_prefix(b"{") {
            Some(rest) => {
                let mut line = Vec::with_capacity(self.prefix.len() + rest.len());
                line.extend_from_slice(self.prefix.as_bytes());
                line.extend_from_slice(rest);
                self.inner.write_all(&line)?;
                Ok(buf.len())
            }
            None => self.inner.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<'a, W: MakeWriter<'a>> MakeWriter<'a> for WithFunction<W> {
    type Writer = FunctionLine<'a, W::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        FunctionLine { inner: self.inner.make_writer(), prefix: &self.prefix }
    }
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
    use super::{subscriber, LogFormat};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_fields_function_request_and_trace_ids() {
        let cap = Capture::default();
        let w = cap.clone();
        let sub = subscriber(LogFormat::Json, "info", "dispatch-submit", move || w.clone());
        tracing::subscriber::with_default(sub, || {
            // The span lambda_runtime opens around each invocation.
            let span = tracing::info_span!("Lambda runtime invoke", requestId = "req-1", xrayTraceId = "Root=1-abc");
            let _g = span.enter();
            tracing::info!(message_id = "01ABC", tenant = "acme", to = %super::mask_number("+447400123456"), "accepted");
            tracing::debug!("filtered out at info");
        });
        let text = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "the event and the invocation span's close: {text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON line");
        let close: serde_json::Value = serde_json::from_str(lines[1]).expect("a JSON line");
        assert_eq!(close["message"], "close");
        assert_eq!(close["span"]["requestId"], "req-1");
        assert!(close["time.busy"].is_string(), "{text}");
        assert_eq!(v["function"], "dispatch-submit");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "accepted");
        assert_eq!(v["message_id"], "01ABC");
        assert_eq!(v["tenant"], "acme");
        assert_eq!(v["to"], "+44*******456");
        assert_eq!(v["span"]["requestId"], "req-1");
        assert_eq!(v["span"]["xrayTraceId"], "Root=1-abc");
    }

    #[test]
    fn aws_call_spans_close_with_their_time_and_sdk_debug_events_stay_out() {
        let cap = Capture::default();
        let w = cap.clone();
        let directives = format!("info,{}", super::AWS_CALL_SPANS);
        tracing::subscriber::with_default(subscriber(LogFormat::Json, &directives, "dispatch-send", move || w.clone()), || {
            // What the SDK's generated operation code opens around a call.
            let span = tracing::debug_span!(target: "aws_sdk_dynamodb::operation::get_item", "DynamoDB.GetItem", "rpc.service" = "DynamoDB", "rpc.method" = "GetItem");
            let _g = span.enter();
            tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", "a chatty SDK event");
        });
        let text = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert_eq!(lines[0]["message"], "close");
        assert_eq!(lines[0]["span"]["rpc.method"], "GetItem");
        assert!(lines[0]["time.busy"].is_string(), "{text}");
    }

    #[test]
    fn text_stays_plain() {
        let cap = Capture::default();
        let w = cap.clone();
        tracing::subscriber::with_default(subscriber(LogFormat::Text, "info", "f", move || w.clone()), || tracing::info!(tenant = "acme", "hello"));
        let text = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("hello") && text.contains("tenant=\"acme\"") && !text.starts_with('{'), "{text}");
    }

    #[test]
    fn masks_keep_only_head_and_tail() {
        assert_eq!(super::mask_number("+447400123456"), "+44*******456");
        assert_eq!(super::mask_number("12345"), "*****");
    }
}

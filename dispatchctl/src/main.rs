//! `dispatchctl`: the operator CLI.
//!
//! Offline commands (`preview`, `webhook verify`, `tenant validate`) need nothing but
//! their arguments and run the same code the functions run. The others read or write
//! the deployment's DynamoDB table and Secrets Manager, configured from the
//! environment exactly like the functions (`TABLE_NAME`, `ENABLED_PROVIDERS`, and the
//! AWS SDK's own variables; `AWS_ENDPOINT_URL` points them at the local emulator).
//!
//! Exit codes: 0 success, 1 a negative verdict (invalid signature, invalid tenant
//! configuration) or an error, 2 bad usage.

mod keys;
mod ops;
mod preview;
mod remote;
mod route;
mod tenant;
mod webhook;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use dispatch_common::auth::Role;
use dispatch_common::domain::{MessageId, MessageKind, TenantId};
use dispatch_common::providers::ProviderKind;
use std::path::PathBuf;
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Exit codes: 0 success, 1 negative verdict or error, 2 bad usage.

Commands that read the deployment (route explain, tenant apply/show, keys create) are
configured like the functions: TABLE_NAME (and ENABLED_PROVIDERS for routing) plus the
AWS SDK variables. For the local emulator: eval \"$(scripts/emulator.sh env)\" and
TABLE_NAME=local-MessagesTable.";

/// Operator CLI for the SMS/MMS dispatch service.
#[derive(Debug, Parser)]
#[command(name = "dispatchctl", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Normalise a recipient to E.164 and show how a body would be encoded and billed
    /// (offline).
    #[command(long_about = "\
Normalise a recipient to E.164 and show how a body would be encoded and billed (offline).

Prints one JSON object: {\"to\": E.164 or null, \"valid\": bool, \"error\": code or null,
\"number_type\": \"mobile\"|\"fixed_line\"|... or null, \"encoding\": \"GSM-7\"|\"UCS-2\",
\"segments\": N, \"ucs2_chars\": [what forces UCS-2], \"smart_encoding\": {\"replaced\": N,
\"encoding\", \"segments\"}}. Exits 0 even when the number is invalid;
the error code is the one the API answers with (e.g. invalid_number, too_short).")]
    Preview(PreviewArgs),

    /// Provider webhook tools.
    #[command(subcommand)]
    Webhook(WebhookCommand),

    /// Routing tools.
    #[command(subcommand)]
    Route(RouteCommand),

    /// Tenant configuration: validate offline, apply, show.
    #[command(subcommand)]
    Tenant(TenantCommand),

    /// API keys.
    #[command(subcommand)]
    Keys(KeysCommand),

    /// List the provider adapters with what each supports (SMS, MMS, limits,
    /// callbacks, inbound, signature scheme) as JSON lines (offline).
    Providers,

    /// Missed delivery deadlines: list open escalations, acknowledge one.
    #[command(subcommand)]
    Escalations(EscalationsCommand),

    /// The tamper-evident audit trail: verify a tenant's hash chain, export it.
    #[command(subcommand)]
    Audit(AuditCommand),

    /// Evidence bundles: export an inbound or outbound message with its media, hashes,
    /// provider metadata and history; verify a bundle by re-hashing it.
    #[command(subcommand)]
    Evidence(EvidenceCommand),

    /// Dead-letter queues: list what is there, or move it back to the source queues.
    #[command(subcommand)]
    Dlq(DlqCommand),
}

#[derive(Debug, Subcommand)]
enum EscalationsCommand {
    /// Print the tenant's open escalations as JSON lines (--all includes acknowledged).
    List {
        #[arg(long, value_parser = parse_tenant)]
        tenant: TenantId,
        #[arg(long)]
        all: bool,
    },
    /// Acknowledge the escalation for a message (an operator is phoning the recipient).
    Ack {
        #[arg(long, value_parser = parse_tenant)]
        tenant: TenantId,
        #[arg(long, value_parser = parse_message_id)]
        message: MessageId,
        /// Who acknowledges (recorded).
        #[arg(long)]
        by: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the whole chain; exit 1 naming the first broken link.
    Verify {
        #[arg(long, value_parser = parse_tenant)]
        tenant: TenantId,
    },
    /// Write the trail (optionally one message's) as JSON lines; the export is audited.
    Export {
        #[arg(long, value_parser = parse_tenant)]
        tenant: TenantId,
        #[arg(long, value_parser = parse_message_id)]
        message: Option<MessageId>,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum EvidenceCommand {
    /// Write a bundle with a manifest of SHA-256 hashes to an empty directory.
    Export {
        /// A message id, or an inbound id (inb_...).
        #[arg(long)]
        message: String,
        /// The tenant (needed for inbound ids; taken from the message otherwise).
        #[arg(long, value_parser = parse_tenant)]
        tenant: Option<TenantId>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-hash every file against the manifest; exit 1 on any mismatch, missing or extra file.
    Verify {
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Print dead-lettered records with the state of the message each names.
    List,
    /// Move every dead-lettered record back to the queue it came from.
    Redrive,
}

#[derive(Debug, Args)]
struct PreviewArgs {
    /// The recipient, international (+44 7400 123456) or national with --region.
    #[arg(long, value_name = "NUMBER", allow_hyphen_values = true)]
    to: String,
    /// ISO 3166 alpha-2 region for numbers in national format (e.g. GB, US).
    #[arg(long, value_name = "ISO")]
    region: Option<String>,
    /// The message text.
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    body: String,
}

#[derive(Debug, Subcommand)]
enum WebhookCommand {
    /// Check a captured provider callback's signature with the same verifier the
    /// webhook function uses (offline).
    #[command(long_about = "\
Check a captured provider callback's signature with the same verifier the webhook
function uses (offline).

The request file is JSON:
  {\"method\": \"POST\", \"url\": \"<full URL the provider called>\",
   \"headers\": {\"Name\": \"value\", \"Repeated\": [\"a\", \"b\"]}, \"body\": \"<raw body>\"}
Use - to read it from standard input.

The secret is what the provider signs with: Twilio and Plivo the auth token, Vonage the
signature secret, Telnyx the base64 Ed25519 public key, Bandwidth the callback
`user:password`, Sinch and the sandbox the webhook secret.

Prints `valid` (exit 0) or `invalid: <reason>` (exit 1). The secret is never printed.")]
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The provider whose scheme signed the request.
    #[arg(long, value_parser = provider_parser())]
    provider: ProviderKind,
    /// The verification secret (see above). Visible to other local users in the process
    /// list; prefer --secret-file on shared machines.
    #[arg(
        long,
        value_name = "SECRET",
        required_unless_present = "secret_file",
        conflicts_with = "secret_file"
    )]
    secret: Option<String>,
    /// Read the secret from this file (a trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// Vonage SMS only: the account's signature method (default md5hash).
    #[arg(long, value_name = "METHOD", value_parser = PossibleValuesParser::new(["md5hash", "md5", "sha1", "sha256", "sha512"]))]
    signature_method: Option<String>,
    /// Vonage only: the account's API key, checked against the one the callback names.
    /// Without it that account check is skipped (the signature is still checked).
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Verify as if it were this time: unix seconds or RFC 3339 (default: now).
    #[arg(long, value_name = "TIME", value_parser = webhook::parse_at, allow_hyphen_values = true)]
    at: Option<i64>,
    /// The captured request as JSON (see above), or - for standard input.
    #[arg(long, value_name = "FILE")]
    request: PathBuf,
}

#[derive(Debug, Subcommand)]
enum RouteCommand {
    /// Show which provider and sender a message would get, and why, gate by gate
    /// (reads the tenant's configuration and credentials; sends nothing).
    #[command(long_about = "\
Show which provider and sender a message would get, and why, gate by gate. Reads the
tenant's configuration from DynamoDB and checks its provider credentials in Secrets
Manager, exactly as the route function does; nothing is queued or sent.

Prints the decision as JSON on standard output and a readable summary on standard
error. Exits 0 whenever a decision was made, even when no provider is eligible.

The platform opt-in gate uses ENABLED_PROVIDERS: set it to the deployment's value.")]
    Explain(ExplainArgs),
}

#[derive(Debug, Args)]
struct ExplainArgs {
    /// The tenant id.
    #[arg(long, value_parser = parse_tenant)]
    tenant: TenantId,
    /// The recipient (national format uses the tenant's default region).
    #[arg(long, value_name = "NUMBER", allow_hyphen_values = true)]
    to: String,
    /// Content category: emergency_callback, resident_update, evidence_notification,
    /// general, or one of the tenant's own.
    #[arg(long)]
    category: String,
    /// Message kind.
    #[arg(long, default_value = "sms", value_parser = PossibleValuesParser::new(["sms", "mms"]).map(|s| if s == "mms" { MessageKind::Mms } else { MessageKind::Sms }))]
    kind: MessageKind,
    /// A sender the workflow asks for (E.164 long code, short code or alphanumeric id).
    #[arg(long, value_name = "SENDER")]
    from: Option<String>,
    /// Explain for this message id (weighted rules choose per id; default: a new id).
    #[arg(long, value_name = "ULID", value_parser = parse_message_id)]
    message_id: Option<MessageId>,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Check a tenant configuration file and list every problem (offline).
    Validate(FileArgs),
    /// Validate a tenant configuration file, then store it (replaces the current one).
    Apply(FileArgs),
    /// Print a tenant's stored configuration as JSON.
    Show(TenantArgs),
}

#[derive(Debug, Args)]
struct FileArgs {
    /// The tenant configuration (JSON, as in examples/tenants/), or - for standard input.
    #[arg(long, value_name = "FILE")]
    file: PathBuf,
}

#[derive(Debug, Args)]
struct TenantArgs {
    /// The tenant id.
    #[arg(long, value_parser = parse_tenant)]
    tenant: TenantId,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create an API key for a tenant and print it once, as JSON
    /// {key, key_id, prefix, role}. Only its hash is stored.
    Create(CreateKeyArgs),
}

#[derive(Debug, Args)]
struct CreateKeyArgs {
    /// The tenant id (it must have a configuration).
    #[arg(long, value_parser = parse_tenant)]
    tenant: TenantId,
    /// What the key may do: sender (submit, read), operator (plus retry/cancel),
    /// auditor (read and audit), admin (configuration and keys).
    #[arg(long, value_parser = PossibleValuesParser::new(["sender", "operator", "auditor", "admin"]).map(|s| Role::parse(&s).expect("listed role")))]
    role: Role,
}

fn provider_parser() -> impl clap::builder::TypedValueParser<Value = ProviderKind> {
    PossibleValuesParser::new(ProviderKind::ALL.map(ProviderKind::as_str))
        .map(|s| ProviderKind::parse(&s).expect("listed provider"))
}

fn parse_tenant(s: &str) -> Result<TenantId, String> {
    TenantId::parse(s).map_err(|e| e.to_string())
}

fn parse_message_id(s: &str) -> Result<MessageId, String> {
    s.parse::<MessageId>().map_err(|e| e.to_string())
}

/// Exits 2 with clap's usage formatting, for argument combinations clap cannot express.
pub(crate) fn usage_error(message: impl std::fmt::Display) -> ! {
    use clap::CommandFactory;
    Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, message)
        .exit()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Preview(a) => preview::run(&a),
        Command::Webhook(WebhookCommand::Verify(a)) => webhook::run(&a),
        Command::Route(RouteCommand::Explain(a)) => remote::block_on(route::explain(&a)),
        Command::Tenant(TenantCommand::Validate(a)) => tenant::validate(&a),
        Command::Tenant(TenantCommand::Apply(a)) => tenant::apply(&a),
        Command::Tenant(TenantCommand::Show(a)) => remote::block_on(tenant::show(&a)),
        Command::Keys(KeysCommand::Create(a)) => remote::block_on(keys::create(&a)),
        Command::Escalations(EscalationsCommand::List { tenant, all }) => remote::block_on(ops::escalations_list(&tenant, all)),
        Command::Escalations(EscalationsCommand::Ack { tenant, message, by }) => {
            remote::block_on(ops::escalations_ack(&tenant, message, &by))
        }
        Command::Providers => ops::providers(),
        Command::Evidence(EvidenceCommand::Export { message, tenant, out }) => remote::block_on(ops::evidence_export(&message, tenant, &out)),
        Command::Evidence(EvidenceCommand::Verify { dir }) => ops::evidence_verify(&dir),
        Command::Audit(AuditCommand::Verify { tenant }) => remote::block_on(ops::audit_verify(&tenant)),
        Command::Audit(AuditCommand::Export { tenant, message, out }) => remote::block_on(ops::audit_export(&tenant, message, &out)),
        Command::Dlq(DlqCommand::List) => remote::block_on(ops::dlq_list()),
        Command::Dlq(DlqCommand::Redrive) => remote::block_on(ops::dlq_redrive()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

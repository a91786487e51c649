//! Provisions the AWS emulator (moto, LocalStack) from `infra/template.yaml`.
//!
//! The SAM template is the single source of truth: every `AWS::DynamoDB::Table`,
//! `AWS::SQS::Queue`, `AWS::S3::Bucket` and `AWS::SecretsManager::Secret` it declares
//! is created here with the physical name `<prefix>-<LogicalId>` (buckets lowercased,
//! secrets `<prefix>/<LogicalId>`), and `Globals.Function.Environment.Variables` is
//! resolved the way CloudFormation would resolve it, with local physical names.
//!
//! Intrinsics understood while resolving: `Ref` (parameters, pseudo parameters,
//! provisioned resources), `Fn::GetAtt` (queue `Arn`/`QueueName`/`QueueUrl`, table
//! `Arn`/`StreamArn`, bucket `Arn`/`DomainName`, secret `Id`), `Fn::Sub`, `Fn::Join`,
//! `Fn::Select`, `Fn::Split`, `Fn::If` and the condition functions. Anything that only
//! exists in AWS (function URLs, API endpoints, ...) is "not resolvable locally": it is
//! left out of per-function environments and is an error where a value is required.
//!
//! Local `Ref` values follow what the code needs rather than CloudFormation to the
//! letter: table → name, bucket → name, queue → URL (as in AWS), secret → name (AWS
//! returns the ARN; both work as a `SecretId`).
//!
//! Provisioning is idempotent: running it again with the same prefix reuses what
//! exists (queue attributes are re-applied; a table missing an index declared in the
//! template is an error, since indexes cannot be added in place here).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use dispatch_common::aws::Clients;
use serde_json::{Map, Value as J};

/// What [`provision`] created (or found), keyed by the template's logical ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provisioned {
    pub prefix: String,
    /// Logical id → table name, bucket name, queue URL or secret name.
    pub physical: BTreeMap<String, String>,
    /// Queue logical id → queue ARN (as reported by the emulator).
    pub queue_arns: BTreeMap<String, String>,
    /// `Globals.Function.Environment.Variables`, resolved: `!Ref` of a table → name,
    /// bucket → name, queue → URL, secret → name; parameters → their `Default`
    /// unless overridden.
    pub env: BTreeMap<String, String>,
    /// Every `AWS::Serverless::Function`, as the local runner needs it: binary,
    /// resolved environment (Globals merged with the function's own variables, minus
    /// values that exist only in AWS such as the webhook function URL), and events.
    pub functions: BTreeMap<String, LocalFunction>,
}

/// A function of the template, for the local runner.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalFunction {
    /// `Metadata.BuildProperties.Binary` (the workspace binary), if declared.
    pub binary: Option<String>,
    /// Globals + function environment, resolved. A function-level value that cannot
    /// be resolved locally (e.g. `!GetAtt WebhookFunctionUrl.FunctionUrl`) removes the
    /// variable: the runner supplies it.
    pub env: BTreeMap<String, String>,
    /// SQS event sources: logical ids of the queues, in event-name order.
    pub sqs_queues: Vec<String>,
    /// The same event sources with the limits their mappings declare, in the same order.
    pub sqs_sources: Vec<SqsSource>,
    /// Schedule events: their expressions (`rate(1 minute)`).
    pub schedules: Vec<String>,
    /// HttpApi/Api events: (METHOD, path) as declared (`ANY`, `/v1/{proxy+}`).
    pub http_routes: Vec<(String, String)>,
    /// Whether the function declares a function URL (`FunctionUrlConfig`).
    pub function_url: bool,
    /// `Timeout` (the function's, else Globals'): how long one invocation may run.
    pub timeout_secs: u64,
}

/// One SQS event source mapping as the template declares it: what Lambda's poller
/// honours (batch size, batching window, maximum concurrency).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqsSource {
    /// Logical id of the queue.
    pub queue: String,
    /// `BatchSize` (Lambda's default for SQS: 10).
    pub batch_size: u32,
    /// `MaximumBatchingWindowInSeconds` (default 0: invoke as soon as records arrive).
    pub batching_window_secs: u32,
    /// `ScalingConfig.MaximumConcurrency`, if set: at most this many concurrent
    /// invocations for this source.
    pub max_concurrency: Option<u32>,
}

/// `<workspace root>/infra/template.yaml`.
pub fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("infra").join("template.yaml")
}

const TABLE: &str = "AWS::DynamoDB::Table";
const QUEUE: &str = "AWS::SQS::Queue";
const BUCKET: &str = "AWS::S3::Bucket";
const SECRET: &str = "AWS::SecretsManager::Secret";
const SAM_FUNCTION: &str = "AWS::Serverless::Function";

/// Creates every table, queue, bucket and secret of the template under `prefix` and
/// resolves the shared function environment. `parameter_overrides` replaces template
/// parameter defaults (unknown names are an error).
pub async fn provision(
    clients: &Clients,
    template_path: &Path,
    prefix: &str,
    parameter_overrides: &BTreeMap<String, String>,
) -> Result<Provisioned> {
    let template = Template::load(template_path)?;
    validate_prefix(prefix)?;
    let region = clients
        .sqs
        .config()
        .region()
        .map(|r| r.to_string())
        .ok_or_else(|| anyhow!("no AWS region configured (set AWS_REGION)"))?;
    let mut ctx = Ctx::new(&template, parameter_overrides, prefix, &region)?;
    let mut out = Provisioned { prefix: prefix.to_owned(), ..Default::default() };

    for (id, res) in template.of_type(TABLE) {
        let name = physical_name(prefix, id);
        let props = ctx.resolve_props(res)?;
        let arn = ensure_table(clients, &name, &props).await.with_context(|| format!("table {id} ({name})"))?;
        ctx.set_ref(id, &name);
        ctx.set_attr(id, "Arn", &arn.table_arn);
        if let Some(stream) = arn.stream_arn {
            ctx.set_attr(id, "StreamArn", &stream);
        }
        out.physical.insert(id.clone(), name);
    }

    for (id, res) in template.of_type(BUCKET) {
        let name = bucket_name(prefix, id)?;
        let props = ctx.resolve_props(res)?;
        ensure_bucket(clients, &name, &region, &props).await.with_context(|| format!("bucket {id} ({name})"))?;
        ctx.set_ref(id, &name);
        ctx.set_attr(id, "Arn", &format!("arn:{}:s3:::{name}", ctx.partition()));
        ctx.set_attr(id, "DomainName", &format!("{name}.s3.amazonaws.com"));
        out.physical.insert(id.clone(), name);
    }

    for (id, res) in template.of_type(SECRET) {
        let name = format!("{prefix}/{id}");
        let props = ctx.resolve_props(res)?;
        let arn = ensure_secret(clients, &name, &props).await.with_context(|| format!("secret {id} ({name})"))?;
        ctx.set_ref(id, &name);
        ctx.set_attr(id, "Id", &arn);
        out.physical.insert(id.clone(), name);
    }

    // Queues in dependency order: a queue whose RedrivePolicy target is not created
    // yet waits for a later pass (dead-letter queues first).
    let mut pending: Vec<(&String, &Resource)> = template.of_type(QUEUE).collect();
    while !pending.is_empty() {
        let mut progressed = false;
        let mut next = Vec::new();
        for (id, res) in pending {
            let props = ctx.resolve_props(res)?;
            if res.props.get("RedrivePolicy").is_some_and(|rp| rp.is_object())
                && props.get("RedrivePolicy").and_then(|rp| rp.get("deadLetterTargetArn")).is_none()
            {
                next.push((id, res));
                continue;
            }
            let name = physical_name(prefix, id);
            let q = ensure_queue(clients, &name, &props).await.with_context(|| format!("queue {id} ({name})"))?;
            ctx.note_arn(&q.arn);
            ctx.set_ref(id, &q.url);
            ctx.set_attr(id, "Arn", &q.arn);
            ctx.set_attr(id, "QueueUrl", &q.url);
            ctx.set_attr(id, "QueueName", &q.name);
            out.physical.insert(id.clone(), q.url);
            out.queue_arns.insert(id.clone(), q.arn);
            progressed = true;
        }
        if !progressed {
            let ids: Vec<&str> = next.iter().map(|(id, _)| id.as_str()).collect();
            bail!("queues whose RedrivePolicy target cannot be resolved: {}", ids.join(", "));
        }
        pending = next;
    }

    out.env = ctx.globals_env()?;
    out.functions = ctx.functions()?;
    Ok(out)
}

/// Best-effort deletion of everything [`provision`] creates for `prefix`: each
/// failure other than "does not exist" is reported on stderr, and the first one is
/// returned once everything was attempted.
pub async fn teardown(clients: &Clients, template_path: &Path, prefix: &str) -> Result<()> {
    let template = Template::load(template_path)?;
    validate_prefix(prefix)?;
    let mut first_error: Option<anyhow::Error> = None;
    let mut record = |what: String, e: anyhow::Error| {
        eprintln!("teardown: {what}: {e:#}");
        first_error.get_or_insert(e.context(what));
    };

    for (id, _) in template.of_type(QUEUE) {
        let name = physical_name(prefix, id);
        match clients.sqs.get_queue_url().queue_name(&name).send().await {
            Ok(r) => {
                if let Some(url) = r.queue_url()
                    && let Err(e) = clients.sqs.delete_queue().queue_url(url).send().await
                {
                    record(format!("delete queue {name}"), sdk_err(e));
                }
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_queue_does_not_exist()) => {}
            Err(e) => record(format!("queue {name}"), sdk_err(e)),
        }
    }
    for (id, _) in template.of_type(TABLE) {
        let name = physical_name(prefix, id);
        match clients.dynamodb.delete_table().table_name(&name).send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {}
            Err(e) => record(format!("delete table {name}"), sdk_err(e)),
        }
    }
    for (id, _) in template.of_type(BUCKET) {
        let name = bucket_name(prefix, id)?;
        if let Err(e) = empty_bucket(clients, &name).await {
            record(format!("empty bucket {name}"), e);
            continue;
        }
        match clients.s3.delete_bucket().bucket(&name).send().await {
            Ok(_) => {}
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {}
            Err(e) => record(format!("delete bucket {name}"), sdk_err(e)),
        }
    }
    for (id, _) in template.of_type(SECRET) {
        let name = format!("{prefix}/{id}");
        match clients.secrets.delete_secret().secret_id(&name).force_delete_without_recovery(true).send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {}
            Err(e) => record(format!("delete secret {name}"), sdk_err(e)),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

// ------------------------------------------------------------------ template

/// The parts of a CloudFormation/SAM template that provisioning reads. Short-form
/// tags (`!Ref X`, `!GetAtt A.B`, `!Sub ...`) are turned into their long JSON form
/// (`{"Ref": "X"}`, `{"Fn::GetAtt": ["A", "B"]}`, `{"Fn::Sub": ...}`) while loading.
#[derive(Clone, Debug)]
struct Template {
    parameters: BTreeMap<String, Map<String, J>>,
    conditions: BTreeMap<String, J>,
    resources: BTreeMap<String, Resource>,
    /// `Globals.Function.Environment.Variables`, unresolved.
    globals_env: Map<String, J>,
    /// `Globals.Function.Timeout` (seconds; Lambda's default 3 when absent).
    globals_timeout: u64,
}

#[derive(Clone, Debug)]
struct Resource {
    kind: String,
    props: Map<String, J>,
    metadata: Map<String, J>,
}

impl Template {
    fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    fn parse(text: &str) -> Result<Self> {
        let yaml: serde_norway::Value = serde_norway::from_str(text)?;
        let doc = yaml_to_json(yaml)?;
        let doc = doc.as_object().ok_or_else(|| anyhow!("template is not a mapping"))?;
        let section = |name: &str| -> Result<Map<String, J>> {
            match doc.get(name) {
                None | Some(J::Null) => Ok(Map::new()),
                Some(J::Object(m)) => Ok(m.clone()),
                Some(_) => bail!("{name} is not a mapping"),
            }
        };
        let mut parameters = BTreeMap::new();
        for (k, v) in section("Parameters")? {
            let J::Object(m) = v else { bail!("parameter {k} is not a mapping") };
            parameters.insert(k, m);
        }
        let conditions = section("Conditions")?.into_iter().collect();
        let mut resources = BTreeMap::new();
        for (id, v) in section("Resources")? {
            let J::Object(mut m) = v else { bail!("resource {id} is not a mapping") };
            let kind = match m.remove("Type") {
                Some(J::String(t)) => t,
                _ => bail!("resource {id} has no Type"),
            };
            let obj = |v: Option<J>| match v {
                Some(J::Object(o)) => o,
                _ => Map::new(),
            };
            resources.insert(id, Resource { kind, props: obj(m.remove("Properties")), metadata: obj(m.remove("Metadata")) });
        }
        ensure!(!resources.is_empty(), "template has no Resources");
        let globals_env = doc
            .get("Globals")
            .and_then(|g| g.pointer("/Function/Environment/Variables"))
            .and_then(J::as_object)
            .cloned()
            .unwrap_or_default();
        let globals_timeout = doc.get("Globals").and_then(|g| g.pointer("/Function/Timeout")).and_then(J::as_u64).unwrap_or(3);
        Ok(Self { parameters, conditions, resources, globals_env, globals_timeout })
    }

    fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a String, &'a Resource)> + 'a {
        self.resources.iter().filter(move |(_, r)| r.kind == kind)
    }
}

/// YAML (with CloudFormation short tags) → JSON with long-form intrinsics.
fn yaml_to_json(v: serde_norway::Value) -> Result<J> {
    use serde_norway::Value as Y;
    Ok(match v {
        Y::Null => J::Null,
        Y::Bool(b) => J::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                J::from(i)
            } else if let Some(u) = n.as_u64() {
                J::from(u)
            } else {
                J::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Y::String(s) => J::String(s),
        Y::Sequence(seq) => J::Array(seq.into_iter().map(yaml_to_json).collect::<Result<_>>()?),
        Y::Mapping(m) => {
            let mut o = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => bail!("unsupported mapping key {other:?}"),
                };
                o.insert(key, yaml_to_json(v)?);
            }
            J::Object(o)
        }
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let name = tag.trim_start_matches('!').to_owned();
            short_form(&name, yaml_to_json(t.value)?)?
        }
    })
}

fn short_form(tag: &str, arg: J) -> Result<J> {
    let key = match tag {
        "Ref" | "Condition" => tag.to_owned(),
        "GetAtt" => {
            let arg = match arg {
                J::String(s) => {
                    let (res, attr) =
                        s.split_once('.').ok_or_else(|| anyhow!("!GetAtt {s:?} is not of the form Resource.Attribute"))?;
                    J::Array(vec![J::from(res), J::from(attr)])
                }
                other => other,
            };
            return Ok(single("Fn::GetAtt", arg));
        }
        "Base64" | "Cidr" | "FindInMap" | "GetAZs" | "ImportValue" | "Join" | "Select" | "Split" | "Sub"
        | "Transform" | "And" | "Equals" | "If" | "Not" | "Or" | "Length" | "ToJsonString" | "ForEach" => {
            format!("Fn::{tag}")
        }
        other => bail!("unknown CloudFormation tag !{other}"),
    };
    Ok(single(&key, arg))
}

fn single(key: &str, v: J) -> J {
    let mut m = Map::new();
    m.insert(key.to_owned(), v);
    J::Object(m)
}

// ------------------------------------------------------------------ resolution

/// Resolution context: parameters, pseudo parameters and what was provisioned so far.
struct Ctx<'t> {
    template: &'t Template,
    params: BTreeMap<String, J>,
    pseudo: BTreeMap<&'static str, String>,
    refs: BTreeMap<String, String>,
    attrs: BTreeMap<(String, String), String>,
}

impl<'t> Ctx<'t> {
    fn new(template: &'t Template, overrides: &BTreeMap<String, String>, prefix: &str, region: &str) -> Result<Self> {
        for name in overrides.keys() {
            ensure!(template.parameters.contains_key(name), "parameter override for unknown parameter {name}");
        }
        let mut params = BTreeMap::new();
        for (name, def) in &template.parameters {
            let raw = match overrides.get(name) {
                Some(v) => Some(v.clone()),
                None => def.get("Default").map(scalar_string).transpose().with_context(|| format!("Default of {name}"))?,
            };
            let Some(raw) = raw else { continue };
            let ty = def.get("Type").and_then(J::as_str).unwrap_or("String");
            let value = if ty == "CommaDelimitedList" || ty.starts_with("List<") {
                J::Array(raw.split(',').map(|s| J::from(s.trim())).collect())
            } else {
                J::String(raw)
            };
            params.insert(name.clone(), value);
        }
        let pseudo = BTreeMap::from([
            ("AWS::Region", region.to_owned()),
            ("AWS::Partition", "aws".to_owned()),
            ("AWS::URLSuffix", "amazonaws.com".to_owned()),
            ("AWS::StackName", prefix.to_owned()),
            ("AWS::StackId", format!("arn:aws:cloudformation:{region}:local:stack/{prefix}/local")),
        ]);
        Ok(Self { template, params, pseudo, refs: BTreeMap::new(), attrs: BTreeMap::new() })
    }

    fn set_ref(&mut self, id: &str, v: &str) {
        self.refs.insert(id.to_owned(), v.to_owned());
    }

    fn set_attr(&mut self, id: &str, attr: &str, v: &str) {
        self.attrs.insert((id.to_owned(), attr.to_owned()), v.to_owned());
    }

    fn partition(&self) -> &str {
        &self.pseudo["AWS::Partition"]
    }

    /// Learns the account id and partition from an ARN the emulator returned, so
    /// nothing assumes moto's 123456789012.
    fn note_arn(&mut self, arn: &str) {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() == 6 && parts[0] == "arn" {
            self.pseudo.insert("AWS::Partition", parts[1].to_owned());
            if !parts[4].is_empty() {
                self.pseudo.entry("AWS::AccountId").or_insert_with(|| parts[4].to_owned());
            }
        }
    }

    fn resolve_props(&self, res: &Resource) -> Result<Map<String, J>> {
        match self.resolve(&J::Object(res.props.clone()))? {
            Some(J::Object(m)) => Ok(m),
            _ => Ok(Map::new()),
        }
    }

    /// `Ok(None)`: not resolvable locally (or `AWS::NoValue`). Errors are template
    /// mistakes: unknown logical ids, malformed intrinsics.
    fn resolve(&self, v: &J) -> Result<Option<J>> {
        match v {
            J::Object(o) if o.len() == 1 => {
                let (k, arg) = o.iter().next().expect("one entry");
                match k.as_str() {
                    "Ref" => self.resolve_ref(arg.as_str().ok_or_else(|| anyhow!("Ref of a non-string: {arg}"))?),
                    "Fn::GetAtt" => {
                        let (res, attr) = getatt_parts(arg)?;
                        self.get_att(&res, &attr)
                    }
                    "Fn::Sub" => self.sub(arg),
                    "Fn::Join" => self.join(arg),
                    "Fn::If" => {
                        let a = arg.as_array().filter(|a| a.len() == 3).ok_or_else(|| anyhow!("Fn::If needs 3 args"))?;
                        let cond = a[0].as_str().ok_or_else(|| anyhow!("Fn::If condition must be a name"))?;
                        self.resolve(if self.condition(cond, 0)? { &a[1] } else { &a[2] })
                    }
                    "Fn::Select" => {
                        let a = arg.as_array().filter(|a| a.len() == 2).ok_or_else(|| anyhow!("Fn::Select needs 2 args"))?;
                        let (Some(idx), Some(list)) = (self.resolve(&a[0])?, self.resolve(&a[1])?) else { return Ok(None) };
                        let idx: usize = scalar_string(&idx)?.parse().context("Fn::Select index")?;
                        let list = list.as_array().ok_or_else(|| anyhow!("Fn::Select of a non-list"))?;
                        Ok(Some(list.get(idx).cloned().ok_or_else(|| anyhow!("Fn::Select index {idx} out of range"))?))
                    }
                    "Fn::Split" => {
                        let a = arg.as_array().filter(|a| a.len() == 2).ok_or_else(|| anyhow!("Fn::Split needs 2 args"))?;
                        let delim = a[0].as_str().ok_or_else(|| anyhow!("Fn::Split delimiter"))?;
                        let Some(s) = self.resolve(&a[1])? else { return Ok(None) };
                        Ok(Some(J::Array(scalar_string(&s)?.split(delim).map(J::from).collect())))
                    }
                    k if k.starts_with("Fn::") => Ok(None),
                    _ => self.resolve_map(o),
                }
            }
            J::Object(o) => self.resolve_map(o),
            J::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for x in a {
                    if let Some(x) = self.resolve(x)? {
                        out.push(x);
                    }
                }
                Ok(Some(J::Array(out)))
            }
            other => Ok(Some(other.clone())),
        }
    }

    fn resolve_map(&self, o: &Map<String, J>) -> Result<Option<J>> {
        let mut out = Map::new();
        for (k, v) in o {
            if let Some(v) = self.resolve(v)? {
                out.insert(k.clone(), v);
            }
        }
        Ok(Some(J::Object(out)))
    }

    fn resolve_ref(&self, name: &str) -> Result<Option<J>> {
        if name == "AWS::NoValue" {
            return Ok(None);
        }
        if name.starts_with("AWS::") {
            return match self.pseudo.get(name) {
                Some(v) => Ok(Some(J::from(v.as_str()))),
                None if matches!(name, "AWS::AccountId" | "AWS::NotificationARNs") => Ok(None),
                None => bail!("unknown pseudo parameter {name}"),
            };
        }
        if let Some(p) = self.params.get(name) {
            return Ok(Some(p.clone()));
        }
        if self.template.parameters.contains_key(name) {
            bail!("parameter {name} has no Default and no override");
        }
        if let Some(v) = self.refs.get(name) {
            return Ok(Some(J::from(v.as_str())));
        }
        if self.template.resources.contains_key(name) || self.is_sam_generated(name) {
            return Ok(None);
        }
        bail!("Ref to unknown logical id {name}")
    }

    fn get_att(&self, res: &str, attr: &str) -> Result<Option<J>> {
        if let Some(v) = self.attrs.get(&(res.to_owned(), attr.to_owned())) {
            return Ok(Some(J::from(v.as_str())));
        }
        if self.template.resources.contains_key(res) || self.is_sam_generated(res) {
            return Ok(None);
        }
        bail!("Fn::GetAtt of unknown logical id {res}")
    }

    /// Resources SAM generates from a function (`<Fn>Url`, `<Fn>Role`, ...): known to
    /// exist, never provisioned locally.
    fn is_sam_generated(&self, id: &str) -> bool {
        ["Url", "Role", "Alias", "Version"].iter().any(|suffix| {
            id.strip_suffix(suffix)
                .and_then(|f| self.template.resources.get(f))
                .is_some_and(|r| r.kind == SAM_FUNCTION)
        })
    }

    fn sub(&self, arg: &J) -> Result<Option<J>> {
        let (text, vars) = match arg {
            J::String(s) => (s.as_str(), Map::new()),
            J::Array(a) if a.len() == 2 => (
                a[0].as_str().ok_or_else(|| anyhow!("Fn::Sub template must be a string"))?,
                a[1].as_object().cloned().ok_or_else(|| anyhow!("Fn::Sub variables must be a mapping"))?,
            ),
            _ => bail!("malformed Fn::Sub: {arg}"),
        };
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| anyhow!("unterminated ${{ in Fn::Sub {text:?}"))?;
            let name = &after[..end];
            rest = &after[end + 1..];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
                continue;
            }
            let value = if let Some(v) = vars.get(name) {
                self.resolve(v)?
            } else if let Some((res, attr)) = name.split_once('.').filter(|_| !name.starts_with("AWS::")) {
                self.get_att(res, attr)?
            } else {
                self.resolve_ref(name)?
            };
            let Some(value) = value else { return Ok(None) };
            out.push_str(&scalar_string(&value)?);
        }
        out.push_str(rest);
        Ok(Some(J::String(out)))
    }

    fn join(&self, arg: &J) -> Result<Option<J>> {
        let a = arg.as_array().filter(|a| a.len() == 2).ok_or_else(|| anyhow!("Fn::Join needs 2 args"))?;
        let delim = a[0].as_str().ok_or_else(|| anyhow!("Fn::Join delimiter"))?;
        let Some(list) = self.resolve(&a[1])? else { return Ok(None) };
        let list = list.as_array().ok_or_else(|| anyhow!("Fn::Join of a non-list"))?;
        // An element that did not resolve was dropped by `resolve`: refuse to join a
        // partial list.
        if a[1].as_array().is_some_and(|raw| raw.len() != list.len()) {
            return Ok(None);
        }
        let parts: Vec<String> = list.iter().map(scalar_string).collect::<Result<_>>()?;
        Ok(Some(J::String(parts.join(delim))))
    }

    fn condition(&self, name: &str, depth: usize) -> Result<bool> {
        ensure!(depth < 32, "condition {name} is recursive");
        let c = self.template.conditions.get(name).ok_or_else(|| anyhow!("unknown condition {name}"))?;
        self.eval_condition(c, depth + 1).with_context(|| format!("condition {name}"))
    }

    fn eval_condition(&self, c: &J, depth: usize) -> Result<bool> {
        let (k, arg) = c
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
            .ok_or_else(|| anyhow!("malformed condition {c}"))?;
        let list = || arg.as_array().ok_or_else(|| anyhow!("{k} needs a list"));
        match k.as_str() {
            "Condition" => self.condition(arg.as_str().ok_or_else(|| anyhow!("Condition needs a name"))?, depth),
            "Fn::Not" => Ok(!self.eval_condition(list()?.first().ok_or_else(|| anyhow!("empty Fn::Not"))?, depth)?),
            "Fn::And" => list()?.iter().try_fold(true, |acc, c| Ok(acc && self.eval_condition(c, depth)?)),
            "Fn::Or" => list()?.iter().try_fold(false, |acc, c| Ok(acc || self.eval_condition(c, depth)?)),
            "Fn::Equals" => {
                let a = list()?;
                ensure!(a.len() == 2, "Fn::Equals needs 2 args");
                let l = self.resolve(&a[0])?.ok_or_else(|| anyhow!("Fn::Equals operand not resolvable locally"))?;
                let r = self.resolve(&a[1])?.ok_or_else(|| anyhow!("Fn::Equals operand not resolvable locally"))?;
                Ok(match (scalar_string(&l), scalar_string(&r)) {
                    (Ok(l), Ok(r)) => l == r,
                    _ => l == r,
                })
            }
            other => bail!("unsupported condition function {other}"),
        }
    }

    fn resolve_env(&self, vars: &Map<String, J>, required: bool) -> Result<BTreeMap<String, String>> {
        let mut env = BTreeMap::new();
        for (k, v) in vars {
            match self.resolve(v).with_context(|| format!("environment variable {k}"))? {
                Some(v) => {
                    env.insert(k.clone(), scalar_string(&v).with_context(|| format!("environment variable {k}"))?);
                }
                None if required => bail!("environment variable {k} ({v}) cannot be resolved locally"),
                None => {}
            }
        }
        Ok(env)
    }

    fn globals_env(&self) -> Result<BTreeMap<String, String>> {
        self.resolve_env(&self.template.globals_env, true).context("Globals.Function.Environment.Variables")
    }

    fn functions(&self) -> Result<BTreeMap<String, LocalFunction>> {
        let globals = self.globals_env()?;
        let mut out = BTreeMap::new();
        for (id, res) in self.template.of_type(SAM_FUNCTION) {
            let mut env = globals.clone();
            if let Some(vars) = res.props.get("Environment").and_then(|e| e.get("Variables")).and_then(J::as_object) {
                for (k, v) in vars {
                    match self.resolve(v).with_context(|| format!("{id} environment variable {k}"))? {
                        Some(v) => {
                            env.insert(k.clone(), scalar_string(&v).with_context(|| format!("{id} {k}"))?);
                        }
                        None => {
                            env.remove(k);
                        }
                    }
                }
            }
            let mut f = LocalFunction {
                binary: res.metadata.get("BuildProperties").and_then(|b| b.get("Binary")).and_then(J::as_str).map(str::to_owned),
                env,
                function_url: res.props.contains_key("FunctionUrlConfig"),
                timeout_secs: res.props.get("Timeout").and_then(J::as_u64).unwrap_or(self.template.globals_timeout),
                ..Default::default()
            };
            for (name, ev) in res.props.get("Events").and_then(J::as_object).into_iter().flatten() {
                let p = ev.get("Properties").cloned().unwrap_or(J::Null);
                match ev.get("Type").and_then(J::as_str) {
                    Some("SQS") => {
                        let q = p.get("Queue").ok_or_else(|| anyhow!("{id} event {name}: no Queue"))?;
                        let (queue, attr) = getatt_parts(q.get("Fn::GetAtt").unwrap_or(&J::Null))
                            .with_context(|| format!("{id} event {name}: Queue must be !GetAtt <Queue>.Arn"))?;
                        ensure!(attr == "Arn", "{id} event {name}: Queue must be !GetAtt <Queue>.Arn");
                        let int = |key: &str| p.get(key).and_then(J::as_u64).map(|v| v as u32);
                        let source = SqsSource {
                            queue: queue.clone(),
                            batch_size: int("BatchSize").unwrap_or(10),
                            batching_window_secs: int("MaximumBatchingWindowInSeconds").unwrap_or(0),
                            max_concurrency: p.get("ScalingConfig").and_then(|c| c.get("MaximumConcurrency")).and_then(J::as_u64).map(|v| v as u32),
                        };
                        // Lambda's own limits on these values, so a template the local
                        // runner accepts is one Lambda would accept.
                        ensure!((1..=10_000).contains(&source.batch_size), "{id} event {name}: BatchSize must be 1..=10000");
                        ensure!(
                            source.batch_size <= 10 || source.batching_window_secs >= 1,
                            "{id} event {name}: a BatchSize over 10 needs MaximumBatchingWindowInSeconds ≥ 1"
                        );
                        ensure!(source.batching_window_secs <= 300, "{id} event {name}: MaximumBatchingWindowInSeconds must be ≤ 300");
                        ensure!(
                            source.max_concurrency.is_none_or(|c| (2..=1000).contains(&c)),
                            "{id} event {name}: ScalingConfig.MaximumConcurrency must be 2..=1000"
                        );
                        f.sqs_queues.push(queue);
                        f.sqs_sources.push(source);
                    }
                    Some("Schedule" | "ScheduleV2") => {
                        let expr = p
                            .get("Schedule")
                            .or_else(|| p.get("ScheduleExpression"))
                            .and_then(J::as_str)
                            .ok_or_else(|| anyhow!("{id} event {name}: no schedule expression"))?;
                        f.schedules.push(expr.to_owned());
                    }
                    Some("HttpApi" | "Api") => {
                        let method = p.get("Method").and_then(J::as_str).unwrap_or("ANY").to_uppercase();
                        let path = p.get("Path").and_then(J::as_str).unwrap_or("$default").to_owned();
                        f.http_routes.push((method, path));
                    }
                    _ => {}
                }
            }
            out.insert(id.clone(), f);
        }
        Ok(out)
    }
}

fn getatt_parts(arg: &J) -> Result<(String, String)> {
    match arg {
        J::Array(a) if a.len() == 2 => match (a[0].as_str(), a[1].as_str()) {
            (Some(r), Some(at)) => Ok((r.to_owned(), at.to_owned())),
            _ => bail!("malformed Fn::GetAtt {arg}"),
        },
        J::String(s) => s
            .split_once('.')
            .map(|(r, a)| (r.to_owned(), a.to_owned()))
            .ok_or_else(|| anyhow!("malformed Fn::GetAtt {s:?}")),
        _ => bail!("malformed Fn::GetAtt {arg}"),
    }
}

fn scalar_string(v: &J) -> Result<String> {
    match v {
        J::String(s) => Ok(s.clone()),
        J::Number(n) => Ok(n.to_string()),
        J::Bool(b) => Ok(b.to_string()),
        other => bail!("expected a scalar, got {other}"),
    }
}

fn validate_prefix(prefix: &str) -> Result<()> {
    ensure!(
        !prefix.is_empty()
            && prefix.len() <= 40
            && prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !prefix.starts_with('-')
            && !prefix.ends_with('-'),
        "prefix {prefix:?} must be 1-40 characters of [A-Za-z0-9-], not starting or ending with '-'"
    );
    Ok(())
}

fn physical_name(prefix: &str, id: &str) -> String {
    format!("{prefix}-{id}")
}

/// `<prefix>-<logicalid>` lowercased: S3 names are 3-63 characters of [a-z0-9.-].
fn bucket_name(prefix: &str, id: &str) -> Result<String> {
    let name: String = physical_name(prefix, id)
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' })
        .collect();
    ensure!((3..=63).contains(&name.len()), "bucket name {name:?} must be 3-63 characters: use a shorter prefix");
    Ok(name)
}

/// anyhow error with the SDK's full error chain (the plain Display says little).
fn sdk_err<E: std::error::Error + Send + Sync + 'static>(e: E) -> anyhow::Error {
    anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e))
}

fn prop_str<'a>(m: &'a Map<String, J>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(J::as_str)
}

fn prop_bool(m: &Map<String, J>, k: &str) -> bool {
    match m.get(k) {
        Some(J::Bool(b)) => *b,
        Some(J::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn prop_i64(m: &Map<String, J>, k: &str) -> Result<Option<i64>> {
    match m.get(k) {
        None => Ok(None),
        Some(v) => Ok(Some(scalar_string(v)?.parse().with_context(|| format!("{k} is not an integer"))?)),
    }
}

fn prop_list<'a>(m: &'a Map<String, J>, k: &str) -> impl Iterator<Item = &'a Map<String, J>> {
    m.get(k).and_then(J::as_array).into_iter().flatten().filter_map(J::as_object)
}

// ------------------------------------------------------------------ DynamoDB

struct TableArns {
    table_arn: String,
    stream_arn: Option<String>,
}

async fn ensure_table(clients: &Clients, name: &str, props: &Map<String, J>) -> Result<TableArns> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, LocalSecondaryIndex,
        Projection, ProjectionType, ProvisionedThroughput, ScalarAttributeType, SseSpecification, StreamSpecification,
        StreamViewType, TimeToLiveSpecification,
    };
    let ddb = &clients.dynamodb;

    let key_schema = |m: &Map<String, J>| -> Result<Vec<KeySchemaElement>> {
        prop_list(m, "KeySchema")
            .map(|k| {
                Ok(KeySchemaElement::builder()
                    .attribute_name(prop_str(k, "AttributeName").ok_or_else(|| anyhow!("KeySchema AttributeName"))?)
                    .key_type(KeyType::from(prop_str(k, "KeyType").ok_or_else(|| anyhow!("KeySchema KeyType"))?))
                    .build()?)
            })
            .collect()
    };
    let projection = |m: &Map<String, J>| -> Projection {
        let p = m.get("Projection").and_then(J::as_object).cloned().unwrap_or_default();
        let mut b = Projection::builder().projection_type(ProjectionType::from(prop_str(&p, "ProjectionType").unwrap_or("ALL")));
        for a in p.get("NonKeyAttributes").and_then(J::as_array).into_iter().flatten().filter_map(J::as_str) {
            b = b.non_key_attributes(a);
        }
        b.build()
    };
    let throughput = |m: &Map<String, J>| -> Result<Option<ProvisionedThroughput>> {
        let Some(p) = m.get("ProvisionedThroughput").and_then(J::as_object) else { return Ok(None) };
        Ok(Some(
            ProvisionedThroughput::builder()
                .read_capacity_units(prop_i64(p, "ReadCapacityUnits")?.unwrap_or(5))
                .write_capacity_units(prop_i64(p, "WriteCapacityUnits")?.unwrap_or(5))
                .build()?,
        ))
    };

    let billing = prop_str(props, "BillingMode").unwrap_or("PROVISIONED");
    let mut req = ddb.create_table().table_name(name).billing_mode(BillingMode::from(billing));
    for a in prop_list(props, "AttributeDefinitions") {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(prop_str(a, "AttributeName").ok_or_else(|| anyhow!("AttributeDefinitions name"))?)
                .attribute_type(ScalarAttributeType::from(prop_str(a, "AttributeType").unwrap_or("S")))
                .build()?,
        );
    }
    req = req.set_key_schema(Some(key_schema(props)?));
    let mut expected_gsis = Vec::new();
    for g in prop_list(props, "GlobalSecondaryIndexes") {
        let index = prop_str(g, "IndexName").ok_or_else(|| anyhow!("GSI without IndexName"))?;
        expected_gsis.push(index.to_owned());
        let mut b = GlobalSecondaryIndex::builder()
            .index_name(index)
            .set_key_schema(Some(key_schema(g)?))
            .projection(projection(g));
        if billing == "PROVISIONED" {
            b = b.set_provisioned_throughput(throughput(g)?);
        }
        req = req.global_secondary_indexes(b.build()?);
    }
    for l in prop_list(props, "LocalSecondaryIndexes") {
        req = req.local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name(prop_str(l, "IndexName").ok_or_else(|| anyhow!("LSI without IndexName"))?)
                .set_key_schema(Some(key_schema(l)?))
                .projection(projection(l))
                .build()?,
        );
    }
    if billing == "PROVISIONED" {
        req = req.set_provisioned_throughput(throughput(props)?);
    }
    if let Some(view) = props.get("StreamSpecification").and_then(|s| s.get("StreamViewType")).and_then(J::as_str) {
        req = req.stream_specification(
            StreamSpecification::builder().stream_enabled(true).stream_view_type(StreamViewType::from(view)).build()?,
        );
    }
    if let Some(sse) = props.get("SSESpecification").and_then(J::as_object) {
        req = req.sse_specification(SseSpecification::builder().enabled(prop_bool(sse, "SSEEnabled")).build());
    }
    match req.send().await {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => return Err(sdk_err(e)),
    }

    // Wait until the table and its indexes are ACTIVE (immediate on moto).
    let mut attempts = 0;
    let desc = loop {
        let d = ddb.describe_table().table_name(name).send().await.map_err(sdk_err)?;
        let t = d.table().cloned().ok_or_else(|| anyhow!("DescribeTable returned no table"))?;
        let active = t.table_status().is_some_and(|s| s.as_str() == "ACTIVE")
            && t.global_secondary_indexes().iter().all(|g| g.index_status().is_none_or(|s| s.as_str() == "ACTIVE"));
        if active {
            break t;
        }
        attempts += 1;
        ensure!(attempts < 120, "table {name} did not become ACTIVE within 60s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let existing: Vec<&str> = desc.global_secondary_indexes().iter().filter_map(|g| g.index_name()).collect();
    for gsi in &expected_gsis {
        ensure!(
            existing.contains(&gsi.as_str()),
            "existing table {name} lacks index {gsi} declared in the template: reset the emulator \
             (scripts/emulator.sh reset) or use another prefix"
        );
    }

    if let Some(ttl) = props.get("TimeToLiveSpecification").and_then(J::as_object).filter(|t| prop_bool(t, "Enabled")) {
        let attr = prop_str(ttl, "AttributeName").ok_or_else(|| anyhow!("TimeToLiveSpecification.AttributeName"))?;
        let current = ddb.describe_time_to_live().table_name(name).send().await.map_err(sdk_err)?;
        let already = current.time_to_live_description().is_some_and(|d| {
            d.attribute_name() == Some(attr)
                && d.time_to_live_status().is_some_and(|s| matches!(s.as_str(), "ENABLED" | "ENABLING"))
        });
        if !already {
            ddb.update_time_to_live()
                .table_name(name)
                .time_to_live_specification(TimeToLiveSpecification::builder().attribute_name(attr).enabled(true).build()?)
                .send()
                .await
                .map_err(sdk_err)
                .context("UpdateTimeToLive")?;
        }
    }

    Ok(TableArns {
        table_arn: desc.table_arn().ok_or_else(|| anyhow!("DescribeTable returned no TableArn"))?.to_owned(),
        stream_arn: desc.latest_stream_arn().map(str::to_owned),
    })
}

// ------------------------------------------------------------------ SQS

struct QueueInfo {
    name: String,
    url: String,
    arn: String,
}

/// Template properties that map 1:1 onto SQS queue attributes. KMS settings are left
/// out on purpose: the key would not exist in the emulator.
const QUEUE_ATTRIBUTES: &[&str] = &[
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
];

async fn ensure_queue(clients: &Clients, name: &str, props: &Map<String, J>) -> Result<QueueInfo> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let sqs = &clients.sqs;
    let fifo = prop_bool(props, "FifoQueue");
    let name = if fifo { format!("{name}.fifo") } else { name.to_owned() };
    ensure!(name.len() <= 80, "queue name {name:?} exceeds 80 characters: use a shorter prefix");

    let mut attributes = std::collections::HashMap::new();
    for key in QUEUE_ATTRIBUTES {
        let Some(v) = props.get(*key) else { continue };
        let value = match v {
            // RedrivePolicy / RedriveAllowPolicy: JSON documents.
            J::Object(_) => serde_json::to_string(v)?,
            other => scalar_string(other).with_context(|| format!("queue property {key}"))?,
        };
        attributes.insert(A::from(*key), value);
    }

    let url = match sqs.create_queue().queue_name(&name).set_attributes(Some(attributes.clone())).send().await {
        Ok(r) => r.queue_url().ok_or_else(|| anyhow!("CreateQueue returned no URL"))?.to_owned(),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_queue_name_exists()) => {
            // Exists with other attributes (template changed): re-apply them.
            let url = sqs
                .get_queue_url()
                .queue_name(&name)
                .send()
                .await
                .map_err(sdk_err)?
                .queue_url()
                .ok_or_else(|| anyhow!("GetQueueUrl returned no URL"))?
                .to_owned();
            attributes.remove(&A::FifoQueue); // immutable, and part of the name anyway
            sqs.set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(attributes))
                .send()
                .await
                .map_err(sdk_err)
                .context("SetQueueAttributes on existing queue")?;
            url
        }
        Err(e) => return Err(sdk_err(e)),
    };
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(A::QueueArn)
        .send()
        .await
        .map_err(sdk_err)?;
    let arn = attrs
        .attributes()
        .and_then(|a| a.get(&A::QueueArn))
        .ok_or_else(|| anyhow!("GetQueueAttributes returned no QueueArn"))?
        .to_owned();
    Ok(QueueInfo { name, url, arn })
}

// ------------------------------------------------------------------ S3

async fn ensure_bucket(clients: &Clients, name: &str, region: &str, props: &Map<String, J>) -> Result<()> {
    use aws_sdk_s3::types::{
        BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, ObjectOwnership, OwnershipControls,
        OwnershipControlsRule, PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
        ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
    };
    let s3 = &clients.s3;
    let mut req = s3.create_bucket().bucket(name);
    if region != "us-east-1" {
        req = req.create_bucket_configuration(
            CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::from(region)).build(),
        );
    }
    match req.send().await {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_bucket_already_owned_by_you()) => {}
        Err(e) => return Err(sdk_err(e)),
    }

    // Same settings as in AWS, so code that would fail there (ACLs on an
    // owner-enforced bucket, ...) fails here too where the emulator enforces it.
    if let Some(alg) = props
        .get("BucketEncryption")
        .and_then(|b| b.get("ServerSideEncryptionConfiguration"))
        .and_then(J::as_array)
        .and_then(|rules| rules.first())
        .and_then(|r| r.pointer("/ServerSideEncryptionByDefault/SSEAlgorithm"))
        .and_then(J::as_str)
    {
        let rule = ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(
                ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::from(alg)).build()?,
            )
            .build();
        s3.put_bucket_encryption()
            .bucket(name)
            .server_side_encryption_configuration(ServerSideEncryptionConfiguration::builder().rules(rule).build()?)
            .send()
            .await
            .map_err(sdk_err)
            .context("PutBucketEncryption")?;
    }
    if let Some(p) = props.get("PublicAccessBlockConfiguration").and_then(J::as_object) {
        s3.put_public_access_block()
            .bucket(name)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(prop_bool(p, "BlockPublicAcls"))
                    .block_public_policy(prop_bool(p, "BlockPublicPolicy"))
                    .ignore_public_acls(prop_bool(p, "IgnorePublicAcls"))
                    .restrict_public_buckets(prop_bool(p, "RestrictPublicBuckets"))
                    .build(),
            )
            .send()
            .await
            .map_err(sdk_err)
            .context("PutPublicAccessBlock")?;
    }
    if let Some(o) = props
        .get("OwnershipControls")
        .and_then(|o| o.get("Rules"))
        .and_then(J::as_array)
        .and_then(|r| r.first())
        .and_then(|r| r.get("ObjectOwnership"))
        .and_then(J::as_str)
    {
        s3.put_bucket_ownership_controls()
            .bucket(name)
            .ownership_controls(
                OwnershipControls::builder()
                    .rules(OwnershipControlsRule::builder().object_ownership(ObjectOwnership::from(o)).build()?)
                    .build()?,
            )
            .send()
            .await
            .map_err(sdk_err)
            .context("PutBucketOwnershipControls")?;
    }
    if let Some(status) = props.get("VersioningConfiguration").and_then(|v| v.get("Status")).and_then(J::as_str) {
        s3.put_bucket_versioning()
            .bucket(name)
            .versioning_configuration(
                VersioningConfiguration::builder().status(BucketVersioningStatus::from(status)).build(),
            )
            .send()
            .await
            .map_err(sdk_err)
            .context("PutBucketVersioning")?;
    }
    Ok(())
}

async fn empty_bucket(clients: &Clients, name: &str) -> Result<()> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let s3 = &clients.s3;
    loop {
        let page = match s3.list_objects_v2().bucket(name).send().await {
            Ok(p) => p,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => return Ok(()),
            Err(e) => return Err(sdk_err(e)),
        };
        let ids: Vec<ObjectIdentifier> = page
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            return Ok(());
        }
        s3.delete_objects()
            .bucket(name)
            .delete(Delete::builder().set_objects(Some(ids)).quiet(true).build()?)
            .send()
            .await
            .map_err(sdk_err)?;
    }
}

// ------------------------------------------------------------------ Secrets Manager

/// Creates the secret (value from `SecretString`, or generated like CloudFormation's
/// `GenerateSecretString` via GetRandomPassword) unless it exists; an existing value is
/// kept, so hashes computed with it stay valid. Returns the ARN.
async fn ensure_secret(clients: &Clients, name: &str, props: &Map<String, J>) -> Result<String> {
    let sm = &clients.secrets;
    let value = match (prop_str(props, "SecretString"), props.get("GenerateSecretString").and_then(J::as_object)) {
        (Some(s), _) => s.to_owned(),
        (None, generate) => {
            let g = generate.cloned().unwrap_or_default();
            let mut req = sm.get_random_password().password_length(prop_i64(&g, "PasswordLength")?.unwrap_or(32));
            if let Some(x) = prop_str(&g, "ExcludeCharacters") {
                req = req.exclude_characters(x);
            }
            for (key, set) in [
                ("ExcludeLowercase", 0),
                ("ExcludeNumbers", 1),
                ("ExcludePunctuation", 2),
                ("ExcludeUppercase", 3),
                ("IncludeSpace", 4),
                ("RequireEachIncludedType", 5),
            ] {
                if g.contains_key(key) {
                    let b = prop_bool(&g, key);
                    req = match set {
                        0 => req.exclude_lowercase(b),
                        1 => req.exclude_numbers(b),
                        2 => req.exclude_punctuation(b),
                        3 => req.exclude_uppercase(b),
                        4 => req.include_space(b),
                        _ => req.require_each_included_type(b),
                    };
                }
            }
            let password = req
                .send()
                .await
                .map_err(sdk_err)
                .context("GetRandomPassword")?
                .random_password()
                .ok_or_else(|| anyhow!("GetRandomPassword returned nothing"))?
                .to_owned();
            match (prop_str(&g, "SecretStringTemplate"), prop_str(&g, "GenerateStringKey")) {
                (Some(template), Some(key)) => {
                    let mut doc: Map<String, J> =
                        serde_json::from_str(template).context("SecretStringTemplate is not a JSON object")?;
                    doc.insert(key.to_owned(), J::String(password));
                    serde_json::to_string(&doc)?
                }
                _ => password,
            }
        }
    };
    let mut req = sm.create_secret().name(name).secret_string(value);
    if let Some(d) = prop_str(props, "Description") {
        req = req.description(d);
    }
    match req.send().await {
        Ok(r) => Ok(r.arn().ok_or_else(|| anyhow!("CreateSecret returned no ARN"))?.to_owned()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_exists_exception()) => {
            let d = sm.describe_secret().secret_id(name).send().await.map_err(sdk_err)?;
            Ok(d.arn().ok_or_else(|| anyhow!("DescribeSecret returned no ARN"))?.to_owned())
        }
        Err(e) => Err(sdk_err(e)),
    }
}

// ------------------------------------------------------------------ tests

#[cfg(test)]
mod tests {
    use super::*;

    const PROVIDERS: [&str; 8] =
        ["SANDBOX", "TWILIO", "VONAGE_SMS", "VONAGE_MESSAGES", "TELNYX", "BANDWIDTH", "PLIVO", "SINCH"];
    const CAMEL: [&str; 8] = ["Sandbox", "Twilio", "VonageSms", "VonageMessages", "Telnyx", "Bandwidth", "Plivo", "Sinch"];

    fn template() -> Template {
        Template::load(&template_path()).expect("infra/template.yaml parses")
    }

    fn expected_env_keys() -> Vec<String> {
        let mut keys: Vec<String> = [
            "TABLE_NAME",
            "MEDIA_BUCKET",
            "ROUTE_QUEUE_URL",
            "TENANT_CALLBACK_QUEUE_URL",
            "ENABLED_PROVIDERS",
            "WEBHOOK_BASE_URL",
            "METRICS_NAMESPACE",
            "AUDIT_HASH_KEY_SECRET_ID",
        ]
        .map(String::from)
        .into();
        for p in PROVIDERS {
            keys.push(format!("SEND_QUEUE_URL_{p}"));
            keys.push(format!("SEND_PRIORITY_QUEUE_URL_{p}"));
        }
        keys.sort();
        keys
    }

    /// The logical id a queue's RedrivePolicy points at, read from the raw template.
    fn dlq_of(t: &Template, queue: &str) -> Option<String> {
        let target = t.resources[queue].props.get("RedrivePolicy")?.get("deadLetterTargetArn")?;
        let (id, attr) = getatt_parts(target.get("Fn::GetAtt")?).ok()?;
        assert_eq!(attr, "Arn");
        Some(id)
    }

    #[test]
    fn template_declares_expected_resources_and_env() {
        let t = template();
        let count = |kind| t.of_type(kind).count();
        assert_eq!(count(TABLE), 1);
        assert_eq!(count(BUCKET), 1);
        assert_eq!(count(QUEUE), 2 + 2 + 2 + 8 * 3);
        assert_eq!(count(SECRET), 1);
        assert_eq!(count(SAM_FUNCTION), 3 + 8 + 1 + 1);

        let mut keys: Vec<String> = t.globals_env.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, expected_env_keys());

        // Short tags arrive in long form.
        assert_eq!(t.globals_env["TABLE_NAME"], serde_json::json!({"Ref": "MessagesTable"}));
        assert_eq!(
            t.resources["RouteQueue"].props["RedrivePolicy"]["deadLetterTargetArn"],
            serde_json::json!({"Fn::GetAtt": ["RouteDLQ", "Arn"]})
        );
        // Every work queue redrives to an existing DLQ; DLQs redrive nowhere.
        assert_eq!(dlq_of(&t, "RouteQueue").as_deref(), Some("RouteDLQ"));
        assert_eq!(dlq_of(&t, "TenantCallbackQueue").as_deref(), Some("TenantCallbackDLQ"));
        assert_eq!(dlq_of(&t, "InboundMediaQueue").as_deref(), Some("InboundMediaDLQ"));
        for c in CAMEL {
            assert_eq!(dlq_of(&t, &format!("SendQueue{c}")), Some(format!("SendDLQ{c}")));
            assert_eq!(dlq_of(&t, &format!("SendPriorityQueue{c}")), Some(format!("SendDLQ{c}")));
            assert_eq!(dlq_of(&t, &format!("SendDLQ{c}")), None);
        }
    }

    /// Resolution without an emulator: fake physical names stand in for provisioning.
    #[test]
    fn resolves_env_and_functions_offline() {
        let t = template();
        let overrides = BTreeMap::from([("EnabledProviders".to_owned(), "sandbox,twilio".to_owned())]);
        let mut ctx = Ctx::new(&t, &overrides, "p", "us-east-1").unwrap();
        for (id, r) in &t.resources {
            match r.kind.as_str() {
                QUEUE => {
                    ctx.set_ref(id, &format!("http://q/{id}"));
                    ctx.set_attr(id, "Arn", &format!("arn:aws:sqs:us-east-1:000000000000:p-{id}"));
                }
                TABLE | BUCKET | SECRET => ctx.set_ref(id, &format!("p-{id}")),
                _ => {}
            }
        }
        let env = ctx.globals_env().unwrap();
        assert_eq!(env.keys().cloned().collect::<Vec<_>>(), expected_env_keys());
        assert_eq!(env["TABLE_NAME"], "p-MessagesTable");
        assert_eq!(env["SEND_PRIORITY_QUEUE_URL_VONAGE_MESSAGES"], "http://q/SendPriorityQueueVonageMessages");
        assert_eq!(env["ENABLED_PROVIDERS"], "sandbox,twilio");
        assert_eq!(env["WEBHOOK_BASE_URL"], "");
        assert!(env["METRICS_NAMESPACE"].starts_with("dispatch/"), "{}", env["METRICS_NAMESPACE"]);

        let fns = ctx.functions().unwrap();
        let send = &fns["SendVonageSmsFunction"];
        assert_eq!(send.binary.as_deref(), Some("send"));
        assert_eq!(send.env["PROVIDER"], "vonage-sms");
        // The function URL exists only in AWS: left for the runner to supply.
        assert!(!send.env.contains_key("WEBHOOK_BASE_URL"));
        assert_eq!(send.sqs_queues, ["SendPriorityQueueVonageSms", "SendQueueVonageSms"]);
        let retry = &fns["RetryFunction"];
        assert_eq!(retry.schedules, ["rate(1 minute)"]);
        assert_eq!(retry.sqs_queues, ["TenantCallbackQueue"]);
        let callbacks = &retry.sqs_sources[0];
        assert_eq!((callbacks.batch_size, callbacks.batching_window_secs, callbacks.max_concurrency), (10, 0, Some(5)));
        assert_eq!(send.sqs_sources[0].max_concurrency, None);
        assert_eq!(retry.env["SEND_DLQ_URL_TWILIO"], "http://q/SendDLQTwilio");
        assert!(fns["WebhookFunction"].function_url);
        assert_eq!(fns["WebhookFunction"].env["INBOUND_MEDIA_QUEUE_URL"], "http://q/InboundMediaQueue");
        let media = &fns["InboundMediaFunction"];
        assert_eq!((media.binary.as_deref(), media.timeout_secs), (Some("inbound-media"), 120));
        let job = &media.sqs_sources[0];
        assert_eq!((job.queue.as_str(), job.batch_size, job.max_concurrency), ("InboundMediaQueue", 1, Some(10)));
        assert_eq!(retry.env["INBOUND_MEDIA_DLQ_URL"], "http://q/InboundMediaDLQ");
        assert!(fns["SubmitFunction"].http_routes.contains(&("POST".to_owned(), "/v1/messages".to_owned())));
        assert_eq!(fns["RouteFunction"].sqs_queues, ["RouteQueue"]);

        // With the parameter set, send functions get it instead of the function URL.
        let overrides = BTreeMap::from([("WebhookBaseUrl".to_owned(), "https://hooks.example".to_owned())]);
        let mut ctx2 = Ctx::new(&t, &overrides, "p", "us-east-1").unwrap();
        ctx2.refs = ctx.refs.clone();
        ctx2.attrs = ctx.attrs.clone();
        assert_eq!(ctx2.functions().unwrap()["SendTwilioFunction"].env["WEBHOOK_BASE_URL"], "https://hooks.example");

        assert!(Ctx::new(&t, &BTreeMap::from([("Nope".to_owned(), String::new())]), "p", "us-east-1").is_err());
    }

    /// Lambda refuses a function whose environment (keys and values) passes 4 KB.
    /// Resolved with names as long as CloudFormation generates them for the default
    /// stack name (`<stack>-<LogicalId>-<12 random>`), in a long region.
    #[test]
    fn every_function_environment_fits_lambdas_4_kb_limit() {
        let t = template();
        let mut ctx = Ctx::new(&t, &BTreeMap::new(), "sms-dispatch", "ap-southeast-2").unwrap();
        for (id, r) in &t.resources {
            let name = format!("sms-dispatch-{id}-A1B2C3D4E5F6");
            match r.kind.as_str() {
                QUEUE => {
                    ctx.set_ref(id, &format!("https://sqs.ap-southeast-2.amazonaws.com/123456789012/{name}"));
                    ctx.set_attr(id, "Arn", &format!("arn:aws:sqs:ap-southeast-2:123456789012:{name}"));
                    ctx.set_attr(id, "QueueName", &name);
                }
                SECRET => ctx.set_ref(id, &format!("arn:aws:secretsmanager:ap-southeast-2:123456789012:secret:{id}-AbCdEf")),
                TABLE | BUCKET => ctx.set_ref(id, &name.to_lowercase()),
                _ => {}
            }
        }
        let globals = ctx.globals_env().unwrap();
        let function_url = "https://abcdefghijklmnopqrstuvwxyz234567.lambda-url.ap-southeast-2.on.aws/";
        for (id, f) in ctx.functions().unwrap() {
            let mut env = globals.clone();
            env.extend(f.env.clone());
            env.entry("WEBHOOK_BASE_URL".into()).or_default();
            if env["WEBHOOK_BASE_URL"].is_empty() && id.starts_with("Send") {
                env.insert("WEBHOOK_BASE_URL".into(), function_url.into());
            }
            let size: usize = env.iter().map(|(k, v)| k.len() + v.len()).sum();
            assert!(size <= 4096, "{id}: {size} bytes of environment (Lambda allows 4096)");
        }
    }

    #[test]
    fn short_tags_and_sub() {
        let t = Template::parse(
            "Parameters:\n  Env:\n    Type: String\n    Default: dev\n\
             Conditions:\n  IsDev: !Equals [!Ref Env, dev]\n\
             Resources:\n  Q:\n    Type: AWS::SQS::Queue\n\
             Globals:\n  Function:\n    Environment:\n      Variables:\n\
             \x20       A: !Sub '${AWS::Region}-${Env}-${Q.Arn}-${!Literal}'\n\
             \x20       B: !Join [',', [!Ref Env, !GetAtt Q.QueueName]]\n\
             \x20       C: !If [IsDev, yes-dev, no]\n\
             \x20       D: !Select [1, !Split ['/', !Ref Q]]\n\
             \x20       E: 30\n",
        )
        .unwrap();
        let mut ctx = Ctx::new(&t, &BTreeMap::new(), "x", "eu-west-1").unwrap();
        ctx.set_ref("Q", "http/q1");
        ctx.set_attr("Q", "Arn", "arn:aws:sqs:eu-west-1:1:x-Q");
        ctx.set_attr("Q", "QueueName", "x-Q");
        let env = ctx.globals_env().unwrap();
        assert_eq!(env["A"], "eu-west-1-dev-arn:aws:sqs:eu-west-1:1:x-Q-${Literal}");
        assert_eq!(env["B"], "dev,x-Q");
        assert_eq!(env["C"], "yes-dev");
        assert_eq!(env["D"], "q1");
        assert_eq!(env["E"], "30");
        assert!(Template::parse("Resources:\n  Q:\n    Type: X\n    Properties:\n      A: !Bogus x\n").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(bucket_name("Dev-1", "MediaBucket").unwrap(), "dev-1-mediabucket");
        assert!(validate_prefix("ok-prefix1").is_ok());
        assert!(validate_prefix("").is_err());
        assert!(validate_prefix("bad/prefix").is_err());
        assert!(validate_prefix("-x").is_err());
    }

    /// The IAM statements of a function's inline policy documents.
    fn statements<'a>(t: &'a Template, id: &str) -> Vec<&'a Map<String, J>> {
        let policies = t.resources[id].props.get("Policies").and_then(J::as_array).expect("Policies list");
        policies
            .iter()
            .filter_map(|p| p.get("Statement").and_then(J::as_array))
            .flatten()
            .map(|s| s.as_object().expect("statement mapping"))
            .collect()
    }

    /// The SAM policy templates (e.g. `SQSSendMessagePolicy`) a function uses.
    fn policy_templates(t: &Template, id: &str) -> Vec<String> {
        let policies = t.resources[id].props.get("Policies").and_then(J::as_array).expect("Policies list");
        policies
            .iter()
            .filter_map(J::as_object)
            .filter(|p| !p.contains_key("Statement"))
            .flat_map(|p| p.keys().cloned())
            .collect()
    }

    fn list_of(v: Option<&J>) -> Vec<&J> {
        match v {
            Some(J::Array(a)) => a.iter().collect(),
            Some(v) => vec![v],
            None => vec![],
        }
    }

    fn actions(st: &Map<String, J>) -> Vec<String> {
        list_of(st.get("Action")).into_iter().map(|a| a.as_str().expect("action string").to_owned()).collect()
    }

    /// Resources as text: literal and `Fn::Sub` strings as written, `Ref:<id>`,
    /// `GetAtt:<id>.<attr>`.
    fn resources(st: &Map<String, J>) -> Vec<String> {
        list_of(st.get("Resource"))
            .into_iter()
            .map(|r| match r {
                J::String(s) => s.clone(),
                J::Object(o) if o.contains_key("Fn::Sub") => o["Fn::Sub"].as_str().expect("Fn::Sub string").to_owned(),
                J::Object(o) if o.contains_key("Ref") => format!("Ref:{}", o["Ref"].as_str().unwrap()),
                J::Object(o) if o.contains_key("Fn::GetAtt") => {
                    let (id, attr) = getatt_parts(&o["Fn::GetAtt"]).unwrap();
                    format!("GetAtt:{id}.{attr}")
                }
                other => panic!("unexpected resource {other}"),
            })
            .collect()
    }

    /// IAM wildcard matching: `*` any run of characters (`/` included), `?` one.
    fn iam_match(pattern: &str, s: &str) -> bool {
        fn go(p: &[u8], s: &[u8]) -> bool {
            match p.split_first() {
                None => s.is_empty(),
                Some((b'*', rest)) => (0..=s.len()).any(|i| go(rest, &s[i..])),
                Some((b'?', rest)) => !s.is_empty() && go(rest, &s[1..]),
                Some((c, rest)) => s.first() == Some(c) && go(rest, &s[1..]),
            }
        }
        go(pattern.as_bytes(), s.as_bytes())
    }

    /// Whether `actions` grants `action` (exactly, or through a `service:*` / `*` wildcard).
    fn grants(actions: &[String], action: &str) -> bool {
        actions.iter().any(|a| iam_match(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
    }

    /// Secret resources a function may read (`GetSecretValue`), as written.
    fn readable_secrets(t: &Template, id: &str) -> Vec<String> {
        let mut out: Vec<String> = statements(t, id)
            .into_iter()
            .filter(|st| grants(&actions(st), "secretsmanager:GetSecretValue"))
            .flat_map(resources)
            .collect();
        out.sort();
        out
    }

    /// Whether a function may read the secret named `name` (ARN with the random suffix
    /// Secrets Manager appends). `Ref:PlatformSecret` stands for itself only.
    fn can_read_secret(t: &Template, id: &str, name: &str) -> bool {
        let arn = format!("arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:{name}-AbCdEf");
        readable_secrets(t, id).iter().any(|r| iam_match(r, &arn))
    }

    /// The least-privilege rules of the template's IAM (security hardening): no
    /// whole-table CRUD, no Scan, deletes only where the code deletes, table access
    /// scoped by partition-key prefix, secrets by provider kind, callback secrets
    /// only for the function that signs tenant callbacks, no media writes from send
    /// or retry. A policy change that breaks one of these must be deliberate.
    #[test]
    fn template_iam_is_least_privilege() {
        let t = template();
        let functions: Vec<String> = t.of_type(SAM_FUNCTION).map(|(id, _)| id.clone()).collect();
        assert_eq!(functions.len(), 13);
        let kinds = ["sandbox", "twilio", "vonage-sms", "vonage-messages", "telnyx", "bandwidth", "plivo", "sinch"];
        for id in &functions {
            // SAM's DynamoDB policy templates all cover the whole table (CRUD includes
            // Scan and DeleteItem): item actions are granted explicitly instead.
            let templates = policy_templates(&t, id);
            assert!(!templates.iter().any(|p| p.starts_with("DynamoDB")), "{id} uses {templates:?}");

            for st in statements(&t, id) {
                assert_eq!(st.get("Effect").and_then(J::as_str), Some("Allow"), "{id}: {st:?}");
                let acts = actions(st);
                let ddb: Vec<&String> = acts.iter().filter(|a| a.to_ascii_lowercase().starts_with("dynamodb:")).collect();
                if ddb.is_empty() {
                    continue;
                }
                // No wildcards, no Scan (nothing scans), no batch writes (nothing batches:
                // they would bypass the per-item review here).
                for a in &ddb {
                    assert!(!a.contains('*'), "{id}: {a}");
                    assert!(!["dynamodb:Scan", "dynamodb:BatchWriteItem"].contains(&a.as_str()), "{id}: {a}");
                    if a.as_str() == "dynamodb:DeleteItem" {
                        // Only the webhook deletes: its own replay claims.
                        assert_eq!(id, "WebhookFunction", "{id} may delete items");
                    }
                }
                let res = resources(st);
                if res.iter().all(|r| r.starts_with("${MessagesTable.Arn}/index/")) {
                    // GSI queries: Query only, on named indexes.
                    assert_eq!(acts, ["dynamodb:Query"], "{id}: {st:?}");
                    assert!(res.iter().all(|r| !r.ends_with('*')), "{id}: {res:?}");
                    continue;
                }
                assert_eq!(res, ["GetAtt:MessagesTable.Arn"], "{id}: {st:?}");
                // Table items: limited to the partition-key prefixes the function uses.
                let keys: Vec<&str> = st
                    .get("Condition")
                    .and_then(|c| c.get("ForAllValues:StringLike"))
                    .and_then(|c| c.get("dynamodb:LeadingKeys"))
                    .and_then(J::as_array)
                    .unwrap_or_else(|| panic!("{id}: table statement without a LeadingKeys condition: {st:?}"))
                    .iter()
                    .map(|k| k.as_str().unwrap())
                    .collect();
                assert!(!keys.is_empty(), "{id}");
                for k in &keys {
                    let prefix = k.split('*').next().unwrap();
                    assert!(prefix.len() >= 3 && prefix.ends_with('#'), "{id}: LeadingKeys pattern {k} has no fixed prefix");
                }
                // The audit chain is append-only: no function edits or deletes its items.
                if keys.iter().any(|k| k.starts_with("AUDIT#")) {
                    for a in &ddb {
                        assert!(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"].contains(&a.as_str()), "{id}: {a} on audit items");
                    }
                }
            }
        }
        let deletes = |id: &str| statements(&t, id).iter().any(|st| grants(&actions(st), "dynamodb:DeleteItem"));
        assert!(deletes("WebhookFunction"), "the webhook releases replay claims");

        // Secrets: each send function reads its own provider kind's credentials only.
        let platform = "Ref:PlatformSecret".to_owned();
        let prefix = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:";
        let mut senders = 0;
        for id in &functions {
            let Some(kind) = t.resources[id].props.get("Environment").and_then(|e| e.pointer("/Variables/PROVIDER")).and_then(J::as_str)
            else {
                continue;
            };
            senders += 1;
            let mut want = vec![format!("{prefix}dispatch/*/{kind}/*"), platform.clone()];
            want.sort();
            assert_eq!(readable_secrets(&t, id), want, "{id}");
            for other in kinds {
                assert_eq!(can_read_secret(&t, id, &format!("dispatch/acme/{other}/main")), other == kind, "{id} reading {other}");
            }
        }
        assert_eq!(senders, kinds.len());
        // Provider credentials of every kind: webhook (verifies all providers' callbacks),
        // route (skips accounts without usable credentials), submit (route explain).
        for id in ["WebhookFunction", "RouteFunction", "SubmitFunction"] {
            for k in kinds {
                assert!(can_read_secret(&t, id, &format!("dispatch/acme/{k}/main")), "{id} reading {k}");
            }
        }
        // Tenant callback signing secrets: the retry function (which delivers tenant
        // callbacks) and nobody else; retry reads no provider credentials.
        for id in &functions {
            assert_eq!(can_read_secret(&t, id, "dispatch/acme/callback/main"), id == "RetryFunction", "{id} reading callback secrets");
            // Everything that audits needs the chain's hash key; the media job audits nothing.
            assert_eq!(readable_secrets(&t, id).contains(&platform), id != "InboundMediaFunction", "{id} and the audit hash key");
            assert!(!readable_secrets(&t, id).iter().any(|r| r.ends_with(":secret:dispatch/*") || r == "*"), "{id}");
        }
        for k in kinds {
            assert!(!can_read_secret(&t, "RetryFunction", &format!("dispatch/acme/{k}/main")), "retry reading {k}");
        }

        // Media: send only presigns GETs; retry never touches S3.
        for id in functions.iter().filter(|id| id.starts_with("Send") || id.as_str() == "RetryFunction") {
            for st in statements(&t, id) {
                assert!(!grants(&actions(st), "s3:PutObject"), "{id} may write media: {st:?}");
                assert!(!grants(&actions(st), "s3:DeleteObject"), "{id} may delete media: {st:?}");
            }
        }
        assert!(!statements(&t, "RetryFunction").iter().any(|st| actions(st).iter().any(|a| a.starts_with("s3:"))));
        // Inbound media: only the media job writes them, only under inbound/; the
        // webhook, which faces the internet, writes no objects at all.
        assert!(!statements(&t, "WebhookFunction").iter().any(|st| actions(st).iter().any(|a| a.starts_with("s3:"))));
        let media_writes: Vec<Vec<String>> =
            statements(&t, "InboundMediaFunction").into_iter().filter(|st| actions(st).iter().any(|a| a.starts_with("s3:"))).map(resources).collect();
        assert_eq!(media_writes, [["${MediaBucket.Arn}/inbound/*"]]);
        assert!(readable_secrets(&t, "InboundMediaFunction").is_empty(), "the media job reads no secrets");

        // A callback flood cannot starve sending: the webhook's and every send
        // function's concurrency is reserved (both can be switched off with 0).
        for id in functions.iter().filter(|id| id.starts_with("Send") || id.as_str() == "WebhookFunction") {
            assert!(t.resources[id].props.contains_key("ReservedConcurrentExecutions"), "{id}");
        }
        let ctx = Ctx::new(&t, &BTreeMap::new(), "p", "us-east-1").unwrap();
        assert!(ctx.condition("HasWebhookReservedConcurrency", 0).unwrap());
        assert!(ctx.condition("HasSendReservedConcurrency", 0).unwrap());
        let off = BTreeMap::from([("SendReservedConcurrency".to_owned(), "0".to_owned())]);
        assert!(!Ctx::new(&t, &off, "p", "us-east-1").unwrap().condition("HasSendReservedConcurrency", 0).unwrap());
        // HTTP API throttling on every route.
        let route_settings = t.resources["DispatchApi"].props.get("DefaultRouteSettings").expect("DefaultRouteSettings");
        assert!(route_settings.get("ThrottlingRateLimit").is_some());
        assert!(route_settings.get("ThrottlingBurstLimit").is_some());
    }

    fn random_prefix() -> String {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
        format!("t{:012x}", h.finish() & 0xffff_ffff_ffff)
    }

    /// Provisions the emulator at `AWS_ENDPOINT_URL` and checks the result through the
    /// SDK. Skipped (with a note) when no emulator endpoint is configured:
    /// `scripts/emulator.sh start && eval "$(scripts/emulator.sh env)"`.
    #[tokio::test]
    async fn provisions_emulator_from_template() {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") else {
            // Straight to stderr, not eprintln!: the test harness would swallow it.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED provision::tests::provisions_emulator_from_template: AWS_ENDPOINT_URL is not set. \
                 Run: scripts/emulator.sh start && eval \"$(scripts/emulator.sh env)\""
            );
            return;
        };
        eprintln!("provisioning against emulator at {endpoint}");
        let clients = Clients::from_env().await;
        let prefix = random_prefix();
        let overrides = BTreeMap::from([("EnabledProviders".to_owned(), "sandbox".to_owned())]);
        let p = provision(&clients, &template_path(), &prefix, &overrides).await.expect("provision");

        // Idempotent: a second run reuses everything and resolves the same values.
        let again = provision(&clients, &template_path(), &prefix, &overrides).await.expect("provision again");
        assert_eq!(p, again);

        // Table with both GSIs and TTL.
        let table = &p.physical["MessagesTable"];
        assert_eq!(table, &format!("{prefix}-MessagesTable"));
        let d = clients.dynamodb.describe_table().table_name(table).send().await.unwrap();
        let mut gsis: Vec<&str> =
            d.table().unwrap().global_secondary_indexes().iter().filter_map(|g| g.index_name()).collect();
        gsis.sort();
        assert_eq!(gsis, ["gsi1", "gsi2"]);
        let ttl = clients.dynamodb.describe_time_to_live().table_name(table).send().await.unwrap();
        let ttl = ttl.time_to_live_description().unwrap();
        assert_eq!(ttl.attribute_name(), Some("ttl"));
        assert_eq!(ttl.time_to_live_status().map(|s| s.as_str()), Some("ENABLED"));

        // Every work queue redrives to the right DLQ after 5 receives.
        let t = template();
        let mut checked = 0;
        for (id, _) in t.of_type(QUEUE) {
            let url = &p.physical[id];
            let attrs = clients
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(A::All)
                .send()
                .await
                .unwrap();
            let attrs = attrs.attributes().unwrap();
            assert_eq!(attrs.get(&A::QueueArn), Some(&p.queue_arns[id]), "{id} arn");
            // Six times the consuming function's timeout (the inbound-media job's is 120 s).
            let visibility = if id == "InboundMediaQueue" { "720" } else { "180" };
            assert_eq!(attrs.get(&A::VisibilityTimeout).map(String::as_str), Some(visibility), "{id}");
            let Some(dlq) = dlq_of(&t, id) else {
                assert_eq!(attrs.get(&A::MessageRetentionPeriod).map(String::as_str), Some("1209600"), "{id}");
                continue;
            };
            assert_eq!(attrs.get(&A::MessageRetentionPeriod).map(String::as_str), Some("345600"), "{id}");
            let rp: J = serde_json::from_str(attrs.get(&A::RedrivePolicy).expect("RedrivePolicy")).unwrap();
            assert_eq!(rp["deadLetterTargetArn"].as_str(), Some(p.queue_arns[&dlq].as_str()), "{id} → {dlq}");
            let max = scalar_string(&rp["maxReceiveCount"]).unwrap();
            assert_eq!(max, "5", "{id} maxReceiveCount");
            checked += 1;
        }
        assert_eq!(checked, 3 + 8 * 2);
        assert!(p.queue_arns["RouteQueue"].ends_with(&format!(":{prefix}-RouteQueue")));

        // Bucket and secret.
        let bucket = &p.physical["MediaBucket"];
        clients.s3.head_bucket().bucket(bucket).send().await.expect("bucket exists");
        let secret = clients.secrets.get_secret_value().secret_id(&p.physical["PlatformSecret"]).send().await.unwrap();
        let value = secret.secret_string().unwrap();
        assert_eq!(value.len(), 64);
        assert!(value.chars().all(|c| c.is_ascii_alphanumeric()), "ExcludePunctuation honoured");

        // Environment.
        assert_eq!(p.env.keys().cloned().collect::<Vec<_>>(), expected_env_keys());
        assert_eq!(p.env["TABLE_NAME"], *table);
        assert_eq!(p.env["MEDIA_BUCKET"], *bucket);
        assert_eq!(p.env["ROUTE_QUEUE_URL"], p.physical["RouteQueue"]);
        assert_eq!(p.env["AUDIT_HASH_KEY_SECRET_ID"], format!("{prefix}/PlatformSecret"));
        assert_eq!(p.env["ENABLED_PROVIDERS"], "sandbox");
        for (up, camel) in PROVIDERS.iter().zip(CAMEL) {
            assert_eq!(p.env[&format!("SEND_QUEUE_URL_{up}")], p.physical[&format!("SendQueue{camel}")]);
            assert_eq!(p.env[&format!("SEND_PRIORITY_QUEUE_URL_{up}")], p.physical[&format!("SendPriorityQueue{camel}")]);
            assert!(p.env[&format!("SEND_QUEUE_URL_{up}")].starts_with("http"));
        }
        assert_eq!(p.functions["RetryFunction"].env["ROUTE_DLQ_URL"], p.physical["RouteDLQ"]);

        teardown(&clients, &template_path(), &prefix).await.expect("teardown");
        assert!(clients.dynamodb.describe_table().table_name(table).send().await.is_err());
        assert!(clients.sqs.get_queue_url().queue_name(format!("{prefix}-RouteQueue")).send().await.is_err());
        // Teardown twice is fine.
        teardown(&clients, &template_path(), &prefix).await.expect("second teardown");
    }
}

//! The function manifest (`manifest.yaml`): parsing and validation, no I/O.
//!
//! ```yaml
//! name: hello                  # required; ^[a-z0-9][a-z0-9_-]{0,63}$; equals its directory name
//! runtime: wasm                # required; the only runtime
//! module: hello.wasm           # relative to the manifest; default build.output, else <name>.wasm
//! sha256: 3b7f...              # optional; the module must hash to it
//! entrypoint: handle           # exported function called; default handle
//! timeout: 5s                  # optional cap on each call
//! memory_limit: 32MiB          # linear-memory cap; default 64MiB
//! instance: reuse              # reuse (default) | fresh
//! wasi: false                  # WASI off by default
//! allowed_paths: {}            # WASI only: host dir -> guest dir ("ro:" prefix for read-only)
//! fuel: 100000000              # optional instruction budget per call
//! allowed_hosts: []            # outbound HTTP allow-list
//! max_http_response_bytes: 16MiB  # largest outbound HTTP response read
//! config: {greeting: hi}       # string map, read by the plugin as Extism config
//! build: {command: cargo, args: [...], watch: [...], output: target/.../hello.wasm}
//! hooks: [{type: http, method: GET, path: /hello/{name}}, ...]
//! ```
//!
//! Every error names the file, the field and the reason.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use crate::name;
use crate::units::{parse_duration, parse_size};

/// The manifest's file name inside a function's directory or prefix.
pub const MANIFEST_FILE: &str = "manifest.yaml";

const DEFAULT_ENTRYPOINT: &str = "handle";
const DEFAULT_MEMORY_LIMIT: u64 = 64 * 1024 * 1024;
const DEFAULT_MAX_HTTP_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
const MAX_MAX_HTTP_RESPONSE_BYTES: u64 = 1024 * 1024 * 1024;
const MIN_MEMORY_LIMIT: u64 = 1024 * 1024;
const MAX_MEMORY_LIMIT: u64 = 4 * 1024 * 1024 * 1024;
const MAX_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const HTTP_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "ANY",
];

/// A manifest that does not parse or validate: every problem found in it, each naming its field.
/// Shown on one line (`file: field: reason; field: reason`); [`ManifestError::lines`] gives one
/// line per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// Where the manifest came from (path or S3 URL).
    pub file: String,
    /// Never empty, in the order the fields are checked.
    pub problems: Vec<Problem>,
    /// What of the manifest can still be routed, when its name is valid: its hooks that
    /// validated, so that their requests and records are answered with this error rather than
    /// as unrouted (the function itself cannot serve).
    pub routable: Option<Box<Manifest>>,
}

/// One problem of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The offending field (`hooks[0].path`), or `manifest` for the document as a whole.
    pub field: String,
    pub reason: String,
}

impl ManifestError {
    /// One line per problem, each `file: field: reason`.
    pub fn lines(&self) -> Vec<String> {
        self.problems
            .iter()
            .map(|problem| format!("{}: {}: {}", self.file, problem.field, problem.reason))
            .collect()
    }
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        for (index, problem) in self.problems.iter().enumerate() {
            let separator = if index == 0 { ":" } else { ";" };
            write!(f, "{separator} {}: {}", problem.field, problem.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

/// How instances are kept between calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceMode {
    /// One warm instance is kept and reused; it is dropped after any error.
    #[default]
    Reuse,
    /// Every call gets a new instance.
    Fresh,
}

/// How the developer CLI builds the module.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// `command: cargo`
    pub command: String,
    /// `args: [build, --release, --target, wasm32-unknown-unknown]`
    #[serde(default)]
    pub args: Vec<String>,
    /// `watch: ["src/**/*.rs", Cargo.toml]`
    #[serde(default)]
    pub watch: Vec<String>,
    /// `output: target/wasm32-unknown-unknown/release/hello.wasm`
    pub output: Option<String>,
}

/// One value or a list of them (`method: GET` or `method: [GET, POST]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(value) => vec![value.clone()],
            OneOrMany::Many(values) => values.clone(),
        }
    }
}

/// What triggers a function. Any hook may name its own `entrypoint`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Hook {
    /// `{type: http, method: GET, path: /hello/{name}}`: API Gateway v1/v2, Function URL, ALB.
    Http(HttpHook),
    /// `{type: database, source: users, action: insert}`: DynamoDB Streams.
    Database(DatabaseHook),
    /// `{type: s3, bucket: uploads, prefix: in/, suffix: .png, events: ["ObjectCreated:*"]}`
    S3(S3Hook),
    /// `{type: sqs, queue: jobs}`
    Sqs(SqsHook),
    /// `{type: sns, topic: alerts}`
    Sns(SnsHook),
    /// `{type: stream, stream: clicks}`: Kinesis.
    Stream(StreamHook),
    /// `{type: schedule, rule: nightly}`: an EventBridge schedule rule.
    Schedule(ScheduleHook),
    /// `{type: event, source: com.example.orders, detail_type: OrderPlaced}`: EventBridge.
    Event(EventHook),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpHook {
    /// `GET`, `[GET, POST]` or `ANY`; default `ANY`.
    pub method: Option<OneOrMany>,
    /// `/hello/{name}`, `/files/{rest+}`
    pub path: String,
    pub entrypoint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseHook {
    /// The table name.
    pub source: String,
    /// `insert`, `update`, `delete` or a list; default all three.
    pub action: Option<OneOrMany>,
    pub entrypoint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Hook {
    pub bucket: String,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    /// Event-name globs such as `ObjectCreated:*` (an `s3:` prefix, as S3 writes them, is
    /// allowed); default every event.
    pub events: Option<Vec<String>>,
    pub entrypoint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventHook {
    pub source: String,
    pub detail_type: Option<String>,
    pub entrypoint: Option<String>,
}

/// Declares a hook type that names one resource in the field `$field`.
macro_rules! named_hook {
    ($(#[$doc:meta])* $type:ident, $field:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $type {
            pub $field: String,
            pub entrypoint: Option<String>,
        }
    };
}

named_hook!(
    /// An SQS queue, by name.
    SqsHook, queue
);
named_hook!(
    /// An SNS topic, by name.
    SnsHook, topic
);
named_hook!(
    /// A Kinesis stream, by name.
    StreamHook, stream
);
named_hook!(
    /// An EventBridge schedule rule, by name.
    ScheduleHook, rule
);

impl Hook {
    /// The hook type as written (`http`, `database`, ...), which is also the `trigger` a
    /// function receives.
    pub fn kind(&self) -> &'static str {
        match self {
            Hook::Http(_) => "http",
            Hook::Database(_) => "database",
            Hook::S3(_) => "s3",
            Hook::Sqs(_) => "sqs",
            Hook::Sns(_) => "sns",
            Hook::Stream(_) => "stream",
            Hook::Schedule(_) => "schedule",
            Hook::Event(_) => "event",
        }
    }

    /// The resource a record hook names: bucket, queue, topic, table, stream, rule or event
    /// source; `None` for HTTP.
    pub fn resource(&self) -> Option<&str> {
        Some(match self {
            Hook::Http(_) => return None,
            Hook::Database(h) => &h.source,
            Hook::S3(h) => &h.bucket,
            Hook::Sqs(h) => &h.queue,
            Hook::Sns(h) => &h.topic,
            Hook::Stream(h) => &h.stream,
            Hook::Schedule(h) => &h.rule,
            Hook::Event(h) => &h.source,
        })
    }

    /// The hook's own entrypoint, if it overrides the manifest's.
    pub fn entrypoint(&self) -> Option<&str> {
        match self {
            Hook::Http(h) => h.entrypoint.as_deref(),
            Hook::Database(h) => h.entrypoint.as_deref(),
            Hook::S3(h) => h.entrypoint.as_deref(),
            Hook::Sqs(h) => h.entrypoint.as_deref(),
            Hook::Sns(h) => h.entrypoint.as_deref(),
            Hook::Stream(h) => h.entrypoint.as_deref(),
            Hook::Schedule(h) => h.entrypoint.as_deref(),
            Hook::Event(h) => h.entrypoint.as_deref(),
        }
    }
}

impl std::fmt::Display for Hook {
    /// What the hook matches: `GET /hello/{name}`, `queue jobs`, `table users, insert`, ...
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |values: &Option<OneOrMany>, all: &str| {
            values
                .as_ref()
                .map(|v| v.to_vec().join(","))
                .unwrap_or_else(|| all.to_string())
        };
        match self {
            Hook::Http(h) => write!(f, "{} {}", list(&h.method, "ANY"), h.path),
            Hook::Database(h) => write!(f, "table {}, {}", h.source, list(&h.action, "any action")),
            Hook::S3(h) => {
                write!(f, "bucket {}", h.bucket)?;
                if let Some(prefix) = &h.prefix {
                    write!(f, ", prefix {prefix}")?;
                }
                if let Some(suffix) = &h.suffix {
                    write!(f, ", suffix {suffix}")?;
                }
                match &h.events {
                    Some(events) => write!(f, ", {}", events.join(",")),
                    None => write!(f, ", any event"),
                }
            }
            Hook::Sqs(h) => write!(f, "queue {}", h.queue),
            Hook::Sns(h) => write!(f, "topic {}", h.topic),
            Hook::Stream(h) => write!(f, "stream {}", h.stream),
            Hook::Schedule(h) => write!(f, "rule {}", h.rule),
            Hook::Event(h) => match &h.detail_type {
                Some(detail_type) => write!(f, "source {}, {detail_type}", h.source),
                None => write!(f, "source {}", h.source),
            },
        }
    }
}

/// The manifest's fields, as written.
const FIELDS: &[&str] = &[
    "name",
    "runtime",
    "module",
    "sha256",
    "entrypoint",
    "timeout",
    "memory_limit",
    "instance",
    "wasi",
    "allowed_paths",
    "fuel",
    "allowed_hosts",
    "max_http_response_bytes",
    "config",
    "build",
    "hooks",
    "grants",
    "callers",
];

/// A validated manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    /// The module's path relative to the manifest.
    pub module: String,
    /// Lowercase hex SHA-256 the module must hash to.
    pub sha256: Option<String>,
    pub entrypoint: String,
    pub timeout: Option<Duration>,
    pub memory_limit: u64,
    pub instance: InstanceMode,
    pub wasi: bool,
    pub allowed_paths: BTreeMap<String, String>,
    pub fuel: Option<u64>,
    pub allowed_hosts: Vec<String>,
    /// The largest outbound HTTP response body a call may read.
    pub max_http_response_bytes: u64,
    pub config: BTreeMap<String, String>,
    pub build: Option<Build>,
    pub hooks: Vec<Hook>,
    /// What the function may do on AWS through the host (none by default).
    pub grants: Grants,
    /// The functions that may invoke this one in process (`function.invoke`); none by default.
    pub callers: Vec<String>,
}

/// What a function may reach through the host's capabilities, by the logical names hooks use.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// `- {bucket: uploads, prefix: incoming/, access: read}`
    #[serde(default)]
    pub s3: Vec<S3Grant>,
    /// Key-value namespaces.
    #[serde(default)]
    pub kv: Vec<String>,
    /// SQS queues it may send to.
    #[serde(default)]
    pub queues: Vec<String>,
    /// SNS topics it may publish to.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Secrets Manager secrets, and SSM parameters (names starting with `/`), by name or glob
    /// (`/app/*`); read only.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Other functions of the store it may invoke.
    #[serde(default)]
    pub functions: Vec<String>,
}

/// Access to the objects of one bucket under one key prefix.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Grant {
    pub bucket: String,
    /// Keys starting with it; empty: the whole bucket.
    #[serde(default)]
    pub prefix: String,
    pub access: Access,
}

/// What an S3 grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// get, head, list
    Read,
    /// put, delete
    Write,
    ReadWrite,
}

impl Access {
    pub fn reads(self) -> bool {
        matches!(self, Access::Read | Access::ReadWrite)
    }

    pub fn writes(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }
}

impl Grants {
    pub fn is_empty(&self) -> bool {
        self.s3.is_empty()
            && self.kv.is_empty()
            && self.queues.is_empty()
            && self.topics.is_empty()
            && self.secrets.is_empty()
            && self.functions.is_empty()
    }
}

/// How many secret names or globs one manifest may grant (each is matched on every read).
const MAX_SECRET_GRANTS: usize = 100;

/// A logical resource name: what a bucket, queue, topic or namespace is called in hooks and grants.
fn check_resource_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a resource name (letters, digits, `-`, `_`, `.`)"
        ))
    }
}

/// An S3 key prefix a grant may name: no `.`/`..` segment, no leading `/`, no control characters.
fn check_key_prefix(prefix: &str) -> Result<(), String> {
    if prefix.starts_with('/')
        || prefix.contains(['\\', '*', '?', '$'])
        || prefix.chars().any(char::is_control)
        || prefix
            .split('/')
            .any(|segment| segment == "." || segment == "..")
    {
        return Err(format!(
            "`{prefix}` is not a key prefix (no leading `/`, no `.` or `..` segments, no `\\`, `*`, `?` or `$`, which IAM would read as wildcards)"
        ));
    }
    Ok(())
}

fn check_grants(grants: &Grants, problems: &mut Problems) {
    for (index, grant) in grants.s3.iter().enumerate() {
        problems.check(
            format!("grants.s3[{index}].bucket"),
            check_resource_name(&grant.bucket),
        );
        problems.check(
            format!("grants.s3[{index}].prefix"),
            check_key_prefix(&grant.prefix),
        );
    }
    for (field, names) in [
        ("kv", &grants.kv),
        ("queues", &grants.queues),
        ("topics", &grants.topics),
    ] {
        for (index, name) in names.iter().enumerate() {
            problems.check(
                format!("grants.{field}[{index}]"),
                check_resource_name(name),
            );
        }
    }
    if grants.secrets.len() > MAX_SECRET_GRANTS {
        problems.add(
            "grants.secrets",
            format!("at most {MAX_SECRET_GRANTS} names or globs"),
        );
    }
    for (index, pattern) in grants.secrets.iter().enumerate() {
        let valid = !pattern.is_empty()
            && pattern.len() <= 2048
            && pattern
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-*".contains(c))
            && globset::Glob::new(pattern).is_ok();
        if !valid {
            problems.add(
                format!("grants.secrets[{index}]"),
                format!(
                    "`{pattern}` is not a secret name or glob (letters, digits, `/_+=.@-`, `*`)"
                ),
            );
        }
    }
    for (index, function) in grants.functions.iter().enumerate() {
        problems.check(format!("grants.functions[{index}]"), name::check(function));
    }
}

/// Turns a hook path (`/files/{rest+}`) into `matchit` syntax (`/files/{*rest}`), or says why not.
pub fn route_pattern(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` must start with `/`"));
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let mut pattern = String::new();
    for (index, segment) in segments.iter().enumerate() {
        let last = index + 1 == segments.len();
        pattern.push('/');
        if let Some(inner) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let (param, greedy) = match inner.strip_suffix('+') {
                Some(param) => (param, true),
                None => (inner, false),
            };
            if param.is_empty()
                || !param
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!("`{path}`: `{{{inner}}}` is not a valid parameter"));
            }
            if greedy && !last {
                return Err(format!(
                    "`{path}`: greedy parameter `{{{inner}}}` must be the last segment"
                ));
            }
            pattern.push_str(&if greedy {
                format!("{{*{param}}}")
            } else {
                format!("{{{param}}}")
            });
        } else if segment.contains(['{', '}']) {
            return Err(format!(
                "`{path}`: segment `{segment}` mixes text and a parameter; a parameter is a whole segment"
            ));
        } else if segment.contains(['?', '#', ' ']) {
            return Err(format!(
                "`{path}`: segment `{segment}` has `?`, `#` or a space"
            ));
        } else {
            pattern.push_str(segment);
        }
    }
    // A pattern must be insertable into a router on its own.
    matchit::Router::new()
        .insert(pattern.clone(), ())
        .map_err(|error| format!("`{path}`: {error}"))?;
    Ok(pattern)
}

/// The rules a route path must also follow for `validate` and `publish`: no empty segment (no
/// request path reaches it), no `.` or `..` segment (clients resolve them before sending), each
/// parameter named once. (The runtime serves what an earlier release published without them.)
fn check_route_segments(path: &str) -> Result<(), String> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut params: Vec<&str> = Vec::new();
    for (index, segment) in segments.iter().enumerate() {
        if segment.is_empty() && index + 1 != segments.len() {
            return Err(format!(
                "`{path}` has an empty segment (`//`), which no request path reaches"
            ));
        }
        if matches!(*segment, "." | "..") {
            return Err(format!(
                "`{path}` has a `{segment}` segment, which clients resolve before sending"
            ));
        }
        if let Some(inner) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let param = inner.strip_suffix('+').unwrap_or(inner);
            if params.contains(&param) {
                return Err(format!(
                    "`{path}`: parameter `{param}` appears twice; each parameter needs its own name"
                ));
            }
            params.push(param);
        }
    }
    Ok(())
}

/// Which rules a manifest is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// Every rule: what `validate` and `publish` apply.
    All,
    /// What the runtime applies to a stored manifest: the rules every release has had, so that a
    /// manifest published before a rule was added keeps serving after an upgrade.
    Serving,
}

/// A YAML number or boolean as the text it was written as; anything else as it is.
fn scalar_as_text(value: Value) -> Value {
    match value {
        Value::Number(number) => Value::String(number.to_string()),
        Value::Bool(boolean) => Value::String(boolean.to_string()),
        other => other,
    }
}

/// [`scalar_as_text`] throughout a value, keys included.
fn scalars_as_text(value: Value) -> Value {
    match value {
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(scalars_as_text).collect()),
        Value::Mapping(mapping) => Value::Mapping(
            mapping
                .into_iter()
                .map(|(key, value)| (scalar_as_text(key), scalars_as_text(value)))
                .collect(),
        ),
        Value::Tagged(tagged) => scalars_as_text(tagged.value),
        other => scalar_as_text(other),
    }
}

/// The problems found so far in one manifest.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            reason: reason.into(),
        });
    }

    /// Records the error of a check of `field`, if any.
    fn check(&mut self, field: impl Into<String>, result: Result<(), String>) {
        if let Err(reason) = result {
            self.add(field, reason);
        }
    }

    /// Takes `field` out of the document and deserializes it, recording why when it does not fit.
    fn take<T: DeserializeOwned>(&mut self, document: &mut Mapping, field: &str) -> Option<T> {
        let value = document.remove(field)?;
        self.deserialize(value, field)
    }

    /// Like [`Problems::take`], for a field that must be there.
    fn require<T: DeserializeOwned>(&mut self, document: &mut Mapping, field: &str) -> Option<T> {
        match document.get(field) {
            None => {
                self.add(field, format!("missing field `{field}`"));
                return None;
            }
            Some(Value::Null) => {
                self.add(field, "must have a value");
                document.remove(field);
                return None;
            }
            Some(_) => {}
        }
        self.take(document, field)
    }

    fn deserialize<T: DeserializeOwned>(&mut self, value: Value, field: &str) -> Option<T> {
        match serde_yaml::from_value(value) {
            Ok(value) => Some(value),
            Err(error) => {
                let reason = error.to_string();
                // serde names an unknown or missing field, or a hook's unknown type, only in its
                // message: make it part of the field.
                let named = ["unknown field `", "missing field `"]
                    .iter()
                    .find_map(|lead| reason.strip_prefix(lead))
                    .and_then(|rest| rest.split_once('`'))
                    .map(|(name, _)| name.to_string())
                    .or_else(|| {
                        (field.starts_with("hooks[") && reason.starts_with("unknown variant `"))
                            .then(|| "type".to_string())
                    });
                let field = match named {
                    Some(name) => format!("{field}.{name}"),
                    None => field.to_string(),
                };
                self.add(field, reason);
                None
            }
        }
    }
}

impl Manifest {
    /// Parses and validates `text`, read from `file`. `directory_name` is the name of the
    /// directory (or key prefix) the manifest was found in, which the manifest's `name` must equal.
    /// Every problem of the manifest is reported, not only the first. Applies every rule, as
    /// `validate` and `publish` do.
    pub fn parse(
        text: &str,
        file: &str,
        directory_name: Option<&str>,
    ) -> Result<Manifest, ManifestError> {
        Manifest::parse_with(text, file, directory_name, Rules::All)
    }

    /// Parses under `rules`: [`Rules::Serving`] is what the runtime applies to a manifest in its
    /// store, which must keep serving what an earlier release published.
    pub fn parse_with(
        text: &str,
        file: &str,
        directory_name: Option<&str>,
        rules: Rules,
    ) -> Result<Manifest, ManifestError> {
        let mut problems = Problems::default();
        let whole = |reason: String| ManifestError {
            file: file.to_string(),
            problems: vec![Problem {
                field: "manifest".to_string(),
                reason,
            }],
            routable: None,
        };
        let document = match serde_yaml::from_str::<Value>(text) {
            Ok(Value::Mapping(document)) => document,
            Ok(Value::Null) => Mapping::new(),
            Ok(_) => {
                return Err(whole(
                    "must be a mapping of fields (`name: ...`, `runtime: wasm`, ...)".to_string(),
                ));
            }
            Err(error) => return Err(whole(error.to_string())),
        };
        // A YAML scalar reads as text wherever text is expected (`memory_limit: 1048576`,
        // `args: [-j, 4]`, a config key `1`), as serde did reading the text into strings.
        let document: Mapping = document
            .into_iter()
            .map(|(key, value)| {
                let value = match key.as_str() {
                    Some("fuel" | "wasi") => value,
                    Some("config") => match value {
                        Value::Mapping(config) => Value::Mapping(
                            config
                                .into_iter()
                                .map(|(key, value)| (scalar_as_text(key), value))
                                .collect(),
                        ),
                        other => other,
                    },
                    _ => scalars_as_text(value),
                };
                (key, value)
            })
            .collect();
        let mut document = document;
        for key in document.keys() {
            match key.as_str() {
                Some(key) if FIELDS.contains(&key) => {}
                Some(key) => problems.add(
                    key,
                    format!(
                        "unknown field `{key}`, expected one of {}",
                        FIELDS
                            .iter()
                            .map(|field| format!("`{field}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                None => problems.add("manifest", format!("`{key:?}` is not a field name")),
            }
        }

        let name: Option<String> = problems.require(&mut document, "name");
        if let Some(name) = &name {
            if let Err(reason) = name::check(name) {
                problems.add("name", reason);
            } else if let Some(directory) = directory_name
                && directory != name
            {
                problems.add(
                    "name",
                    format!("`{name}` must equal its directory name `{directory}`"),
                );
            }
        }
        let name = name.unwrap_or_default();

        let runtime: Option<String> = problems.require(&mut document, "runtime");
        match runtime.as_deref() {
            None | Some("wasm") => {}
            Some(other @ ("node" | "nodejs" | "python" | "go" | "java" | "ruby" | "dotnet")) => {
                problems.add(
                    "runtime",
                    format!(
                        "`{other}` is not supported: only `wasm` runs here; compile the function to \
                         WebAssembly with an Extism PDK"
                    ),
                )
            }
            Some(other) => problems.add(
                "runtime",
                format!("`{other}` is not supported: the only runtime is `wasm`"),
            ),
        }

        let build: Option<Build> = problems
            .take::<Option<Build>>(&mut document, "build")
            .flatten();
        if let Some(build) = &build {
            if build.command.trim().is_empty() {
                problems.add("build.command", "must not be empty");
            }
            if let Some(output) = &build.output {
                problems.check("build.output", check_relative_path(output));
            }
        }
        let written_module: Option<String> = problems
            .take::<Option<String>>(&mut document, "module")
            .flatten();
        let module = match (
            &written_module,
            build.as_ref().and_then(|b| b.output.clone()),
        ) {
            (Some(module), _) => {
                problems.check("module", check_relative_path(module));
                module.clone()
            }
            (None, Some(output)) => output,
            (None, None) => format!("{name}.wasm"),
        };

        let sha256 = problems
            .take::<Option<String>>(&mut document, "sha256")
            .flatten()
            .map(|digest| digest.to_ascii_lowercase());
        if let Some(digest) = &sha256
            && (digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            problems.add(
                "sha256",
                format!("`{digest}` is not a SHA-256 digest (64 hex digits)"),
            );
        }

        let entrypoint = problems
            .take::<Option<String>>(&mut document, "entrypoint")
            .flatten()
            .unwrap_or_else(|| DEFAULT_ENTRYPOINT.to_string());
        problems.check("entrypoint", check_entrypoint(&entrypoint));

        let timeout = problems
            .take::<Option<String>>(&mut document, "timeout")
            .flatten()
            .and_then(|text| match parse_duration(&text) {
                Err(reason) => {
                    problems.add("timeout", format!("`{text}`: {reason}"));
                    None
                }
                Ok(timeout) if timeout.is_zero() || timeout > MAX_TIMEOUT => {
                    problems.add(
                        "timeout",
                        format!("`{text}` must be more than 0 and at most 15m"),
                    );
                    None
                }
                Ok(timeout) => Some(timeout),
            });

        let memory_limit = problems
            .take::<Option<String>>(&mut document, "memory_limit")
            .flatten()
            .map_or(DEFAULT_MEMORY_LIMIT, |text| match parse_size(&text) {
                Err(reason) => {
                    problems.add("memory_limit", format!("`{text}`: {reason}"));
                    DEFAULT_MEMORY_LIMIT
                }
                Ok(limit) if !(MIN_MEMORY_LIMIT..=MAX_MEMORY_LIMIT).contains(&limit) => {
                    problems.add(
                        "memory_limit",
                        format!("`{text}` must be between 1MiB and 4GiB"),
                    );
                    DEFAULT_MEMORY_LIMIT
                }
                Ok(limit) => limit,
            });

        let instance: InstanceMode = problems.take(&mut document, "instance").unwrap_or_default();
        let wasi: bool = problems.take(&mut document, "wasi").unwrap_or_default();
        let allowed_paths: BTreeMap<String, String> = problems
            .take(&mut document, "allowed_paths")
            .unwrap_or_default();
        if !wasi && !allowed_paths.is_empty() {
            problems.add(
                "allowed_paths",
                "grants directories to WASI, so it needs `wasi: true`",
            );
        }
        for (host, guest) in &allowed_paths {
            if host.trim_start_matches("ro:").is_empty() || !guest.starts_with('/') {
                problems.add(
                    "allowed_paths",
                    format!(
                        "`{host}: {guest}` must map a host directory to an absolute guest path"
                    ),
                );
            }
        }

        let fuel: Option<u64> = problems
            .take::<Option<u64>>(&mut document, "fuel")
            .flatten();
        if fuel == Some(0) {
            problems.add("fuel", "must be more than 0");
        }

        let allowed_hosts: Vec<String> = problems
            .take(&mut document, "allowed_hosts")
            .unwrap_or_default();
        for (index, host) in allowed_hosts.iter().enumerate() {
            problems.check(format!("allowed_hosts[{index}]"), check_host_pattern(host));
        }

        let max_http_response_bytes = problems
            .take::<Option<String>>(&mut document, "max_http_response_bytes")
            .flatten()
            .map_or(DEFAULT_MAX_HTTP_RESPONSE_BYTES, |text| {
                match parse_size(&text) {
                    Err(reason) => {
                        problems.add("max_http_response_bytes", format!("`{text}`: {reason}"));
                        DEFAULT_MAX_HTTP_RESPONSE_BYTES
                    }
                    Ok(limit) if !(1..=MAX_MAX_HTTP_RESPONSE_BYTES).contains(&limit) => {
                        problems.add(
                            "max_http_response_bytes",
                            format!("`{text}` must be more than 0 and at most 1GiB"),
                        );
                        DEFAULT_MAX_HTTP_RESPONSE_BYTES
                    }
                    Ok(limit) => limit,
                }
            });

        let mut config = BTreeMap::new();
        let written_config: BTreeMap<String, Value> =
            problems.take(&mut document, "config").unwrap_or_default();
        for (key, value) in written_config {
            let value = match value {
                Value::String(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                Value::Null => String::new(),
                _ => {
                    problems.add(
                        format!("config.{key}"),
                        "must be a string, number or boolean",
                    );
                    continue;
                }
            };
            config.insert(key, value);
        }

        let written_hooks: Vec<Value> = problems.take(&mut document, "hooks").unwrap_or_default();
        let mut hooks = Vec::new();
        for (index, hook) in written_hooks.into_iter().enumerate() {
            let field = format!("hooks[{index}]");
            if let Some(hook) = problems.deserialize::<Hook>(hook, &field) {
                let before = problems.0.len();
                check_hook(&hook, &field, rules, &mut problems);
                if problems.0.len() == before {
                    hooks.push(hook);
                }
            }
        }

        let grants: Grants = problems
            .take::<Option<Grants>>(&mut document, "grants")
            .flatten()
            .unwrap_or_default();
        check_grants(&grants, &mut problems);
        let callers: Vec<String> = problems.take(&mut document, "callers").unwrap_or_default();
        for (index, caller) in callers.iter().enumerate() {
            problems.check(format!("callers[{index}]"), name::check(caller));
        }

        let manifest = Manifest {
            name,
            module,
            sha256,
            entrypoint,
            timeout,
            memory_limit,
            instance,
            wasi,
            allowed_paths,
            fuel,
            allowed_hosts,
            max_http_response_bytes,
            config,
            build,
            hooks,
            grants,
            callers,
        };
        if problems.0.is_empty() {
            return Ok(manifest);
        }
        let name_is_good = !problems.0.iter().any(|problem| problem.field == "name");
        Err(ManifestError {
            file: file.to_string(),
            problems: problems.0,
            routable: (name_is_good && name::is_valid(&manifest.name)).then(|| Box::new(manifest)),
        })
    }
}

fn check_relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("must not be empty".to_string());
    }
    if path.starts_with('/') || path.contains('\\') {
        return Err(format!(
            "`{path}` must be a relative path with `/` separators"
        ));
    }
    if path.split('/').any(|part| part == ".." || part.is_empty()) {
        return Err(format!(
            "`{path}` must stay inside the function's directory (no `..` or empty segments)"
        ));
    }
    Ok(())
}

fn check_entrypoint(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "`{name}` is not an export name (non-empty, no spaces)"
        ));
    }
    Ok(())
}

fn check_host_pattern(host: &str) -> Result<(), String> {
    let rest = host.strip_prefix("*.").unwrap_or(host);
    let valid = host == "*"
        || (!rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{host}` is not a host name pattern (api.example.com, *.example.org or *; no scheme or port)"
        ))
    }
}

/// The event names S3 sends (without their `s3:` prefix), which an S3 hook's globs must reach.
const S3_EVENT_NAMES: &[&str] = &[
    "ObjectCreated:Put",
    "ObjectCreated:Post",
    "ObjectCreated:Copy",
    "ObjectCreated:CompleteMultipartUpload",
    "ObjectRemoved:Delete",
    "ObjectRemoved:DeleteMarkerCreated",
    "ObjectRestore:Post",
    "ObjectRestore:Completed",
    "ObjectRestore:Delete",
    "ReducedRedundancyLostObject",
    "Replication:OperationFailedReplication",
    "Replication:OperationMissedThreshold",
    "Replication:OperationReplicatedAfterThreshold",
    "Replication:OperationNotTracked",
    "LifecycleExpiration:Delete",
    "LifecycleExpiration:DeleteMarkerCreated",
    "LifecycleTransition",
    "IntelligentTiering",
    "ObjectTagging:Put",
    "ObjectTagging:Delete",
    "ObjectAcl:Put",
    "TestEvent",
];

/// An S3 event-name glob that parses (what the runtime has always required).
fn check_s3_glob(event: &str) -> Result<(), String> {
    let name = event.strip_prefix("s3:").unwrap_or(event);
    if name.trim().is_empty() || globset::Glob::new(name).is_err() {
        return Err(format!(
            "`{event}` must be an event name glob such as ObjectCreated:*"
        ));
    }
    Ok(())
}

/// Checks an S3 event-name glob: it must reach at least one event S3 sends.
fn check_s3_event(event: &str) -> Result<(), String> {
    let name = event.strip_prefix("s3:").unwrap_or(event);
    let glob = globset::Glob::new(name)
        .ok()
        .filter(|_| !name.trim().is_empty())
        .map(|glob| glob.compile_matcher());
    match glob {
        Some(glob) if S3_EVENT_NAMES.iter().any(|known| glob.is_match(known)) => Ok(()),
        Some(_) => Err(format!(
            "`{event}` matches no S3 event name; S3 sends ObjectCreated:*, ObjectRemoved:*, \
             ObjectRestore:*, ObjectTagging:*, ObjectAcl:Put, LifecycleExpiration:*, \
             LifecycleTransition, IntelligentTiering, Replication:*, ReducedRedundancyLostObject"
        )),
        None => Err(format!(
            "`{event}` must be an event name glob such as ObjectCreated:*"
        )),
    }
}

/// Records every problem of `hook`, written at `at` (`hooks[0]`).
fn check_hook(hook: &Hook, at: &str, rules: Rules, problems: &mut Problems) {
    let mut not_empty = |field: &str, value: &str| {
        if value.trim().is_empty() {
            problems.add(format!("{at}.{field}"), "must not be empty");
        }
    };
    match hook {
        Hook::Http(_) => {}
        Hook::Database(database) => not_empty("source", &database.source),
        Hook::S3(s3) => not_empty("bucket", &s3.bucket),
        Hook::Sqs(sqs) => not_empty("queue", &sqs.queue),
        Hook::Sns(sns) => not_empty("topic", &sns.topic),
        Hook::Stream(stream) => not_empty("stream", &stream.stream),
        Hook::Schedule(schedule) => not_empty("rule", &schedule.rule),
        Hook::Event(event) => not_empty("source", &event.source),
    }
    if let Some(entrypoint) = hook.entrypoint() {
        problems.check(format!("{at}.entrypoint"), check_entrypoint(entrypoint));
    }
    match hook {
        Hook::Http(http) => {
            for method in http
                .method
                .as_ref()
                .map(OneOrMany::to_vec)
                .unwrap_or_default()
            {
                if !HTTP_METHODS.contains(&method.to_ascii_uppercase().as_str()) {
                    problems.add(
                        format!("{at}.method"),
                        format!("`{method}` is not one of {}", HTTP_METHODS.join(", ")),
                    );
                }
            }
            problems.check(format!("{at}.path"), route_pattern(&http.path).map(|_| ()));
            if rules == Rules::All {
                problems.check(format!("{at}.path"), check_route_segments(&http.path));
            }
        }
        Hook::Database(database) => {
            for action in database
                .action
                .as_ref()
                .map(OneOrMany::to_vec)
                .unwrap_or_default()
            {
                if !matches!(action.as_str(), "insert" | "update" | "delete") {
                    problems.add(
                        format!("{at}.action"),
                        format!("`{action}` is not one of insert, update, delete"),
                    );
                }
            }
        }
        Hook::S3(s3) => {
            for (index, event) in s3.events.iter().flatten().enumerate() {
                let checked = match rules {
                    Rules::All => check_s3_event(event),
                    Rules::Serving => check_s3_glob(event),
                };
                problems.check(format!("{at}.events[{index}]"), checked);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
name: hello
runtime: wasm
module: hello.wasm
sha256: 3B7F000000000000000000000000000000000000000000000000000000000000
entrypoint: handle
timeout: 5s
memory_limit: 32MiB
instance: fresh
wasi: true
allowed_paths: {"ro:/data": /data}
fuel: 100000000
allowed_hosts: [api.example.com, "*.example.org"]
max_http_response_bytes: 1MiB
config: {greeting: hi, retries: 3}
build:
  command: cargo
  args: [build, --release, --target, wasm32-unknown-unknown]
  watch: ["src/**/*.rs", Cargo.toml]
  output: target/wasm32-unknown-unknown/release/hello.wasm
hooks:
  - type: http
    method: [GET, POST]
    path: /hello/{name}
  - type: database
    source: users
    action: insert
  - type: s3
    bucket: uploads
    prefix: in/
    suffix: .png
    events: ["ObjectCreated:*"]
  - type: sqs
    queue: jobs
    entrypoint: on_job
  - type: sns
    topic: alerts
  - type: stream
    stream: clicks
  - type: schedule
    rule: nightly
  - type: event
    source: com.example.orders
    detail_type: OrderPlaced
"#;

    #[test]
    fn every_field_and_hook_type_parses() {
        let manifest = Manifest::parse(FULL, "hello/manifest.yaml", Some("hello")).unwrap();
        assert_eq!(manifest.timeout, Some(Duration::from_secs(5)));
        assert_eq!(manifest.memory_limit, 32 * 1024 * 1024);
        assert_eq!(manifest.instance, InstanceMode::Fresh);
        assert_eq!(manifest.config["retries"], "3");
        assert_eq!(manifest.max_http_response_bytes, 1024 * 1024);
        assert_eq!(manifest.hooks.len(), 8);
        assert_eq!(manifest.hooks[3].entrypoint(), Some("on_job"));
        assert!(manifest.sha256.unwrap().starts_with("3b7f"));
    }

    #[test]
    fn module_defaults_to_build_output_then_name() {
        let manifest = Manifest::parse("name: a\nruntime: wasm\n", "f", None).unwrap();
        assert_eq!(manifest.module, "a.wasm");
        assert_eq!(manifest.entrypoint, "handle");
        assert_eq!(manifest.memory_limit, DEFAULT_MEMORY_LIMIT);
        let manifest = Manifest::parse(
            "name: a\nruntime: wasm\nbuild: {command: make, output: out/a.wasm}\n",
            "f",
            None,
        )
        .unwrap();
        assert_eq!(manifest.module, "out/a.wasm");
    }

    #[test]
    fn route_patterns_translate_to_matchit() {
        assert_eq!(route_pattern("/hello/{name}").unwrap(), "/hello/{name}");
        assert_eq!(route_pattern("/files/{rest+}").unwrap(), "/files/{*rest}");
        assert!(route_pattern("/files/{rest+}/x").is_err());
        assert!(route_pattern("hello").is_err());
        assert!(route_pattern("/a/b{c}").is_err());
        assert!(check_route_segments("/a//b").is_err());
        assert!(check_route_segments("/a/{id}/{id}").is_err());
        assert!(check_route_segments("/a/{id}/{id+}").is_err());
        assert!(check_route_segments("/a/./b").is_err());
        assert!(check_route_segments("/a/").is_ok());
        assert!(check_route_segments("/").is_ok());
        assert_eq!(route_pattern("/").unwrap(), "/");
        assert_eq!(route_pattern("/a/").unwrap(), "/a/");
    }

    #[test]
    fn s3_event_globs_must_reach_an_event() {
        for good in [
            "*",
            "s3:*",
            "ObjectCreated:*",
            "s3:ObjectRemoved:Delete",
            "Object*",
        ] {
            assert!(check_s3_event(good).is_ok(), "{good}");
        }
        for bad in [
            "ObjectCreatd:*",
            "Nonsense",
            "",
            "s3:",
            "ObjectCreated:Putt",
            "[bad",
        ] {
            assert!(check_s3_event(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scalars_read_as_text_where_text_is_expected() {
        let text = "name: a\nruntime: wasm\nmemory_limit: 1048576\nentrypoint: 1\nconfig: {1: a, true: b}\nbuild: {command: make, args: [-j, 4]}\nallowed_hosts: [true]\nhooks:\n  - {type: sqs, queue: 42}\n";
        let manifest = Manifest::parse(text, "f", None).unwrap();
        assert_eq!(manifest.memory_limit, 1024 * 1024);
        assert_eq!(manifest.entrypoint, "1");
        assert_eq!(manifest.config["1"], "a");
        assert_eq!(manifest.build.unwrap().args, ["-j", "4"]);
        assert_eq!(manifest.hooks[0].resource(), Some("42"));
        let error = Manifest::parse("name:\nruntime: wasm\n", "f", None).unwrap_err();
        assert_eq!(error.lines(), ["f: name: must have a value"]);
    }

    #[test]
    fn the_runtime_serves_what_newer_rules_refuse() {
        let text = "name: a\nruntime: wasm\nhooks:\n  - {type: http, path: /a//b}\n  - {type: s3, bucket: b, events: [ObjectCreatd]}\n";
        assert_eq!(
            Manifest::parse(text, "f", None).unwrap_err().problems.len(),
            2
        );
        assert!(Manifest::parse_with(text, "f", None, Rules::Serving).is_ok());
    }

    #[test]
    fn every_problem_is_reported() {
        let text = "name: Bad\nruntime: node\ntimeout: 0s\nfuel: 0\nextra: 1\n";
        let error = Manifest::parse(text, "f", None).unwrap_err();
        let fields: Vec<&str> = error.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["extra", "name", "runtime", "timeout", "fuel"]);
        assert_eq!(error.lines().len(), 5);
        assert!(error.lines()[0].starts_with("f: extra: unknown field `extra`"));
        assert!(
            error
                .to_string()
                .starts_with("f: extra: unknown field `extra`")
        );
        assert!(error.to_string().contains("; fuel: must be more than 0"));
    }
}

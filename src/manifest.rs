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

use crate::config::{parse_duration, parse_size};

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

/// A manifest that does not parse or validate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {reason}")]
pub struct ManifestError {
    /// Where the manifest came from (path or S3 URL).
    pub file: String,
    /// The offending field (`hooks[0].path`), or `manifest` for the document as a whole.
    pub field: String,
    pub reason: String,
}

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

/// The manifest as written, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    runtime: String,
    module: Option<String>,
    sha256: Option<String>,
    entrypoint: Option<String>,
    timeout: Option<String>,
    memory_limit: Option<String>,
    #[serde(default)]
    instance: InstanceMode,
    #[serde(default)]
    wasi: bool,
    #[serde(default)]
    allowed_paths: BTreeMap<String, String>,
    fuel: Option<u64>,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    max_http_response_bytes: Option<String>,
    #[serde(default)]
    config: BTreeMap<String, serde_yaml::Value>,
    build: Option<Build>,
    #[serde(default)]
    hooks: Vec<Hook>,
}

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
}

/// Whether `name` is a valid function name: `^[a-z0-9][a-z0-9_-]{0,63}$`.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

/// Turns a hook path (`/files/{rest+}`) into `matchit` syntax (`/files/{*rest}`), or says why not.
pub fn route_pattern(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` must start with `/`"));
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let mut pattern = String::new();
    for (index, segment) in segments.iter().enumerate() {
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
            if greedy && index + 1 != segments.len() {
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

impl Manifest {
    /// Parses and validates `text`, read from `file`. `directory_name` is the name of the
    /// directory (or key prefix) the manifest was found in, which the manifest's `name` must equal.
    pub fn parse(
        text: &str,
        file: &str,
        directory_name: Option<&str>,
    ) -> Result<Manifest, ManifestError> {
        let error = |field: &str, reason: String| ManifestError {
            file: file.to_string(),
            field: field.to_string(),
            reason,
        };
        let raw: RawManifest = serde_yaml::from_str(text).map_err(|e| {
            let message = e.to_string();
            let (path, reason) = match message.split_once(": ") {
                Some((path, reason)) if !path.contains(' ') => (Some(path), reason.to_string()),
                _ => (None, message.clone()),
            };
            // serde names an unknown or missing field only in its message: make it the field.
            let named = ["unknown field `", "missing field `"]
                .iter()
                .find_map(|lead| reason.strip_prefix(lead))
                .and_then(|rest| rest.split_once('`'))
                .map(|(field, _)| field.to_string());
            let field = match (path, named) {
                (Some(path), Some(field)) => format!("{path}.{field}"),
                (Some(path), None) => path.to_string(),
                (None, Some(field)) => field,
                (None, None) => "manifest".to_string(),
            };
            error(&field, reason)
        })?;

        if !is_valid_name(&raw.name) {
            return Err(error(
                "name",
                format!(
                    "`{}` must match ^[a-z0-9][a-z0-9_-]{{0,63}}$ (lowercase letters, digits, `_`, `-`)",
                    raw.name
                ),
            ));
        }
        if let Some(directory) = directory_name
            && directory != raw.name
        {
            return Err(error(
                "name",
                format!("`{}` must equal its directory name `{directory}`", raw.name),
            ));
        }
        match raw.runtime.as_str() {
            "wasm" => {}
            other @ ("node" | "nodejs" | "python" | "go" | "java" | "ruby" | "dotnet") => {
                return Err(error(
                    "runtime",
                    format!(
                        "`{other}` is not supported: only `wasm` runs here; compile the function to \
                         WebAssembly with an Extism PDK"
                    ),
                ));
            }
            other => {
                return Err(error(
                    "runtime",
                    format!("`{other}` is not supported: the only runtime is `wasm`"),
                ));
            }
        }

        let module = match (
            &raw.module,
            raw.build.as_ref().and_then(|b| b.output.clone()),
        ) {
            (Some(module), _) => module.clone(),
            (None, Some(output)) => output,
            (None, None) => format!("{}.wasm", raw.name),
        };
        let module_field = if raw.module.is_some() {
            "module"
        } else {
            "build.output"
        };
        check_relative_path(&module).map_err(|reason| error(module_field, reason))?;

        let sha256 = match raw.sha256 {
            Some(digest) => {
                let digest = digest.to_ascii_lowercase();
                if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(error(
                        "sha256",
                        format!("`{digest}` is not a SHA-256 digest (64 hex digits)"),
                    ));
                }
                Some(digest)
            }
            None => None,
        };

        let entrypoint = raw
            .entrypoint
            .unwrap_or_else(|| DEFAULT_ENTRYPOINT.to_string());
        check_entrypoint(&entrypoint).map_err(|reason| error("entrypoint", reason))?;

        let timeout = match raw.timeout {
            Some(text) => {
                let timeout = parse_duration(&text)
                    .map_err(|reason| error("timeout", format!("`{text}`: {reason}")))?;
                if timeout.is_zero() || timeout > MAX_TIMEOUT {
                    return Err(error(
                        "timeout",
                        format!("`{text}` must be more than 0 and at most 15m"),
                    ));
                }
                Some(timeout)
            }
            None => None,
        };

        let memory_limit = match raw.memory_limit {
            Some(text) => {
                let limit = parse_size(&text)
                    .map_err(|reason| error("memory_limit", format!("`{text}`: {reason}")))?;
                if !(MIN_MEMORY_LIMIT..=MAX_MEMORY_LIMIT).contains(&limit) {
                    return Err(error(
                        "memory_limit",
                        format!("`{text}` must be between 1MiB and 4GiB"),
                    ));
                }
                limit
            }
            None => DEFAULT_MEMORY_LIMIT,
        };

        if !raw.wasi && !raw.allowed_paths.is_empty() {
            return Err(error(
                "allowed_paths",
                "grants directories to WASI, so it needs `wasi: true`".to_string(),
            ));
        }
        for (host, guest) in &raw.allowed_paths {
            if host.trim_start_matches("ro:").is_empty() || !guest.starts_with('/') {
                return Err(error(
                    "allowed_paths",
                    format!(
                        "`{host}: {guest}` must map a host directory to an absolute guest path"
                    ),
                ));
            }
        }

        if raw.fuel == Some(0) {
            return Err(error("fuel", "must be more than 0".to_string()));
        }

        for (index, host) in raw.allowed_hosts.iter().enumerate() {
            check_host_pattern(host)
                .map_err(|reason| error(&format!("allowed_hosts[{index}]"), reason))?;
        }

        let max_http_response_bytes = match raw.max_http_response_bytes {
            Some(text) => {
                let limit = parse_size(&text).map_err(|reason| {
                    error("max_http_response_bytes", format!("`{text}`: {reason}"))
                })?;
                if !(1..=MAX_MAX_HTTP_RESPONSE_BYTES).contains(&limit) {
                    return Err(error(
                        "max_http_response_bytes",
                        format!("`{text}` must be more than 0 and at most 1GiB"),
                    ));
                }
                limit
            }
            None => DEFAULT_MAX_HTTP_RESPONSE_BYTES,
        };

        let mut config = BTreeMap::new();
        for (key, value) in raw.config {
            let value = match value {
                serde_yaml::Value::String(s) => s,
                serde_yaml::Value::Bool(b) => b.to_string(),
                serde_yaml::Value::Number(n) => n.to_string(),
                serde_yaml::Value::Null => String::new(),
                _ => {
                    return Err(error(
                        &format!("config.{key}"),
                        "must be a string, number or boolean".to_string(),
                    ));
                }
            };
            config.insert(key, value);
        }

        if let Some(build) = &raw.build {
            if build.command.trim().is_empty() {
                return Err(error("build.command", "must not be empty".to_string()));
            }
            if let Some(output) = &build.output {
                check_relative_path(output).map_err(|reason| error("build.output", reason))?;
            }
        }

        for (index, hook) in raw.hooks.iter().enumerate() {
            check_hook(hook)
                .map_err(|(field, reason)| error(&format!("hooks[{index}].{field}"), reason))?;
        }

        Ok(Manifest {
            name: raw.name,
            module,
            sha256,
            entrypoint,
            timeout,
            memory_limit,
            instance: raw.instance,
            wasi: raw.wasi,
            allowed_paths: raw.allowed_paths,
            fuel: raw.fuel,
            allowed_hosts: raw.allowed_hosts,
            max_http_response_bytes,
            config,
            build: raw.build,
            hooks: raw.hooks,
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

fn check_hook(hook: &Hook) -> Result<(), (&'static str, String)> {
    let not_empty = |field: &'static str, value: &str| {
        if value.trim().is_empty() {
            Err((field, "must not be empty".to_string()))
        } else {
            Ok(())
        }
    };
    if let Some(entrypoint) = hook.entrypoint() {
        check_entrypoint(entrypoint).map_err(|reason| ("entrypoint", reason))?;
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
                    return Err((
                        "method",
                        format!("`{method}` is not one of {}", HTTP_METHODS.join(", ")),
                    ));
                }
            }
            route_pattern(&http.path).map_err(|reason| ("path", reason))?;
        }
        Hook::Database(database) => {
            not_empty("source", &database.source)?;
            for action in database
                .action
                .as_ref()
                .map(OneOrMany::to_vec)
                .unwrap_or_default()
            {
                if !matches!(action.as_str(), "insert" | "update" | "delete") {
                    return Err((
                        "action",
                        format!("`{action}` is not one of insert, update, delete"),
                    ));
                }
            }
        }
        Hook::S3(s3) => {
            not_empty("bucket", &s3.bucket)?;
            for event in s3.events.iter().flatten() {
                let name = event.strip_prefix("s3:").unwrap_or(event);
                if name.trim().is_empty() || globset::Glob::new(name).is_err() {
                    return Err((
                        "events",
                        format!("`{event}` must be an event name glob such as ObjectCreated:*"),
                    ));
                }
            }
        }
        Hook::Sqs(sqs) => not_empty("queue", &sqs.queue)?,
        Hook::Sns(sns) => not_empty("topic", &sns.topic)?,
        Hook::Stream(stream) => not_empty("stream", &stream.stream)?,
        Hook::Schedule(schedule) => not_empty("rule", &schedule.rule)?,
        Hook::Event(event) => not_empty("source", &event.source)?,
    }
    Ok(())
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
    }

    #[test]
    fn names_follow_the_pattern() {
        assert!(is_valid_name("hello"));
        assert!(is_valid_name("on-user_insert2"));
        assert!(!is_valid_name("Hello"));
        assert!(!is_valid_name("-x"));
        assert!(!is_valid_name(&"a".repeat(65)));
    }
}

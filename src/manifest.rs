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
pub use crate::trigger::hook::Hook;
pub use crate::trigger::hook::Rules;
use crate::trigger::hook::{check_entrypoint, serde_field};
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
                // serde names an unknown or missing field only in its message: make it part of
                // the field.
                let named = serde_field(&reason);
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
            match Hook::read(hook, rules) {
                Ok(hook) => hooks.push(hook),
                Err(found) => {
                    for (field, reason) in found {
                        let field = match field.as_str() {
                            "" => format!("hooks[{index}]"),
                            field => format!("hooks[{index}].{field}"),
                        };
                        problems.add(field, reason);
                    }
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

//! A manifest hook: its kind's schema as written, checked once into what the router consumes
//! (the resource it names and typed match conditions; an HTTP route for `http`).

use globset::{Glob, GlobMatcher};
use serde::de::DeserializeOwned;

use super::kind::HookKind;
use super::*;

/// Which rules a manifest is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// Every rule: what `validate`, `publish` and a local directory get.
    All,
    /// The rules every release has applied: a published manifest keeps serving after an
    /// upgrade that added rules.
    Serving,
}

/// A problem of a hook: the field under the hook (`path`, `events[1]`) and why.
pub type HookProblem = (String, String);

/// What a hook needs of its kind's schema.
pub trait HookSchema {
    /// The hook's own entrypoint, if it overrides the manifest's.
    fn entrypoint(&self) -> Option<&str>;
    /// The checked hook, or every problem of it.
    fn compile(&self, rules: Rules) -> Result<Compiled, Vec<HookProblem>>;
    /// What the hook matches, for `wasm-lambda routes`: `queue jobs`, `GET /hello/{name}`.
    fn describe(&self) -> String;
}

/// What the router consumes of a checked hook.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compiled {
    /// The resource a batch hook names (bucket, queue, topic, table, stream, rule, event source,
    /// Kafka topic, broker queue, delivery stream, log group); `None` for request kinds.
    pub resource: Option<String>,
    /// What an event must also match; the more conditions, the more specific the hook.
    pub conditions: Vec<Condition>,
    /// An `http` hook's route.
    pub route: Option<http::Route>,
}

impl Compiled {
    pub fn resource(resource: &str) -> Compiled {
        Compiled {
            resource: Some(resource.to_string()),
            ..Compiled::default()
        }
    }

    pub fn with(mut self, attribute: &str, pattern: Option<Pattern>) -> Compiled {
        if let Some(pattern) = pattern {
            self.conditions.push(Condition {
                attribute: attribute.to_string(),
                pattern,
            });
        }
        self
    }
}

/// One condition on an event's attribute: it holds when any value of the attribute matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub attribute: String,
    pub pattern: Pattern,
}

/// How a condition matches a value.
#[derive(Debug, Clone)]
pub enum Pattern {
    Is(String),
    AnyOf(Vec<String>),
    Prefix(String),
    Suffix(String),
    /// Globs as written, each compiled once.
    Globs(Vec<(String, GlobMatcher)>),
    /// The attribute is present, whatever its value.
    Present,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Pattern {}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Is(value) => write!(f, "{value}"),
            Pattern::AnyOf(values) => write!(f, "{}", values.join(",")),
            Pattern::Prefix(prefix) => write!(f, "{prefix}*"),
            Pattern::Suffix(suffix) => write!(f, "*{suffix}"),
            Pattern::Globs(globs) => {
                let written: Vec<&str> = globs.iter().map(|(text, _)| text.as_str()).collect();
                write!(f, "{}", written.join(","))
            }
            Pattern::Present => write!(f, "(present)"),
        }
    }
}

impl Pattern {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Is(expected) => value == expected,
            Pattern::AnyOf(values) => values.iter().any(|v| v == value),
            Pattern::Prefix(prefix) => value.starts_with(prefix.as_str()),
            Pattern::Suffix(suffix) => value.ends_with(suffix.as_str()),
            Pattern::Globs(globs) => globs.iter().any(|(_, glob)| glob.is_match(value)),
            Pattern::Present => true,
        }
    }

    /// One glob, or the exact value when it has no glob character (which then weighs as exact).
    pub fn glob(written: &str) -> Result<Pattern, String> {
        if written.trim().is_empty() {
            return Err("must not be empty".to_string());
        }
        if !written.contains(['*', '?', '[', ']', '{', '}', '\\']) {
            return Ok(Pattern::Is(written.to_string()));
        }
        Pattern::globs([written])
    }

    /// Globs, or why one of them is not a glob.
    pub fn globs<'a>(written: impl IntoIterator<Item = &'a str>) -> Result<Pattern, String> {
        let mut globs = Vec::new();
        for text in written {
            if text.trim().is_empty() {
                return Err("must not be empty".to_string());
            }
            let glob = Glob::new(text)
                .map_err(|error| format!("`{text}` is not a glob: {error}"))?
                .compile_matcher();
            globs.push((text.to_string(), glob));
        }
        Ok(Pattern::Globs(globs))
    }
}

/// What a condition reads: the values of an event's attributes.
pub trait Attributes {
    fn values(&self, attribute: &str) -> Vec<std::borrow::Cow<'_, str>>;
}

impl Condition {
    pub fn holds(&self, event: &dyn Attributes) -> bool {
        event
            .values(&self.attribute)
            .into_iter()
            .any(|value| self.pattern.matches(&value))
    }
}

/// Collects a hook's problems.
#[derive(Default)]
pub struct Checks(pub Vec<HookProblem>);

impl Checks {
    pub fn add(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push((field.into(), reason.into()));
    }

    pub fn check<T>(&mut self, field: impl Into<String>, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(reason) => {
                self.add(field, reason);
                None
            }
        }
    }

    pub fn not_empty(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.add(field, "must not be empty");
        }
    }

    pub fn entrypoint(&mut self, entrypoint: Option<&str>) {
        if let Some(entrypoint) = entrypoint {
            self.check("entrypoint", check_entrypoint(entrypoint));
        }
    }

    /// `compiled` when no problem was found, else the problems.
    pub fn done(self, compiled: Compiled) -> Result<Compiled, Vec<HookProblem>> {
        if self.0.is_empty() {
            Ok(compiled)
        } else {
            Err(self.0)
        }
    }
}

/// An exported function name: what an entrypoint must be.
pub fn check_entrypoint(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "`{name}` is not an export name (non-empty, no spaces)"
        ));
    }
    Ok(())
}

/// One value or a list of them (`method: GET` or `method: [GET, POST]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
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

/// Declares a hook that names one resource in `$field`, with no other condition.
macro_rules! named_hook {
    ($(#[$doc:meta])* $type:ident, $field:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $type {
            pub $field: String,
            pub entrypoint: Option<String>,
        }

        impl $crate::trigger::hook::HookSchema for $type {
            fn entrypoint(&self) -> Option<&str> {
                self.entrypoint.as_deref()
            }

            fn compile(
                &self,
                _rules: $crate::trigger::hook::Rules,
            ) -> Result<$crate::trigger::hook::Compiled, Vec<$crate::trigger::hook::HookProblem>> {
                let mut checks = $crate::trigger::hook::Checks::default();
                checks.not_empty(stringify!($field), &self.$field);
                checks.entrypoint(self.entrypoint.as_deref());
                checks.done($crate::trigger::hook::Compiled::resource(&self.$field))
            }

            fn describe(&self) -> String {
                format!(concat!($what, " {}"), self.$field)
            }
        }
    };
}
pub(crate) use named_hook;

/// Declares the hook schema of every kind: `Kind => module::Schema`. The match over
/// [`HookKind`] in `parse` makes a kind without a schema a compile error.
macro_rules! hook_specs {
    ($($kind:ident => $module:ident :: $hook:ident),* $(,)?) => {
        /// A hook as written: its kind's schema.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum HookSpec {
            $($kind($module::$hook),)*
        }

        impl HookSpec {
            /// Reads a hook of `kind` (the rest of its fields in `value`).
            fn read(kind: HookKind, value: serde_yaml::Value) -> Result<HookSpec, String> {
                fn read<T: DeserializeOwned>(value: serde_yaml::Value) -> Result<T, String> {
                    serde_yaml::from_value(value).map_err(|error| error.to_string())
                }
                Ok(match kind {
                    $(HookKind::$kind => HookSpec::$kind(read(value)?),)*
                })
            }

            pub fn schema(&self) -> &dyn HookSchema {
                match self {
                    $(HookSpec::$kind(hook) => hook,)*
                }
            }

            pub fn kind(&self) -> HookKind {
                match self {
                    $(HookSpec::$kind(_) => HookKind::$kind,)*
                }
            }
        }
    };
}

hook_specs! {
    Http => http::HttpHook,
    Websocket => websocket::WebsocketHook,
    Authorizer => authorizer::AuthorizerHook,
    Cognito => cognito::CognitoHook,
    Appsync => appsync::AppsyncHook,
    BedrockAgent => bedrock_agent::BedrockAgentHook,
    CustomResource => custom_resource::CustomResourceHook,
    Ses => ses::SesHook,
    S3 => s3::S3Hook,
    Sqs => sqs::SqsHook,
    Sns => sns::SnsHook,
    Database => database::DatabaseHook,
    Stream => stream::StreamHook,
    Event => eventbridge::EventHook,
    Schedule => eventbridge::ScheduleHook,
    Kafka => kafka::KafkaHook,
    Mq => mq::MqHook,
    Firehose => firehose::FirehoseHook,
    Logs => logs::LogsHook,
    Raw => raw::RawHook,
}

/// A checked hook: as written, and compiled for the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub spec: HookSpec,
    pub compiled: Compiled,
}

impl Hook {
    /// Reads and checks one written hook (`{type: sqs, queue: jobs}`): the hook, or every problem
    /// of it, each naming its field under the hook.
    pub fn read(value: serde_yaml::Value, rules: Rules) -> Result<Hook, Vec<HookProblem>> {
        let serde_yaml::Value::Mapping(mut fields) = value else {
            return Err(vec![(
                String::new(),
                "must be a mapping with a `type` (`{type: http, path: /hello}`)".to_string(),
            )]);
        };
        let kind = match fields.remove("type") {
            Some(serde_yaml::Value::String(kind)) => kind
                .parse::<HookKind>()
                .map_err(|reason| vec![("type".to_string(), reason)])?,
            Some(other) => {
                return Err(vec![(
                    "type".to_string(),
                    format!("must be a hook type name, got {other:?}"),
                )]);
            }
            None => return Err(vec![("type".to_string(), "is missing".to_string())]),
        };
        let spec = HookSpec::read(kind, serde_yaml::Value::Mapping(fields))
            .map_err(|reason| vec![(serde_field(&reason).unwrap_or_default(), reason)])?;
        let compiled = spec.schema().compile(rules)?;
        Ok(Hook { spec, compiled })
    }

    pub fn kind(&self) -> HookKind {
        self.spec.kind()
    }

    pub fn entrypoint(&self) -> Option<&str> {
        self.spec.schema().entrypoint()
    }

    /// The resource a batch hook names; `None` for request kinds.
    pub fn resource(&self) -> Option<&str> {
        self.compiled.resource.as_deref()
    }
}

/// The field serde names only in its message (an unknown or missing field).
pub fn serde_field(reason: &str) -> Option<String> {
    ["unknown field `", "missing field `"]
        .iter()
        .find_map(|lead| reason.strip_prefix(lead))
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_string())
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.spec.schema().describe())
    }
}

//! Any event no other kind recognizes, routed by JSON pointers into it:
//! `{type: raw, match: {/detail/kind: "invoice*", /tenant: "*"}}` (`*` alone: the field is
//! present). The function receives the event unchanged, and its output is the answer,
//! unchanged (JSON if it parses as JSON, else a string). An event no raw hook matches is
//! `UnsupportedEvent`, as before there were raw hooks.

use std::collections::BTreeMap;

use serde_json::Value;

use super::hook::{Checks, Compiled, HookProblem, HookSchema, Pattern, Rules};
use super::kind::HookKind;
use super::request::Request;

/// `{type: raw, match: {"/source": "my.app", "/detail/id": "*"}}`
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHook {
    /// JSON pointer -> glob of the value there (`*`: present, whatever its value).
    #[serde(rename = "match")]
    pub matches: BTreeMap<String, String>,
    pub entrypoint: Option<String>,
}

impl HookSchema for RawHook {
    fn entrypoint(&self) -> Option<&str> {
        self.entrypoint.as_deref()
    }

    fn compile(&self, _rules: Rules) -> Result<Compiled, Vec<HookProblem>> {
        let mut checks = Checks::default();
        if self.matches.is_empty() {
            checks.add(
                "match",
                "must name at least one JSON pointer (`/detail/kind: \"invoice*\"`)",
            );
        }
        let mut compiled = Compiled::default();
        for (pointer, glob) in &self.matches {
            let field = format!("match.{pointer}");
            if !pointer.starts_with('/') {
                checks.add(
                    field,
                    format!("`{pointer}` is not a JSON pointer: it must start with `/`"),
                );
                continue;
            }
            let pattern = if glob == "*" {
                Some(Pattern::Present)
            } else {
                checks.check(field, Pattern::glob(glob))
            };
            compiled = compiled.with(pointer, pattern);
        }
        checks.entrypoint(self.entrypoint.as_deref());
        checks.done(compiled)
    }

    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .matches
            .iter()
            .map(|(pointer, glob)| format!("{pointer}={glob}"))
            .collect();
        format!("match {}", parts.join(", "))
    }
}

/// The event as a raw request: routed by pointers into it, given to the function as it is.
pub(super) fn request(event: &Value) -> Request {
    let mut request = Request::new(HookKind::Raw, "raw event".to_string(), Value::Null, event);
    request.input = |request, _| request.raw.to_string().into_bytes();
    request
}

//! AppSync direct Lambda resolvers: an event with `info.fieldName` and `info.parentTypeName`
//! (`Invoke`), or an array of them (`BatchInvoke`). A hook names the field as `Type.field`. A
//! single call is answered with the function's output; a batch with its list, one value per
//! item, in order. An item the function answers `{"errorMessage": ..., "errorType": ...}` is
//! that item's GraphQL error: the batch then answers every item as
//! `{data, errorMessage, errorType}`, the form AppSync reads per-item errors from.

use serde_json::{Value, json};

use super::hook::{Checks, Compiled, HookProblem, HookSchema, Pattern, Rules};
use super::kind::HookKind;
use super::request::{Answer, Called, Request, output_json};

/// `{type: appsync, field: Query.getPost}`
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppsyncHook {
    /// `Type.field`: `Query.getPost`, `Post.author`.
    pub field: String,
    pub entrypoint: Option<String>,
}

impl HookSchema for AppsyncHook {
    fn entrypoint(&self) -> Option<&str> {
        self.entrypoint.as_deref()
    }

    fn compile(&self, _rules: Rules) -> Result<Compiled, Vec<HookProblem>> {
        let mut checks = Checks::default();
        let valid = self
            .field
            .split_once('.')
            .is_some_and(|(parent, field)| is_name(parent) && is_name(field));
        if !valid {
            checks.add(
                "field",
                format!(
                    "`{}` must be `Type.field`, such as Query.getPost",
                    self.field
                ),
            );
        }
        checks.entrypoint(self.entrypoint.as_deref());
        checks.done(Compiled::default().with("field", Some(Pattern::Is(self.field.clone()))))
    }

    fn describe(&self) -> String {
        format!("field {}", self.field)
    }
}

/// A GraphQL name: `[_A-Za-z][_0-9A-Za-z]*`.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// `Type.field` of one resolver event.
fn field_of(event: &Value) -> Option<String> {
    let info = event.get("info")?;
    Some(format!(
        "{}.{}",
        info.get("parentTypeName")?.as_str()?,
        info.get("fieldName")?.as_str()?
    ))
}

fn item(event: &Value) -> Value {
    let take = |name: &str| event.get(name).cloned().unwrap_or(Value::Null);
    json!({
        "arguments": take("arguments"),
        "identity": take("identity"),
        "source": take("source"),
        "info": take("info"),
        "request": take("request"),
        "prev": take("prev"),
        "stash": take("stash"),
    })
}

/// An AppSync resolver's request (one event or a batch), or `None` if `event` is neither.
pub(super) fn recognize(event: &Value) -> Option<Request> {
    let (field, fields, batch) = match event {
        Value::Array(items) => {
            let field = field_of(items.first()?)?;
            let fields = json!({
                "field": field,
                "batch": true,
                "items": items.iter().map(item).collect::<Vec<_>>(),
            });
            (field, fields, true)
        }
        Value::Object(_) if event.get("arguments").is_some() => {
            let field = field_of(event)?;
            let mut fields = item(event);
            fields["field"] = json!(field);
            fields["batch"] = json!(false);
            (field, fields, false)
        }
        _ => return None,
    };
    let label = format!(
        "appsync field `{field}`{}",
        if batch { " (batch)" } else { "" }
    );
    Some(
        Request::new(HookKind::Appsync, label, fields, event)
            .with("field", field)
            .answered_by(answer),
    )
}

fn answer(request: &Request, called: Called<'_>) -> Answer {
    Answer::value(called.result().and_then(|output| {
        let output = output_json(output);
        let Value::Array(items) = &request.raw else {
            return Ok(output);
        };
        let Value::Array(results) = output else {
            return Err(called.invalid(format!(
                "an appsync batch of {} must be answered with a list of as many values",
                items.len()
            )));
        };
        if results.len() != items.len() {
            return Err(called.invalid(format!(
                "an appsync batch of {} was answered with a list of {}",
                items.len(),
                results.len()
            )));
        }
        Ok(per_item(results))
    }))
}

/// A batch's results, each item as `{data, errorMessage, errorType}` when any item is an error.
fn per_item(results: Vec<Value>) -> Value {
    // An error item has `errorMessage` and nothing but `errorType` and `data` beside it, so a
    // value that merely has an `errorMessage` field stays a value.
    let is_error = |item: &Value| {
        item.as_object().is_some_and(|object| {
            object.get("errorMessage").is_some_and(Value::is_string)
                && object
                    .keys()
                    .all(|key| matches!(key.as_str(), "errorMessage" | "errorType" | "data"))
        })
    };
    if !results.iter().any(is_error) {
        return Value::Array(results);
    }
    Value::Array(
        results
            .into_iter()
            .map(|item| {
                if is_error(&item) {
                    json!({
                        "data": item.get("data").cloned().unwrap_or(Value::Null),
                        "errorMessage": item["errorMessage"],
                        "errorType": item.get("errorType").cloned()
                            .unwrap_or_else(|| json!("Lambda:Handled")),
                    })
                } else {
                    json!({"data": item, "errorMessage": null, "errorType": null})
                }
            })
            .collect(),
    )
}

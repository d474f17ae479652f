//! CloudFormation custom resources: an event with `RequestType` (Create, Update, Delete),
//! `ResourceType`, `StackId` and `LogicalResourceId`. The function returns
//! `{"physical_id": ..., "data": {...}, "no_echo": false}` (every field optional; the
//! PascalCase names CloudFormation uses are read too).
//!
//! CloudFormation waits for the outcome at `ResponseURL`, so the outcome is PUT there before the
//! invocation answers: SUCCESS with the physical id and data, or FAILED with the reason, also
//! when the function failed, timed out or no function is hooked. Time is kept back from the
//! function's call for it. When the event's `ServiceToken` names another function (the CDK
//! provider framework's, which PUTs itself and calls its handler with the same event), the
//! outcome is the invocation's answer instead: `{PhysicalResourceId, Data, NoEcho}`, or an
//! error the framework reports as FAILED.

use std::time::Duration;

use serde_json::{Value, json};

use super::hook::{Checks, Compiled, HookProblem, HookSchema, Pattern, Rules};
use super::kind::HookKind;
use super::request::{Answer, Called, Put, Request};
use crate::error::Error;

/// What the outcome's PUT is given of the invocation's time.
const PUT_RESERVE: Duration = Duration::from_secs(3);
/// CloudFormation's limit on a response body.
const MAX_RESPONSE_BYTES: usize = 4096;

/// `{type: custom_resource, resource_type: Custom::Greeting}`
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomResourceHook {
    pub resource_type: String,
    pub entrypoint: Option<String>,
}

impl HookSchema for CustomResourceHook {
    fn entrypoint(&self) -> Option<&str> {
        self.entrypoint.as_deref()
    }

    fn compile(&self, _rules: Rules) -> Result<Compiled, Vec<HookProblem>> {
        let mut checks = Checks::default();
        let name = self
            .resource_type
            .strip_prefix("Custom::")
            .unwrap_or_default();
        let valid = !name.is_empty()
            && name.len() <= 60
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '@' | '-'));
        if !valid && self.resource_type != "AWS::CloudFormation::CustomResource" {
            checks.add(
                "resource_type",
                format!(
                    "`{}` must be `Custom::Name` (letters, digits, `_@-`, at most 60) or \
                     AWS::CloudFormation::CustomResource",
                    self.resource_type
                ),
            );
        }
        checks.entrypoint(self.entrypoint.as_deref());
        let pattern = Pattern::Is(self.resource_type.clone());
        checks.done(Compiled::default().with("resource_type", Some(pattern)))
    }

    fn describe(&self) -> String {
        format!("resource type {}", self.resource_type)
    }
}

/// A custom resource's request, or `None` if `event` is not one.
pub(super) fn recognize(event: &Value) -> Option<Request> {
    let request_type = event.get("RequestType")?.as_str()?;
    let resource_type = event.get("ResourceType")?.as_str()?;
    event.get("StackId")?;
    event.get("LogicalResourceId")?;
    let take = |name: &str| event.get(name).cloned().unwrap_or(Value::Null);
    let fields = json!({
        "request_type": request_type,
        "resource_type": resource_type,
        "logical_id": take("LogicalResourceId"),
        "physical_id": take("PhysicalResourceId"),
        "properties": take("ResourceProperties"),
        "old_properties": take("OldResourceProperties"),
        "stack_id": take("StackId"),
        "request_id": take("RequestId"),
    });
    let label = format!(
        "custom resource {resource_type} `{}` ({request_type})",
        event["LogicalResourceId"].as_str().unwrap_or_default()
    );
    let mut request = Request::new(HookKind::CustomResource, label, fields, event)
        .with("resource_type", resource_type)
        .answered_by(answer);
    request.reserve = PUT_RESERVE;
    Some(request)
}

/// Whether the outcome is PUT (CloudFormation invoked this function) rather than answered (a
/// provider framework invoked it and PUTs the outcome itself).
fn puts(event: &Value, invoked_function_arn: &str) -> bool {
    if event.get("ResponseURL").and_then(Value::as_str).is_none() {
        return false;
    }
    // `arn:aws:lambda:region:account:function:name[:qualifier]`, compared without qualifier.
    let unqualified = |arn: &str| arn.split(':').take(7).collect::<Vec<_>>().join(":");
    match event.get("ServiceToken").and_then(Value::as_str) {
        None => true,
        Some(token) => {
            invoked_function_arn.is_empty()
                || unqualified(token) == unqualified(invoked_function_arn)
        }
    }
}

/// The outcome of `called`: the physical id, data and no-echo flag, or why it failed.
fn outcome(request: &Request, called: &Called<'_>) -> Result<(String, Value, bool), Error> {
    let raw = &request.raw;
    let output = called.result()?;
    let output: Value = if output.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(output) {
            Ok(value @ Value::Object(_)) => value,
            Ok(Value::Null) => json!({}),
            _ => {
                return Err(called.invalid(format!(
                    "a custom_resource function must return a JSON object \
                     `{{\"physical_id\", \"data\", \"no_echo\"}}`, got {}",
                    super::request::preview(output)
                )));
            }
        }
    };
    let field = |snake: &str, pascal: &str| {
        output
            .get(snake)
            .or_else(|| output.get(pascal))
            .filter(|v| !v.is_null())
            .cloned()
    };
    let existing = raw["PhysicalResourceId"].as_str();
    let physical_id = match field("physical_id", "PhysicalResourceId") {
        Some(Value::String(id)) if !id.is_empty() => id,
        Some(other) => {
            return Err(called.invalid(format!(
                "`physical_id` must be a non-empty string, got {other}"
            )));
        }
        None => existing
            .or(raw["RequestId"].as_str())
            .unwrap_or_default()
            .to_string(),
    };
    if raw["RequestType"] == "Delete" && existing.is_some_and(|id| id != physical_id) {
        return Err(called.invalid(format!(
            "a Delete may not change the physical id (`{}` to `{physical_id}`)",
            existing.unwrap_or_default()
        )));
    }
    let data = field("data", "Data").unwrap_or_else(|| json!({}));
    if !data.is_object() {
        return Err(called.invalid("`data` must be an object (what Fn::GetAtt reads)"));
    }
    let no_echo = field("no_echo", "NoEcho")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    Ok((physical_id, data, no_echo))
}

fn answer(request: &Request, called: Called<'_>) -> Answer {
    let raw = &request.raw;
    let outcome = outcome(request, &called);
    if !puts(raw, called.invoked_function_arn) {
        return Answer::value(outcome.map(|(physical_id, data, no_echo)| {
            json!({"PhysicalResourceId": physical_id, "Data": data, "NoEcho": no_echo})
        }));
    }
    let fallback_id = raw["PhysicalResourceId"]
        .as_str()
        .or(raw["RequestId"].as_str())
        .unwrap_or("unknown")
        .to_string();
    let common = |status: &str, reason: String, physical_id: &str| {
        json!({
            "Status": status,
            "Reason": reason,
            "PhysicalResourceId": physical_id,
            "StackId": raw["StackId"],
            "RequestId": raw["RequestId"],
            "LogicalResourceId": raw["LogicalResourceId"],
        })
    };
    let failed = |error: &Error| {
        let reason: String = format!("{error} (request id {})", called.request_id)
            .chars()
            .take(1000)
            .collect();
        common("FAILED", reason, &fallback_id)
    };
    let body = match &outcome {
        Ok((physical_id, data, no_echo)) => {
            let mut body = common(
                "SUCCESS",
                format!("request id {}", called.request_id),
                physical_id,
            );
            body["NoEcho"] = json!(no_echo);
            body["Data"] = data.clone();
            let size = body.to_string().len();
            if size > MAX_RESPONSE_BYTES {
                failed(&called.invalid(format!(
                    "the response is {size} bytes, more than CloudFormation's {MAX_RESPONSE_BYTES}: \
                     return less `data`"
                )))
            } else {
                body
            }
        }
        Err(error) => failed(error),
    };
    let status = body["Status"].clone();
    Answer {
        value: Ok(json!({"Status": status, "PhysicalResourceId": body["PhysicalResourceId"]})),
        put: Some(Put {
            url: raw["ResponseURL"].as_str().unwrap_or_default().to_string(),
            body: body.to_string().into_bytes(),
        }),
    }
}

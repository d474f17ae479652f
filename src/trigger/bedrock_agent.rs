//! Bedrock agent action groups: an event with `messageVersion`, `agent` and `actionGroup`, and
//! either `apiPath` + `httpMethod` (an OpenAPI action group) or `function` (function details).
//! The function's output is the response body; an object `{"body": ..., "status": 404,
//! "state": "REPROMPT", "session_attributes": {...}, "prompt_session_attributes": {...}}` sets
//! the other parts. Answered in the agent's response envelope; a failed call answers status 500
//! (OpenAPI) or `responseState: FAILURE` (function details), so the agent hears of it.

use serde_json::{Map, Value, json};

use super::hook::{Checks, Compiled, HookProblem, HookSchema, Pattern, Rules};
use super::kind::HookKind;
use super::request::{Answer, Called, Request};

/// `{type: bedrock_agent, action_group: orders, api_path: "/orders/{id}"}` or
/// `{type: bedrock_agent, action_group: orders, function: get_order}`
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BedrockAgentHook {
    pub action_group: String,
    pub api_path: Option<String>,
    pub function: Option<String>,
    pub entrypoint: Option<String>,
}

impl HookSchema for BedrockAgentHook {
    fn entrypoint(&self) -> Option<&str> {
        self.entrypoint.as_deref()
    }

    fn compile(&self, _rules: Rules) -> Result<Compiled, Vec<HookProblem>> {
        let mut checks = Checks::default();
        checks.not_empty("action_group", &self.action_group);
        if self.api_path.is_some() && self.function.is_some() {
            checks.add(
                "function",
                "an action group has an API schema (`api_path`) or functions (`function`), not both",
            );
        }
        checks.entrypoint(self.entrypoint.as_deref());
        let compiled = Compiled::default()
            .with("action_group", Some(Pattern::Is(self.action_group.clone())))
            .with("api_path", self.api_path.clone().map(Pattern::Is))
            .with("function", self.function.clone().map(Pattern::Is));
        checks.done(compiled)
    }

    fn describe(&self) -> String {
        let mut text = format!("action group {}", self.action_group);
        if let Some(path) = &self.api_path {
            text.push_str(&format!(", api path {path}"));
        }
        if let Some(function) = &self.function {
            text.push_str(&format!(", function {function}"));
        }
        text
    }
}

/// A Bedrock agent's request, or `None` if `event` is not one.
pub(super) fn recognize(event: &Value) -> Option<Request> {
    event.get("messageVersion")?;
    event.get("agent")?;
    let group = event.get("actionGroup")?.as_str()?;
    let take = |name: &str| event.get(name).cloned().unwrap_or(Value::Null);
    // `[{name, type, value}]` as `{name: value}`: values come as strings whatever their type.
    let parameters: Map<String, Value> = event["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p.get("name")?.as_str()?.to_string(),
                p.get("value")?.clone(),
            ))
        })
        .collect();
    let fields = json!({
        "action_group": group,
        "api_path": take("apiPath"),
        "http_method": take("httpMethod"),
        "function": take("function"),
        "parameters": parameters,
        "request_body": take("requestBody"),
        "input_text": take("inputText"),
        "session_id": take("sessionId"),
        "session_attributes": take("sessionAttributes"),
        "prompt_session_attributes": take("promptSessionAttributes"),
        "agent": take("agent"),
    });
    let mut request = Request::new(
        HookKind::BedrockAgent,
        format!("bedrock agent action group `{group}`"),
        fields,
        event,
    )
    .with("action_group", group)
    .answered_by(answer);
    if let Some(path) = event.get("apiPath").and_then(Value::as_str) {
        request = request.with("api_path", path);
    }
    if let Some(function) = event.get("function").and_then(Value::as_str) {
        request = request.with("function", function);
    }
    Some(request)
}

/// The text of a body: a string as it is, anything else as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn answer(request: &Request, called: Called<'_>) -> Answer {
    let raw = &request.raw;
    let session = |name: &str| raw.get(name).cloned().unwrap_or_else(|| json!({}));
    let mut session_attributes = session("sessionAttributes");
    let mut prompt_session_attributes = session("promptSessionAttributes");
    let (body, status, state) = match called.result() {
        Ok(output) => {
            let parsed: Value = serde_json::from_slice(output)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(output).into_owned()));
            match &parsed {
                Value::Object(object) if object.contains_key("body") => {
                    if let Some(attributes) = object.get("session_attributes") {
                        session_attributes = attributes.clone();
                    }
                    if let Some(attributes) = object.get("prompt_session_attributes") {
                        prompt_session_attributes = attributes.clone();
                    }
                    (
                        text(&object["body"]),
                        object.get("status").and_then(Value::as_u64).unwrap_or(200),
                        object
                            .get("state")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    )
                }
                other => (text(other), 200, None),
            }
        }
        Err(error) => {
            let body = json!({"errorType": error.error_type(), "errorMessage": error.public_message(),
                              "requestId": called.request_id});
            (body.to_string(), 500, Some("FAILURE".to_string()))
        }
    };
    let group = &raw["actionGroup"];
    let response = if raw.get("apiPath").is_some() {
        json!({
            "actionGroup": group,
            "apiPath": raw["apiPath"],
            "httpMethod": raw["httpMethod"],
            "httpStatusCode": status,
            "responseBody": {"application/json": {"body": body}},
        })
    } else {
        let mut function_response = json!({"responseBody": {"TEXT": {"body": body}}});
        if let Some(state) = state {
            function_response["responseState"] = json!(state);
        }
        json!({
            "actionGroup": group,
            "function": raw["function"],
            "functionResponse": function_response,
        })
    };
    Answer::value(Ok(json!({
        "messageVersion": raw["messageVersion"],
        "response": response,
        "sessionAttributes": session_attributes,
        "promptSessionAttributes": prompt_session_attributes,
    })))
}

//! API Gateway Lambda authorizers: REST TOKEN and REQUEST, HTTP API payload 1.0 and 2.0, and
//! WebSocket `$connect`. The function returns `{allow, principal, context}`; the answer is an
//! IAM policy for the method or route ARN, except for HTTP API payload 2.0, which is answered in
//! its simple form `{isAuthorized, context}` (the API's authorizer must set
//! `EnableSimpleResponses: true`; payload 2.0 is the only one that may). A function that fails
//! or answers something else fails the invocation: API Gateway answers 500, never allows.

use serde_json::{Map, Value, json};

use super::hook::{Checks, Compiled, HookProblem, HookSchema, Pattern, Rules};
use super::kind::HookKind;
use super::request::{Answer, Called, Request};

/// `{type: authorizer, api: a1b2c3}`
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizerHook {
    /// The API id; default every API.
    pub api: Option<String>,
    pub entrypoint: Option<String>,
}

impl HookSchema for AuthorizerHook {
    fn entrypoint(&self) -> Option<&str> {
        self.entrypoint.as_deref()
    }

    fn compile(&self, _rules: Rules) -> Result<Compiled, Vec<HookProblem>> {
        let mut checks = Checks::default();
        if let Some(api) = &self.api {
            checks.not_empty("api", api);
        }
        checks.entrypoint(self.entrypoint.as_deref());
        checks.done(Compiled::default().with("api", self.api.clone().map(Pattern::Is)))
    }

    fn describe(&self) -> String {
        match &self.api {
            Some(api) => format!("api {api}"),
            None => "any api".to_string(),
        }
    }
}

/// Which authorizer call this is, which decides the answer's shape.
fn source(event: &Value) -> &'static str {
    let version = event.get("version").and_then(Value::as_str);
    let websocket = event["requestContext"].get("connectionId").is_some()
        || event["requestContext"]["eventType"].as_str() == Some("CONNECT");
    match (event["type"].as_str(), version) {
        (Some("TOKEN"), _) => "rest-token",
        (_, Some("2.0")) => "http-v2",
        (_, Some("1.0")) if !websocket => "http-v1",
        _ if websocket => "websocket",
        _ => "rest-request",
    }
}

/// `arn:aws:execute-api:region:account:api/stage/...` -> `api`.
fn api_of_arn(arn: &str) -> Option<&str> {
    arn.splitn(6, ':').nth(5)?.split('/').next()
}

/// An authorizer's request, or `None` if `event` is not one.
pub(super) fn recognize(event: &Value) -> Option<Request> {
    let kind = event.get("type")?.as_str()?;
    if !matches!(kind, "TOKEN" | "REQUEST") {
        return None;
    }
    let arn = event
        .get("methodArn")
        .or_else(|| event.get("routeArn"))?
        .as_str()?;
    let source = source(event);
    let api = event["requestContext"]["apiId"]
        .as_str()
        .or_else(|| api_of_arn(arn))
        .unwrap_or_default();
    // The TOKEN authorizer's token, else the first identity source, else (REST REQUEST and
    // WebSocket events carry none) the `Authorization` header.
    let authorization = event["headers"].as_object().and_then(|headers| {
        headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .map(|(_, value)| value.clone())
    });
    let token = event
        .get("authorizationToken")
        .cloned()
        .or_else(|| {
            event
                .get("identitySource")
                .map(|identity| match identity {
                    Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
                    other => other.clone(),
                })
                .filter(Value::is_string)
        })
        .or(authorization)
        .unwrap_or(Value::Null);
    let fields = json!({
        "source": source,
        "api": api,
        "arn": arn,
        "token": token,
        "headers": event.get("headers").cloned().unwrap_or(Value::Null),
        "query": event.get("queryStringParameters").cloned().unwrap_or(Value::Null),
        "path_parameters": event.get("pathParameters").cloned().unwrap_or(Value::Null),
        "method": event.get("httpMethod").cloned()
            .or_else(|| event["requestContext"]["http"].get("method").cloned())
            .unwrap_or(Value::Null),
        "route": event.get("routeKey").cloned()
            .or_else(|| event["requestContext"].get("routeKey").cloned())
            .or_else(|| event.get("resource").cloned())
            .unwrap_or(Value::Null),
        "request_context": event.get("requestContext").cloned().unwrap_or(Value::Null),
    });
    let label = format!("authorizer for api `{api}` ({source})");
    Some(
        Request::new(HookKind::Authorizer, label, fields, event)
            .with("api", api)
            .answered_by(answer),
    )
}

fn answer(request: &Request, called: Called<'_>) -> Answer {
    Answer::value(decide(request, called))
}

fn decide(request: &Request, called: Called<'_>) -> Result<Value, crate::error::Error> {
    let output = called.object(
        HookKind::Authorizer,
        "`{\"allow\": true|false, \"principal\": ..., \"context\": {...}}`",
    )?;
    let Some(allow) = output.get("allow").and_then(Value::as_bool) else {
        return Err(called.invalid(
            "an authorizer must return `allow`: true or false (nothing is allowed without it)",
        ));
    };
    // API Gateway takes only strings, numbers and booleans: anything else goes as JSON text.
    let context: Map<String, Value> = match output.get("context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(context)) => context
            .iter()
            .map(|(key, value)| {
                let flat = match value {
                    Value::String(_) | Value::Number(_) | Value::Bool(_) => value.clone(),
                    other => Value::String(other.to_string()),
                };
                (key.clone(), flat)
            })
            .collect(),
        Some(_) => return Err(called.invalid("an authorizer's `context` must be an object")),
    };
    if request.fields["source"] == "http-v2" {
        return Ok(json!({"isAuthorized": allow, "context": context}));
    }
    let principal = match output.get("principal") {
        Some(Value::String(principal)) if !principal.is_empty() => principal.clone(),
        None | Some(Value::Null) | Some(Value::String(_)) => "anonymous".to_string(),
        Some(other) => other.to_string(),
    };
    // The method ARN, unless the function names the resources its answer covers (a policy is
    // cached by token, so `arn:...:api/stage/*` lets one answer serve every method).
    let resource = match output.get("resources") {
        None | Some(Value::Null) => request.fields["arn"].clone(),
        Some(Value::String(arn)) => Value::String(arn.clone()),
        Some(Value::Array(arns)) if !arns.is_empty() && arns.iter().all(Value::is_string) => {
            Value::Array(arns.clone())
        }
        Some(_) => {
            return Err(called.invalid(
                "an authorizer's `resources` must be an ARN or a non-empty list of ARNs",
            ));
        }
    };
    Ok(json!({
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{
                "Action": "execute-api:Invoke",
                "Effect": if allow { "Allow" } else { "Deny" },
                "Resource": resource,
            }],
        },
        "context": context,
    }))
}

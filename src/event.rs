//! Classifies an incoming Lambda event and normalizes it into what a function receives.
//!
//! Detection goes by the event's own shape, most distinctive key first:
//! - `{"function": ..., "input": ...}`: a direct invocation;
//! - `requestContext.elb`: an ALB target-group request;
//! - `version: "2.0"` with `requestContext.http`: HTTP API v2 or a Function URL;
//! - `httpMethod` with `requestContext`: API Gateway REST (v1).

use std::collections::BTreeMap;

use aws_lambda_events::alb::AlbTargetGroupRequest;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use http::HeaderMap;
use query_map::QueryMap;
use serde_json::{Value, json};

use crate::error::Error;

/// The response shape an HTTP event expects back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpShape {
    /// API Gateway REST API (payload v1).
    RestV1,
    /// HTTP API (payload v2) and Function URLs.
    HttpV2,
    /// Application Load Balancer; `multi_value` when the target group sends multi-value headers.
    Alb { multi_value: bool },
}

/// A normalized HTTP request.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub shape: HttpShape,
    pub method: String,
    /// The path routed on, without the stage prefix.
    pub path: String,
    /// Whether `path` is still percent-encoded (v2 and ALB send it raw; v1 decoded).
    pub path_encoded: bool,
    pub query: BTreeMap<String, String>,
    /// Lower-case names; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    pub cookies: Vec<String>,
    pub body: Option<String>,
    pub is_base64_encoded: bool,
    pub source_ip: Option<String>,
    pub auth: Value,
}

/// What an event asks for.
#[derive(Debug)]
pub enum Event {
    /// `{"function": "<name>", "input": <any JSON>}`
    Direct {
        function: String,
        input: Value,
    },
    Http(Box<HttpRequest>),
}

impl Event {
    /// Classifies `event`. An unknown shape is `UnsupportedEvent` naming the keys seen.
    pub fn classify(event: &Value) -> Result<Event, Error> {
        let Some(object) = event.as_object() else {
            return Err(Error::UnsupportedEvent(format!(
                "expected a JSON object, got {}",
                kind_of(event)
            )));
        };
        if let Some(function) = object.get("function") {
            let Some(function) = function.as_str() else {
                return Err(Error::InvalidRequest(format!(
                    "direct invocation: `function` must be a string naming the function, got {}",
                    kind_of(function)
                )));
            };
            return Ok(Event::Direct {
                function: function.to_string(),
                input: object.get("input").cloned().unwrap_or(Value::Null),
            });
        }
        let context = object.get("requestContext");
        if context.and_then(|c| c.get("elb")).is_some() {
            let request: AlbTargetGroupRequest = parse(event, "ALB request")?;
            return Ok(Event::Http(Box::new(from_alb(
                request,
                object.contains_key("multiValueHeaders"),
            ))));
        }
        if object.get("version").and_then(Value::as_str) == Some("2.0")
            && context.and_then(|c| c.get("http")).is_some()
        {
            let request: ApiGatewayV2httpRequest = parse(event, "HTTP API v2 request")?;
            return Ok(Event::Http(Box::new(from_v2(request))));
        }
        if object.contains_key("httpMethod") && context.is_some() {
            let request: ApiGatewayProxyRequest = parse(event, "API Gateway REST request")?;
            return Ok(Event::Http(Box::new(from_v1(request))));
        }
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        Err(Error::UnsupportedEvent(format!(
            "no known event has this shape (top-level keys: [{}])",
            keys.join(", ")
        )))
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse<T: serde::de::DeserializeOwned>(event: &Value, what: &str) -> Result<T, Error> {
    serde_json::from_value(event.clone())
        .map_err(|error| Error::InvalidRequest(format!("malformed {what}: {error}")))
}

fn headers(single: &HeaderMap, multi: &HeaderMap) -> BTreeMap<String, String> {
    let source = if multi.is_empty() { single } else { multi };
    let mut headers = BTreeMap::new();
    for name in source.keys() {
        let values: Vec<&str> = source
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        headers.insert(name.as_str().to_string(), values.join(", "));
    }
    headers
}

fn query(single: &QueryMap, multi: &QueryMap) -> BTreeMap<String, String> {
    let source = if multi.is_empty() { single } else { multi };
    let mut query = BTreeMap::new();
    for (name, _) in source.iter() {
        if query.contains_key(name) {
            continue;
        }
        let values = source.all(name).unwrap_or_default();
        query.insert(name.to_string(), values.join(","));
    }
    query
}

fn from_v1(request: ApiGatewayProxyRequest) -> HttpRequest {
    let authorizer =
        serde_json::to_value(&request.request_context.authorizer).unwrap_or(Value::Null);
    HttpRequest {
        shape: HttpShape::RestV1,
        method: request.http_method.to_string(),
        path: request.path.clone().unwrap_or_else(|| "/".to_string()),
        path_encoded: false,
        query: query(
            &request.query_string_parameters,
            &request.multi_value_query_string_parameters,
        ),
        headers: headers(&request.headers, &request.multi_value_headers),
        cookies: Vec::new(),
        body: request.body,
        is_base64_encoded: request.is_base64_encoded,
        source_ip: request.request_context.identity.source_ip,
        auth: non_empty(authorizer),
    }
}

fn from_v2(request: ApiGatewayV2httpRequest) -> HttpRequest {
    let context = &request.request_context;
    let mut path = request
        .raw_path
        .clone()
        .or_else(|| context.http.path.clone())
        .unwrap_or_else(|| "/".to_string());
    // A named stage appears in rawPath (`/prod/hello`); routes are written without it.
    if let Some(stage) = context.stage.as_deref().filter(|s| *s != "$default") {
        let prefix = format!("/{stage}");
        if path == prefix {
            path = "/".to_string();
        } else if path.starts_with(&format!("{prefix}/")) {
            path = path[prefix.len()..].to_string();
        }
    }
    let auth = context
        .authorizer
        .as_ref()
        .and_then(|a| serde_json::to_value(a).ok())
        .unwrap_or(Value::Null);
    HttpRequest {
        shape: HttpShape::HttpV2,
        method: context.http.method.to_string(),
        path,
        path_encoded: true,
        query: query(&request.query_string_parameters, &QueryMap::default()),
        headers: headers(&request.headers, &HeaderMap::new()),
        cookies: request.cookies.clone().unwrap_or_default(),
        body: request.body.clone(),
        is_base64_encoded: request.is_base64_encoded,
        source_ip: context.http.source_ip.clone(),
        auth: non_empty(auth),
    }
}

fn from_alb(request: AlbTargetGroupRequest, multi_value: bool) -> HttpRequest {
    let headers = headers(&request.headers, &request.multi_value_headers);
    let source_ip = headers
        .get("x-forwarded-for")
        .and_then(|forwarded| forwarded.split(',').next())
        .map(|ip| ip.trim().to_string());
    HttpRequest {
        shape: HttpShape::Alb { multi_value },
        method: request.http_method.to_string(),
        path: request.path.unwrap_or_else(|| "/".to_string()),
        path_encoded: true,
        query: query(
            &request.query_string_parameters,
            &request.multi_value_query_string_parameters,
        ),
        headers,
        cookies: Vec::new(),
        body: request.body,
        is_base64_encoded: request.is_base64_encoded,
        source_ip,
        auth: Value::Null,
    }
}

/// An authorizer with nothing in it is `null`, not `{}` full of empty fields.
fn non_empty(value: Value) -> Value {
    match &value {
        Value::Object(map)
            if map
                .values()
                .all(|v| v.is_null() || v == &json!({}) || v == &json!([])) =>
        {
            Value::Null
        }
        _ => value,
    }
}

/// Invocation facts every function receives as `context`.
#[derive(Debug, Clone)]
pub struct InvocationContext {
    pub request_id: String,
    pub function: String,
    pub deadline_ms: u64,
    pub remaining_ms: u64,
    pub invoked_function_arn: String,
    pub trace_id: Option<String>,
}

impl InvocationContext {
    pub fn to_json(&self) -> Value {
        json!({
            "request_id": self.request_id,
            "function": self.function,
            "deadline_ms": self.deadline_ms,
            "remaining_ms": self.remaining_ms,
            "invoked_function_arn": self.invoked_function_arn,
            "trace_id": self.trace_id,
        })
    }
}

impl HttpRequest {
    /// The JSON object an HTTP function receives.
    pub fn envelope(
        &self,
        context: &InvocationContext,
        route: &str,
        params: &BTreeMap<String, String>,
        raw: &Value,
    ) -> Value {
        let params: BTreeMap<&String, String> = params
            .iter()
            .map(|(name, value)| {
                let value = if self.path_encoded {
                    percent_encoding::percent_decode_str(value)
                        .decode_utf8_lossy()
                        .into_owned()
                } else {
                    value.clone()
                };
                (name, value)
            })
            .collect();
        json!({
            "trigger": "http",
            "context": context.to_json(),
            "method": self.method,
            "path": self.path,
            "route": route,
            "params": params,
            "query": self.query,
            "headers": self.headers,
            "cookies": self.cookies,
            "body": self.body,
            "is_base64_encoded": self.is_base64_encoded,
            "source_ip": self.source_ip,
            "auth": self.auth,
            "raw": raw,
        })
    }
}

/// What a direct invocation's plugin receives: a JSON string as its UTF-8 bytes, anything
/// else as JSON text, nothing for `null`.
pub fn direct_input(input: &Value) -> Vec<u8> {
    match input {
        Value::Null => Vec::new(),
        Value::String(text) => text.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

/// A direct invocation's answer: the output as JSON if it parses as JSON, else as a string.
pub fn direct_output(output: &[u8]) -> Value {
    serde_json::from_slice(output)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(output).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_input_and_output_are_raw() {
        assert_eq!(direct_input(&json!("a e i")), b"a e i");
        assert_eq!(direct_input(&json!({"a": 1})), br#"{"a":1}"#);
        assert_eq!(direct_input(&Value::Null), b"");
        assert_eq!(direct_output(br#"{"count": 3}"#), json!({"count": 3}));
        assert_eq!(direct_output(b"plain text"), json!("plain text"));
    }

    #[test]
    fn unknown_events_name_their_keys() {
        let error = Event::classify(&json!({"Records": [], "foo": 1})).unwrap_err();
        assert_eq!(error.error_type(), "UnsupportedEvent");
        assert!(error.to_string().contains("[Records, foo]"), "{error}");
        let error = Event::classify(&json!([1])).unwrap_err();
        assert!(error.to_string().contains("an array"));
        let error = Event::classify(&json!({"function": 7})).unwrap_err();
        assert_eq!(error.error_type(), "InvalidRequest");
    }

    #[test]
    fn v2_strips_a_named_stage() {
        let event = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/prod/hello/ada",
            "rawQueryString": "", "headers": {"Host": "x"},
            "requestContext": {"stage": "prod", "http": {"method": "GET", "path": "/prod/hello/ada",
                "sourceIp": "1.2.3.4"}},
            "isBase64Encoded": false
        });
        let Event::Http(request) = Event::classify(&event).unwrap() else {
            panic!("not http")
        };
        assert_eq!(request.path, "/hello/ada");
        assert_eq!(request.shape, HttpShape::HttpV2);
        assert_eq!(request.headers["host"], "x");
        assert_eq!(request.source_ip.as_deref(), Some("1.2.3.4"));
    }
}

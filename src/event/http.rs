//! HTTP events: API Gateway REST (v1), HTTP API (v2), Function URLs and ALB, normalized into one
//! request envelope.

use std::borrow::Cow;
use std::collections::BTreeMap;

use aws_lambda_events::alb::AlbTargetGroupRequest;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use http::HeaderMap;
use query_map::QueryMap;
use serde::Serialize;
use serde_json::{Value, json};

use super::{InvocationContext, parse};
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

/// Classifies an HTTP event by its shape, or returns `None` if it is not one.
pub(super) fn classify(event: &Value) -> Option<Result<HttpRequest, Error>> {
    let object = event.as_object()?;
    let context = object.get("requestContext");
    if context.and_then(|c| c.get("elb")).is_some() {
        return Some(
            parse::<AlbTargetGroupRequest>(event, "ALB request")
                .map(|request| from_alb(request, object.contains_key("multiValueHeaders"))),
        );
    }
    if object.get("version").and_then(Value::as_str) == Some("2.0")
        && context.and_then(|c| c.get("http")).is_some()
    {
        return Some(parse(event, "HTTP API v2 request").map(from_v2));
    }
    if object.contains_key("httpMethod") && context.is_some() {
        return Some(parse(event, "API Gateway REST request").map(from_v1));
    }
    None
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
    // QueryMap's own iterator panics on a parameter without values (`{"tag": []}`): read the
    // map through serde instead.
    let all: BTreeMap<String, Vec<String>> = serde_json::to_value(source)
        .and_then(serde_json::from_value)
        .unwrap_or_default();
    all.into_iter()
        .map(|(name, values)| (name, values.join(",")))
        .collect()
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

/// The JSON object an HTTP function receives, serialized from borrowed parts.
#[derive(Serialize)]
struct Envelope<'a> {
    trigger: &'static str,
    context: &'a InvocationContext,
    method: &'a str,
    path: &'a str,
    route: &'a str,
    params: BTreeMap<&'a str, Cow<'a, str>>,
    query: &'a BTreeMap<String, String>,
    headers: &'a BTreeMap<String, String>,
    cookies: &'a [String],
    body: Option<&'a str>,
    is_base64_encoded: bool,
    source_ip: Option<&'a str>,
    auth: &'a Value,
    raw: &'a Value,
}

impl HttpRequest {
    /// The JSON object an HTTP function receives, as the bytes of its input.
    pub fn envelope(
        &self,
        context: &InvocationContext,
        route: &str,
        params: &BTreeMap<String, String>,
        raw: &Value,
    ) -> Vec<u8> {
        let params = params
            .iter()
            .map(|(name, value)| {
                let value = if self.path_encoded {
                    percent_encoding::percent_decode_str(value).decode_utf8_lossy()
                } else {
                    Cow::Borrowed(value.as_str())
                };
                (name.as_str(), value)
            })
            .collect();
        let envelope = Envelope {
            trigger: "http",
            context,
            method: &self.method,
            path: &self.path,
            route,
            params,
            query: &self.query,
            headers: &self.headers,
            cookies: &self.cookies,
            body: self.body.as_deref(),
            is_base64_encoded: self.is_base64_encoded,
            source_ip: self.source_ip.as_deref(),
            auth: &self.auth,
            raw,
        };
        // Serializing borrowed strings and JSON values into memory cannot fail.
        serde_json::to_vec(&envelope).expect("an HTTP envelope serializes")
    }
}

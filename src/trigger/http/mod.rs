//! HTTP events: API Gateway REST (v1), HTTP API (v2), Function URLs, ALB and VPC Lattice (v1 and
//! v2), normalized into one request envelope and answered in the shape each expects
//! ([`response`]).

mod response;
mod text;

pub use self::response::HttpResponse;
pub(super) use self::text::from_v2_text;

use std::borrow::Cow;
use std::collections::BTreeMap;

use aws_lambda_events::alb::AlbTargetGroupRequest;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayRequestAuthorizer};
use http::HeaderMap;
use query_map::QueryMap;
use serde::Serialize;
use serde_json::{Value, json};

use super::hook::{Checks, Compiled, HookProblem, HookSchema, OneOrMany, Rules};
use super::kind::HookKind;
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
    /// VPC Lattice, event format v1 or v2 (one response shape for both).
    Lattice,
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
pub(super) fn recognize(event: &Value) -> Option<Result<HttpRequest, Error>> {
    let object = event.as_object()?;
    let context = object.get("requestContext");
    if context.and_then(|c| c.get("serviceNetworkArn")).is_some()
        || (object.contains_key("raw_path") && object.contains_key("method"))
    {
        return Some(lattice(event));
    }
    if context.and_then(|c| c.get("elb")).is_some() {
        return Some(
            parse::<AlbTargetGroupRequest>(event, "ALB request")
                .map(|request| from_alb(request, object.contains_key("multiValueHeaders"))),
        );
    }
    if object.get("version").and_then(Value::as_str) == Some("2.0")
        && context.and_then(|c| c.get("http")).is_some()
    {
        return Some(from_v2(event));
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

/// An HTTP API v2 (or Function URL) request, read from the event's JSON as it is, the fields the
/// envelope carries only: without typing the whole event (every header parsed into a `HeaderMap`,
/// the query through a `QueryMap`) and copying it out again, which was 7.6% of the bootstrap's CPU
/// in a warm HTTP call. A field of the wrong type is `InvalidRequest`, naming it; headers are read
/// as `aws_lambda_events` reads them (see [`v2_headers`]).
fn from_v2(event: &Value) -> Result<HttpRequest, Error> {
    let malformed =
        |what: String| Error::InvalidRequest(format!("malformed HTTP API v2 request: {what}"));
    let text = |value: Option<&Value>, field: &str| -> Result<Option<String>, Error> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(malformed(format!(
                "`{field}` must be a string, got {}",
                super::kind_of(other)
            ))),
        }
    };
    let context = event.get("requestContext");
    let http = context.and_then(|c| c.get("http"));
    let method = http
        .and_then(|h| h.get("method"))
        .and_then(Value::as_str)
        .and_then(v2_method)
        .ok_or_else(|| malformed("`requestContext.http.method` must be an HTTP method".into()))?;
    let raw_path = match event.get("rawPath") {
        Some(raw) => text(Some(raw), "rawPath")?,
        None => text(event.get("path"), "path")?,
    };
    let path = match raw_path {
        Some(path) => path,
        None => text(http.and_then(|h| h.get("path")), "requestContext.http.path")?
            .unwrap_or_else(|| "/".to_string()),
    };
    let stage = text(context.and_then(|c| c.get("stage")), "requestContext.stage")?;
    let path = without_stage(path, stage.as_deref());
    let auth = match context.and_then(|c| c.get("authorizer")) {
        None | Some(Value::Null) => Value::Null,
        Some(authorizer) => v2_authorizer(authorizer)?,
    };
    let cookies = match event.get("cookies") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(cookies)) => cookies
            .iter()
            .map(|cookie| {
                cookie.as_str().map(str::to_string).ok_or_else(|| {
                    malformed(format!(
                        "a cookie must be a string, got {}",
                        super::kind_of(cookie)
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(malformed(format!(
                "`cookies` must be an array of strings, got {}",
                super::kind_of(other)
            )));
        }
    };
    let is_base64_encoded = match event.get("isBase64Encoded") {
        None => false,
        Some(Value::Bool(encoded)) => *encoded,
        Some(other) => {
            return Err(malformed(format!(
                "`isBase64Encoded` must be a boolean, got {}",
                super::kind_of(other)
            )));
        }
    };
    Ok(HttpRequest {
        shape: HttpShape::HttpV2,
        method: method.to_string(),
        path,
        path_encoded: true,
        query: v2_query(event.get("queryStringParameters")).map_err(malformed)?,
        headers: v2_headers(event.get("headers")).map_err(malformed)?,
        cookies,
        body: text(event.get("body"), "body")?,
        is_base64_encoded,
        source_ip: text(
            http.and_then(|h| h.get("sourceIp")),
            "requestContext.http.sourceIp",
        )?,
        auth: non_empty(auth),
    })
}

/// A v2 request's method as `aws_lambda_events` reads it (an empty method is GET), or `None`
/// when it is not one.
fn v2_method(method: &str) -> Option<http::Method> {
    let method = if method.is_empty() { "GET" } else { method };
    http::Method::from_bytes(method.as_bytes()).ok()
}

/// A v2 request's authorizer, typed as before: its JWT, Lambda and IAM descriptions.
fn v2_authorizer(authorizer: &Value) -> Result<Value, Error> {
    parse::<ApiGatewayRequestAuthorizer>(authorizer, "HTTP API v2 request's authorizer")
        .map(|authorizer| serde_json::to_value(authorizer).unwrap_or(Value::Null))
}

/// A named stage appears in v2's rawPath (`/prod/hello`); routes are written without it.
fn without_stage(path: String, stage: Option<&str>) -> String {
    let Some(stage) = stage.filter(|s| *s != "$default") else {
        return path;
    };
    let prefix = format!("/{stage}");
    if path == prefix {
        "/".to_string()
    } else if path.starts_with(&format!("{prefix}/")) {
        path[prefix.len()..].to_string()
    } else {
        path
    }
}

/// v2's `queryStringParameters`: repeated parameters already joined with `,` (an array of
/// values is joined the same way).
fn v2_query(value: Option<&Value>) -> Result<BTreeMap<String, String>, String> {
    let Some(object) = value.filter(|v| !v.is_null()) else {
        return Ok(BTreeMap::new());
    };
    let Some(object) = object.as_object() else {
        return Err("`queryStringParameters` must be an object".to_string());
    };
    object
        .iter()
        .map(|(name, value)| {
            let value = match value {
                Value::String(value) => value.clone(),
                Value::Array(values) => values
                    .iter()
                    .map(|v| v.as_str().ok_or(()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|()| format!("query parameter `{name}`: values must be strings"))?
                    .join(","),
                _ => return Err(format!("query parameter `{name}` must be a string")),
            };
            Ok((name.clone(), value))
        })
        .collect()
}

/// v2's `headers`, as `aws_lambda_events` reads them into a `HeaderMap` and [`headers`] out of
/// it: names lower-cased (the last of two spellings of one name wins, an array of values is
/// joined with `, `), a name or value HTTP does not allow is an error, and a value that is not
/// visible ASCII is left out (a header with no other value is kept, empty).
fn v2_headers(value: Option<&Value>) -> Result<BTreeMap<String, String>, String> {
    let Some(object) = value.filter(|v| !v.is_null()) else {
        return Ok(BTreeMap::new());
    };
    let Some(object) = object.as_object() else {
        return Err("`headers` must be an object".to_string());
    };
    let plain = |name: &str, value: &Value| value.as_str().is_some_and(|v| plain_header(name, v));
    if object.iter().all(|(name, value)| plain(name, value)) {
        return Ok(object
            .iter()
            .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_string()))
            .collect());
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in object {
        let header = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not an HTTP header name"))?;
        let visible = |value: &str| -> Result<Option<String>, String> {
            let parsed = http::HeaderValue::from_str(value)
                .map_err(|_| format!("header `{name}`: not an HTTP header value"))?;
            Ok(parsed.to_str().ok().map(str::to_string))
        };
        match value {
            Value::String(value) => {
                let values = headers.entry(header.as_str().to_string()).or_default();
                values.clear();
                values.extend(visible(value)?);
            }
            Value::Array(values) => {
                for value in values {
                    let Some(value) = value.as_str() else {
                        return Err(format!("header `{name}`: values must be strings"));
                    };
                    let visible = visible(value)?;
                    headers
                        .entry(header.as_str().to_string())
                        .or_default()
                        .extend(visible);
                }
            }
            _ => return Err(format!("header `{name}` must be a string")),
        }
    }
    Ok(headers
        .into_iter()
        .map(|(name, values)| (name, values.join(", ")))
        .collect())
}

/// What HTTP APIs send: a lower-case name and a visible-ASCII value, which [`v2_headers`] keeps
/// as they are.
fn plain_header(name: &str, value: &str) -> bool {
    let visible = |b: u8| (b' '..=b'~').contains(&b) || b == b'\t';
    let token =
        |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b);
    !name.is_empty()
        && name.len() < 1 << 16
        && name.bytes().all(token)
        && value.bytes().all(visible)
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

/// A VPC Lattice request: v1 (`raw_path`, `method`, `query_string_parameters`) or v2
/// (`version: "2.0"`, `path`, multi-valued `headers` and `queryStringParameters`).
fn lattice(event: &Value) -> Result<HttpRequest, Error> {
    let text = |value: &Value| match value {
        Value::String(text) => Some(text.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    let map = |value: Option<&Value>, separator: &str| -> BTreeMap<String, String> {
        value
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(name, value)| {
                let value = match value {
                    Value::Array(items) => items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(separator),
                    other => text(other)?,
                };
                Some((name.clone(), value))
            })
            .collect()
    };
    let v2 = event.get("version").and_then(Value::as_str) == Some("2.0");
    let (path, query, base64) = if v2 {
        ("path", "queryStringParameters", "isBase64Encoded")
    } else {
        ("raw_path", "query_string_parameters", "is_base64_encoded")
    };
    let Some(method) = event.get("method").and_then(Value::as_str) else {
        return Err(Error::InvalidRequest(
            "malformed VPC Lattice request: `method` must be a string".to_string(),
        ));
    };
    let path = event.get(path).and_then(Value::as_str).unwrap_or("/");
    // v1's raw_path carries the query string.
    let path = path.split('?').next().unwrap_or("/").to_string();
    let headers: BTreeMap<String, String> = map(event.get("headers"), ", ")
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    let source_ip = headers
        .get("x-forwarded-for")
        .and_then(|forwarded| forwarded.split(',').next())
        .map(|ip| ip.trim().to_string());
    let identity = event
        .get("requestContext")
        .and_then(|c| c.get("identity"))
        .cloned()
        .unwrap_or(Value::Null);
    Ok(HttpRequest {
        shape: HttpShape::Lattice,
        method: method.to_ascii_uppercase(),
        path,
        path_encoded: true,
        query: map(event.get(query), ","),
        headers,
        cookies: Vec::new(),
        body: event
            .get("body")
            .and_then(Value::as_str)
            .map(str::to_string),
        is_base64_encoded: event.get(base64).and_then(Value::as_bool).unwrap_or(false),
        source_ip,
        auth: identity,
    })
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

/// The JSON object an HTTP function receives, serialized from borrowed parts (`raw` after them).
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
}

/// The event as Lambda sent it, which an HTTP function receives as `raw`.
#[derive(Debug, Clone, Copy)]
pub enum RawEvent<'a> {
    /// The JSON text the event was read from: passed on as it is, with no second serialization.
    Text(&'a [u8]),
    /// The event's tree, when there is no text (an invocation from the CLI): serialized.
    Tree(&'a Value),
}

impl HttpRequest {
    /// The JSON object an HTTP function receives, as the bytes of its input; its `raw` is `raw`.
    pub fn envelope(
        &self,
        context: &InvocationContext,
        route: &str,
        params: &BTreeMap<String, String>,
        raw: RawEvent,
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
            trigger: HookKind::Http.name(),
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
        };
        // Serializing borrowed strings and JSON values into memory cannot fail; the object's
        // closing brace comes after `raw`.
        let text_len = match raw {
            RawEvent::Text(text) => text.len(),
            RawEvent::Tree(_) => 0,
        };
        let mut out = Vec::with_capacity(1024 + text_len * 2);
        serde_json::to_writer(&mut out, &envelope).expect("an HTTP envelope serializes");
        out.pop();
        out.extend_from_slice(b",\"raw\":");
        match raw {
            RawEvent::Text(text) => out.extend_from_slice(text),
            RawEvent::Tree(tree) => serde_json::to_writer(&mut out, tree).expect("JSON serializes"),
        }
        out.push(b'}');
        out
    }
}

/// `{type: http, method: GET, path: /hello/{name}}`
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpHook {
    /// `GET`, `[GET, POST]` or `ANY`; default `ANY`.
    pub method: Option<OneOrMany>,
    /// `/hello/{name}`, `/files/{rest+}`
    pub path: String,
    pub entrypoint: Option<String>,
}

/// An HTTP hook's route, checked once: the path as written, its shape for the router and its
/// parameter names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The path as the manifest wrote it (`/hello/{name}`).
    pub path: String,
    /// `matchit` syntax with parameters numbered (`/hello/{p0}`): routes differing only in
    /// parameter names share a shape.
    pub shape: String,
    /// Parameter names in path order.
    pub params: Vec<String>,
    /// Upper-case methods; `None` means any method.
    pub methods: Option<Vec<String>>,
}

impl Route {
    /// Whether the shape ends in a greedy parameter (`{rest+}`).
    pub fn greedy(&self) -> bool {
        self.shape.contains("{*")
    }
}

impl HookSchema for HttpHook {
    fn entrypoint(&self) -> Option<&str> {
        self.entrypoint.as_deref()
    }

    fn compile(&self, rules: Rules) -> Result<Compiled, Vec<HookProblem>> {
        let mut checks = Checks::default();
        checks.entrypoint(self.entrypoint.as_deref());
        let written: Vec<String> = self
            .method
            .as_ref()
            .map(OneOrMany::to_vec)
            .unwrap_or_default();
        for method in &written {
            if !HTTP_METHODS.contains(&method.to_ascii_uppercase().as_str()) {
                checks.add(
                    "method",
                    format!("`{method}` is not one of {}", HTTP_METHODS.join(", ")),
                );
            }
        }
        let pattern = checks.check("path", route_pattern(&self.path));
        if rules == Rules::All {
            checks.check("path", check_route_segments(&self.path));
        }
        let methods: Vec<String> = written.iter().map(|m| m.to_ascii_uppercase()).collect();
        let methods =
            (!methods.is_empty() && !methods.iter().any(|m| m == "ANY")).then_some(methods);
        let route = pattern.map(|pattern| {
            let (shape, params) = shape(&pattern);
            Route {
                path: self.path.clone(),
                shape,
                params,
                methods,
            }
        });
        checks.done(Compiled {
            route,
            ..Compiled::default()
        })
    }

    fn describe(&self) -> String {
        let methods = self
            .method
            .as_ref()
            .map(|m| m.to_vec().join(","))
            .unwrap_or_else(|| "ANY".to_string());
        format!("{methods} {}", self.path)
    }
}

/// `/a/{x}/{*rest}` -> (`/a/{p0}/{*p1}`, [x, rest]).
fn shape(pattern: &str) -> (String, Vec<String>) {
    let mut names = Vec::new();
    let segments: Vec<String> = pattern
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(inner) => {
                    let (star, name) = match inner.strip_prefix('*') {
                        Some(name) => ("*", name),
                        None => ("", inner),
                    };
                    names.push(name.to_string());
                    format!("{{{star}p{}}}", names.len() - 1)
                }
                None => segment.to_string(),
            },
        )
        .collect();
    (segments.join("/"), names)
}

const HTTP_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "ANY",
];

/// Turns a hook path (`/files/{rest+}`) into `matchit` syntax (`/files/{*rest}`), or says why not.
pub fn route_pattern(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` must start with `/`"));
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let mut pattern = String::new();
    for (index, segment) in segments.iter().enumerate() {
        let last = index + 1 == segments.len();
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
            if greedy && !last {
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

/// The rules a route path must also follow for `validate` and `publish`: no empty segment (no
/// request path reaches it), no `.` or `..` segment (clients resolve them before sending), each
/// parameter named once. (The runtime serves what an earlier release published without them.)
fn check_route_segments(path: &str) -> Result<(), String> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut params: Vec<&str> = Vec::new();
    for (index, segment) in segments.iter().enumerate() {
        if segment.is_empty() && index + 1 != segments.len() {
            return Err(format!(
                "`{path}` has an empty segment (`//`), which no request path reaches"
            ));
        }
        if matches!(*segment, "." | "..") {
            return Err(format!(
                "`{path}` has a `{segment}` segment, which clients resolve before sending"
            ));
        }
        if let Some(inner) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let param = inner.strip_suffix('+').unwrap_or(inner);
            if params.contains(&param) {
                return Err(format!(
                    "`{path}`: parameter `{param}` appears twice; each parameter needs its own name"
                ));
            }
            params.push(param);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::apigw::ApiGatewayV2httpRequest;

    use super::*;

    /// The request as it was read before: the whole event typed by `aws_lambda_events`.
    fn typed_v2(event: &Value) -> Result<HttpRequest, Error> {
        let request: ApiGatewayV2httpRequest = parse(event, "HTTP API v2 request")?;
        let context = &request.request_context;
        let path = request
            .raw_path
            .clone()
            .or_else(|| context.http.path.clone())
            .unwrap_or_else(|| "/".to_string());
        let path = without_stage(path, context.stage.as_deref());
        let auth = context
            .authorizer
            .as_ref()
            .and_then(|a| serde_json::to_value(a).ok())
            .unwrap_or(Value::Null);
        Ok(HttpRequest {
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
        })
    }

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/events/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn v2_requests_read_from_the_json_as_typed_reading_read_them() {
        let mut events = Vec::new();
        for name in [
            "apigw-v2-get-hello.json",
            "apigw-v2-named-stage-hello.json",
            "function-url-get-hello.json",
        ] {
            let event = fixture(name);
            events.push(event.clone());
            let variants: [fn(&mut Value); 12] = [
                // Spellings of one header, and values HTTP allows that are not visible ASCII.
                |e| e["headers"] = json!({"X-Tag": "a", "x-tag": "b", "x-utf8": "caf\u{e9}"}),
                |e| e["headers"] = json!({"x-many": ["a", "b"], "X-Many": ["c"], "x-empty": ""}),
                |e| e["headers"] = Value::Null,
                |e| e["queryStringParameters"] = json!({"a": "1,2", "b": ["x", "y"], "c": []}),
                |e| e["queryStringParameters"] = Value::Null,
                |e| e["cookies"] = json!(["a=1", "b=2"]),
                |e| e["body"] = Value::Null,
                |e| e["requestContext"]["http"]["method"] = json!(""),
                |e| {
                    e["requestContext"]["authorizer"] =
                        json!({"jwt": {"claims": {"sub": "u"}, "scopes": ["r"]}})
                },
                |e| e["requestContext"]["authorizer"] = json!({"lambda": {"tenant": 7}}),
                |e| {
                    e.as_object_mut().unwrap().remove("rawPath");
                    e["requestContext"]["http"]["path"] = json!("/hello/from-context");
                },
                |e| e["requestContext"]["stage"] = json!("v1"),
            ];
            for variant in variants {
                let mut event = event.clone();
                variant(&mut event);
                events.push(event);
            }
        }
        for event in &events {
            let read = from_v2(event).unwrap();
            let typed = typed_v2(event).unwrap();
            assert_eq!(format!("{read:?}"), format!("{typed:?}"), "{event}");
        }
    }

    /// What a case does to an event to break it.
    type Breaks = fn(&mut Value);

    #[test]
    fn a_malformed_v2_request_names_its_field() {
        let event = fixture("apigw-v2-get-hello.json");
        let cases: [(Breaks, &str); 8] = [
            (
                |e| e["requestContext"]["http"]["method"] = json!(7),
                "requestContext.http.method",
            ),
            (
                |e| e["requestContext"]["http"]["method"] = json!("G T"),
                "requestContext.http.method",
            ),
            (
                |e| e["rawPath"] = json!(["/a"]),
                "`rawPath` must be a string",
            ),
            (
                |e| e["headers"] = json!({"bad name": "x"}),
                "`bad name` is not an HTTP header name",
            ),
            (|e| e["headers"] = json!({"x": "a\nb"}), "header `x`"),
            (
                |e| e["queryStringParameters"] = json!({"q": 1}),
                "query parameter `q`",
            ),
            (|e| e["cookies"] = json!([1]), "a cookie must be a string"),
            (
                |e| e["isBase64Encoded"] = json!("yes"),
                "`isBase64Encoded` must be a boolean",
            ),
        ];
        for (break_it, named) in cases {
            let mut event = event.clone();
            break_it(&mut event);
            let error = from_v2(&event).unwrap_err();
            assert_eq!(error.error_type(), "InvalidRequest");
            let message = error.to_string();
            assert!(
                message.contains("malformed HTTP API v2 request"),
                "{message}"
            );
            assert!(message.contains(named), "{message}");
        }
    }

    #[test]
    fn route_patterns_translate_to_matchit() {
        assert_eq!(route_pattern("/hello/{name}").unwrap(), "/hello/{name}");
        assert_eq!(route_pattern("/files/{rest+}").unwrap(), "/files/{*rest}");
        assert!(route_pattern("/files/{rest+}/x").is_err());
        assert!(route_pattern("hello").is_err());
        assert!(route_pattern("/a/b{c}").is_err());
        assert!(check_route_segments("/a//b").is_err());
        assert!(check_route_segments("/a/{id}/{id}").is_err());
        assert!(check_route_segments("/a/{id}/{id+}").is_err());
        assert!(check_route_segments("/a/./b").is_err());
        assert!(check_route_segments("/a/").is_ok());
        assert!(check_route_segments("/").is_ok());
        assert_eq!(route_pattern("/").unwrap(), "/");
        assert_eq!(route_pattern("/a/").unwrap(), "/a/");
    }
}

//! HTTP events: API Gateway REST (v1), HTTP API (v2), Function URLs, ALB and VPC Lattice (v1 and
//! v2), normalized into one request envelope and answered in the shape each expects
//! ([`response`]).

mod response;

pub use self::response::HttpResponse;

use std::borrow::Cow;
use std::collections::BTreeMap;

use aws_lambda_events::alb::AlbTargetGroupRequest;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
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
            raw,
        };
        // Serializing borrowed strings and JSON values into memory cannot fail.
        serde_json::to_vec(&envelope).expect("an HTTP envelope serializes")
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
    use super::*;

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

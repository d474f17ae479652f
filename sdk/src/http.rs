//! HTTP functions (hooks of `type: http`): the request the bootstrap hands over, whatever the
//! source (API Gateway REST or HTTP API, Function URL, ALB, VPC Lattice), and the response to
//! return, which the bootstrap answers in the source's own shape.
//!
//! ```ignore
//! use extism_pdk::*;
//! use wasm_lambda_sdk::http::{Request, Response};
//!
//! #[plugin_fn]
//! pub fn handle(Json(request): Json<Request>) -> FnResult<Json<Response>> {
//!     let name = request.param("name").unwrap_or("world");
//!     Ok(Json(Response::text(200, format!("Hello, {name}!\n"))))
//! }
//! ```
//!
//! The request is read field by field into plain strings and maps; `raw`, the event as the
//! source sent it, is kept as JSON text ([`RawValue`]) and parsed only by a function that asks
//! for it ([`Request::raw`]), so a function pays for the fields it has, not for the whole event
//! twice.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
pub use serde_json::value::RawValue;

use crate::Context;

/// An HTTP request, as every HTTP source is normalized (the README's "What a function
/// receives"). A field the input lacks is empty (a direct invocation with a partial request, in a
/// test, still reads).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Request {
    /// The invocation: request id, deadline, trace id.
    pub context: Context,
    /// Upper case: `GET`, `POST`, ...
    pub method: String,
    /// The path requested, without an HTTP API's stage prefix (still percent-encoded).
    pub path: String,
    /// The route of the manifest's hook that matched (`/hello/{name}`).
    pub route: String,
    /// The route's parameters (`{name}`), percent-decoded.
    pub params: BTreeMap<String, String>,
    /// Query parameters; a repeated one's values joined with `,`.
    pub query: BTreeMap<String, String>,
    /// Header names lower case; a repeated header's values joined with `, `.
    pub headers: BTreeMap<String, String>,
    pub cookies: Vec<String>,
    /// The body as text, base64 when `is_base64_encoded`.
    pub body: Option<String>,
    pub is_base64_encoded: bool,
    pub source_ip: Option<String>,
    /// What an authorizer said of the caller (JWT claims, an IAM identity, a Lambda
    /// authorizer's context), `None` without one.
    pub auth: Option<Box<RawValue>>,
    /// The event as the source sent it.
    pub raw: Option<Box<RawValue>>,
}

impl Request {
    /// A route parameter (`{name}` of `/hello/{name}`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// A query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A header, by its name in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        match self.headers.get(name) {
            Some(value) => Some(value),
            None => self.headers.get(&name.to_ascii_lowercase()),
        }
        .map(String::as_str)
    }

    /// The body parsed as JSON (a base64 body is not decoded: a JSON body never is one).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.body.as_deref().unwrap_or("null"))
    }

    /// The event as the source sent it, read into `T` (`serde_json::Value`, or a type of
    /// `aws_lambda_events`).
    pub fn raw<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.raw.as_deref().map_or("null", RawValue::get))
    }
}

/// An HTTP response: a status, headers (a name may repeat: `Set-Cookie`), a body.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Whether `body` is base64 (binary content).
    pub is_base64_encoded: bool,
}

impl Response {
    /// A response with `status` and no body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            ..Response::default()
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            body: body.into(),
            ..Response::default()
        }
        .header("content-type", "text/plain; charset=utf-8")
    }

    /// An `application/json` response of `value`.
    pub fn json<T: Serialize + ?Sized>(
        status: u16,
        value: &T,
    ) -> Result<Response, serde_json::Error> {
        Ok(Response {
            status,
            body: serde_json::to_string(value)?,
            ..Response::default()
        }
        .header("content-type", "application/json"))
    }

    /// The response with one more header (a second of the same name is sent as well).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// As the bootstrap reads it: `{"status", "headers": {name: value or [values]}, "body",
/// "is_base64_encoded"}`.
impl Serialize for Response {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("status", &self.status)?;
        map.serialize_entry("headers", &Headers(&self.headers))?;
        map.serialize_entry("body", &self.body)?;
        map.serialize_entry("is_base64_encoded", &self.is_base64_encoded)?;
        map.end()
    }
}

/// Headers as a JSON object: each name once, its value a string, or an array when it repeats.
struct Headers<'a>(&'a [(String, String)]);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (at, (name, value)) in self.0.iter().enumerate() {
            if self.0[..at].iter().any(|(seen, _)| seen == name) {
                continue;
            }
            let values: Vec<&str> = self.0[at..]
                .iter()
                .filter(|(other, _)| other == name)
                .map(|(_, value)| value.as_str())
                .collect();
            match values.as_slice() {
                [_] => map.serialize_entry(name, value)?,
                many => map.serialize_entry(name, many)?,
            }
        }
        map.end()
    }
}

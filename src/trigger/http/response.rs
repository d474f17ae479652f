//! The HTTP answer in the shape of the event it came from: API Gateway REST or HTTP API,
//! Function URL, ALB or VPC Lattice.

use std::collections::BTreeMap;

use aws_lambda_events::alb::AlbTargetGroupResponse;
use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};
use tracing::warn;

use super::HttpShape;
use crate::error::Error;

/// An HTTP answer before it is shaped for API Gateway or ALB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Header name (any case) to its values.
    pub headers: BTreeMap<String, Vec<String>>,
    pub body: String,
    pub is_base64_encoded: bool,
}

impl HttpResponse {
    fn text(status: u16, content_type: &str, body: String) -> HttpResponse {
        HttpResponse {
            status,
            headers: BTreeMap::from([("content-type".to_string(), vec![content_type.to_string()])]),
            body,
            is_base64_encoded: false,
        }
    }

    /// A JSON error body: `{"errorType", "errorMessage"}`, as Lambda itself reports errors.
    pub fn error(status: u16, error_type: &str, message: &str) -> HttpResponse {
        HttpResponse::text(
            status,
            "application/json",
            json!({"errorType": error_type, "errorMessage": message}).to_string(),
        )
    }

    /// The answer for a failed function call, to a public HTTP caller: a stable `errorType`,
    /// a short message with no internals, and the request id under which the log has the whole
    /// error.
    pub fn from_error(error: &Error, request_id: &str) -> HttpResponse {
        HttpResponse::text(
            error.http_status(),
            "application/json",
            json!({
                "errorType": error.error_type(),
                "errorMessage": error.public_message(),
                "requestId": request_id,
            })
            .to_string(),
        )
    }

    /// Reads a plugin's output: `{"status", "headers", "body", "is_base64_encoded"}` is an HTTP
    /// response; anything else is a 200 with the output as its body.
    pub fn from_output(function: &str, output: &[u8]) -> Result<HttpResponse, Error> {
        let parsed: Option<Value> = serde_json::from_slice(output).ok();
        let mut object = match parsed {
            Some(Value::Object(object)) => object,
            parsed => {
                return Ok(match std::str::from_utf8(output) {
                    Ok(text) if parsed.is_some() => {
                        HttpResponse::text(200, "application/json", text.to_string())
                    }
                    Ok(text) => {
                        HttpResponse::text(200, "text/plain; charset=utf-8", text.to_string())
                    }
                    Err(_) => HttpResponse {
                        status: 200,
                        headers: BTreeMap::from([(
                            "content-type".to_string(),
                            vec!["application/octet-stream".to_string()],
                        )]),
                        body: base64::engine::general_purpose::STANDARD.encode(output),
                        is_base64_encoded: true,
                    },
                });
            }
        };
        let Some(status) = object.get("status") else {
            let text = String::from_utf8_lossy(output).into_owned();
            return Ok(HttpResponse::text(200, "application/json", text));
        };
        let invalid = |reason: String| Error::FunctionError {
            function: function.to_string(),
            reason: format!("invalid HTTP response: {reason}"),
        };
        let status = status
            .as_u64()
            .filter(|s| (100..=599).contains(s))
            .ok_or_else(|| {
                invalid(format!(
                    "`status` must be a number from 100 to 599, got {status}"
                ))
            })? as u16;
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let Some(given) = object.remove("headers") {
            let Value::Object(given) = given else {
                return Err(invalid("`headers` must be an object".to_string()));
            };
            for (name, value) in given {
                let values = match value {
                    Value::String(s) => vec![s],
                    Value::Array(items) => items
                        .into_iter()
                        .map(|item| match item {
                            Value::String(s) => s,
                            other => other.to_string(),
                        })
                        .collect(),
                    other => vec![other.to_string()],
                };
                if HeaderName::from_bytes(name.as_bytes()).is_err() {
                    warn!(
                        %function,
                        header = %name.chars().take(200).collect::<String>().escape_debug(),
                        "response header dropped: its name is not a valid HTTP header name"
                    );
                    continue;
                }
                let values: Vec<String> = values
                    .into_iter()
                    .filter(|value| {
                        let safe = header_value_is_safe(value);
                        if !safe {
                            warn!(
                                %function,
                                header = %name,
                                value = %value.chars().take(200).collect::<String>().escape_debug(),
                                "response header value dropped: it holds CR, LF or another \
                                 control character, which could inject headers"
                            );
                        }
                        safe
                    })
                    .collect();
                if !values.is_empty() {
                    headers.insert(name, values);
                }
            }
        }
        let is_base64_encoded = object
            .get("is_base64_encoded")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let body = match object.remove("body") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text,
            Some(other) => {
                if !headers
                    .keys()
                    .any(|k| k.eq_ignore_ascii_case("content-type"))
                {
                    headers.insert(
                        "content-type".to_string(),
                        vec!["application/json".to_string()],
                    );
                }
                other.to_string()
            }
        };
        Ok(HttpResponse {
            status,
            headers,
            body,
            is_base64_encoded,
        })
    }

    /// 404 for a path no function routes.
    pub fn not_found(method: &str, path: &str) -> HttpResponse {
        HttpResponse::error(
            404,
            "NotFound",
            &format!("no function is routed for {method} {path}"),
        )
    }

    /// 405 for a path routed only for other methods.
    pub fn method_not_allowed(method: &str, path: &str, allowed: &[String]) -> HttpResponse {
        let mut response = HttpResponse::error(
            405,
            "MethodNotAllowed",
            &format!(
                "{path} is routed for {} only, not {method}",
                allowed.join(", ")
            ),
        );
        response
            .headers
            .insert("allow".to_string(), vec![allowed.join(", ")]);
        response
    }

    /// The response in the shape `shape` expects.
    pub fn shape(self, shape: HttpShape) -> Value {
        let body = || (!self.body.is_empty()).then(|| Body::Text(self.body.clone()));
        let status_code = i64::from(self.status);
        let result = match shape {
            HttpShape::HttpV2 => return self.http_api_v2(),
            HttpShape::RestV1 => {
                let mut response = ApiGatewayProxyResponse::default();
                response.status_code = status_code;
                response.multi_value_headers = header_map(&self.headers, false);
                response.body = body();
                response.is_base64_encoded = self.is_base64_encoded;
                serde_json::to_value(response)
            }
            HttpShape::Alb { multi_value } => {
                let mut response = AlbTargetGroupResponse::default();
                response.status_code = status_code;
                response.status_description = Some(status_description(self.status));
                if multi_value {
                    response.multi_value_headers = header_map(&self.headers, false);
                } else {
                    response.headers = header_map(&self.headers, true);
                }
                response.body = body();
                response.is_base64_encoded = self.is_base64_encoded;
                serde_json::to_value(response)
            }
            HttpShape::Lattice => {
                let headers: serde_json::Map<String, Value> = self
                    .headers
                    .iter()
                    .filter_map(|(name, values)| {
                        let values: Vec<&String> =
                            values.iter().filter(|v| header_value_is_safe(v)).collect();
                        let joined = values
                            .iter()
                            .map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", ");
                        (HeaderName::from_bytes(name.as_bytes()).is_ok() && !values.is_empty())
                            .then(|| (name.clone(), Value::String(joined)))
                    })
                    .collect();
                Ok(json!({
                    "statusCode": status_code,
                    "statusDescription": status_description(self.status),
                    "headers": headers,
                    "body": self.body,
                    "isBase64Encoded": self.is_base64_encoded,
                }))
            }
        };
        result.unwrap_or_else(|error| {
            json!({"statusCode": 500, "body": format!("response could not be encoded: {error}")})
        })
    }

    /// An HTTP API (v2) response, as `ApiGatewayV2httpResponse` serializes it, built directly:
    /// `Set-Cookie` values go into `cookies`; other headers by lower-case name, repeated values
    /// joined with `, ` (the first spelling of a name that several spellings lower-case to
    /// wins); a header whose name or joined value HTTP does not allow is left out.
    fn http_api_v2(self) -> Value {
        let mut cookies = Vec::new();
        let mut headers = Map::new();
        for (name, values) in self.headers {
            let Ok(header) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) else {
                continue;
            };
            if header == http::header::SET_COOKIE {
                cookies.extend(values.into_iter().map(Value::String));
                continue;
            }
            let joined = values.join(", ");
            if joined.bytes().all(header_value_byte) && !headers.contains_key(header.as_str()) {
                headers.insert(header.as_str().to_string(), Value::String(joined));
            }
        }
        let mut response = Map::new();
        response.insert("statusCode".into(), Value::from(self.status));
        response.insert("headers".into(), Value::Object(headers));
        response.insert("multiValueHeaders".into(), Value::Object(Map::new()));
        if !self.body.is_empty() {
            response.insert("body".into(), Value::String(self.body));
        }
        response.insert(
            "isBase64Encoded".into(),
            Value::Bool(self.is_base64_encoded),
        );
        response.insert("cookies".into(), Value::Array(cookies));
        Value::Object(response)
    }
}

/// Whether `value` may be sent as a header (or cookie) value: no control character but tab (CR
/// and LF above all, which would end the header and start another).
fn header_value_is_safe(value: &str) -> bool {
    !value.chars().any(|c| c.is_control() && c != '\t')
}

/// Whether `byte` may be in a header value, as `HeaderValue::from_bytes` checks it.
fn header_value_byte(byte: u8) -> bool {
    (byte >= 32 && byte != 127) || byte == b'\t'
}

/// `headers` as a `HeaderMap`; `single` joins repeated values (except cookies) into one.
fn header_map(headers: &BTreeMap<String, Vec<String>>, single: bool) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, values) in headers {
        let Ok(name) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) else {
            continue;
        };
        if single && name == http::header::SET_COOKIE {
            continue;
        }
        let values: Vec<String> = if single {
            vec![values.join(", ")]
        } else {
            values.clone()
        };
        for value in values {
            if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                map.append(name.clone(), value);
            }
        }
    }
    map
}

/// `200 OK`, as ALB wants it.
fn status_description(status: u16) -> String {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("");
    format!("{status} {reason}").trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
    use proptest::prelude::*;

    /// An HTTP API response as `aws_lambda_events` serializes it, which `http_api_v2` builds
    /// directly.
    fn http_api_v2_by_aws_types(response: HttpResponse) -> Value {
        let mut shaped = ApiGatewayV2httpResponse::default();
        shaped.status_code = i64::from(response.status);
        shaped.cookies = response
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
            .flat_map(|(_, values)| values.clone())
            .collect();
        shaped.headers = header_map(&response.headers, true);
        shaped.body = (!response.body.is_empty()).then(|| Body::Text(response.body.clone()));
        shaped.is_base64_encoded = response.is_base64_encoded;
        serde_json::to_value(shaped).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn an_http_api_response_is_what_aws_lambda_events_would_serialize(
            status in 100u16..600,
            headers in prop::collection::btree_map(
                "(Set-Cookie|set-cookie|X-A|x-a|Content-Type|content-type|x b|é|[a-zA-Z-]{1,6})",
                prop::collection::vec("(\\PC|[\t\u{7f}\u{85}\r\n]){0,6}", 0..3),
                0..6,
            ),
            body in "\\PC{0,8}",
            is_base64_encoded in any::<bool>(),
        ) {
            let response = HttpResponse { status, headers, body, is_base64_encoded };
            prop_assert_eq!(
                response.clone().shape(HttpShape::HttpV2),
                http_api_v2_by_aws_types(response)
            );
        }
    }

    #[test]
    fn plain_output_is_a_200() {
        let response = HttpResponse::from_output("f", b"hi").unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, "hi");
        let response = HttpResponse::from_output("f", br#"{"a":1}"#).unwrap();
        assert_eq!(response.headers["content-type"], ["application/json"]);
    }

    #[test]
    fn an_http_error_answer_carries_no_internals() {
        let error = Error::StoreUnavailable {
            function: "hello".to_string(),
            reason: "dispatch failure: s3://functions/hello/manifest.yaml at 10.0.0.1".to_string(),
        };
        let response = HttpResponse::from_error(&error, "req-1");
        assert_eq!(response.status, 503);
        let body: Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(
            body,
            json!({"errorType": "StoreUnavailable", "errorMessage": "the function is unavailable; try again later", "requestId": "req-1"})
        );
    }

    #[test]
    fn cr_and_lf_never_reach_a_header_or_a_cookie() {
        let output = br#"{"status": 200, "headers": {
            "set-cookie": ["a=1\r\nX-Injected: yes", "b=2"],
            "x-split": "1\nX-Injected: yes",
            "x-nul": "a\u0000b",
            "bad name\r\nX-Injected": "yes",
            "x-ok": "caf\u00e9\tok"
        }}"#;
        let response = HttpResponse::from_output("f", output).unwrap();
        let v2 = response.clone().shape(HttpShape::HttpV2);
        assert_eq!(v2["cookies"], json!(["b=2"]));
        let text = v2.to_string();
        assert!(!text.contains("X-Injected"), "{text}");
        assert_eq!(v2["headers"]["x-ok"], "caf\u{e9}\tok");
        for shape in [HttpShape::RestV1, HttpShape::Alb { multi_value: true }] {
            let text = response.clone().shape(shape).to_string();
            assert!(!text.contains("X-Injected"), "{text}");
            assert!(text.contains("b=2"), "{text}");
        }
    }

    #[test]
    fn a_response_object_sets_status_headers_and_body() {
        let output = br#"{"status": 201, "headers": {"x-a": "1"}, "body": {"ok": true}}"#;
        let response = HttpResponse::from_output("f", output).unwrap();
        assert_eq!(response.status, 201);
        assert_eq!(response.body, r#"{"ok":true}"#);
        let v2 = response.clone().shape(HttpShape::HttpV2);
        assert_eq!(v2["statusCode"], 201);
        assert_eq!(v2["headers"]["x-a"], "1");
        let alb = response.shape(HttpShape::Alb { multi_value: true });
        assert_eq!(alb["statusDescription"], "201 Created");
        assert_eq!(alb["multiValueHeaders"]["x-a"], json!(["1"]));
    }

    #[test]
    fn a_bad_status_is_a_function_error() {
        let error = HttpResponse::from_output("f", br#"{"status": 9000}"#).unwrap_err();
        assert_eq!(error.error_type(), "FunctionError");
        assert!(error.to_string().contains("`status`"));
    }
}

//! An HTTP API v2 (or Function URL) request read from the event's text, without a JSON tree: a
//! warm HTTP call's largest cost in the bootstrap's own code was building the event's tree
//! (every key and string allocated) and dropping it again.
//!
//! Only an event that [`super::recognize`] would read as a v2 request, and read the same, is
//! taken: every key is one an HTTP API sends, so no kind recognized before HTTP (an authorizer,
//! a WebSocket route, a direct invocation, ...) can claim it; each field is typed as
//! [`super::from_v2`] reads it. Anything else (another key, a repeated key, a field of another
//! type, headers that need normalizing, nesting past serde_json's limit) is `None`, and the event
//! is read as a tree as before, which also names what is wrong with a malformed one.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{
    HttpRequest, HttpShape, non_empty, plain_header, v2_authorizer, v2_method, without_stage,
};

/// The search for the key every HTTP API request has, built once.
static REQUEST_CONTEXT: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"\"requestContext\""));

/// The request in `event`, when it is an HTTP API v2 request as HTTP APIs send it (see the
/// module's documentation), else `None`.
pub fn from_v2_text(event: &[u8]) -> Option<HttpRequest> {
    // Most other events are refused by their first key, but a refusal names every key expected:
    // a scan for the one key every HTTP API request has is cheaper.
    REQUEST_CONTEXT.find(event)?;
    let Object(event) = serde_json::from_slice::<Object<V2Event>>(event).ok()?;
    if event.version != "2.0" {
        return None;
    }
    let Object(context) = event.request_context;
    let Object(http) = context.http;
    let method = v2_method(&http.method)?;
    let path = event
        .raw_path
        .or(http.path)
        .unwrap_or_else(|| "/".to_string());
    let auth = match context.authorizer {
        None => Value::Null,
        Some(authorizer) => v2_authorizer(&authorizer).ok()?,
    };
    let headers = event.headers.unwrap_or_default();
    if !headers
        .iter()
        .all(|(name, value)| plain_header(name, value))
    {
        return None;
    }
    Some(HttpRequest {
        shape: HttpShape::HttpV2,
        method: method.to_string(),
        path: without_stage(path, context.stage.as_deref()),
        path_encoded: true,
        query: event
            .query_string_parameters
            .unwrap_or_default()
            .into_iter()
            .map(|(name, Joined(value))| (name, value))
            .collect(),
        headers,
        cookies: event.cookies.unwrap_or_default(),
        body: event.body,
        is_base64_encoded: event.is_base64_encoded.unwrap_or(false),
        source_ip: http.source_ip,
        auth: non_empty(auth),
    })
}

/// The event's keys: those `from_v2` reads, typed as it reads them, and the others an HTTP API
/// sends, read (and checked to be JSON) but not kept. A `null` where `from_v2` takes one is
/// `None`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[expect(dead_code, reason = "the `Skip` fields are read and checked, not kept")]
struct V2Event<'a> {
    #[serde(borrow)]
    version: Cow<'a, str>,
    #[serde(borrow)]
    request_context: Object<V2Context<'a>>,
    raw_path: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    query_string_parameters: Option<BTreeMap<String, Joined>>,
    cookies: Option<Vec<String>>,
    body: Option<String>,
    /// `from_v2` refuses a `null` here.
    #[serde(default, deserialize_with = "strictly_bool")]
    is_base64_encoded: Option<bool>,
    #[serde(default)]
    route_key: Skip,
    #[serde(default)]
    raw_query_string: Skip,
    #[serde(default)]
    path_parameters: Skip,
    #[serde(default)]
    stage_variables: Skip,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[expect(dead_code, reason = "the `Skip` fields are read and checked, not kept")]
struct V2Context<'a> {
    #[serde(borrow)]
    http: Object<V2Http<'a>>,
    stage: Option<String>,
    /// Read as the tree reads it (within the same nesting limit): rare, and typed from there.
    authorizer: Option<Value>,
    #[serde(default)]
    account_id: Skip,
    #[serde(default)]
    api_id: Skip,
    #[serde(default)]
    authentication: Skip,
    #[serde(default)]
    domain_name: Skip,
    #[serde(default)]
    domain_prefix: Skip,
    #[serde(default)]
    request_id: Skip,
    #[serde(default)]
    route_key: Skip,
    #[serde(default)]
    time: Skip,
    #[serde(default)]
    time_epoch: Skip,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[expect(dead_code, reason = "the `Skip` fields are read and checked, not kept")]
struct V2Http<'a> {
    #[serde(borrow)]
    method: Cow<'a, str>,
    path: Option<String>,
    source_ip: Option<String>,
    #[serde(default)]
    protocol: Skip,
    #[serde(default)]
    user_agent: Skip,
}

fn strictly_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    bool::deserialize(deserializer).map(Some)
}

/// A JSON object read into `T`. A derived struct would also take an array, its fields by
/// position, which no tree lookup does.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Object)
            }
        }
        deserializer.deserialize_map(Fields(PhantomData))
    }
}

/// A query parameter's value: a string, or an array of strings joined with `,`.
struct Joined(String);

impl<'de> Deserialize<'de> for Joined {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Values;
        impl<'de> Visitor<'de> for Values {
            type Value = Joined;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Joined, E> {
                Ok(Joined(value.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, value: String) -> Result<Joined, E> {
                Ok(Joined(value))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut values: A) -> Result<Joined, A::Error> {
                let mut joined = Vec::new();
                while let Some(value) = values.next_element::<String>()? {
                    joined.push(value);
                }
                Ok(Joined(joined.join(",")))
            }
        }
        deserializer.deserialize_any(Values)
    }
}

/// Any JSON value, read as the tree reads it (a number out of range or a string that is not
/// Unicode is an error, as there, and so is nesting beyond its limit) and not kept.
#[derive(Default)]
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = Skip;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Skip, A::Error> {
        while items.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Skip, A::Error> {
        while entries.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::trigger::Event;

    const RAW_VALUE: &str = "$serde_json::private::RawValue";

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/events/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The tree's reading of `text`, as `Event::classify` gives it.
    fn from_tree(text: &str) -> String {
        let tree: Value = serde_json::from_str(text).unwrap();
        match Event::classify(&tree) {
            Ok(Event::Http(request)) => format!("{request:?}"),
            other => panic!("not an HTTP request: {other:?}"),
        }
    }

    #[test]
    fn http_api_requests_are_read_from_their_text_as_from_their_tree() {
        for name in [
            "apigw-v2-get-hello.json",
            "apigw-v2-named-stage-hello.json",
            "function-url-get-hello.json",
        ] {
            let event = fixture(name);
            let variants: [fn(&mut Value); 15] = [
                |_| {},
                |e| e["headers"] = Value::Null,
                |e| e["queryStringParameters"] = json!({"a": "1,2", "b": ["x", "y"], "c": []}),
                |e| e["queryStringParameters"] = Value::Null,
                |e| e["cookies"] = json!(["a=1", "b=2"]),
                |e| e["body"] = json!("{\"name\": \"caf\u{e9} \\\"\u{1F600}\\\"\"}"),
                |e| e["isBase64Encoded"] = json!(true),
                |e| e["requestContext"]["http"]["method"] = json!(""),
                |e| {
                    e["requestContext"]["authorizer"] =
                        json!({"jwt": {"claims": {"sub": "u"}, "scopes": ["r"]}})
                },
                |e| e["requestContext"]["authorizer"] = json!({"iam": {"accountId": "1"}}),
                |e| {
                    e.as_object_mut().unwrap().remove("rawPath");
                    e["requestContext"]["http"]["path"] = json!("/hello/from-context");
                },
                |e| e["requestContext"]["stage"] = json!("v1"),
                // Keys that spell serde_json's raw value token are keys like any other.
                |e| e["queryStringParameters"] = json!({RAW_VALUE: "{\"a\": \"1\"}", "b": "2"}),
                |e| {
                    e["pathParameters"] = json!({RAW_VALUE: "x"});
                    e["requestContext"]["authentication"] = json!({"a": {RAW_VALUE: 1}});
                },
                |e| {
                    e["pathParameters"] = json!({"proxy": "hello"});
                    e["stageVariables"] = json!({"a": "b"});
                    e["requestContext"]["timeEpoch"] = json!(1.5e300);
                },
            ];
            for variant in variants {
                let mut event = event.clone();
                variant(&mut event);
                for text in [
                    event.to_string(),
                    serde_json::to_string_pretty(&event).unwrap(),
                ] {
                    let read = from_v2_text(text.as_bytes())
                        .unwrap_or_else(|| panic!("not read from its text: {text}"));
                    assert_eq!(format!("{read:?}"), from_tree(&text), "{text}");
                }
            }
        }
    }

    #[test]
    fn any_other_event_is_left_to_its_tree() {
        let event = fixture("apigw-v2-get-hello.json");
        let text = event.to_string();
        let edited = |edit: fn(&mut Value)| {
            let mut event = event.clone();
            edit(&mut event);
            event.to_string()
        };
        let replaced = |from: &str, to: &str| {
            assert!(text.contains(from), "{from}");
            text.replacen(from, to, 1)
        };
        // An object's fields as an array, in the order its struct above declares them.
        let fields = |value: &Value, order: &[&str]| {
            let fields: Vec<&Value> = order.iter().map(|key| &value[*key]).collect();
            serde_json::to_string(&fields).unwrap()
        };
        let context = event["requestContext"].to_string();
        let http = event["requestContext"]["http"].to_string();
        let context_fields = [
            "http",
            "stage",
            "authorizer",
            "accountId",
            "apiId",
            "authentication",
            "domainName",
            "domainPrefix",
            "requestId",
            "routeKey",
            "time",
            "timeEpoch",
        ];
        let http_fields = ["method", "path", "sourceIp", "protocol", "userAgent"];
        let event_fields = [
            "version",
            "requestContext",
            "rawPath",
            "headers",
            "queryStringParameters",
            "cookies",
            "body",
            "isBase64Encoded",
            "routeKey",
            "rawQueryString",
            "pathParameters",
            "stageVariables",
        ];
        let deep_authorizer = replaced(
            "\"stage\":",
            &format!(
                "\"authorizer\":{{\"lambda\":{{\"a\":{}1{}}}}},\"stage\":",
                "[".repeat(124),
                "]".repeat(124)
            ),
        );
        let deep_skipped = replaced(
            "\"rawPath\":",
            &format!(
                "\"pathParameters\":{}1{},\"rawPath\":",
                "[".repeat(130),
                "]".repeat(130)
            ),
        );
        for deep in [&deep_authorizer, &deep_skipped] {
            assert!(
                crate::trigger::parse_event(deep.as_bytes()).is_err(),
                "{deep}"
            );
        }
        let others = [
            // Kinds recognized before HTTP, whose events share its keys.
            edited(|e| {
                e["type"] = json!("REQUEST");
                e["routeArn"] = json!("arn:aws:execute-api:us-east-1:1:api/$default/GET/");
                e["identitySource"] = json!(["user"]);
            }),
            edited(|e| {
                e["requestContext"]["connectionId"] = json!("c1");
                e["requestContext"]["eventType"] = json!("MESSAGE");
            }),
            edited(|e| e["function"] = json!("hello")),
            edited(|e| e["requestContext"]["elb"] = json!({"targetGroupArn": "arn"})),
            edited(|e| e["requestContext"]["serviceNetworkArn"] = json!("arn")),
            edited(|e| e["path"] = json!("/elsewhere")),
            edited(|e| e["version"] = json!("1.0")),
            edited(|e| e["version"] = json!(2.0)),
            // Fields the tree refuses or reads another way.
            edited(|e| e["isBase64Encoded"] = Value::Null),
            edited(|e| e["isBase64Encoded"] = json!("false")),
            edited(|e| e["rawPath"] = json!(7)),
            edited(|e| e["cookies"] = json!("a=1")),
            edited(|e| e["cookies"] = json!(["a=1", 2])),
            edited(|e| e["queryStringParameters"] = json!({"a": 1})),
            edited(|e| e["queryStringParameters"] = json!({"a": null})),
            edited(|e| e["headers"] = json!({"X-Tag": "a"})),
            edited(|e| e["headers"] = json!({"x-tag": ["a", "b"]})),
            edited(|e| e["headers"] = json!({"x-utf8": "caf\u{e9}"})),
            edited(|e| e["requestContext"]["http"]["method"] = json!("G ET")),
            edited(|e| e["requestContext"]["http"]["method"] = Value::Null),
            edited(|e| e["requestContext"]["http"] = Value::Null),
            edited(|e| e["requestContext"] = Value::Null),
            edited(|e| e["requestContext"]["stage"] = json!(["v1"])),
            edited(|e| e["requestContext"]["authorizer"] = json!({"jwt": {"scopes": "r"}})),
            // Objects as arrays, which a derived struct would read by position.
            fields(&event, &event_fields),
            replaced(&context, &fields(&event["requestContext"], &context_fields)),
            replaced(
                &http,
                &fields(&event["requestContext"]["http"], &http_fields),
            ),
            // Nesting beyond the tree's limit, in the authorizer too.
            deep_authorizer.clone(),
            deep_skipped.clone(),
            // A key spelled with an escape, which the scan for `requestContext` misses.
            replaced("\"requestContext\":", "\"requestContex\\u0074\":"),
            // A key twice: the tree keeps the last.
            replaced("\"rawPath\":", "\"rawPath\":\"/hello/eve\",\"rawPath\":"),
            replaced("\"method\":", "\"method\":\"POST\",\"method\":"),
            // Not JSON, in a field that is not kept.
            replaced("\"timeEpoch\":1587481701067", "\"timeEpoch\":1e400"),
            replaced("\"apiId\":\"aaaaaaaaaa\"", "\"apiId\":\"\\ud800\""),
            replaced("\"apiId\":\"aaaaaaaaaa\"", "\"apiId\":\"\\x\""),
            format!("{text} {{}}"),
        ];
        for other in &others {
            assert!(from_v2_text(other.as_bytes()).is_none(), "read: {other}");
        }
        // serde_json's raw value token, spelled with an escape, is a key like any other.
        let token = replaced(
            "\"rawPath\":",
            "\"pathParameters\":{\"\\u0024serde_json::private::RawValue\":\"null\"},\"rawPath\":",
        );
        let read = from_v2_text(token.as_bytes()).unwrap();
        assert_eq!(format!("{read:?}"), from_tree(&token));
        // A header twice: the last, as in the tree.
        let twice = replaced("\"accept\":", "\"accept\":\"text/html\",\"accept\":");
        let read = from_v2_text(twice.as_bytes()).unwrap();
        assert_eq!(read.headers["accept"], "*/*");
        assert_eq!(format!("{read:?}"), from_tree(&twice));
        let mut bytes = replaced("\"apiId\":\"aaaaaaaaaa\"", "\"apiId\":\"aa\"").into_bytes();
        let at = bytes.windows(4).position(|w| w == b"\"aa\"").unwrap();
        bytes[at + 1] = 0xff;
        assert!(from_v2_text(&bytes).is_none());
        assert!(crate::trigger::parse_event(&bytes).is_err());
    }
}

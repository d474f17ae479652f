//! API Gateway WebSocket routes: `requestContext` with `connectionId`, `routeKey` and
//! `eventType`. A hook names a route key; `$default` takes every message no hook names
//! (`$connect` and `$disconnect` are never `$default`'s, as in API Gateway). Answered
//! `{statusCode, body}`: a non-2xx answer to `$connect` refuses the connection.

use serde_json::{Value, json};

use super::hook::{Checks, Compiled, HookProblem, HookSchema, Pattern, Rules};
use super::http::HttpResponse;
use super::kind::HookKind;
use super::request::{Answer, Called, Request};

/// `{type: websocket, route: $connect}`
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebsocketHook {
    /// A route key (`$connect`, `$disconnect`, `sendMessage`) or `$default`.
    pub route: String,
    pub entrypoint: Option<String>,
}

const DEFAULT_ROUTE: &str = "$default";

impl HookSchema for WebsocketHook {
    fn entrypoint(&self) -> Option<&str> {
        self.entrypoint.as_deref()
    }

    fn compile(&self, _rules: Rules) -> Result<Compiled, Vec<HookProblem>> {
        let mut checks = Checks::default();
        checks.not_empty("route", &self.route);
        checks.entrypoint(self.entrypoint.as_deref());
        let compiled = if self.route == DEFAULT_ROUTE {
            // Present only on messages: `$default` never takes a connect or a disconnect.
            Compiled::default().with("message", Some(Pattern::Present))
        } else {
            Compiled::default().with("route", Some(Pattern::Is(self.route.clone())))
        };
        checks.done(compiled)
    }

    fn describe(&self) -> String {
        format!("route {}", self.route)
    }
}

/// A WebSocket route's request, or `None` if `event` is not one.
pub(super) fn recognize(event: &Value) -> Option<Request> {
    let context = event.get("requestContext")?;
    let connection = context.get("connectionId")?.as_str()?;
    let route = context.get("routeKey")?.as_str()?;
    let event_type = context.get("eventType")?.as_str()?;
    let fields = json!({
        "connection_id": connection,
        "route": route,
        "event_type": event_type,
        "body": event.get("body").cloned().unwrap_or(Value::Null),
        "is_base64_encoded": event.get("isBase64Encoded").cloned().unwrap_or(Value::Bool(false)),
        "headers": event.get("headers").cloned().unwrap_or(Value::Null),
        "query": event.get("queryStringParameters").cloned().unwrap_or(Value::Null),
        "request_context": context,
    });
    let mut request = Request::new(
        HookKind::Websocket,
        format!("websocket route `{route}`"),
        fields,
        event,
    )
    .with("route", route)
    .answered_by(answer);
    if !matches!(route, "$connect" | "$disconnect") {
        request = request.with("message", route);
    }
    Some(request)
}

/// The function's output as an HTTP response (`{"status", "headers", "body"}` or a body), in
/// the proxy shape: `{statusCode, headers, body, isBase64Encoded}`.
fn answer(_request: &Request, called: Called<'_>) -> Answer {
    let response = called
        .result()
        .and_then(|output| HttpResponse::from_output(called.function, output))
        .unwrap_or_else(|error| HttpResponse::from_error(&error, called.request_id));
    Answer::value(Ok(response.shape(super::http::HttpShape::RestV1)))
}

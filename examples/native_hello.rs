//! The native baseline of `make bench`: a plain `lambda_runtime` handler doing the work of the
//! example functions, `hello` (an HTTP API v2 request for `GET /hello/{name}` answered with a
//! greeting) and `echo` (a direct invocation answered with its input), without WebAssembly.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use http::{HeaderMap, HeaderValue};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, _) = event.into_parts();
    if let Some(input) = payload.get("input") {
        return Ok(input.clone());
    }
    let request: ApiGatewayV2httpRequest = serde_json::from_value(payload)?;
    let path = request.raw_path.unwrap_or_default();
    let Some(name) = path.strip_prefix("/hello/").filter(|n| !n.contains('/')) else {
        let mut response = ApiGatewayV2httpResponse::default();
        response.status_code = 404;
        return Ok(serde_json::to_value(response)?);
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = 200;
    response.headers = headers;
    response.body = Some(Body::Text(format!("Hello, {name}!\n")));
    Ok(serde_json::to_value(response)?)
}

/// `#[tokio::main]`, as `cargo lambda new` writes it; `NATIVE_RUNTIME=current_thread` runs the
/// same handler on a single-threaded runtime, the other baseline `make bench` measures.
fn main() -> Result<(), Error> {
    let mut runtime = match std::env::var("NATIVE_RUNTIME").as_deref() {
        Ok("current_thread") => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime
        .enable_all()
        .build()?
        .block_on(lambda_runtime::run(service_fn(handle)))
}

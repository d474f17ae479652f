//! The native baseline of `make bench`: a plain `lambda_runtime` handler doing the work of the
//! example functions, `hello` (an HTTP API v2 request for `GET /hello/{name}` answered with a
//! greeting) and `echo` (a direct invocation answered with its input), without WebAssembly; and
//! the hostile function's misbehaviour, for the concurrency comparison.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use http::{HeaderMap, HeaderValue};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, _) = event.into_parts();
    if let Some(hostile) = payload.get("hostile") {
        return Err(misbehave(hostile));
    }
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

/// What the benchmark's hostile function does, done natively: a call that runs until its time
/// is up (`spin`, 100 ms), one that fails (`trap`), one that takes 64 MiB (`bomb`).
fn misbehave(how: &Value) -> Error {
    match how.as_str() {
        Some("spin") => {
            let started = std::time::Instant::now();
            let mut n: u64 = 0;
            while started.elapsed() < std::time::Duration::from_millis(100) {
                n = std::hint::black_box(n.wrapping_add(1));
            }
            "timed out".into()
        }
        Some("bomb") => {
            let hoard = std::hint::black_box(vec![7u8; 64 << 20]);
            format!("out of memory after {} bytes", hoard.len()).into()
        }
        _ => "trapped".into(),
    }
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
        // Concurrent invocations under `AWS_LAMBDA_MAX_CONCURRENCY` (Managed Instances), else
        // exactly `lambda_runtime::run`.
        .block_on(lambda_runtime::run_concurrent(service_fn(handle)))
}

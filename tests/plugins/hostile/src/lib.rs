//! Attacks on the sandbox, one export each. Each reports what it managed to do, so the tests can
//! assert that it managed nothing.

use std::time::{Duration, Instant};

use extism_pdk::*;
use serde_json::{Value, json};

/// Every environment variable it can see, and the Lambda role's secret key in particular.
#[plugin_fn]
pub fn read_env(_: ()) -> FnResult<Json<Value>> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    Ok(Json(json!({
        "vars": vars,
        "secret": std::env::var("AWS_SECRET_ACCESS_KEY").ok(),
    })))
}

/// Reads the file at the path given.
#[plugin_fn]
pub fn read_file(path: String) -> FnResult<Json<Value>> {
    Ok(Json(match std::fs::read(&path) {
        Ok(bytes) => json!({"read": true, "text": String::from_utf8_lossy(&bytes)}),
        Err(error) => json!({"read": false, "error": error.to_string()}),
    }))
}

/// Makes the HTTP request given as `{"url", "method"}` and reports the answer.
#[plugin_fn]
pub fn fetch(Json(request): Json<Value>) -> FnResult<Json<Value>> {
    let url = request["url"].as_str().unwrap_or_default();
    let method = request["method"].as_str().unwrap_or("GET");
    let response = http::request::<()>(&HttpRequest::new(url).with_method(method), None)?;
    let body = response.body();
    Ok(Json(json!({
        "status": response.status_code(),
        "headers": response.headers(),
        "body": String::from_utf8_lossy(&body[..body.len().min(4096)]),
        "length": body.len(),
    })))
}

/// Allocates until something gives.
#[plugin_fn]
pub fn memory_bomb(_: ()) -> FnResult<String> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![7u8; 1 << 20]);
        if hoard.len() == usize::MAX {
            return Ok(format!("{}", hoard.len()));
        }
    }
}

/// Never returns.
#[plugin_fn]
pub fn spin(_: ()) -> FnResult<String> {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Keeps the CPU busy for the milliseconds given, then answers.
#[plugin_fn]
pub fn busy_for(millis: String) -> FnResult<String> {
    let millis: u64 = millis.trim().parse().unwrap_or(0);
    let started = Instant::now();
    let mut n: u64 = 0;
    while started.elapsed() < Duration::from_millis(millis) {
        n = std::hint::black_box(n.wrapping_add(1));
    }
    Ok(format!("done after {millis} ms"))
}

#[allow(unconditional_recursion)]
fn down(depth: u64) -> u64 {
    std::hint::black_box(down(depth + 1)) + 1
}

/// Recurses until the stack runs out.
#[plugin_fn]
pub fn recurse(_: ()) -> FnResult<String> {
    Ok(down(0).to_string())
}

/// Answers with as many bytes as asked.
#[plugin_fn]
pub fn huge_output(bytes: String) -> FnResult<Vec<u8>> {
    Ok(vec![b'x'; bytes.trim().parse().unwrap_or(0)])
}

/// Panics (a trap) when its input mentions `boom`; otherwise answers `ok`.
#[plugin_fn]
pub fn crash_on_boom(input: String) -> FnResult<String> {
    if input.contains("boom") {
        panic!("boom");
    }
    Ok("ok".to_string())
}

/// Stores the input in the Extism var `secret` and answers what was there before.
#[plugin_fn]
pub fn swap_secret(input: String) -> FnResult<Json<Value>> {
    let previous: Option<String> = var::get("secret")?;
    var::set("secret", input)?;
    Ok(Json(json!({ "previous": previous })))
}

/// Logs the HTTP request it handles, at info and at warn, and answers with the request id from
/// its context, so a test can match the log lines to the invocation.
#[plugin_fn]
pub fn log_request(Json(request): Json<Value>) -> FnResult<String> {
    let (method, path) = (&request["method"], &request["path"]);
    info!("handling {method} {path}");
    warn!("still handling {method} {path}");
    Ok(request["context"]["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

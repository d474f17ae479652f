//! `GET /hello/{name}`: greets `name` with the `greeting` from the manifest's `config`.

use extism_pdk::*;
use serde_json::{Value, json};
use wasm_lambda_sdk as _;

#[plugin_fn]
pub fn handle(Json(request): Json<Value>) -> FnResult<Json<Value>> {
    let greeting = config::get("greeting")?.unwrap_or_else(|| "Hello".to_string());
    let name = request["params"]["name"].as_str().unwrap_or("world");
    Ok(Json(json!({
        "status": 200,
        "headers": {"content-type": "text/plain; charset=utf-8"},
        "body": format!("{greeting}, {name}!\n"),
    })))
}

//! `GET /hello/{name}`: greets `name` with the `greeting` from the manifest's `config`, and
//! counts the visits per name in the `visits` key-value namespace. The count is a nicety: when
//! the store cannot be reached (no AWS at hand) the greeting goes out without it, and the log
//! says why.

use extism_pdk::*;
use serde_json::{Value, json};
use wasm_lambda_sdk::kv;

#[plugin_fn]
pub fn handle(Json(request): Json<Value>) -> FnResult<Json<Value>> {
    let greeting = config::get("greeting")?.unwrap_or_else(|| "Hello".to_string());
    let name = request["params"]["name"].as_str().unwrap_or("world");
    let body = match kv::incr("visits", name, 1) {
        Ok(visits) => format!("{greeting}, {name}! (visit {visits})\n"),
        Err(error) => {
            warn!("visit not counted: {error}");
            format!("{greeting}, {name}!\n")
        }
    };
    Ok(Json(json!({
        "status": 200,
        "headers": {"content-type": "text/plain; charset=utf-8"},
        "body": body,
    })))
}

//! A WebSocket API's function (`type: websocket`): accepts every connection and answers each
//! message with its own text, named by the connection it came on.

use extism_pdk::*;
use serde_json::{Value, json};
use wasm_lambda_sdk as _;

#[plugin_fn]
pub fn handle(Json(request): Json<Value>) -> FnResult<Json<Value>> {
    let connection = request["connection_id"].as_str().unwrap_or_default();
    let answer = match request["route"].as_str() {
        Some("$connect") => json!({"status": 200}),
        _ => {
            let text = request["body"].as_str().unwrap_or_default();
            json!({"status": 200, "body": format!("{connection}: {text}")})
        }
    };
    Ok(Json(answer))
}

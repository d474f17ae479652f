//! Works through the `jobs` queue. A message it cannot process (a body with `poison` in it)
//! fails, so the adapter reports exactly that message in `batchItemFailures` and SQS redelivers
//! it (and, after the queue's redrive limit, moves it to the dead-letter queue).

use extism_pdk::*;
use serde_json::{Value, json};
use wasm_lambda_sdk as _;

#[plugin_fn]
pub fn handle(Json(message): Json<Value>) -> FnResult<Json<Value>> {
    let body = message["body"].as_str().unwrap_or_default();
    if body.contains("poison") {
        return Err(Error::msg(format!(
            "cannot process message {}: {body}",
            message["message_id"]
        ))
        .into());
    }
    Ok(Json(json!({"done": body, "queue": message["queue"]})))
}

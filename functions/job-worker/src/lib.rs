//! Works through the `jobs` queue and records each job's result in the `results` key-value
//! namespace, under the message id. A message it cannot process (a body with `poison` in it)
//! fails, so the adapter reports exactly that message in `batchItemFailures` and SQS redelivers
//! it (and, after the queue's redrive limit, moves it to the dead-letter queue).

use extism_pdk::*;
use serde_json::{Value, json};
use wasm_lambda_sdk::kv;

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
    let id = message["message_id"].as_str().unwrap_or_default();
    let result = json!({"done": body, "queue": message["queue"]});
    kv::put(
        "results",
        id,
        result.to_string().as_bytes(),
        kv::Put::default(),
    )?;
    Ok(Json(result))
}

//! Runs on the `nightly` schedule (an EventBridge rule): the place for a nightly report.

use extism_pdk::*;
use serde_json::{Value, json};
use wasm_lambda_sdk as _;

#[plugin_fn]
pub fn handle(Json(schedule): Json<Value>) -> FnResult<Json<Value>> {
    info!("nightly run for {}", schedule["time"]);
    Ok(Json(
        json!({"rule": schedule["rule"], "ran_for": schedule["time"]}),
    ))
}

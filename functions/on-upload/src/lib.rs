//! Runs for every object created under `incoming/` in the `uploads` bucket. The key arrives
//! URL-decoded (`a+b%2Fc.png` is `a b/c.png`), ready to use.

use extism_pdk::*;
use serde_json::{Value, json};
use wasm_lambda_sdk as _;

#[plugin_fn]
pub fn handle(Json(upload): Json<Value>) -> FnResult<Json<Value>> {
    let key = upload["key"].as_str().unwrap_or_default();
    let name = key.rsplit('/').next().unwrap_or(key);
    Ok(Json(json!({
        "bucket": upload["bucket"],
        "key": key,
        "size": upload["size"],
        "thumbnail": format!("thumbnails/{name}"),
    })))
}

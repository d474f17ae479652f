//! Runs for every object created under `incoming/` in the `uploads` bucket: reads the object and
//! writes a derived one, its description, under `thumbnails/` (a real thumbnailer would resize
//! the image here). The key arrives URL-decoded (`a+b%2Fc.png` is `a b/c.png`), ready to use.
//! It reaches the bucket through its grants, by the name its hook uses (`uploads`); a failure
//! fails the record, so S3 retries it.

use extism_pdk::*;
use serde_json::{Value, json};
use wasm_lambda_sdk::s3;

/// The bucket as the manifest's hook and grants name it (the deployed name may differ).
const BUCKET: &str = "uploads";

#[plugin_fn]
pub fn handle(Json(upload): Json<Value>) -> FnResult<Json<Value>> {
    let key = upload["key"].as_str().unwrap_or_default();
    let name = key.rsplit('/').next().unwrap_or(key);
    let object = s3::get(BUCKET, key)?;
    let thumbnail = format!("thumbnails/{name}.json");
    let description = json!({
        "source": key,
        "bytes": object.len(),
        "head": String::from_utf8_lossy(&object[..object.len().min(32)]),
    });
    s3::put(
        BUCKET,
        &thumbnail,
        description.to_string().as_bytes(),
        Some("application/json"),
    )?;
    Ok(Json(json!({
        "bucket": upload["bucket"],
        "key": key,
        "size": object.len(),
        "thumbnail": thumbnail,
    })))
}

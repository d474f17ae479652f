//! An API Gateway Lambda authorizer (`type: authorizer`): allows a request whose bearer token
//! hashes to one of the SHA-256 digests in its config's `token_sha256` (comma-separated), denies
//! every other. The manifest holds digests only, never tokens; with none configured, nothing is
//! allowed.

use extism_pdk::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wasm_lambda_sdk as _;

#[plugin_fn]
pub fn handle(Json(request): Json<Value>) -> FnResult<Json<Value>> {
    let token = request["token"].as_str().unwrap_or_default();
    let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    let allowed = config::get("token_sha256")?.unwrap_or_default();
    let allow = !token.is_empty()
        && allowed
            .split(',')
            .map(str::trim)
            .any(|known| !known.is_empty() && known.eq_ignore_ascii_case(&digest));
    if !allow {
        info!("denied a request to {}", request["arn"]);
    }
    Ok(Json(json!({
        "allow": allow,
        "principal": "api-client",
        "context": {"authorized_by": "gatekeeper"},
    })))
}

//! Runs for every user inserted into the `users` table (a DynamoDB stream): builds the welcome
//! message for the new user from the row (already plain JSON) and sends it to the `jobs` queue,
//! where `job-worker` picks it up. A failure fails the record, so the stream retries it.

use extism_pdk::*;
use serde_json::{Value, json};
use wasm_lambda_sdk::queue;

#[plugin_fn]
pub fn handle(Json(change): Json<Value>) -> FnResult<Json<Value>> {
    let user = &change["new"];
    let Some(email) = user["email"].as_str() else {
        return Err(Error::msg(format!("user {} has no email", change["keys"])).into());
    };
    let name = user["name"].as_str().unwrap_or(email);
    let product = config::get("product")?.unwrap_or_else(|| "our product".to_string());
    let welcome = json!({
        "to": email,
        "subject": format!("Welcome to {product}, {name}!"),
    });
    let message_id = queue::send("jobs", &welcome.to_string())?;
    Ok(Json(json!({"queued": message_id, "welcome": welcome})))
}

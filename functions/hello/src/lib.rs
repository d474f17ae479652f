//! `GET /hello/{name}`: greets `name` with the `greeting` from the manifest's `config`. With
//! `count_visits: true` (and the grant of the `visits` key-value namespace) it also counts the
//! visits per name. The count is a nicety: when the store cannot be reached (no AWS at hand) the
//! greeting goes out without it, and the log says why.

use extism_pdk::*;
use wasm_lambda_sdk::http::{Request, Response};
use wasm_lambda_sdk::kv;

#[plugin_fn]
pub fn handle(Json(request): Json<Request>) -> FnResult<Json<Response>> {
    let greeting = config::get("greeting")?.unwrap_or_else(|| "Hello".to_string());
    let name = request.param("name").unwrap_or("world");
    let counted = match config::get("count_visits")?.as_deref() {
        Some("true") => match kv::incr("visits", name, 1) {
            Ok(visits) => Some(visits),
            Err(error) => {
                warn!("visit not counted: {error}");
                None
            }
        },
        _ => None,
    };
    let body = match counted {
        Some(visits) => format!("{greeting}, {name}! (visit {visits})\n"),
        None => format!("{greeting}, {name}!\n"),
    };
    Ok(Json(Response::text(200, body)))
}

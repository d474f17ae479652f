//! Other functions of the store, within the manifest's `grants.functions`: run in process, with
//! their own manifest, limits and grants (never the caller's), within the caller's deadline.
//! Invocations nest at most 8 deep (`LimitExceeded` past that).

use serde_json::json;

use crate::host::{Error, call};

/// Runs `function` with `input` (as a direct invocation would give it) and returns its output.
pub fn invoke(function: &str, input: &[u8]) -> Result<Vec<u8>, Error> {
    Ok(call("function.invoke", json!({"function": function}), input)?.1)
}

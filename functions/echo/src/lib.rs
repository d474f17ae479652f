//! Returns its input unchanged: the smallest useful direct-invocation function.

use extism_pdk::*;
use wasm_lambda_sdk as _;

#[plugin_fn]
pub fn handle(input: Vec<u8>) -> FnResult<Vec<u8>> {
    Ok(input)
}

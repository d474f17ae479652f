//! The guest side of wasm-lambda: what a function (an Extism plugin built for `wasm32`) links
//! to run under the bootstrap.
//!
//! Depend on it beside `extism-pdk` and name it once in the crate:
//!
//! ```ignore
//! use extism_pdk::*;
//! use wasm_lambda_sdk as _; // panic messages reach the caller and the log
//!
//! #[plugin_fn]
//! pub fn handle(input: String) -> FnResult<String> {
//!     let number: u32 = input.trim().parse().expect("the input is a number");
//!     Ok((number * 2).to_string())
//! }
//! ```
//!
//! A panic in such a function fails the call with `FunctionTrap` and the panic's message and
//! place (`panicked at src/lib.rs:6:44: the input is a number: ParseIntError { .. }`), in the
//! error the caller gets and in the bootstrap's log, instead of a bare "wasm `unreachable`
//! instruction executed".

pub mod panic;

pub use extism_pdk;

/// Run by the runtime when it creates an instance (Extism calls a module's `_initialize`):
/// installs the panic hook. Only for `wasm32-unknown-unknown`: under WASI the C library owns
/// `_initialize`; a WASI function calls [`panic::install`] itself (its panics also reach the log
/// through standard error).
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
#[unsafe(no_mangle)]
pub extern "C" fn _initialize() {
    panic::install();
}

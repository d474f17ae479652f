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
//!
//! # Capabilities
//!
//! The host acts on AWS for the function, within the `grants` of its manifest, and never hands it
//! credentials. Each call is one line:
//!
//! ```ignore
//! use wasm_lambda_sdk::{functions, kv, queue, s3, secrets};
//!
//! let image = s3::get("uploads", "incoming/cat.png")?;          // Vec<u8>
//! s3::put("uploads", "thumbnails/cat.png", &image, Some("image/png"))?;
//! let visits = kv::incr("visits", "ada", 1)?;                    // i64
//! kv::put("carts", "ada", b"{\"items\": []}", kv::Put::default())?;
//! queue::send("jobs", r#"{"welcome": "ada@example.com"}"#)?;
//! let key = secrets::get("stripe-key")?;                         // Vec<u8>
//! let thumbnail = functions::invoke("resize", &image)?;           // another function's output
//! ```
//!
//! Every call returns [`Error`] on failure, whose [`ErrorKind`] the function can match:
//! `NotGranted` (the message names the grant that is missing), `NotFound`, `TooLarge`, `Timeout`,
//! `Unavailable` (the service failed), `Invalid` (a bad request, such as a key with `..`) and
//! `LimitExceeded` (too many host calls in one invocation).

pub mod functions;
mod host;
pub mod http;
pub mod kv;
pub mod panic;
pub mod queue;
pub mod s3;
pub mod secrets;
pub mod topic;

pub use host::{Error, ErrorKind};

/// The invocation a function runs for, as every trigger's input carries it (`context`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct Context {
    /// Lambda's request id: the log lines of the invocation carry it too.
    pub request_id: String,
    /// This function's name.
    pub function: String,
    /// When Lambda stops the invocation (milliseconds since the epoch; 0 locally).
    pub deadline_ms: u64,
    /// What was left of the call's time when it began.
    pub remaining_ms: u64,
    pub invoked_function_arn: String,
    /// The X-Ray trace id.
    pub trace_id: Option<String>,
}

/// The wire-level host call (see the README's host-call contract), for what the typed modules do
/// not cover yet and for tools that test the host.
pub mod raw {
    pub use crate::host::{call, call_frame, decode};
}

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

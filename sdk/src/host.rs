//! The one host function, `call` in `wasm-lambda:host/v1`: a request frame in, a reply frame out,
//! each `[u32 little-endian header length][JSON header][body bytes]`.

use extism_pdk::Memory;
use serde_json::{Value, json};

#[link(wasm_import_module = "wasm-lambda:host/v1")]
unsafe extern "C" {
    /// Takes the offset of a request frame (the host frees it), returns that of the reply.
    #[link_name = "call"]
    fn host_call(request: u64) -> u64;
}

/// What kind of failure a host call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The manifest grants no such access; the message names the grant that is missing.
    NotGranted,
    NotFound,
    TooLarge,
    Timeout,
    /// The service failed; the message says which and why.
    Unavailable,
    /// The request is wrong: a bad key, a missing argument.
    Invalid,
    /// The invocation made more host calls than allowed.
    LimitExceeded,
    /// An error kind this SDK does not know (a newer host).
    Other,
}

/// A failed host call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}

impl Error {
    fn protocol(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Other,
            message: message.into(),
        }
    }
}

/// Calls operation `op` with the arguments `args` (a JSON object) and `body`: the reply's
/// header fields and body.
pub fn call(op: &str, mut args: Value, body: &[u8]) -> Result<(Value, Vec<u8>), Error> {
    args["op"] = json!(op);
    let header = args.to_string();
    let mut frame = Vec::with_capacity(4 + header.len() + body.len());
    frame.extend_from_slice(&(header.len() as u32).to_le_bytes());
    frame.extend_from_slice(header.as_bytes());
    frame.extend_from_slice(body);
    decode(&call_frame(&frame))
}

/// Sends `frame` as it is and returns the reply frame (empty if the host gave none).
pub fn call_frame(frame: &[u8]) -> Vec<u8> {
    let Ok(request) = Memory::from_bytes(frame) else {
        return Vec::new();
    };
    // SAFETY: the offset is of a block just filled; the host takes ownership of it.
    let offset = unsafe { host_call(request.offset()) };
    let Some(reply) = Memory::find(offset) else {
        return Vec::new();
    };
    let frame = reply.to_vec();
    reply.free();
    frame
}

/// Reads a reply frame: its `ok` fields and body, or its error.
pub fn decode(frame: &[u8]) -> Result<(Value, Vec<u8>), Error> {
    let (length, rest) = frame
        .split_first_chunk::<4>()
        .ok_or_else(|| Error::protocol("a reply shorter than its header length"))?;
    let length = (u32::from_le_bytes(*length) as usize).min(rest.len());
    let (header, body) = rest.split_at(length);
    let header: Value =
        serde_json::from_slice(header).map_err(|e| Error::protocol(e.to_string()))?;
    if let Some(error) = header.get("error") {
        let kind = match error["type"].as_str().unwrap_or_default() {
            "NotGranted" => ErrorKind::NotGranted,
            "NotFound" => ErrorKind::NotFound,
            "TooLarge" => ErrorKind::TooLarge,
            "Timeout" => ErrorKind::Timeout,
            "Unavailable" => ErrorKind::Unavailable,
            "Invalid" => ErrorKind::Invalid,
            "LimitExceeded" => ErrorKind::LimitExceeded,
            _ => ErrorKind::Other,
        };
        return Err(Error {
            kind,
            message: error["message"].as_str().unwrap_or_default().to_string(),
        });
    }
    Ok((header["ok"].clone(), body.to_vec()))
}

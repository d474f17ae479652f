//! Key-value state in the namespaces of the manifest's `grants.kv`: one DynamoDB table for the
//! whole store, each function reaching only its granted namespaces.

use serde_json::json;

use crate::host::{Error, ErrorKind, call};

/// How `put` stores a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Put {
    /// The value expires after this many seconds.
    pub ttl_seconds: Option<u64>,
    /// Store only if the key holds nothing.
    pub if_absent: bool,
    /// Store only if the key's version is this one (see [`get_versioned`]).
    pub if_version: Option<u64>,
}

/// The value, or `None` when the key holds nothing.
pub fn get(ns: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
    Ok(get_versioned(ns, key)?.map(|(value, _)| value))
}

/// The value and its version (each store adds one), or `None`.
pub fn get_versioned(ns: &str, key: &str) -> Result<Option<(Vec<u8>, u64)>, Error> {
    match call("kv.get", json!({"ns": ns, "key": key}), &[]) {
        Ok((header, value)) => Ok(Some((
            value,
            header["version"].as_u64().unwrap_or_default(),
        ))),
        Err(error) if error.kind == ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Stores `value` as `how` says; whether it was stored (a condition may refuse it).
pub fn put(ns: &str, key: &str, value: &[u8], how: Put) -> Result<bool, Error> {
    let args = json!({
        "ns": ns, "key": key,
        "ttl_seconds": how.ttl_seconds, "if_absent": how.if_absent, "if_version": how.if_version,
    });
    let (header, _) = call("kv.put", args, value)?;
    Ok(header["stored"].as_bool().unwrap_or_default())
}

pub fn delete(ns: &str, key: &str) -> Result<(), Error> {
    call("kv.delete", json!({"ns": ns, "key": key}), &[]).map(|_| ())
}

/// Adds `by` to the counter at `key` (from 0), atomically; its new value.
pub fn incr(ns: &str, key: &str, by: i64) -> Result<i64, Error> {
    let (header, _) = call("kv.incr", json!({"ns": ns, "key": key, "by": by}), &[])?;
    Ok(header["value"].as_i64().unwrap_or_default())
}

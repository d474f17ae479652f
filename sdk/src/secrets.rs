//! Secrets, read only, within the manifest's `grants.secrets`: a name starting with `/` is an SSM
//! parameter (decrypted), any other a Secrets Manager secret. The host reuses a value it read for
//! `SECRETS_TTL` (5 minutes by default).

use serde_json::json;

use crate::host::{Error, call};

/// The secret's value (its string, or its binary).
pub fn get(name: &str) -> Result<Vec<u8>, Error> {
    Ok(call("secret.get", json!({"name": name}), &[])?.1)
}

/// The secret as text.
pub fn get_string(name: &str) -> Result<String, Error> {
    String::from_utf8(get(name)?).map_err(|_| Error {
        kind: crate::ErrorKind::Invalid,
        message: format!("secret `{name}` is not UTF-8 text"),
    })
}

//! S3 objects, within the manifest's `grants.s3` (bucket by its logical name, key under a granted
//! prefix, with the granted access: `read` for get, head and list; `write` for put and delete).

use serde_json::{Value, json};

use crate::host::{Error, call};

/// What `head` tells of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub size: u64,
    pub content_type: Option<String>,
    pub etag: Option<String>,
    /// Seconds since the Unix epoch.
    pub last_modified: Option<i64>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    /// `(key, size)` of each object.
    pub objects: Vec<(String, u64)>,
    /// Pass to [`list_from`] for the next page; `None` on the last.
    pub next: Option<String>,
}

/// The whole object (at most 16 MiB; read larger ones by [`get_range`]).
pub fn get(bucket: &str, key: &str) -> Result<Vec<u8>, Error> {
    Ok(call("s3.get", json!({"bucket": bucket, "key": key}), &[])?.1)
}

/// Bytes `first..=last` of the object.
pub fn get_range(bucket: &str, key: &str, first: u64, last: u64) -> Result<Vec<u8>, Error> {
    let args = json!({"bucket": bucket, "key": key, "range": [first, last]});
    Ok(call("s3.get", args, &[])?.1)
}

/// Writes the object (at most 16 MiB).
pub fn put(bucket: &str, key: &str, body: &[u8], content_type: Option<&str>) -> Result<(), Error> {
    let args = json!({"bucket": bucket, "key": key, "content_type": content_type});
    call("s3.put", args, body).map(|_| ())
}

pub fn head(bucket: &str, key: &str) -> Result<Head, Error> {
    let (header, _) = call("s3.head", json!({"bucket": bucket, "key": key}), &[])?;
    Ok(Head {
        size: header["size"].as_u64().unwrap_or_default(),
        content_type: header["content_type"].as_str().map(str::to_string),
        etag: header["etag"].as_str().map(str::to_string),
        last_modified: header["last_modified"].as_i64(),
    })
}

pub fn delete(bucket: &str, key: &str) -> Result<(), Error> {
    call("s3.delete", json!({"bucket": bucket, "key": key}), &[]).map(|_| ())
}

/// The first page (up to 1,000 objects) of the keys under `prefix`.
pub fn list(bucket: &str, prefix: &str) -> Result<Listing, Error> {
    list_from(bucket, prefix, None)
}

/// The page after `next`.
pub fn list_from(bucket: &str, prefix: &str, next: Option<&str>) -> Result<Listing, Error> {
    let args = json!({"bucket": bucket, "prefix": prefix, "continuation": next});
    let (header, _) = call("s3.list", args, &[])?;
    let objects = header["keys"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|object: &Value| {
            Some((
                object["key"].as_str()?.to_string(),
                object["size"].as_u64().unwrap_or_default(),
            ))
        })
        .collect();
    Ok(Listing {
        objects,
        next: header["next"].as_str().map(str::to_string),
    })
}

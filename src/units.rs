//! Durations and sizes as people write them in manifests and environment variables.

use std::time::Duration;

/// Parses a duration such as `30s`, `250ms`, `1m 30s` or `0`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text)
        .map_err(|error| format!("expected a duration such as 30s or 250ms ({error})"))
}

/// Parses a size such as `64MiB`, `1.5 GB` or `1048576` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if let Ok(bytes) = text.parse::<u64>() {
        return Ok(bytes);
    }
    text.parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|error| format!("expected a size such as 64MiB or 1048576 ({error})"))
}

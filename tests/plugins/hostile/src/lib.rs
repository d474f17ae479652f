//! Attacks on the sandbox, one export each. Each reports what it managed to do, so the tests can
//! assert that it managed nothing.

use std::time::{Duration, Instant};

use extism_pdk::*;
use serde_json::{Value, json};

/// Every environment variable it can see, and the Lambda role's secret key in particular.
#[plugin_fn]
pub fn read_env(_: ()) -> FnResult<Json<Value>> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    Ok(Json(json!({
        "vars": vars,
        "secret": std::env::var("AWS_SECRET_ACCESS_KEY").ok(),
    })))
}

/// Reads the file at the path given.
#[plugin_fn]
pub fn read_file(path: String) -> FnResult<Json<Value>> {
    Ok(Json(match std::fs::read(&path) {
        Ok(bytes) => json!({"read": true, "text": String::from_utf8_lossy(&bytes)}),
        Err(error) => json!({"read": false, "error": error.to_string()}),
    }))
}

/// Makes the HTTP request given as `{"url", "method"}` and reports the answer.
#[plugin_fn]
pub fn fetch(Json(request): Json<Value>) -> FnResult<Json<Value>> {
    let url = request["url"].as_str().unwrap_or_default();
    let method = request["method"].as_str().unwrap_or("GET");
    let response = http::request::<()>(&HttpRequest::new(url).with_method(method), None)?;
    let body = response.body();
    Ok(Json(json!({
        "status": response.status_code(),
        "headers": response.headers(),
        "body": String::from_utf8_lossy(&body[..body.len().min(4096)]),
        "length": body.len(),
    })))
}

/// Allocates until something gives.
#[plugin_fn]
pub fn memory_bomb(_: ()) -> FnResult<String> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![7u8; 1 << 20]);
        if hoard.len() == usize::MAX {
            return Ok(format!("{}", hoard.len()));
        }
    }
}

/// Never returns.
#[plugin_fn]
pub fn spin(_: ()) -> FnResult<String> {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Keeps the CPU busy for the milliseconds given, then answers.
#[plugin_fn]
pub fn busy_for(millis: String) -> FnResult<String> {
    let millis: u64 = millis.trim().parse().unwrap_or(0);
    let started = Instant::now();
    let mut n: u64 = 0;
    while started.elapsed() < Duration::from_millis(millis) {
        n = std::hint::black_box(n.wrapping_add(1));
    }
    Ok(format!("done after {millis} ms"))
}

#[allow(unconditional_recursion)]
fn down(depth: u64) -> u64 {
    std::hint::black_box(down(depth + 1)) + 1
}

/// Recurses until the stack runs out.
#[plugin_fn]
pub fn recurse(_: ()) -> FnResult<String> {
    Ok(down(0).to_string())
}

/// Answers with as many bytes as asked.
#[plugin_fn]
pub fn huge_output(bytes: String) -> FnResult<Vec<u8>> {
    Ok(vec![b'x'; bytes.trim().parse().unwrap_or(0)])
}

/// Panics (a trap) when its input mentions `boom`; otherwise answers `ok`.
/// Panics on `boom` with the SDK's panic hook (a WASI module installs it itself).
#[plugin_fn]
pub fn crash_on_boom(input: String) -> FnResult<String> {
    wasm_lambda_sdk::panic::install();
    if input.contains("boom") {
        panic!("went {input}");
    }
    Ok("ok".to_string())
}

/// Panics with no hook installed.
#[plugin_fn]
pub fn crash_bare(_: ()) -> FnResult<String> {
    panic!("nobody hears this");
}

/// Stores the input in the Extism var `secret` and answers what was there before.
#[plugin_fn]
pub fn swap_secret(input: String) -> FnResult<Json<Value>> {
    let previous: Option<String> = var::get("secret")?;
    var::set("secret", input)?;
    Ok(Json(json!({ "previous": previous })))
}

/// Logs the HTTP request it handles, at info and at warn, and answers with the request id from
/// its context, so a test can match the log lines to the invocation.
#[plugin_fn]
pub fn log_request(Json(request): Json<Value>) -> FnResult<String> {
    let (method, path) = (&request["method"], &request["path"]);
    info!("handling {method} {path}");
    warn!("still handling {method} {path}");
    Ok(request["context"]["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// The preopened directory whose guest path is `name`.
fn preopen(name: &str) -> Option<wasi::Fd> {
    for fd in 3..64 {
        // SAFETY: plain WASI calls on descriptors the plugin owns; buffers are sized by the host.
        let Ok(wasi::Prestat { u, .. }) = (unsafe { wasi::fd_prestat_get(fd) }) else {
            continue;
        };
        let mut path = vec![0u8; unsafe { u.dir.pr_name_len }];
        if unsafe { wasi::fd_prestat_dir_name(fd, path.as_mut_ptr(), path.len()) }.is_ok()
            && path == name.as_bytes()
        {
            return Some(fd);
        }
    }
    None
}

const READ: wasi::Rights = wasi::RIGHTS_FD_READ;
/// Every right WASI preview 1 defines.
const ALL: wasi::Rights = (1 << 29) - 1;

/// One raw WASI operation on `{"dir": <guest dir>, "op", "path"}`, each a way to change a file
/// or directory: `{"ok": true}` if WASI let it happen, else `{"ok": false, "errno"}`.
#[plugin_fn]
pub fn fs_attack(Json(request): Json<Value>) -> FnResult<Json<Value>> {
    let dir = request["dir"].as_str().unwrap_or("/ro");
    let path = request["path"].as_str().unwrap_or("precious.txt");
    let Some(root) = preopen(dir) else {
        return Ok(Json(json!({"ok": false, "errno": "no such preopen"})));
    };
    let open = |oflags: wasi::Oflags, rights: wasi::Rights, fdflags: wasi::Fdflags| unsafe {
        wasi::path_open(root, 0, path, oflags, rights, rights, fdflags)
    };
    let data = b"overwritten";
    let write = |fd: wasi::Fd| unsafe {
        wasi::fd_write(
            fd,
            &[wasi::Ciovec {
                buf: data.as_ptr(),
                buf_len: data.len(),
            }],
        )
        .map(|_| ())
    };
    // SAFETY: as above.
    let result: Result<(), wasi::Errno> = unsafe {
        match request["op"].as_str().unwrap_or_default() {
            "create" => open(wasi::OFLAGS_CREAT, READ, 0).map(|_| ()),
            "create_truncate" => open(wasi::OFLAGS_CREAT | wasi::OFLAGS_TRUNC, READ, 0).map(|_| ()),
            "truncate" => open(wasi::OFLAGS_TRUNC, READ, 0).map(|_| ()),
            "create_exclusive" => open(wasi::OFLAGS_CREAT | wasi::OFLAGS_EXCL, READ, 0).map(|_| ()),
            "open_write" => open(0, ALL, 0).and_then(write),
            "open_append" => open(0, ALL, wasi::FDFLAGS_APPEND).and_then(write),
            "write_read_only" => open(0, READ, 0).and_then(write),
            "set_size" => open(0, ALL, 0).and_then(|fd| wasi::fd_filestat_set_size(fd, 0)),
            "allocate" => open(0, ALL, 0).and_then(|fd| wasi::fd_allocate(fd, 0, 1 << 20)),
            "set_times" => open(0, ALL, 0)
                .and_then(|fd| wasi::fd_filestat_set_times(fd, 1, 1, wasi::FSTFLAGS_MTIM)),
            "set_flags" => open(0, READ, 0).and_then(|fd| {
                wasi::fd_fdstat_set_flags(fd, wasi::FDFLAGS_APPEND).and_then(|()| write(fd))
            }),
            "path_set_times" => {
                wasi::path_filestat_set_times(root, 0, path, 1, 1, wasi::FSTFLAGS_MTIM)
            }
            "mkdir" => wasi::path_create_directory(root, path),
            "rmdir" => wasi::path_remove_directory(root, path),
            "unlink" => wasi::path_unlink_file(root, path),
            "rename" => wasi::path_rename(root, path, root, "renamed.txt"),
            "symlink" => wasi::path_symlink(path, root, "link.txt"),
            "link" => wasi::path_link(root, 0, path, root, "hardlink.txt"),
            // The directory `path` replaced by a symbolic link to `target`.
            "replace_with_link" => wasi::path_remove_directory(root, path).and_then(|()| {
                wasi::path_symlink(request["target"].as_str().unwrap_or(".."), root, path)
            }),
            // From another grant (writable) into this one.
            "rename_into" | "link_into" => {
                let from = request["from"].as_str().unwrap_or("/rw");
                match preopen(from) {
                    None => Err(wasi::ERRNO_BADF),
                    Some(from) if request["op"] == "rename_into" => {
                        wasi::path_rename(from, "src.txt", root, path)
                    }
                    Some(from) => wasi::path_link(from, 0, "src.txt", root, path),
                }
            }
            // A directory opened inside the grant carries the grant's limits.
            "create_in_subdir" => {
                wasi::path_open(root, 0, path, wasi::OFLAGS_DIRECTORY, ALL, ALL, 0).and_then(
                    |sub| {
                        wasi::path_open(sub, 0, "new.txt", wasi::OFLAGS_CREAT, ALL, ALL, 0)
                            .and_then(write)
                    },
                )
            }
            "read" => open(0, READ, 0).and_then(|fd| {
                let mut buf = [0u8; 64];
                wasi::fd_read(
                    fd,
                    &[wasi::Iovec {
                        buf: buf.as_mut_ptr(),
                        buf_len: buf.len(),
                    }],
                )
                .map(|_| ())
            }),
            other => {
                return Ok(Json(
                    json!({"ok": false, "errno": format!("unknown op {other}")}),
                ));
            }
        }
    };
    Ok(Json(match result {
        Ok(()) => json!({"ok": true}),
        Err(errno) => json!({"ok": false, "errno": errno.name()}),
    }))
}

/// Logs `{"lines": N, "size": S}`: N lines of S bytes each.
#[plugin_fn]
pub fn log_flood(Json(request): Json<Value>) -> FnResult<String> {
    let lines = request["lines"].as_u64().unwrap_or(1);
    let size = request["size"].as_u64().unwrap_or(1) as usize;
    let line = match request["text"].as_str() {
        Some(text) => text.to_string(),
        None => "y".repeat(size),
    };
    for _ in 0..lines {
        info!("{line}");
    }
    Ok(format!("logged {lines} lines of {size} bytes"))
}

/// Fails with an error message of as many bytes as asked.
#[plugin_fn]
pub fn big_error(bytes: String) -> FnResult<String> {
    Err(Error::msg("e".repeat(bytes.trim().parse().unwrap_or(0))).into())
}

/// One raw host call, or `repeat` of them: `{"op", "args", "body" | "body_bytes", "repeat"}`, or a
/// raw `frame` (text) sent as it is. Answers the last reply: `{"ok", "body", "body_len"}` or
/// `{"error", "message"}`.
#[plugin_fn]
pub fn capability(Json(request): Json<Value>) -> FnResult<Json<Value>> {
    use wasm_lambda_sdk::raw;
    if let Some(frame) = request["frame"].as_str() {
        let reply = raw::call_frame(frame.as_bytes());
        let answer = match raw::decode(&reply) {
            Ok((header, body)) => json!({"ok": header, "body_len": body.len()}),
            Err(error) => json!({"error": format!("{:?}", error.kind), "message": error.message}),
        };
        return Ok(Json(answer));
    }
    let op = request["op"].as_str().unwrap_or_default();
    let args = request.get("args").cloned().unwrap_or(json!({}));
    let body = match request["body_bytes"].as_u64() {
        Some(length) => vec![b'x'; length as usize],
        None => request["body"]
            .as_str()
            .unwrap_or_default()
            .as_bytes()
            .to_vec(),
    };
    let mut last = Value::Null;
    for _ in 0..request["repeat"].as_u64().unwrap_or(1) {
        last = match raw::call(op, args.clone(), &body) {
            Ok((header, body)) => json!({
                "ok": header,
                "body": String::from_utf8_lossy(&body),
                "body_len": body.len(),
            }),
            Err(error) => json!({"error": format!("{:?}", error.kind), "message": error.message}),
        };
        if last.get("error").is_some() {
            break;
        }
    }
    Ok(Json(last))
}

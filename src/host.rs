//! The host functions a plugin calls, defined in `extism:host/env` in place of Extism's own:
//!
//! - `http_request`, `http_status_code`, `http_headers`: outbound HTTP through the egress policy
//!   (`egress.rs`). A refused or failed request does not trap the plugin: it answers like a proxy
//!   would (403 refused, 502 failed or too large, 504 timed out) with a JSON body
//!   `{"error", "url"}` and an `x-wasm-lambda-error` header, and the refusal is logged.
//! - `log_error` ... `log_trace`: the message reaches the Lambda log as a `tracing` event with the
//!   function's name and the invocation's request id. A line longer than [`MAX_LOG_LINE`] is cut
//!   there, and once an invocation has logged [`MAX_LOG_BYTES`] its further lines are dropped;
//!   the log says so both times.
//!
//! - `call`, in `wasm-lambda:host/v1`: the capabilities (S3, key-value, queues, topics,
//!   secrets) within the function's grants (`capabilities.rs`), at most
//!   [`MAX_HOST_CALLS`](crate::capabilities::MAX_HOST_CALLS) per invocation.
//!
//! Each engine (Extism `CompiledPlugin`) has its own [`CallState`], and an engine runs one call at
//! a time, so the state always describes the call in progress.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use extism::{CurrentPlugin, Function, PTR, UserData, Val, ValType};
use serde::Deserialize;
use serde_json::json;
use tracing::level_filters::LevelFilter;
use tracing::{Level, warn};

use crate::capabilities::{self, CallError, Caller, Capabilities, HostMeter, Kind, MAX_HOST_CALLS};
use crate::egress::{self, EgressPolicy};
use crate::manifest::Grants;

/// The namespace of Extism's own host functions.
const ENV: &str = "extism:host/env";

/// The longest plugin log line kept whole: Lambda's own limit for one log event (256 KB).
pub const MAX_LOG_LINE: usize = 256 * 1024;

/// How much one invocation of a function may log; past it, lines are dropped.
pub const MAX_LOG_BYTES: usize = 1024 * 1024;

/// What a log line costs beyond its message (its level, time, function and request id), counted
/// against `MAX_LOG_BYTES` so that many tiny lines are bounded too.
const LOG_LINE_OVERHEAD: usize = 128;

/// What the host functions of one engine know about the call running on it.
#[derive(Debug)]
pub struct CallState {
    function: String,
    allowed_hosts: Vec<String>,
    max_http_response_bytes: u64,
    egress: EgressPolicy,
    /// Set before each call.
    request_id: String,
    deadline: Instant,
    /// The last HTTP response, for `http_status_code` and `http_headers`.
    status: u16,
    headers: BTreeMap<String, String>,
    /// How many bytes this call logged so far.
    logged: usize,
    grants: Arc<Grants>,
    capabilities: Arc<Capabilities>,
    /// How many capability calls this call made so far.
    host_calls: u32,
    /// How many `function.invoke` calls this call is nested in.
    depth: u32,
    /// Where the invocation counts its host calls.
    meter: Option<Arc<HostMeter>>,
}

/// A handle on one engine's [`CallState`].
#[derive(Clone)]
pub struct CallHandle(UserData<CallState>);

impl CallHandle {
    pub fn new(
        function: &str,
        allowed_hosts: &[String],
        max_http_response_bytes: u64,
        egress: EgressPolicy,
        grants: &Grants,
        capabilities: Arc<Capabilities>,
    ) -> CallHandle {
        CallHandle(UserData::new(CallState {
            function: function.to_string(),
            allowed_hosts: allowed_hosts.to_vec(),
            max_http_response_bytes,
            egress,
            request_id: String::new(),
            deadline: Instant::now(),
            status: 0,
            headers: BTreeMap::new(),
            logged: 0,
            grants: Arc::new(grants.clone()),
            capabilities,
            host_calls: 0,
            depth: 0,
            meter: None,
        }))
    }

    /// Records the call about to run: its request id, when it must end, and how many
    /// `function.invoke` calls it is nested in.
    pub fn begin(
        &self,
        request_id: &str,
        deadline: Instant,
        depth: u32,
        meter: Option<Arc<HostMeter>>,
    ) {
        let state = self.inner();
        let mut state = lock(&state);
        state.request_id = request_id.to_string();
        state.deadline = deadline;
        state.status = 0;
        state.headers.clear();
        state.logged = 0;
        state.host_calls = 0;
        state.depth = depth;
        state.meter = meter;
    }

    fn inner(&self) -> Arc<Mutex<CallState>> {
        self.0
            .get()
            .expect("host state is created in Rust, never from C")
    }

    /// The host functions, bound to this state.
    pub fn functions(&self) -> Vec<Function> {
        let mut functions = vec![
            Function::new(
                "http_request",
                [PTR, PTR],
                [PTR],
                self.0.clone(),
                http_request,
            ),
            Function::new(
                "http_status_code",
                [],
                [ValType::I32],
                self.0.clone(),
                |_, _, outputs, state| {
                    outputs[0] = Val::I32(i32::from(lock(&*state.get()?).status));
                    Ok(())
                },
            ),
            Function::new("http_headers", [], [PTR], self.0.clone(), http_headers),
        ];
        for (name, level) in [
            ("log_error", Level::ERROR),
            ("log_warn", Level::WARN),
            ("log_info", Level::INFO),
            ("log_debug", Level::DEBUG),
            ("log_trace", Level::TRACE),
        ] {
            functions.push(Function::new(
                name,
                [PTR],
                [],
                self.0.clone(),
                move |plugin, inputs, _, state| log(level, plugin, inputs, &state),
            ));
        }
        functions
            .into_iter()
            .map(|function| function.with_namespace(ENV))
            .chain(std::iter::once(
                Function::new("call", [PTR], [PTR], self.0.clone(), capability_call)
                    .with_namespace(capabilities::NAMESPACE),
            ))
            .collect()
    }
}

/// A poisoned lock still holds usable state: a panic in one host call must not wedge the engine.
fn lock(state: &Mutex<CallState>) -> MutexGuard<'_, CallState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `call(frame) -> frame`: one capability call (see `capabilities.rs`). A refused or failed call
/// does not trap the plugin: the reply carries the error, and a refusal is logged.
fn capability_call(
    plugin: &mut CurrentPlugin,
    inputs: &[Val],
    outputs: &mut [Val],
    state: UserData<CallState>,
) -> Result<(), extism::Error> {
    // The largest request a call may take (its header and the largest body of any operation),
    // refused before it is copied out of the plugin's memory.
    const MAX_REQUEST: u64 = 4 + 64 * 1024 + capabilities::MAX_OBJECT_BYTES;
    let request_len = plugin
        .memory_from_val(&inputs[0])
        .map_or(0, |handle| handle.len() as u64);
    let too_large = request_len > MAX_REQUEST;
    let frame = if too_large {
        if let Some(handle) = plugin.memory_from_val(&inputs[0]) {
            plugin.memory_free(handle)?;
        }
        Vec::new()
    } else {
        take_bytes(plugin, &inputs[0])?.unwrap_or_default()
    };
    let state = state.get()?;
    let (function, request_id, grants, capabilities, deadline, calls, depth, meter) = {
        let mut state = lock(&state);
        state.host_calls = state.host_calls.saturating_add(1);
        (
            state.function.clone(),
            state.request_id.clone(),
            Arc::clone(&state.grants),
            Arc::clone(&state.capabilities),
            // Already a little before the call's end, so the function can still answer.
            state.deadline,
            state.host_calls,
            state.depth,
            state.meter.clone(),
        )
    };
    let started = Instant::now();
    let mut op = String::new();
    // An invocation's allowance is shared with the functions it invokes.
    let calls = meter.as_ref().map_or(calls, |meter| meter.admit());
    let result = if calls > MAX_HOST_CALLS {
        Err(CallError {
            kind: Kind::LimitExceeded,
            message: format!("an invocation may make at most {MAX_HOST_CALLS} host calls"),
        })
    } else if too_large {
        Err(CallError {
            kind: Kind::TooLarge,
            message: format!(
                "a request of {request_len} bytes is larger than the {MAX_REQUEST} allowed"
            ),
        })
    } else {
        capabilities::decode(&frame).and_then(|(header, body)| {
            op = header["op"].as_str().unwrap_or_default().to_string();
            let caller = Caller {
                function: &function,
                request_id: &request_id,
                depth,
                meter: meter.clone(),
            };
            capabilities.call(&grants, header, body, deadline, caller)
        })
    };
    if let Err(error) = &result
        && matches!(error.kind, Kind::NotGranted | Kind::LimitExceeded)
        && (calls <= MAX_HOST_CALLS + 1)
    {
        warn!(function = %function, request_id = %request_id, error_type = ?error.kind, message = %error.message, "host call refused");
    }
    if let Some(meter) = &meter {
        meter.record(&op, started.elapsed());
    }
    let reply = capabilities::encode(result);
    let handle = plugin.memory_new(&reply)?;
    outputs[0] = plugin.memory_to_val(handle);
    Ok(())
}

/// `extism_manifest::HttpRequest`, as the PDK sends it.
#[derive(Deserialize)]
struct HttpRequest {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    method: Option<String>,
}

/// Reads and frees the memory block at `value` (0: none). The host owns the blocks the PDK passes.
fn take_bytes(plugin: &mut CurrentPlugin, value: &Val) -> Result<Option<Vec<u8>>, extism::Error> {
    if value.i64() == Some(0) {
        return Ok(None);
    }
    let Some(handle) = plugin.memory_from_val(value) else {
        anyhow::bail!("invalid memory offset {value:?}");
    };
    let bytes = plugin.memory_bytes(handle)?.to_vec();
    plugin.memory_free(handle)?;
    Ok(Some(bytes))
}

fn http_request(
    plugin: &mut CurrentPlugin,
    inputs: &[Val],
    outputs: &mut [Val],
    state: UserData<CallState>,
) -> Result<(), extism::Error> {
    let Some(request) = take_bytes(plugin, &inputs[0])? else {
        anyhow::bail!("http_request: no request given");
    };
    let request: HttpRequest = serde_json::from_slice(&request)
        .map_err(|error| anyhow::anyhow!("http_request: the request is not valid: {error}"))?;
    let body = take_bytes(plugin, &inputs[1])?;

    let state = state.get()?;
    let mut state = lock(&state);
    let url = request.url.clone();
    let outbound = egress::Request {
        method: request.method.unwrap_or_else(|| "GET".to_string()),
        url: request.url,
        headers: request.headers,
        body,
    };
    let result = state.egress.fetch(
        outbound,
        &state.allowed_hosts,
        state.deadline,
        state.max_http_response_bytes,
    );
    let (status, headers, body) = match result {
        Ok(response) => (response.status, response.headers, response.body),
        Err(error) => {
            warn!(
                function = %state.function,
                request_id = %state.request_id,
                %url,
                %error,
                "outbound HTTP request {}",
                if error.status() == 403 { "refused" } else { "failed" }
            );
            let headers = BTreeMap::from([
                ("content-type".to_string(), "application/json".to_string()),
                ("x-wasm-lambda-error".to_string(), error.kind().to_string()),
            ]);
            let body = json!({"error": error.to_string(), "url": url});
            (error.status(), headers, body.to_string().into_bytes())
        }
    };
    state.status = status;
    state.headers = headers;
    drop(state);
    let handle = plugin.memory_new(body.as_slice())?;
    outputs[0] = plugin.memory_to_val(handle);
    Ok(())
}

fn http_headers(
    plugin: &mut CurrentPlugin,
    _inputs: &[Val],
    outputs: &mut [Val],
    state: UserData<CallState>,
) -> Result<(), extism::Error> {
    let headers = serde_json::to_string(&lock(&*state.get()?).headers)?;
    let handle = plugin.memory_new(headers.as_str())?;
    outputs[0] = plugin.memory_to_val(handle);
    Ok(())
}

fn log(
    level: Level,
    plugin: &mut CurrentPlugin,
    inputs: &[Val],
    state: &UserData<CallState>,
) -> Result<(), extism::Error> {
    if inputs[0].i64() == Some(0) {
        return Ok(());
    }
    if level > LevelFilter::current() {
        if let Some(handle) = plugin.memory_from_val(&inputs[0]) {
            plugin.memory_free(handle)?;
        }
        return Ok(());
    }
    let Some(handle) = plugin.memory_from_val(&inputs[0]) else {
        return Ok(());
    };
    let state = state.get()?;
    let mut state = lock(&state);
    let length = handle.len();
    if state.logged >= MAX_LOG_BYTES {
        plugin.memory_free(handle)?;
        return Ok(());
    }
    // Only what is kept is copied out of the plugin's memory.
    let kept = length
        .min(MAX_LOG_LINE)
        .min(MAX_LOG_BYTES.saturating_sub(state.logged));
    let bytes = &plugin.memory_bytes(handle)?[..kept];
    // A line break in a message would forge a log line of its own in the text format.
    let mut message = String::from_utf8_lossy(bytes)
        .replace('\r', "\\r")
        .replace('\n', "\\n");
    plugin.memory_free(handle)?;
    if kept < length {
        message.push_str(&format!(
            " [cut: {} of {length} bytes not logged]",
            length - kept
        ));
    }
    state.logged += kept + LOG_LINE_OVERHEAD;
    let (function, request_id) = (&state.function, &state.request_id);
    match level {
        Level::ERROR => tracing::error!(%function, %request_id, "{message}"),
        Level::WARN => tracing::warn!(%function, %request_id, "{message}"),
        Level::INFO => tracing::info!(%function, %request_id, "{message}"),
        Level::DEBUG => tracing::debug!(%function, %request_id, "{message}"),
        Level::TRACE => tracing::trace!(%function, %request_id, "{message}"),
    }
    if state.logged >= MAX_LOG_BYTES {
        warn!(
            %function,
            %request_id,
            "this invocation logged {MAX_LOG_BYTES} bytes, its limit: its further log lines are dropped"
        );
    }
    Ok(())
}

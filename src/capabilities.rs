//! Host capabilities: what a function may do on AWS, each only within its manifest's `grants`,
//! performed by the bootstrap with its own role (functions never hold credentials).
//!
//! A plugin calls one host function, `call` in the namespace [`NAMESPACE`], with one memory
//! block framed as `[u32 little-endian header length][header: JSON][body: bytes]`; it gets a block
//! framed the same way back. The request header names the operation (`"op": "s3.get"`) and its
//! arguments; the response header is `{"ok": {...}}` or `{"error": {"type", "message"}}`, and the
//! body carries the bytes (an object, a value, a secret), never base64. The operations, their
//! arguments and results are listed in the README ("Capabilities") and in `sdk/`.
//!
//! Every call is checked against the grants by logical name, then made on a runtime of its own
//! (the plugin may be running on the bootstrap's only async thread, which an SDK call must not
//! block), bounded by the invocation's remaining time and by size caps. The SDK clients are made
//! on first use, one per service per process.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{DEFAULT_KV_TABLE, DEFAULT_SECRETS_TTL};
use crate::manifest::Grants;

/// The import namespace of our host functions.
pub const NAMESPACE: &str = "wasm-lambda:host/v1";

/// The largest object `s3.get` returns or `s3.put` takes.
pub const MAX_OBJECT_BYTES: u64 = 16 * 1024 * 1024;
/// The largest key-value item value (DynamoDB's item limit is 400 KB).
pub const MAX_KV_VALUE_BYTES: usize = 350 * 1024;
/// The largest SQS message or SNS notification (both services' limit).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// The largest request header a plugin may send.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How many keys one `s3.list` returns at most.
const MAX_LIST_KEYS: i32 = 1000;
/// How many host calls one invocation of a function may make.
pub const MAX_HOST_CALLS: u32 = 1000;
/// How deep functions may invoke each other (a loop stops here with `LimitExceeded`).
pub const MAX_INVOKE_DEPTH: u32 = 8;
/// The largest input one function may pass another (Lambda's synchronous payload limit).
pub const MAX_INVOKE_INPUT_BYTES: usize = 6 * 1024 * 1024;

/// Runs another function of the store for a host call (`function.invoke`) of `caller`: with the
/// callee's own manifest, limits and grants, within `deadline`, if the callee lists the caller in
/// its `callers`.
#[async_trait::async_trait]
pub trait Invoker: Send + Sync {
    async fn invoke(
        &self,
        caller: &str,
        function: &str,
        input: Vec<u8>,
        deadline: Instant,
        request_id: &str,
    ) -> Result<Vec<u8>, CallError>;
}

tokio::task_local! {
    /// How many `function.invoke` calls the running call is nested in.
    static DEPTH: u32;
    /// The X-Ray trace id of the invocation a host call's requests are made for.
    static TRACE_ID: Arc<str>;
    /// Where the running invocation's host calls are counted.
    pub static METER: Arc<HostMeter>;
}

/// The capabilities, as metrics name them.
pub const FAMILIES: [&str; 6] = ["s3", "kv", "queue", "topic", "secret", "function"];

/// Host calls per capability: how many, and how long they took.
pub type HostUsage = [(u32, Duration); FAMILIES.len()];

/// One invocation's host calls, counted as they are made (by whichever thread runs them), its
/// nested `function.invoke` calls included: they share its allowance of [`MAX_HOST_CALLS`], and
/// its X-Ray trace id, which their requests to AWS carry.
#[derive(Debug, Default)]
pub struct HostMeter {
    usage: Mutex<HostUsage>,
    calls: std::sync::atomic::AtomicU32,
    trace_id: Option<Arc<str>>,
}

/// Who makes a host call: the function, the invocation, how deep in `function.invoke` calls,
/// and its meter.
pub struct Caller<'a> {
    pub function: &'a str,
    pub request_id: &'a str,
    pub depth: u32,
    pub meter: Option<Arc<HostMeter>>,
}

impl HostMeter {
    /// The meter of an invocation traced as `trace_id`.
    pub fn traced(trace_id: Option<&str>) -> HostMeter {
        HostMeter {
            trace_id: trace_id.map(Arc::from),
            ..HostMeter::default()
        }
    }

    /// Takes one call from the allowance; how many the invocation has now made.
    pub fn admit(&self) -> u32 {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .saturating_add(1)
    }

    /// Counts a call of operation `op` that took `elapsed`.
    pub fn record(&self, op: &str, elapsed: Duration) {
        let family = op.split('.').next().unwrap_or_default();
        if let Some(index) = FAMILIES.iter().position(|f| *f == family) {
            let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
            usage[index].0 += 1;
            usage[index].1 += elapsed;
        }
    }

    pub fn usage(&self) -> HostUsage {
        *self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The meter of the invocation running in this task, if it has one.
pub fn current_meter() -> Option<Arc<HostMeter>> {
    METER.try_with(Arc::clone).ok()
}

/// The nesting depth of the call running in this task (0 for one an event started).
pub fn current_depth() -> u32 {
    DEPTH.try_with(|depth| *depth).unwrap_or(0)
}

/// Puts the invocation's X-Ray trace id on every request a host call makes (`x-amzn-trace-id`),
/// as the AWS SDK does in a Lambda from `_X_AMZN_TRACE_ID`, so that Lambda can follow an event
/// through the queues and topics a function sends to and stop a loop (recursive loop
/// detection). It is read from the host call's own task: concurrent invocations each send
/// theirs, and the process environment is never changed per invocation.
#[derive(Debug)]
struct TraceHeader;

impl aws_sdk_s3::config::Intercept for TraceHeader {
    fn name(&self) -> &'static str {
        "TraceHeader"
    }

    fn modify_before_signing(
        &self,
        context: &mut aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _: &aws_sdk_s3::config::RuntimeComponents,
        _: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        const HEADER: &str = "x-amzn-trace-id";
        let Ok(trace_id) = TRACE_ID.try_with(Arc::clone) else {
            return Ok(());
        };
        let headers = context.request_mut().headers_mut();
        // Lambda's trace ids are visible ASCII; anything else is not sent.
        if !headers.contains_key(HEADER) && trace_id.bytes().all(|b| b.is_ascii_graphic()) {
            headers.insert(HEADER, trace_id.to_string());
        }
        Ok(())
    }
}

thread_local! {
    /// Set on the capabilities runtime's own threads.
    static ON_CAPABILITIES_RUNTIME: Cell<bool> = const { Cell::new(false) };
}

/// What a guest can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The manifest grants no such access; the message names the grant that is missing.
    NotGranted,
    NotFound,
    TooLarge,
    Timeout,
    /// The service failed; the message says which and why.
    Unavailable,
    /// The request itself is wrong (an unknown operation, a bad key, a missing argument).
    Invalid,
    /// The invocation made more host calls than allowed.
    LimitExceeded,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::NotGranted => "NotGranted",
            Kind::NotFound => "NotFound",
            Kind::TooLarge => "TooLarge",
            Kind::Timeout => "Timeout",
            Kind::Unavailable => "Unavailable",
            Kind::Invalid => "Invalid",
            Kind::LimitExceeded => "LimitExceeded",
        }
    }
}

/// A failed host call, as the guest receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub kind: Kind,
    pub message: String,
}

impl CallError {
    fn new(kind: Kind, message: impl Into<String>) -> CallError {
        let mut message = message.into();
        if message.len() > 1024 {
            let mut end = 1024;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        CallError { kind, message }
    }
}

fn invalid(message: impl Into<String>) -> CallError {
    CallError::new(Kind::Invalid, message)
}

fn not_granted(message: impl Into<String>) -> CallError {
    CallError::new(Kind::NotGranted, message)
}

/// A service failure: which call, and why.
fn unavailable<E: std::error::Error>(what: &str, error: E) -> CallError {
    CallError::new(
        Kind::Unavailable,
        format!("{what}: {}", DisplayErrorContext(&error)),
    )
}

/// What a successful call returns: a JSON header and a body.
pub type Reply = (Value, Vec<u8>);

/// Splits a request frame into its header and body.
pub fn decode(frame: &[u8]) -> Result<(Value, &[u8]), CallError> {
    let Some((length, rest)) = frame.split_first_chunk::<4>() else {
        return Err(invalid(
            "the request frame is shorter than its 4-byte header length",
        ));
    };
    let length = u32::from_le_bytes(*length) as usize;
    if length > MAX_HEADER_BYTES || length > rest.len() {
        return Err(invalid(format!(
            "the request header is {length} bytes: more than the frame holds or than {MAX_HEADER_BYTES}"
        )));
    }
    let (header, body) = rest.split_at(length);
    let header = serde_json::from_slice(header)
        .map_err(|error| invalid(format!("the request header is not JSON: {error}")))?;
    Ok((header, body))
}

/// The HTTP status of an SDK error's response, if it got one.
fn status(response: Option<&aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    response.map(|response| response.status().as_u16())
}

/// Frames a reply (or an error) for the guest.
pub fn encode(result: Result<Reply, CallError>) -> Vec<u8> {
    let (header, body) = match result {
        Ok((header, body)) => (json!({ "ok": header }), body),
        Err(error) => (
            json!({"error": {"type": error.kind.as_str(), "message": error.message}}),
            Vec::new(),
        ),
    };
    let header = header.to_string().into_bytes();
    let mut frame = Vec::with_capacity(4 + header.len() + body.len());
    frame.extend_from_slice(&(header.len() as u32).to_le_bytes());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(&body);
    frame
}

/// The process-wide capability layer: names, clients, caches.
pub struct Capabilities {
    /// Logical name -> deployed resource (`SOURCE_NAMES`, inverted).
    names: BTreeMap<String, String>,
    kv_table: String,
    secrets_ttl: Duration,
    /// The function store's bucket, if it is in S3: never reachable from functions (it holds
    /// every function's code and the compiled native code the bootstrap loads).
    store_bucket: Option<String>,
    clients: OnceLock<Arc<Clients>>,
    queue_urls: Mutex<HashMap<String, String>>,
    topic_arns: Mutex<HashMap<String, String>>,
    secrets: Mutex<HashMap<String, (Instant, Vec<u8>)>>,
    invoker: OnceLock<Weak<dyn Invoker>>,
}

impl std::fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capabilities")
            .field("names", &self.names)
            .field("kv_table", &self.kv_table)
            .finish_non_exhaustive()
    }
}

impl Default for Capabilities {
    fn default() -> Capabilities {
        Capabilities::new(BTreeMap::new(), DEFAULT_KV_TABLE, DEFAULT_SECRETS_TTL)
    }
}

/// One SDK client per service, made together on first use from one configuration.
struct Clients {
    config: SdkConfig,
    s3: OnceLock<aws_sdk_s3::Client>,
    dynamodb: OnceLock<aws_sdk_dynamodb::Client>,
    sqs: OnceLock<aws_sdk_sqs::Client>,
    sns: OnceLock<aws_sdk_sns::Client>,
    secrets: OnceLock<aws_sdk_secretsmanager::Client>,
    ssm: OnceLock<aws_sdk_ssm::Client>,
}

/// The runtime the SDK calls run on, apart from the bootstrap's: one per process, never dropped.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("capabilities")
            .on_thread_start(|| ON_CAPABILITIES_RUNTIME.with(|on| on.set(true)))
            .enable_all()
            .build()
            .expect("the capabilities runtime starts")
    })
}

/// The arguments of one operation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    op: String,
    bucket: Option<String>,
    key: Option<String>,
    prefix: Option<String>,
    /// `[first, last]` byte offsets, inclusive.
    range: Option<[u64; 2]>,
    content_type: Option<String>,
    continuation: Option<String>,
    ns: Option<String>,
    ttl_seconds: Option<u64>,
    #[serde(default)]
    if_absent: bool,
    if_version: Option<u64>,
    by: Option<i64>,
    queue: Option<String>,
    topic: Option<String>,
    subject: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    group_id: Option<String>,
    dedup_id: Option<String>,
    name: Option<String>,
    function: Option<String>,
}

impl Args {
    fn need<'a>(&self, value: &'a Option<String>, field: &str) -> Result<&'a str, CallError> {
        value
            .as_deref()
            .ok_or_else(|| invalid(format!("`{}` needs `{field}`", self.op)))
    }
}

impl Capabilities {
    /// `source_names`: deployed resource -> logical name (`SOURCE_NAMES`).
    pub fn new(
        source_names: BTreeMap<String, String>,
        kv_table: &str,
        secrets_ttl: Duration,
    ) -> Capabilities {
        Capabilities {
            names: source_names
                .into_iter()
                .map(|(resource, name)| (name, resource))
                .collect(),
            kv_table: kv_table.to_string(),
            secrets_ttl,
            store_bucket: None,
            clients: OnceLock::new(),
            queue_urls: Mutex::default(),
            topic_arns: Mutex::default(),
            secrets: Mutex::default(),
            invoker: OnceLock::new(),
        }
    }

    /// Keeps functions away from the function store's bucket `bucket`, whatever they grant.
    pub fn with_store_bucket(mut self, bucket: Option<String>) -> Capabilities {
        self.store_bucket = bucket;
        self
    }

    /// What `function.invoke` runs functions with (the bootstrap's adapter); unset, the call is
    /// `Unavailable`.
    pub fn attach(&self, invoker: Weak<dyn Invoker>) {
        let _ = self.invoker.set(invoker);
    }

    /// The deployed resource a logical name stands for.
    fn resource(&self, name: &str) -> String {
        self.names
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }

    /// Performs one host call of a function with `grants`, to end by `deadline`, for the
    /// invocation `request_id`, from a call nested `depth` invocations deep.
    pub fn call(
        self: &Arc<Self>,
        grants: &Grants,
        header: Value,
        body: &[u8],
        deadline: Instant,
        caller: Caller<'_>,
    ) -> Result<Reply, CallError> {
        let Caller {
            function: caller,
            request_id,
            depth,
            meter,
        } = caller;
        let caller = caller.to_string();
        let trace = meter.as_ref().and_then(|meter| meter.trace_id.clone());
        let args: Args = serde_json::from_value(header)
            .map_err(|error| invalid(format!("the request is not valid: {error}")))?;
        let this = Arc::clone(self);
        match args.op.as_str() {
            "s3.get" | "s3.head" | "s3.list" | "s3.put" | "s3.delete" => {
                let bucket = args.need(&args.bucket, "bucket")?.to_string();
                let writes = matches!(args.op.as_str(), "s3.put" | "s3.delete");
                let key = match args.op.as_str() {
                    "s3.list" => args.prefix.clone().unwrap_or_default(),
                    _ => args.need(&args.key, "key")?.to_string(),
                };
                check_key(&key, args.op == "s3.list")?;
                let granted = grants.s3.iter().any(|grant| {
                    grant.bucket == bucket
                        && key.starts_with(&grant.prefix)
                        && if writes {
                            grant.access.writes()
                        } else {
                            grant.access.reads()
                        }
                });
                if !granted {
                    return Err(not_granted(format!(
                        "no grant `s3: {{bucket: {bucket}, prefix: <a prefix of `{key}`>, access: {}}}` allows {}",
                        if writes { "write" } else { "read" },
                        args.op
                    )));
                }
                if args.op == "s3.put" && body.len() as u64 > MAX_OBJECT_BYTES {
                    return Err(CallError::new(
                        Kind::TooLarge,
                        format!(
                            "an object of {} bytes is larger than the {MAX_OBJECT_BYTES} allowed",
                            body.len()
                        ),
                    ));
                }
                let resource = self.resource(&bucket);
                if self.store_bucket.as_deref() == Some(resource.as_str()) {
                    return Err(not_granted(format!(
                        "bucket `{bucket}` is the function store's, which no grant reaches"
                    )));
                }
                let body = body.to_vec();
                self.run(deadline, trace, async move {
                    this.s3(args, resource, key, body).await
                })
            }
            "kv.get" | "kv.put" | "kv.delete" | "kv.incr" => {
                let ns = args.need(&args.ns, "ns")?.to_string();
                let key = args.need(&args.key, "key")?.to_string();
                if !grants.kv.contains(&ns) {
                    return Err(not_granted(format!(
                        "no grant `kv: [{ns}]` allows {} in namespace `{ns}`",
                        args.op
                    )));
                }
                if key.is_empty() || key.len() > 1024 {
                    return Err(invalid("a key-value key is 1 to 1024 bytes"));
                }
                if body.len() > MAX_KV_VALUE_BYTES {
                    return Err(CallError::new(
                        Kind::TooLarge,
                        format!(
                            "a value of {} bytes is larger than the {MAX_KV_VALUE_BYTES} allowed",
                            body.len()
                        ),
                    ));
                }
                // A namespace belongs to the function that names it: its items are keyed
                // `<function>/<namespace>`, so no other function reaches them by naming it too.
                let owned = format!("{caller}/{ns}");
                let body = body.to_vec();
                self.run(deadline, trace, async move {
                    this.kv(args, owned, key, body).await
                })
            }
            "queue.send" => {
                let queue = args.need(&args.queue, "queue")?.to_string();
                if !grants.queues.contains(&queue) {
                    return Err(not_granted(format!(
                        "no grant `queues: [{queue}]` allows sending to queue `{queue}`"
                    )));
                }
                let text = message_text(body)?;
                self.run(deadline, trace, async move {
                    this.send(args, queue, text).await
                })
            }
            "topic.publish" => {
                let topic = args.need(&args.topic, "topic")?.to_string();
                if !grants.topics.contains(&topic) {
                    return Err(not_granted(format!(
                        "no grant `topics: [{topic}]` allows publishing to topic `{topic}`"
                    )));
                }
                let text = message_text(body)?;
                self.run(deadline, trace, async move {
                    this.publish(args, topic, text).await
                })
            }
            "secret.get" => {
                let name = args.need(&args.name, "name")?.to_string();
                let granted = grants.secrets.iter().any(|pattern| {
                    globset::GlobBuilder::new(pattern)
                        .literal_separator(false)
                        .build()
                        .is_ok_and(|glob| glob.compile_matcher().is_match(&name))
                });
                if !granted {
                    return Err(not_granted(format!(
                        "no grant `secrets: [{name}]` (or a glob matching it) allows reading secret `{name}`"
                    )));
                }
                // SSM's `/aws/` names reach other services' values (`/aws/reference/
                // secretsmanager/...` reads any Secrets Manager secret): only a grant that names
                // that prefix itself reaches them, never a glob such as `/*`.
                if name.starts_with("/aws/")
                    && !grants
                        .secrets
                        .iter()
                        .any(|pattern| pattern.starts_with("/aws/"))
                {
                    return Err(not_granted(format!(
                        "`{name}` is an AWS-reserved parameter, which only a grant starting with `/aws/` reaches"
                    )));
                }
                if let Some(value) = self.cached_secret(&name) {
                    return Ok((json!({}), value));
                }
                self.run(deadline, trace, async move { this.secret(name).await })
            }
            "function.invoke" => {
                let function = args.need(&args.function, "function")?.to_string();
                if !grants.functions.contains(&function) {
                    return Err(not_granted(format!(
                        "no grant `functions: [{function}]` allows invoking function `{function}`"
                    )));
                }
                if depth >= MAX_INVOKE_DEPTH {
                    return Err(CallError::new(
                        Kind::LimitExceeded,
                        format!("functions invoke each other at most {MAX_INVOKE_DEPTH} deep"),
                    ));
                }
                if body.len() > MAX_INVOKE_INPUT_BYTES {
                    return Err(CallError::new(
                        Kind::TooLarge,
                        format!(
                            "an input of {} bytes is larger than the {MAX_INVOKE_INPUT_BYTES} allowed",
                            body.len()
                        ),
                    ));
                }
                let invoker = self.invoker.get().and_then(Weak::upgrade).ok_or_else(|| {
                    CallError::new(Kind::Unavailable, "functions cannot be invoked here")
                })?;
                let input = body.to_vec();
                let request_id = request_id.to_string();
                // The callee's host calls count against the caller's allowance.
                let meter = meter.unwrap_or_default();
                self.run(deadline, trace, async move {
                    let invoked = DEPTH.scope(
                        depth + 1,
                        METER.scope(meter, async {
                            invoker
                                .invoke(&caller, &function, input, deadline, &request_id)
                                .await
                        }),
                    );
                    invoked.await.map(|output| (json!({}), output))
                })
            }
            other => Err(invalid(format!(
                "`{other}` is not an operation (s3.get, s3.put, s3.head, s3.delete, s3.list, \
                 kv.get, kv.put, kv.delete, kv.incr, queue.send, topic.publish, secret.get, \
                 function.invoke)"
            ))),
        }
    }

    /// Runs `work` on the capabilities runtime and waits for it, at most until `deadline`; its
    /// requests carry the trace id `trace`.
    fn run(
        &self,
        deadline: Instant,
        trace: Option<Arc<str>>,
        work: impl Future<Output = Result<Reply, CallError>> + Send + 'static,
    ) -> Result<Reply, CallError> {
        let work = async move {
            match trace {
                Some(trace) => TRACE_ID.scope(trace, work).await,
                None => work.await,
            }
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        let timed_out = || {
            CallError::new(
                Kind::Timeout,
                "the invocation's time ran out before the service answered",
            )
        };
        if remaining.is_zero() {
            return Err(timed_out());
        }
        // A call nested in a `function.invoke` runs on this runtime already: it waits here
        // without holding the runtime's worker.
        if ON_CAPABILITIES_RUNTIME.with(Cell::get) {
            return tokio::task::block_in_place(|| {
                runtime().block_on(tokio::time::timeout(remaining, work))
            })
            .unwrap_or_else(|_| Err(timed_out()));
        }
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        runtime().spawn(async move {
            let result = tokio::time::timeout(remaining, work).await;
            let _ = sender.send(result);
        });
        match receiver.recv_timeout(remaining + Duration::from_millis(50)) {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => Err(timed_out()),
        }
    }

    async fn clients(&self) -> Arc<Clients> {
        if let Some(clients) = self.clients.get() {
            return Arc::clone(clients);
        }
        let config = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_initial_backoff(Duration::from_millis(50)),
            )
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .build(),
            )
            .load()
            .await;
        let clients = Arc::new(Clients {
            config,
            s3: OnceLock::new(),
            dynamodb: OnceLock::new(),
            sqs: OnceLock::new(),
            sns: OnceLock::new(),
            secrets: OnceLock::new(),
            ssm: OnceLock::new(),
        });
        Arc::clone(self.clients.get_or_init(|| clients))
    }

    async fn s3(
        &self,
        args: Args,
        bucket: String,
        key: String,
        body: Vec<u8>,
    ) -> Result<Reply, CallError> {
        let clients = self.clients().await;
        let client = clients.s3.get_or_init(|| {
            let custom_endpoint = std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty())
                || std::env::var("AWS_ENDPOINT_URL_S3").is_ok_and(|v| !v.is_empty());
            aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&clients.config)
                    .force_path_style(custom_endpoint)
                    .interceptor(TraceHeader)
                    .build(),
            )
        });
        let what = |call: &str| format!("S3 {call} s3://{bucket}/{key}");
        match args.op.as_str() {
            "s3.get" => {
                let range = args
                    .range
                    .map(|[first, last]| format!("bytes={first}-{last}"));
                let object = match client
                    .get_object()
                    .bucket(&bucket)
                    .key(&key)
                    .set_range(range)
                    .send()
                    .await
                {
                    Ok(object) => object,
                    Err(error) if status(error.raw_response()) == Some(404) => {
                        return Err(CallError::new(Kind::NotFound, what("GetObject")));
                    }
                    Err(error) => return Err(unavailable(&what("GetObject"), error)),
                };
                let size = object.content_length().unwrap_or_default().max(0) as u64;
                if size > MAX_OBJECT_BYTES {
                    return Err(CallError::new(
                        Kind::TooLarge,
                        format!(
                            "{} is {size} bytes, more than the {MAX_OBJECT_BYTES} a call may read; \
                             read it by ranges",
                            what("GetObject")
                        ),
                    ));
                }
                let header = json!({
                    "content_type": object.content_type(),
                    "etag": object.e_tag(),
                    "size": size,
                });
                let bytes = object
                    .body
                    .collect()
                    .await
                    .map_err(|error| unavailable(&what("GetObject"), error))?
                    .into_bytes();
                Ok((header, bytes.to_vec()))
            }
            "s3.head" => match client.head_object().bucket(&bucket).key(&key).send().await {
                Ok(object) => Ok((
                    json!({
                        "content_type": object.content_type(),
                        "etag": object.e_tag(),
                        "size": object.content_length().unwrap_or_default(),
                        "last_modified": object.last_modified().map(|time| time.secs()),
                    }),
                    Vec::new(),
                )),
                Err(error) if status(error.raw_response()) == Some(404) => {
                    Err(CallError::new(Kind::NotFound, what("HeadObject")))
                }
                Err(error) => Err(unavailable(&what("HeadObject"), error)),
            },
            "s3.put" => {
                let put = client
                    .put_object()
                    .bucket(&bucket)
                    .key(&key)
                    .set_content_type(args.content_type.clone())
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .map_err(|error| unavailable(&what("PutObject"), error))?;
                Ok((json!({"etag": put.e_tag()}), Vec::new()))
            }
            "s3.delete" => {
                client
                    .delete_object()
                    .bucket(&bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|error| unavailable(&what("DeleteObject"), error))?;
                Ok((json!({}), Vec::new()))
            }
            _ => {
                let listed = client
                    .list_objects_v2()
                    .bucket(&bucket)
                    .prefix(&key)
                    .set_continuation_token(args.continuation.clone())
                    .max_keys(MAX_LIST_KEYS)
                    .send()
                    .await
                    .map_err(|error| unavailable(&what("ListObjectsV2"), error))?;
                let keys: Vec<Value> = listed
                    .contents()
                    .iter()
                    .map(|object| json!({"key": object.key(), "size": object.size()}))
                    .collect();
                Ok((
                    json!({"keys": keys, "next": listed.next_continuation_token()}),
                    Vec::new(),
                ))
            }
        }
    }

    async fn kv(
        &self,
        args: Args,
        ns: String,
        key: String,
        body: Vec<u8>,
    ) -> Result<Reply, CallError> {
        let clients = self.clients().await;
        let client = clients.dynamodb.get_or_init(|| {
            aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&clients.config)
                    .interceptor(TraceHeader)
                    .build(),
            )
        });
        let table = &self.kv_table;
        let what = |call: &str| format!("DynamoDB {call} on table {table} ({ns}/{key})");
        let item_key = |request: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder| {
            request
                .table_name(table)
                .key("pk", AttributeValue::S(ns.clone()))
                .key("sk", AttributeValue::S(key.clone()))
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let number = |item: &HashMap<String, AttributeValue>, name: &str| {
            item.get(name)
                .and_then(|value| value.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
        };
        match args.op.as_str() {
            "kv.get" => {
                let item = client
                    .get_item()
                    .table_name(table)
                    .key("pk", AttributeValue::S(ns.clone()))
                    .key("sk", AttributeValue::S(key.clone()))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|error| unavailable(&what("GetItem"), error))?;
                let Some(item) = item.item() else {
                    return Err(CallError::new(
                        Kind::NotFound,
                        format!("no key `{key}` in namespace `{ns}`"),
                    ));
                };
                // DynamoDB deletes expired items lazily: an expired one is gone already.
                if number(item, "expires").is_some_and(|expires| expires <= now as i64) {
                    return Err(CallError::new(
                        Kind::NotFound,
                        format!("no key `{key}` in namespace `{ns}`"),
                    ));
                }
                let value = match (item.get("value"), number(item, "n")) {
                    (Some(AttributeValue::B(blob)), _) => blob.as_ref().to_vec(),
                    (_, Some(n)) => n.to_string().into_bytes(),
                    _ => Vec::new(),
                };
                Ok((json!({"version": number(item, "version")}), value))
            }
            "kv.put" => {
                let mut request = item_key(client.update_item())
                    .update_expression(match args.ttl_seconds {
                        Some(_) => "SET #value = :value, #version = if_not_exists(#version, :zero) + :one, #expires = :expires REMOVE #n",
                        None => "SET #value = :value, #version = if_not_exists(#version, :zero) + :one REMOVE #n, #expires",
                    })
                    .expression_attribute_names("#value", "value")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_names("#n", "n")
                    .expression_attribute_names("#expires", "expires")
                    .expression_attribute_values(":value", AttributeValue::B(body.into()))
                    .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .return_values(ReturnValue::UpdatedNew);
                if let Some(ttl) = args.ttl_seconds {
                    request = request.expression_attribute_values(
                        ":expires",
                        AttributeValue::N((now + ttl.max(1)).to_string()),
                    );
                }
                if args.if_absent {
                    // Absent, or present but expired and not yet deleted.
                    request = request
                        .condition_expression("attribute_not_exists(pk) OR #expires <= :now")
                        .expression_attribute_values(":now", AttributeValue::N(now.to_string()));
                } else if let Some(version) = args.if_version {
                    request = request
                        .condition_expression("#version = :expected")
                        .expression_attribute_values(
                            ":expected",
                            AttributeValue::N(version.to_string()),
                        );
                }
                match request.send().await {
                    Ok(updated) => Ok((
                        json!({"stored": true, "version": updated.attributes().and_then(|a| number(a, "version"))}),
                        Vec::new(),
                    )),
                    Err(error)
                        if error
                            .as_service_error()
                            .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                    {
                        Ok((json!({"stored": false}), Vec::new()))
                    }
                    Err(error) => Err(unavailable(&what("UpdateItem"), error)),
                }
            }
            "kv.incr" => {
                let by = args.by.unwrap_or(1);
                let updated = item_key(client.update_item())
                    .update_expression("ADD #n :by SET #version = if_not_exists(#version, :zero) + :one REMOVE #value, #expires")
                    .expression_attribute_names("#n", "n")
                    .expression_attribute_names("#value", "value")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_names("#expires", "expires")
                    .expression_attribute_values(":by", AttributeValue::N(by.to_string()))
                    .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .return_values(ReturnValue::UpdatedNew)
                    .send()
                    .await
                    .map_err(|error| unavailable(&what("UpdateItem"), error))?;
                let attributes = updated.attributes();
                Ok((
                    json!({
                        "value": attributes.and_then(|a| number(a, "n")),
                        "version": attributes.and_then(|a| number(a, "version")),
                    }),
                    Vec::new(),
                ))
            }
            _ => {
                client
                    .delete_item()
                    .table_name(table)
                    .key("pk", AttributeValue::S(ns.clone()))
                    .key("sk", AttributeValue::S(key.clone()))
                    .send()
                    .await
                    .map_err(|error| unavailable(&what("DeleteItem"), error))?;
                Ok((json!({}), Vec::new()))
            }
        }
    }

    async fn send(&self, args: Args, queue: String, text: String) -> Result<Reply, CallError> {
        let clients = self.clients().await;
        let client = clients.sqs.get_or_init(|| {
            aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(&clients.config)
                    .interceptor(TraceHeader)
                    .build(),
            )
        });
        let resource = self.resource(&queue);
        let what = format!("SQS SendMessage to queue {resource}");
        let cached = self
            .queue_urls
            .lock()
            .expect("queue urls")
            .get(&resource)
            .cloned();
        let url = match cached {
            Some(url) => url,
            None => {
                let url = client
                    .get_queue_url()
                    .queue_name(&resource)
                    .send()
                    .await
                    .map_err(|error| match error.as_service_error() {
                        Some(e) if e.is_queue_does_not_exist() => {
                            CallError::new(Kind::NotFound, format!("no queue {resource}"))
                        }
                        _ => unavailable(&format!("SQS GetQueueUrl {resource}"), error),
                    })?
                    .queue_url()
                    .unwrap_or_default()
                    .to_string();
                self.queue_urls
                    .lock()
                    .expect("queue urls")
                    .insert(resource.clone(), url.clone());
                url
            }
        };
        let mut request = client
            .send_message()
            .queue_url(url)
            .message_body(text)
            .set_message_group_id(args.group_id.clone())
            .set_message_deduplication_id(args.dedup_id.clone());
        for (name, value) in &args.attributes {
            let attribute = aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|error| invalid(format!("attribute `{name}`: {error}")))?;
            request = request.message_attributes(name, attribute);
        }
        let sent = request
            .send()
            .await
            .map_err(|error| unavailable(&what, error))?;
        Ok((json!({"message_id": sent.message_id()}), Vec::new()))
    }

    async fn publish(&self, args: Args, topic: String, text: String) -> Result<Reply, CallError> {
        let clients = self.clients().await;
        let client = clients.sns.get_or_init(|| {
            aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(&clients.config)
                    .interceptor(TraceHeader)
                    .build(),
            )
        });
        let resource = self.resource(&topic);
        let cached = self
            .topic_arns
            .lock()
            .expect("topic arns")
            .get(&resource)
            .cloned();
        let arn = match cached {
            Some(arn) => arn,
            None if resource.starts_with("arn:") => resource.clone(),
            None => {
                // A name: its ARN is the listed one ending in `:<name>`.
                let mut pages = client.list_topics().into_paginator().send();
                let mut found = None;
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|error| {
                        unavailable(&format!("SNS ListTopics for {resource}"), error)
                    })?;
                    found = page
                        .topics()
                        .iter()
                        .filter_map(|topic| topic.topic_arn())
                        .find(|arn| arn.rsplit(':').next() == Some(resource.as_str()))
                        .map(str::to_string);
                    if found.is_some() {
                        break;
                    }
                }
                let arn = found.ok_or_else(|| {
                    CallError::new(Kind::NotFound, format!("no topic {resource}"))
                })?;
                self.topic_arns
                    .lock()
                    .expect("topic arns")
                    .insert(resource.clone(), arn.clone());
                arn
            }
        };
        let mut request = client
            .publish()
            .topic_arn(&arn)
            .message(text)
            .set_subject(args.subject.clone());
        for (name, value) in &args.attributes {
            let attribute = aws_sdk_sns::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|error| invalid(format!("attribute `{name}`: {error}")))?;
            request = request.message_attributes(name, attribute);
        }
        let published = request
            .send()
            .await
            .map_err(|error| unavailable(&format!("SNS Publish to {arn}"), error))?;
        Ok((json!({"message_id": published.message_id()}), Vec::new()))
    }

    fn cached_secret(&self, name: &str) -> Option<Vec<u8>> {
        let secrets = self.secrets.lock().expect("secrets");
        let (read_at, value) = secrets.get(name)?;
        (read_at.elapsed() < self.secrets_ttl).then(|| value.clone())
    }

    async fn secret(&self, name: String) -> Result<Reply, CallError> {
        let clients = self.clients().await;
        let resource = self.resource(&name);
        let value = if resource.starts_with('/') {
            let client = clients.ssm.get_or_init(|| {
                aws_sdk_ssm::Client::from_conf(
                    aws_sdk_ssm::config::Builder::from(&clients.config)
                        .interceptor(TraceHeader)
                        .build(),
                )
            });
            let read = client
                .get_parameter()
                .name(&resource)
                .with_decryption(true)
                .send()
                .await
                .map_err(|error| match error.as_service_error() {
                    Some(e) if e.is_parameter_not_found() => {
                        CallError::new(Kind::NotFound, format!("no parameter {resource}"))
                    }
                    _ => unavailable(&format!("SSM GetParameter {resource}"), error),
                })?;
            read.parameter()
                .and_then(|parameter| parameter.value())
                .unwrap_or_default()
                .as_bytes()
                .to_vec()
        } else {
            let client = clients.secrets.get_or_init(|| {
                aws_sdk_secretsmanager::Client::from_conf(
                    aws_sdk_secretsmanager::config::Builder::from(&clients.config)
                        .interceptor(TraceHeader)
                        .build(),
                )
            });
            let read = client
                .get_secret_value()
                .secret_id(&resource)
                .send()
                .await
                .map_err(|error| match error.as_service_error() {
                    Some(e) if e.is_resource_not_found_exception() => {
                        CallError::new(Kind::NotFound, format!("no secret {resource}"))
                    }
                    _ => unavailable(&format!("Secrets Manager GetSecretValue {resource}"), error),
                })?;
            match (read.secret_string(), read.secret_binary()) {
                (Some(text), _) => text.as_bytes().to_vec(),
                (None, Some(blob)) => blob.as_ref().to_vec(),
                (None, None) => Vec::new(),
            }
        };
        self.secrets
            .lock()
            .expect("secrets")
            .insert(name, (Instant::now(), value.clone()));
        Ok((json!({}), value))
    }
}

/// What the caller of `function.invoke` is told when the callee failed: its kind and error type,
/// not its internals (the full error is in the log).
pub fn invoke_error(function: &str, error: &crate::error::Error) -> CallError {
    use crate::error::Error;
    let kind = match error {
        Error::FunctionNotFound { .. } => Kind::NotFound,
        Error::FunctionTimeout { .. } => Kind::Timeout,
        _ => Kind::Unavailable,
    };
    CallError::new(
        kind,
        format!(
            "function `{function}`: {}: {}",
            error.error_type(),
            error.public_message()
        ),
    )
}

/// SQS and SNS carry text: the body as UTF-8, within their size limit.
fn message_text(body: &[u8]) -> Result<String, CallError> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(CallError::new(
            Kind::TooLarge,
            format!(
                "a message of {} bytes is larger than the {MAX_MESSAGE_BYTES} allowed",
                body.len()
            ),
        ));
    }
    String::from_utf8(body.to_vec()).map_err(|_| invalid("a message is UTF-8 text"))
}

/// An object key (or, for a listing, a prefix) a function may name: no `.` or `..` segment
/// (an intermediary could resolve it into another prefix), no `\`, no control characters, at most
/// 1024 bytes.
fn check_key(key: &str, is_prefix: bool) -> Result<(), CallError> {
    if (key.is_empty() && !is_prefix) || key.len() > 1024 {
        return Err(invalid("an object key is 1 to 1024 bytes"));
    }
    if key.contains('\\')
        || key.chars().any(char::is_control)
        || key
            .split('/')
            .any(|segment| segment == "." || segment == "..")
    {
        return Err(invalid(format!(
            "`{}` is not a key a function may use (no `.` or `..` segments, `\\` or control characters)",
            key.escape_debug()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Access, S3Grant};

    fn grants() -> Grants {
        Grants {
            s3: vec![S3Grant {
                bucket: "uploads".into(),
                prefix: "incoming/".into(),
                access: Access::Read,
            }],
            kv: vec!["carts".into()],
            secrets: vec!["/app/*".into()],
            ..Grants::default()
        }
    }

    fn refused(header: Value) -> CallError {
        let capabilities = Arc::new(Capabilities::default());
        let deadline = Instant::now() + Duration::from_secs(1);
        capabilities
            .call(
                &grants(),
                header,
                b"",
                deadline,
                Caller {
                    request_id: "test",
                    depth: 0,
                    function: "test",
                    meter: None,
                },
            )
            .unwrap_err()
    }

    #[test]
    fn frames_round_trip() {
        let frame = encode(Ok((json!({"a": 1}), b"\0\x01bytes".to_vec())));
        let (header, body) = decode(&frame).unwrap();
        assert_eq!(header, json!({"ok": {"a": 1}}));
        assert_eq!(body, b"\0\x01bytes");
        assert_eq!(decode(&[1, 0]).unwrap_err().kind, Kind::Invalid);
        assert_eq!(decode(&[9, 0, 0, 0, b'{']).unwrap_err().kind, Kind::Invalid);
    }

    #[test]
    fn what_is_not_granted_is_refused_before_any_request() {
        for (header, kind) in [
            (
                json!({"op": "s3.get", "bucket": "uploads", "key": "secret/x"}),
                Kind::NotGranted,
            ),
            (
                json!({"op": "s3.get", "bucket": "other", "key": "incoming/x"}),
                Kind::NotGranted,
            ),
            (
                json!({"op": "s3.put", "bucket": "uploads", "key": "incoming/x"}),
                Kind::NotGranted,
            ),
            (
                json!({"op": "s3.list", "bucket": "uploads", "prefix": ""}),
                Kind::NotGranted,
            ),
            (
                json!({"op": "s3.get", "bucket": "uploads", "key": "incoming/../secret/x"}),
                Kind::Invalid,
            ),
            (
                json!({"op": "s3.get", "bucket": "uploads", "key": "incoming/./x"}),
                Kind::Invalid,
            ),
            (
                json!({"op": "s3.get", "bucket": "uploads", "key": "incoming/..\\x"}),
                Kind::Invalid,
            ),
            (
                json!({"op": "kv.get", "ns": "other", "key": "k"}),
                Kind::NotGranted,
            ),
            (
                json!({"op": "queue.send", "queue": "jobs"}),
                Kind::NotGranted,
            ),
            (
                json!({"op": "topic.publish", "topic": "alerts"}),
                Kind::NotGranted,
            ),
            (
                json!({"op": "secret.get", "name": "/other/x"}),
                Kind::NotGranted,
            ),
            (
                json!({"op": "secret.get", "name": "stripe-key"}),
                Kind::NotGranted,
            ),
            (json!({"op": "nope"}), Kind::Invalid),
            (
                json!({"op": "s3.get", "bucket": "uploads", "key": "incoming/x", "extra": 1}),
                Kind::Invalid,
            ),
        ] {
            assert_eq!(refused(header.clone()).kind, kind, "{header}");
        }
    }
}

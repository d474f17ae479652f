//! Compiled functions and deadline-bound calls into them.
//!
//! What lives how long:
//! - a [`CompiledFunction`] lives in the plugin cache as long as its module digest and manifest
//!   are current; it owns one or more *engines* (Extism `CompiledPlugin`s).
//! - an *instance* (Extism `Plugin`) lives for one call (`instance: fresh`) or until its first
//!   error (`instance: reuse`).
//!
//! Extism stops a call by bumping its engine's epoch, which interrupts every instance running on
//! that engine. So a call always runs alone on its engine: concurrent calls of one function
//! check out separate engines (replicas, built from the compile cache), and one call's timeout
//! never interrupts another.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use extism::{CompiledPlugin, Plugin, PluginBuilder};
use tokio::sync::{Notify, oneshot};
use tracing::{info, warn};

use crate::artifacts::{self, Artifacts};
use crate::capabilities::Capabilities;
use crate::egress::EgressPolicy;
use crate::error::Error;
use crate::host::CallHandle;
use crate::manifest::{InstanceMode, Manifest};

const WASM_PAGE: u64 = 64 * 1024;

/// How a function was found: loaded now (a cache miss: its module fetched and compiled) or
/// already compiled.
#[derive(Debug, Clone, Copy, Default)]
pub struct Loaded {
    pub miss: bool,
    pub fetch: Duration,
    pub compile: Duration,
    /// On a miss with a compile cache: whether code was compiled (`Some(true)`) or its compiled
    /// artifact loaded (`Some(false)`).
    pub compiled_code: Option<bool>,
}

/// How long a call that ignores its interrupt (stuck in a host call) is waited for after its timeout.
const INTERRUPT_GRACE: Duration = Duration::from_secs(1);
/// How often the interrupt is repeated until the call stops.
const INTERRUPT_REPEAT: Duration = Duration::from_millis(10);

/// How long a call waits for an engine preparing its next instance on the blocking pool
/// (concurrent invocations) before making a replica: an instance whose initialisation code hangs
/// must not hold up its function's next calls.
const PREPARE_WAIT: Duration = Duration::from_millis(50);

/// How long making an instance ahead of its call may take at most: no more than the call before
/// it had, and never more than this (work between invocations delays the next one).
const PREPARE_LIMIT: Duration = Duration::from_secs(5);

/// How long a function whose instances cannot be made (a start function or `_initialize` that
/// traps or does not return) answers with that error before one call tries again.
const BROKEN_RETRY: Duration = Duration::from_secs(30);

/// How long an instantiation must have run, when its call's deadline stopped it, for its
/// function to be marked broken: less may be the deadline's doing (a cold compile took the rest).
const BROKEN_AFTER: Duration = Duration::from_secs(1);

/// How much earlier than the call its outbound HTTP requests must end, at most.
const EGRESS_MARGIN: Duration = Duration::from_millis(100);

/// How many of a module's exported functions an unknown entrypoint's error lists.
const MAX_LISTED_EXPORTS: usize = 20;

/// The trap a Rust panic ends in on `wasm32` (panics abort).
const UNREACHABLE: &str = "wasm trap: wasm `unreachable` instruction executed";

/// The largest output a call may return: Lambda's limit for a synchronous response (6 MB).
pub const MAX_OUTPUT_BYTES: usize = 6 * 1024 * 1024;

/// Process-wide settings for compiling modules.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// A wasmtime cache config file; `None` disables the disk cache.
    pub cache_config: Option<PathBuf>,
    /// What outbound HTTP may reach.
    pub egress: EgressPolicy,
    /// The compile cache's artifacts, shared through the store; `None` without a disk cache.
    pub artifacts: Option<Arc<Artifacts>>,
    /// Calls run on the thread that received the invocation (invocations are sequential), with
    /// the watchdog thread to stop them; otherwise on the blocking pool.
    pub inline_calls: bool,
    /// With `inline_calls`: what calls leave to do once their invocation has answered.
    pub after_response: Arc<AfterResponse>,
    /// The directory the runtime's caches live in, which no grant may reach.
    pub cache_root: Option<PathBuf>,
    /// What the host capabilities act with (clients, names).
    pub capabilities: Arc<Capabilities>,
}

/// Work a call leaves for after its invocation has answered (dropping the instance it used and
/// making the next one), when invocations are sequential. The bootstrap runs it between posting
/// the response and asking the Runtime API for the next invocation: on the thread that will make
/// the next call (its caches warm with the new instance), and before Lambda may freeze the
/// execution environment, which it does once the runtime asks for the next invocation and none is
/// waiting; work left to another thread could be frozen half done and finished on the next call's
/// critical path. A call that finds its engine still waiting here runs the work itself.
#[derive(Default)]
pub struct AfterResponse(Mutex<Vec<Box<dyn FnOnce() + Send>>>);

impl AfterResponse {
    fn push(&self, work: impl FnOnce() + Send + 'static) {
        self.0
            .lock()
            .expect("after-response lock")
            .push(Box::new(work));
    }

    /// Runs the work left so far. Blocking. A panic in one piece of work is logged and stops
    /// neither the others nor the runtime: its engine is lost, and the function's next call makes
    /// a replica.
    pub fn run(&self) {
        let work = std::mem::take(&mut *self.0.lock().expect("after-response lock"));
        for work in work {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).is_err() {
                warn!("preparing the next instance panicked; the engine is dropped");
            }
        }
    }
}

impl std::fmt::Debug for AfterResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pending = self.0.lock().map_or(0, |work| work.len());
        f.debug_struct("AfterResponse")
            .field("pending", &pending)
            .finish()
    }
}

impl CompileOptions {
    /// Keeps wasmtime's compile cache under `dir` (on Lambda only `/tmp` is writable; Extism's
    /// default would be under `$HOME`). Falls back to no disk cache if `dir` is not writable.
    pub fn with_cache_dir(dir: &Path, egress: EgressPolicy) -> CompileOptions {
        let config = dir.join("wasmtime-cache.toml");
        // wasmtime's cache worker would rewrite an entry after many loads (recompressing it),
        // which the compile cache's ledger would take for tampering.
        let contents = format!(
            "[cache]\ndirectory = {:?}\noptimized-compression-usage-counter-threshold = \"{}\"\n",
            dir.join("wasmtime").display().to_string(),
            u32::MAX
        );
        match std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&config, contents)) {
            Ok(()) => CompileOptions {
                cache_config: Some(config),
                egress,
                artifacts: Some(Arc::new(Artifacts::new(
                    &dir.join("wasmtime"),
                    &dir.join("published"),
                ))),
                inline_calls: false,
                after_response: Arc::default(),
                cache_root: Some(dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())),
                capabilities: Arc::default(),
            },
            Err(error) => {
                warn!(dir = %dir.display(), %error, "compile cache disabled: directory not writable");
                CompileOptions {
                    cache_config: None,
                    egress,
                    artifacts: None,
                    inline_calls: false,
                    after_response: Arc::default(),
                    cache_root: None,
                    capabilities: Arc::default(),
                }
            }
        }
    }
}

/// One engine, the state its host functions read, and the instance its next call runs on: the
/// warm one (`instance: reuse`) or a new one made after the last call (`instance: fresh`).
struct Engine {
    compiled: CompiledPlugin,
    host: CallHandle,
    ready: Option<Ready>,
    /// Held while the engine has an instance pool.
    _pool: Option<PoolSlot>,
}

/// At most this many engines have an instance pool at once: each reserves address space for its
/// slots (about 24 GiB, none of it memory until used); an `instance: fresh` function beyond them
/// maps its instances one by one, as a `reuse` one does.
const MAX_POOLED_ENGINES: usize = 1024;

static POOLED_ENGINES: AtomicUsize = AtomicUsize::new(0);

/// One of the `MAX_POOLED_ENGINES`.
struct PoolSlot;

impl PoolSlot {
    fn take() -> Option<PoolSlot> {
        POOLED_ENGINES
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_POOLED_ENGINES).then_some(n + 1)
            })
            .ok()
            .map(|_| PoolSlot)
    }
}

impl Drop for PoolSlot {
    fn drop(&mut self) {
        POOLED_ENGINES.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An instance for the next call: already instantiated (made ahead, or kept warm), or only
/// created (the one that checked the entrypoints), to be instantiated within the call.
enum Ready {
    Instantiated(Plugin),
    Created(Plugin),
}

/// What a call returned, and how long it waited for an instance on its critical path.
#[derive(Debug)]
pub struct Called {
    pub output: Vec<u8>,
    pub instantiate: Duration,
}

/// Where an engine replica's module is read from. In memory, it would be a copy per function
/// beside its compiled code (175 KB for `hello`, which holds about 660 KiB in all without it),
/// there only for when calls overlap; so with a disk cache it is kept there by digest, and read
/// back (and checked against the digest) when a replica is built.
enum ModuleCopy {
    Kept {
        artifacts: Arc<Artifacts>,
        digest: String,
    },
    /// No disk cache, or the module could not be written there.
    InMemory(Bytes),
}

/// What the loader knows of a module it compiles: its SHA-256, and whether it was read from the
/// copy kept by that digest (and checked against it), which is then not compared or written
/// again.
pub struct KnownModule {
    pub digest: String,
    pub read_from_kept: bool,
}

impl ModuleCopy {
    /// Blocking: may write the module.
    fn new(module: Bytes, known: Option<KnownModule>, artifacts: Option<&Arc<Artifacts>>) -> Self {
        match (known, artifacts) {
            (Some(known), Some(artifacts))
                if known.read_from_kept || artifacts.keep_module(&known.digest, &module) =>
            {
                ModuleCopy::Kept {
                    artifacts: Arc::clone(artifacts),
                    digest: known.digest,
                }
            }
            _ => ModuleCopy::InMemory(module),
        }
    }

    /// The module's bytes; `None` if the kept copy is gone or changed. Blocking.
    fn bytes(&self) -> Option<Bytes> {
        match self {
            ModuleCopy::Kept { artifacts, digest } => artifacts.module(digest),
            ModuleCopy::InMemory(bytes) => Some(bytes.clone()),
        }
    }
}

/// A function ready to call: its manifest and compiled module.
pub struct CompiledFunction {
    pub manifest: Arc<Manifest>,
    module: ModuleCopy,
    options: CompileOptions,
    /// Engines not running a call.
    idle: Mutex<Vec<Engine>>,
    /// Engines whose call has answered and that are preparing their next instance.
    preparing: AtomicUsize,
    /// Signalled when an engine returns to `idle`.
    returned: Notify,
    /// Why its instances cannot be made, and since when: calls fail at once with it until
    /// `BROKEN_RETRY` has passed, rather than each trying again.
    broken: Mutex<Option<(Instant, Error)>>,
    /// Set when making an instance ahead outlasted its limit: its calls then make their own,
    /// within their own deadlines, and nothing is made between invocations.
    slow_start: AtomicBool,
    /// Estimated bytes held, for the cache's weigher.
    pub weight: u32,
    /// How long fetching and compiling it took.
    pub loaded: Loaded,
}

impl CompiledFunction {
    /// Compiles `module` (its SHA-256, when `known`) for `manifest` and checks that it exports
    /// every entrypoint the manifest names. Blocking: run it off the async runtime.
    pub fn compile(
        manifest: Arc<Manifest>,
        module: Bytes,
        known: Option<KnownModule>,
        options: CompileOptions,
    ) -> Result<CompiledFunction, Error> {
        let started = Instant::now();
        let (compiled, host, pool) = build(&manifest, &module, &options)?;
        let invalid = |reason: String| Error::ModuleInvalid {
            function: manifest.name.clone(),
            reason,
        };
        let main = compiled.main_module();
        if !manifest.wasi
            && let Some(import) = main.into_iter().flat_map(|m| m.imports()).find(|import| {
                import.module().starts_with("wasi_snapshot_preview1")
                    || import.module().starts_with("wasi_unstable")
            })
        {
            return Err(invalid(format!(
                "imports WASI (`{}::{}`) but the manifest has `wasi: false`: set `wasi: true`, or \
                 build for wasm32-unknown-unknown",
                import.module(),
                import.name()
            )));
        }
        let plugin = instantiate(&manifest, &compiled, options.cache_root.as_deref())?;
        let entrypoints = std::iter::once(manifest.entrypoint.as_str())
            .chain(manifest.hooks.iter().filter_map(|hook| hook.entrypoint()));
        for entrypoint in entrypoints {
            if !plugin.function_exists(entrypoint) {
                let exports: Vec<String> = main
                    .into_iter()
                    .flat_map(|m| m.exports())
                    .filter(|export| matches!(export.ty(), wasmtime::ExternType::Func(_)))
                    .map(|export| format!("`{}`", export.name()))
                    .filter(|name| !name.starts_with("`_") && !name.starts_with("`__"))
                    .take(MAX_LISTED_EXPORTS)
                    .collect();
                let listed = match exports.is_empty() {
                    true => "it exports no functions".to_string(),
                    false => format!("it exports {}", exports.join(", ")),
                };
                return Err(invalid(format!(
                    "entrypoint `{entrypoint}` is not an exported function of the module ({listed})"
                )));
            }
        }
        let module_bytes = module.len();
        let kept = ModuleCopy::new(module.clone(), known, options.artifacts.as_ref());
        let in_memory = matches!(kept, ModuleCopy::InMemory(_));
        let weight = weigh(&compiled, &manifest, &module, in_memory).min(u32::MAX as u64) as u32;
        drop(module);
        info!(
            function = %manifest.name,
            module_bytes,
            weight_bytes = weight,
            compile_ms = started.elapsed().as_secs_f64() * 1000.0,
            "compiled function"
        );
        // The instance that checked the entrypoints serves the first call, in either mode.
        let ready = Some(Ready::Created(plugin));
        Ok(CompiledFunction {
            manifest,
            module: kept,
            options,
            idle: Mutex::new(vec![Engine {
                compiled,
                host,
                ready,
                _pool: pool,
            }]),
            preparing: AtomicUsize::new(0),
            returned: Notify::new(),
            broken: Mutex::new(None),
            slow_start: AtomicBool::new(false),
            loaded: Loaded::default(),
            weight,
        })
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Calls `entrypoint` with `input` for the invocation `request_id`, stopping it `timeout`
    /// after `started` (when the function's time began: loading it counts). The instance for the
    /// next call is made after this one has answered, off its critical path.
    pub async fn call(
        self: &Arc<Self>,
        entrypoint: &str,
        input: Vec<u8>,
        started: Instant,
        timeout: Duration,
        request_id: &str,
    ) -> Result<Called, Error> {
        let calling = Instant::now();
        if let Some(error) = self.broken() {
            return Err(error);
        }
        // Waiting for an engine preparing its next instance counts as instantiating.
        let (mut engine, waited) = self.checkout(started, timeout).await?;
        // Outbound requests end a little before the call does, so the plugin can still handle
        // their 504 before it is stopped.
        let egress_margin = (timeout / 10).min(EGRESS_MARGIN);
        engine.host.begin(
            request_id,
            started + timeout - egress_margin,
            crate::capabilities::current_depth(),
            crate::capabilities::current_meter(),
        );
        // Without an instance made ahead, the call makes its own, within its own deadline.
        let (mut plugin, made) = match engine.ready.take() {
            Some(Ready::Instantiated(plugin)) => (plugin, Some(waited)),
            Some(Ready::Created(plugin)) => (plugin, None),
            None => match instantiate(
                &self.manifest,
                &engine.compiled,
                self.options.cache_root.as_deref(),
            ) {
                Ok(plugin) => (plugin, None),
                Err(error) => {
                    self.checkin(engine);
                    return Err(self.mark_broken(error));
                }
            },
        };
        // WASI's host functions (wasmtime-wasi's synchronous API) block on the tokio runtime,
        // which they cannot do from its own thread: a WASI function's calls go to the pool. So
        // do the calls of a function that may invoke others: the callee may have to be read
        // from the store, whose client this runtime drives, while the caller waits for it.
        if self.options.inline_calls
            && !self.manifest.wasi
            && self.manifest.grants.functions.is_empty()
        {
            // Sequential invocations: this thread has nothing else to do meanwhile, so the call
            // runs here, stopped by the watchdog thread; no hand-off on the critical path.
            let watch = crate::watchdog::watch(started + timeout, plugin.cancel_handle());
            let ran = run(&mut plugin, made, calling, entrypoint, &input);
            let interrupted = watch.interrupted();
            drop(watch);
            let keep = self.keeps(&ran);
            let ahead = self.prepares_ahead(&ran, timeout);
            self.preparing.fetch_add(1, Ordering::SeqCst);
            if keep {
                self.settle(engine, plugin, keep, ahead);
            } else {
                let this = Arc::clone(self);
                self.options
                    .after_response
                    .push(move || this.settle(engine, plugin, keep, ahead));
            }
            return self.outcome(ran, interrupted, started, timeout);
        }
        let cancel = plugin.cancel_handle();
        let entry = entrypoint.to_string();
        let (answer, mut answered) = oneshot::channel();
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let ran = run(&mut plugin, made, calling, &entry, &input);
            let keep = this.keeps(&ran);
            let ahead = this.prepares_ahead(&ran, timeout);
            this.preparing.fetch_add(1, Ordering::SeqCst);
            let _ = answer.send(ran);
            // The caller has its answer; now the instance for the next call.
            this.settle(engine, plugin, keep, ahead);
        });

        let mut interrupted = false;
        let received = tokio::select! {
            received = &mut answered => received,
            () = tokio::time::sleep_until((started + timeout).into()) => {
                interrupted = true;
                let give_up = Instant::now() + INTERRUPT_GRACE;
                loop {
                    // Repeated: an interrupt sent before the call armed its deadline is
                    // absorbed by it.
                    let _ = cancel.cancel();
                    match tokio::time::timeout(INTERRUPT_REPEAT, &mut answered).await {
                        Ok(received) => break received,
                        Err(_) if Instant::now() < give_up => continue,
                        Err(_) => {
                            // Stuck outside wasm: the engine stays with its call.
                            warn!(function = %self.name(), "call ignored its interrupt; engine abandoned");
                            return Err(self.timeout_error(started, timeout));
                        }
                    }
                }
            }
        };
        let Ok(ran) = received else {
            return Err(Error::FunctionTrap {
                function: self.name().to_string(),
                reason: "the runtime panicked during the call".to_string(),
            });
        };
        self.outcome(ran, interrupted, started, timeout)
    }

    /// Whether the instance that gave `ran` serves the next call: `reuse` after a success.
    fn keeps(&self, ran: &Ran) -> bool {
        matches!(ran.result, Ok(Ok(Ok(_)))) && self.manifest.instance == InstanceMode::Reuse
    }

    /// How long the next instance may take to make after a call that took `timeout`: no more
    /// than the call had, nor `PREPARE_LIMIT`; none when this call could not make its own.
    fn prepares_ahead(&self, ran: &Ran, timeout: Duration) -> Option<Duration> {
        (ran.result.is_ok() && !self.slow_start.load(Ordering::Relaxed))
            .then(|| timeout.clamp(Duration::from_millis(1), PREPARE_LIMIT))
    }

    /// The error of a function whose instances cannot be made, while it stands.
    fn broken(&self) -> Option<Error> {
        let broken = self.broken.lock().unwrap_or_else(|p| p.into_inner());
        broken
            .as_ref()
            .filter(|(since, _)| since.elapsed() < BROKEN_RETRY)
            .map(|(_, error)| error.clone())
    }

    /// Records that making an instance failed with `error`: the function's calls fail with it,
    /// without trying, for `BROKEN_RETRY`.
    fn mark_broken(&self, error: Error) -> Error {
        warn!(
            function = %self.name(),
            %error,
            retry_after_s = BROKEN_RETRY.as_secs(),
            "instances of this function cannot be made; its calls fail until it is retried"
        );
        *self.broken.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), error.clone()));
        error
    }

    /// After a call: keeps its instance (`keep`) or makes the next one within `ahead`, and
    /// returns the engine to the pool. Blocking unless `keep`; the caller counted the engine in
    /// `preparing`.
    fn settle(&self, mut engine: Engine, plugin: Plugin, keep: bool, ahead: Option<Duration>) {
        engine.ready = if keep {
            Some(Ready::Instantiated(plugin))
        } else {
            // The used instance goes first: its memory is unmapped before the next one's is mapped.
            drop(plugin);
            let root = self.options.cache_root.as_deref();
            match ahead.map(|limit| prepare(&self.manifest, &engine.compiled, root, limit)) {
                Some(Ok(plugin)) => Some(Ready::Instantiated(plugin)),
                Some(Err(Prepared::TooSlow(limit))) => {
                    warn!(
                        function = %self.name(),
                        limit_ms = limit.as_millis(),
                        "making an instance ahead took longer than the call before it had; \
                         its calls make their own from now on"
                    );
                    self.slow_start.store(true, Ordering::Relaxed);
                    None
                }
                Some(Err(Prepared::Failed(error))) => {
                    self.mark_broken(error);
                    None
                }
                None => None,
            }
        };
        self.checkin(engine);
        self.preparing.fetch_sub(1, Ordering::SeqCst);
    }

    fn outcome(
        &self,
        ran: Ran,
        interrupted: bool,
        started: Instant,
        timeout: Duration,
    ) -> Result<Called, Error> {
        let result = match ran.result {
            Ok(result) => result,
            Err(error) => {
                let (error, broken) = if interrupted {
                    // Stopped by the deadline: broken only if it ran long, not if a cold load
                    // left it little time.
                    if ran.instantiate < BROKEN_AFTER {
                        return Err(self.timeout_error(started, timeout));
                    }
                    let reason = format!(
                        "cannot be instantiated: its start function or `_initialize` did not \
                         return within {} ms",
                        timeout.as_millis()
                    );
                    (self.timeout_error(started, timeout), reason)
                } else {
                    let error = instantiate_error(&self.manifest, &error);
                    let reason = match &error {
                        Error::ModuleInvalid { reason, .. } => reason.clone(),
                        other => other.to_string(),
                    };
                    (error, reason)
                };
                self.mark_broken(Error::ModuleInvalid {
                    function: self.name().to_string(),
                    reason: broken,
                });
                return Err(error);
            }
        };
        match result {
            Ok(Ok(output)) => Ok(Called {
                output,
                instantiate: ran.instantiate,
            }),
            Ok(Err(len)) => Err(Error::FunctionError {
                function: self.name().to_string(),
                reason: format!(
                    "its output of {len} bytes is larger than the {} allowed",
                    human_size(MAX_OUTPUT_BYTES as u64)
                ),
            }),
            Err(_) if interrupted => Err(self.timeout_error(started, timeout)),
            Err(error) => Err(self.call_error(error, started, timeout)),
        }
    }

    fn timeout_error(&self, started: Instant, timeout: Duration) -> Error {
        Error::FunctionTimeout {
            function: self.name().to_string(),
            elapsed_ms: started.elapsed().as_millis(),
            limit_ms: timeout.as_millis(),
        }
    }

    fn call_error(&self, error: extism::Error, started: Instant, timeout: Duration) -> Error {
        let function = self.name().to_string();
        let root = error.root_cause().to_string();
        if root == "timeout" {
            return self.timeout_error(started, timeout);
        }
        if root == "oom" {
            return Error::FunctionTrap {
                function,
                reason: format!(
                    "memory limit of {} exceeded",
                    human_size(self.manifest.memory_limit)
                ),
            };
        }
        if let Some(tables) = root.strip_prefix("table limit: ") {
            return Error::FunctionTrap {
                function,
                reason: format!(
                    "memory limit of {} exceeded by {tables}",
                    human_size(self.manifest.memory_limit)
                ),
            };
        }
        if root.contains("out of fuel") {
            return Error::FunctionTrap {
                function,
                reason: format!(
                    "ran out of fuel ({} instructions)",
                    self.manifest.fuel.unwrap_or_default()
                ),
            };
        }
        if root.starts_with("wasm trap") {
            return Error::FunctionTrap {
                function,
                reason: match root.as_str() {
                    // What a Rust panic is without the guest SDK's panic hook.
                    UNREACHABLE => format!(
                        "{root} (a Rust panic, if the function is in Rust: link wasm-lambda-sdk \
                         for its message)"
                    ),
                    _ => root,
                },
            };
        }
        // The guest set its error and then trapped: the SDK's panic hook, before a panic aborts.
        if let [trap, .., _] = error.chain().collect::<Vec<_>>()[..]
            && trap.to_string().starts_with("wasm trap")
        {
            return Error::FunctionTrap {
                function,
                reason: bounded(root),
            };
        }
        Error::FunctionError {
            function,
            reason: bounded(error.to_string()),
        }
    }

    /// An idle engine; one about to return from preparing its next instance (a fraction of a
    /// millisecond, waited for up to `PREPARE_WAIT`); or a new replica when every engine is
    /// running a call (or, when the module's kept copy is gone, the next engine to return, by the
    /// call's deadline: `timeout` after `started`). Also returns how long it waited.
    async fn checkout(
        self: &Arc<Self>,
        started: Instant,
        timeout: Duration,
    ) -> Result<(Engine, Duration), Error> {
        let waited_since = tokio::time::Instant::now();
        let give_up = waited_since + PREPARE_WAIT;
        let mut waited = Duration::ZERO;
        if self.options.inline_calls && self.preparing.load(Ordering::SeqCst) > 0 {
            // Its engine is still waiting for the work after the last response (the host did
            // not run it): done here, on this call's critical path.
            self.options.after_response.run();
            waited = waited_since.elapsed();
        }
        let (idle, waited_for_one) = self.idle_engine(give_up, true).await;
        if waited_for_one {
            waited = waited_since.elapsed();
        }
        if let Some(engine) = idle {
            return Ok((engine, waited));
        }
        let this = Arc::clone(self);
        let replica = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            // A replica's build loads from the compile cache: only what the runtime wrote.
            let Some(module) = this.module.bytes() else {
                return Ok(None);
            };
            let compiling = this
                .options
                .artifacts
                .as_ref()
                .map(Artifacts::before_compile);
            let built = build(&this.manifest, &module, &this.options);
            if let Some(compiling) = compiling {
                compiling.finish();
            }
            let (compiled, host, pool) = built?;
            info!(
                function = %this.name(),
                replica_ms = started.elapsed().as_secs_f64() * 1000.0,
                "engine replica for a concurrent call"
            );
            Ok(Some(Engine {
                compiled,
                host,
                ready: None,
                _pool: pool,
            }))
        })
        .await
        .map_err(|panic| Error::ModuleInvalid {
            function: self.name().to_string(),
            reason: format!("compiling panicked: {panic}"),
        })??;
        match replica {
            Some(replica) => Ok((replica, waited)),
            None => {
                // Only this runtime writes the cache, which no function can reach: the copy was
                // removed or changed from outside. The call takes the next engine to return,
                // within its own deadline.
                warn!(function = %self.name(), "the module's kept copy is gone: waiting for an engine");
                let deadline = tokio::time::Instant::from_std(started + timeout);
                match self.idle_engine(deadline, false).await {
                    (Some(engine), _) => Ok((engine, waited_since.elapsed())),
                    (None, _) => Err(self.timeout_error(started, timeout)),
                }
            }
        }
    }

    /// An engine from `idle`, waiting for one to return until `until` (and, with
    /// `while_preparing`, only while an engine is preparing its next instance); and whether it
    /// waited.
    async fn idle_engine(
        &self,
        until: tokio::time::Instant,
        while_preparing: bool,
    ) -> (Option<Engine>, bool) {
        let mut waited = false;
        loop {
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(engine) = self.idle.lock().expect("engine pool lock").pop() {
                return (Some(engine), waited);
            }
            if (while_preparing && self.preparing.load(Ordering::SeqCst) == 0)
                || tokio::time::timeout_at(until, returned).await.is_err()
            {
                return (None, waited);
            }
            waited = true;
        }
    }

    fn checkin(&self, engine: Engine) {
        self.idle.lock().expect("engine pool lock").push(engine);
        self.returned.notify_waiters();
    }
}

/// Compiles Extism's own kernel into the compile cache, so the first function loaded does not
/// pay for it: every plugin embeds the kernel, compiled under the same settings (functions with a
/// `fuel` limit use other settings and compile theirs once). Blocking.
pub fn warm_kernel(options: &CompileOptions) {
    let Some(config) = &options.cache_config else {
        return;
    };
    let started = Instant::now();
    let empty = extism::Manifest::new([extism::Wasm::data(b"\0asm\x01\0\0\0".to_vec())]);
    let compiling = options.artifacts.as_ref().map(Artifacts::before_compile);
    let compiled = PluginBuilder::new(empty)
        .with_wasmtime_config(artifacts::wasmtime_config())
        .with_cache_config(config)
        .compile();
    if let Some(compiling) = compiling {
        compiling.finish();
    }
    match compiled {
        Ok(_) => info!(
            kernel_ms = started.elapsed().as_secs_f64() * 1000.0,
            "Extism kernel in the compile cache"
        ),
        Err(error) => warn!(%error, "Extism kernel not compiled ahead"),
    }
}

/// What the process holds per compiled function beyond its code image: wasmtime's metadata of
/// each function (its type, locations, trampolines). Measured: a second copy of a module of
/// 50,000 small functions, loaded from the compile cache, grew the bootstrap by about 256 bytes
/// per function beyond its code image and bytes.
const PER_FUNCTION_BYTES: u64 = 256;

/// What a compiled function's engine and warm instance hold whatever the module: the store,
/// Extism's kernel instance, the linker, the pages a call touches in the two memories beyond the
/// module's data. Measured (`make bench`, `Memory` in BENCHMARKS.md): the process grows by this
/// much per function beyond what the rest of the weight counts.
const INSTANCE_BYTES: u64 = 128 << 10;

/// What a compiled function holds in memory: each module's compiled image (code and data),
/// per-function metadata and tables, the data segments of `module` copied into the warm
/// instance's memory, `module` itself if it is kept in memory, and its engine and warm
/// instance. Measured against what the process really grows by per function loaded, not
/// derived from the instance's initial memory, of which a call touches a few pages. What
/// compiling allocated is not the function's: it is handed back once compiled.
fn weigh(compiled: &CompiledPlugin, manifest: &Manifest, module: &[u8], in_memory: bool) -> u64 {
    let modules: u64 = compiled
        .modules()
        .map(|module| {
            let image = module.image_range();
            let code = (image.end as u64).saturating_sub(image.start as u64);
            let functions = module.functions().len() as u64 * PER_FUNCTION_BYTES;
            let resources = module.resources_required();
            let tables = resources
                .max_initial_table_size
                .unwrap_or_default()
                .saturating_mul(u64::from(resources.num_tables))
                .saturating_mul(8)
                .min(manifest.memory_limit);
            code + functions + tables
        })
        .sum();
    let kept = if in_memory { module.len() as u64 } else { 0 };
    modules + data_bytes(module) + kept + INSTANCE_BYTES
}

/// The bytes of `module`'s active data segments, which instantiating copies into its memory; the
/// module's size when it cannot be read (the text format).
fn data_bytes(module: &[u8]) -> u64 {
    let mut total = 0;
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        match payload {
            Ok(wasmparser::Payload::DataSection(segments)) => {
                for segment in segments {
                    match segment {
                        Ok(segment)
                            if matches!(segment.kind, wasmparser::DataKind::Active { .. }) =>
                        {
                            total += segment.data.len() as u64;
                        }
                        Ok(_) => {}
                        Err(_) => return module.len() as u64,
                    }
                }
            }
            Ok(_) => {}
            Err(_) => return module.len() as u64,
        }
    }
    total
}

/// The longest error message of a function's own that an answer and the log carry.
const MAX_ERROR_MESSAGE: usize = 4096;

/// `message`, cut at `MAX_ERROR_MESSAGE` bytes (on a character boundary), saying so.
fn bounded(mut message: String) -> String {
    if message.len() > MAX_ERROR_MESSAGE {
        let cut = (0..=MAX_ERROR_MESSAGE)
            .rev()
            .find(|&i| message.is_char_boundary(i))
            .unwrap_or(0);
        let length = message.len();
        message.truncate(cut);
        message.push_str(&format!(" [cut: {} of {length} bytes]", length - cut));
    }
    message
}

/// Multi-line compiler diagnostics joined into one line for `errorMessage`.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `2 MiB` for whole mebibytes, else bytesize's `1.5 KiB` form.
fn human_size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        bytesize::ByteSize(bytes).display().iec().to_string()
    }
}

/// Compiles the module with the manifest's sandbox settings and our host functions (outbound
/// HTTP, logging), bound to a new call state; an `instance: fresh` function's engine gets an
/// instance pool (see [`artifacts::pool_instances`]) while fewer than `MAX_POOLED_ENGINES` have
/// one.
fn build(
    manifest: &Manifest,
    module: &Bytes,
    options: &CompileOptions,
) -> Result<(CompiledPlugin, CallHandle, Option<PoolSlot>), Error> {
    let is_binary = module.starts_with(b"\0asm");
    let is_text = module.trim_ascii_start().starts_with(b"(");
    if !is_binary && !is_text {
        return Err(Error::ModuleInvalid {
            function: manifest.name.clone(),
            reason: "is not a WebAssembly module (no `\\0asm` header)".to_string(),
        });
    }
    check_grants(manifest, options.cache_root.as_deref())?;
    let pages = manifest.memory_limit.div_ceil(WASM_PAGE) as u32;
    let mut plugin_manifest = extism::Manifest::new([extism::Wasm::data(module.to_vec())])
        .with_memory_max(pages)
        .with_config(manifest.config.iter());
    if !manifest.allowed_paths.is_empty() {
        plugin_manifest = plugin_manifest.with_allowed_paths(
            manifest
                .allowed_paths
                .iter()
                .map(|(host, guest)| (host.clone(), PathBuf::from(guest))),
        );
    }
    let host = CallHandle::new(
        &manifest.name,
        &manifest.allowed_hosts,
        manifest.max_http_response_bytes,
        options.egress.clone(),
        &manifest.grants,
        Arc::clone(&options.capabilities),
    );
    let pool = (manifest.instance == InstanceMode::Fresh)
        .then(PoolSlot::take)
        .flatten();
    match compile_plugin(
        manifest,
        plugin_manifest.clone(),
        &host,
        options,
        pool.is_some(),
    ) {
        Ok(compiled) => Ok((compiled, host, pool)),
        // A module the pool's slots do not fit (more memories or table elements than they
        // hold): its instances are mapped one by one instead.
        Err(error) if pool.is_some() => {
            let pooled = error.reason();
            match compile_plugin(manifest, plugin_manifest, &host, options, false) {
                Ok(compiled) => {
                    info!(function = %manifest.name, reason = %pooled, "instances not pooled");
                    Ok((compiled, host, None))
                }
                Err(error) => Err(error),
            }
        }
        Err(error) => Err(error),
    }
}

/// The compiled plugin of `manifest`, its instances pooled or not.
fn compile_plugin(
    manifest: &Manifest,
    plugin_manifest: extism::Manifest,
    host: &CallHandle,
    options: &CompileOptions,
    pooled: bool,
) -> Result<CompiledPlugin, Error> {
    let mut config = artifacts::wasmtime_config();
    if pooled {
        artifacts::pool_instances(&mut config, manifest.memory_limit);
    }
    let mut builder = PluginBuilder::new(plugin_manifest)
        .with_wasmtime_config(config)
        .with_wasi(manifest.wasi)
        .with_functions(host.functions());
    builder = match &options.cache_config {
        Some(config) => builder.with_cache_config(config),
        None => builder.with_cache_disabled(),
    };
    if let Some(fuel) = manifest.fuel {
        builder = builder.with_fuel_limit(fuel);
    }
    builder.compile().map_err(|error| Error::ModuleInvalid {
        function: manifest.name.clone(),
        reason: format!(
            "does not compile: {}",
            one_line(&error.root_cause().to_string())
        ),
    })
}

/// What a call ran to: the entrypoint's result (its output, or `Err(len)` when the output is
/// larger than allowed), or why its instance could not be made; and how long it waited for or
/// spent making the instance.
struct Ran {
    result: Result<Result<Result<Vec<u8>, usize>, extism::Error>, extism::Error>,
    instantiate: Duration,
}

/// Host directories no grant may hold or lie in: the kernel's views of this process (its
/// environment, with the role's credentials, and its memory) and of the machine.
const SYSTEM_DIRS: &[&str] = &["/proc", "/sys", "/dev"];

/// Checks the directory grants of `manifest` (`root`: the runtime's caches), when its plugin is
/// built and again right before each of its instances opens them. A grant is refused when it
/// holds or lies in the caches (a function that could write there could plant native code for
/// every function) or in `SYSTEM_DIRS`, when it goes through a symbolic link (what it names
/// could change between this check and the open; grant the directory the link points to), and
/// when it lies in another grant of the same function (which could swap it for a link). Paths
/// are compared as the file system resolves them, so no `..` or trailing-slash spelling gets
/// around it. A granted directory inside the temporary directory (on Lambda, `/tmp`, empty at
/// start) is made if it does not exist yet, once it has passed.
fn check_grants(manifest: &Manifest, root: Option<&Path>) -> Result<(), Error> {
    let refuse = |dir: &str, why: String| Error::ManifestInvalid {
        function: manifest.name.clone(),
        reason: format!("allowed_paths: `{dir}` {why}"),
    };
    let mut granted: Vec<(&str, PathBuf)> = Vec::new();
    for host in manifest.allowed_paths.keys() {
        let dir = host.strip_prefix("ro:").unwrap_or(host);
        // A relative grant is relative to the bootstrap's working directory.
        let lexical = lexical(&std::env::current_dir().unwrap_or_default().join(dir));
        let resolved = resolve(&lexical);
        if let Some(root) =
            root.filter(|root| root.starts_with(&resolved) || resolved.starts_with(root))
        {
            return Err(refuse(
                dir,
                format!(
                    "would reach the runtime's compile cache ({}); grant a directory beside it, \
                     such as {}",
                    root.display(),
                    root.parent()
                        .unwrap_or(root)
                        .join(format!("{}-scratch", manifest.name))
                        .display()
                ),
            ));
        }
        if let Some(system) = SYSTEM_DIRS.iter().find(|system| {
            resolved.starts_with(system) || Path::new("/").join(system).starts_with(&resolved)
        }) {
            return Err(refuse(
                dir,
                format!("would reach {system}, which no function may"),
            ));
        }
        if resolved != lexical {
            return Err(refuse(
                dir,
                format!(
                    "goes through a symbolic link (it resolves to {}); grant that directory",
                    resolved.display()
                ),
            ));
        }
        granted.push((dir, resolved));
    }
    for (dir, path) in &granted {
        if let Some((outer, _)) = granted
            .iter()
            .find(|(other, outer)| other != dir && path.starts_with(outer))
        {
            return Err(refuse(
                dir,
                format!("lies inside the function's grant `{outer}`"),
            ));
        }
    }
    if let Some(tmp) = root.and_then(Path::parent) {
        for (_, path) in granted {
            if path.starts_with(tmp) && !path.exists() {
                let _ = std::fs::create_dir_all(&path);
            }
        }
    }
    Ok(())
}

/// `path` with its `.` and `..` resolved by their names.
fn lexical(path: &Path) -> PathBuf {
    let mut lexical = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                lexical.pop();
            }
            std::path::Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    lexical
}

/// `path` as the file system resolves it (symlinks followed); where it does not exist, its
/// longest existing ancestor resolved and the rest appended.
fn resolve(path: &Path) -> PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(resolved) = existing.canonicalize() {
            return rest
                .iter()
                .rev()
                .fold(resolved, |path, name| path.join(name));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Calls `entrypoint`, after making the instance when none was made ahead (`made` is how long
/// the call waited for the one made ahead). The output is borrowed from the plugin's memory and
/// copied only if it is not too large.
fn run(
    plugin: &mut Plugin,
    made: Option<Duration>,
    started: Instant,
    entrypoint: &str,
    input: &[u8],
) -> Ran {
    let instantiate = match made {
        Some(waited) => waited,
        None => {
            if let Err(error) = plugin.initialize() {
                return Ran {
                    result: Err(error),
                    instantiate: started.elapsed(),
                };
            }
            started.elapsed()
        }
    };
    // `call`, not `call_get_error_code`: only `call` fails a plugin that returns a non-zero code
    // without setting an error message.
    let result = plugin
        .call::<&[u8], &[u8]>(entrypoint, input)
        .map(|output| match output.len() {
            len if len > MAX_OUTPUT_BYTES => Err(len),
            _ => Ok(output.to_vec()),
        });
    Ran {
        result: Ok(result),
        instantiate,
    }
}

/// Why an instance could not be made ahead.
enum Prepared {
    /// Its initialisation ran past the limit (it may only be slow).
    TooSlow(Duration),
    /// It trapped, or could not be created.
    Failed(Error),
}

/// An instance made ahead of its call, its initialisation stopped after `limit`.
fn prepare(
    manifest: &Manifest,
    compiled: &CompiledPlugin,
    cache_root: Option<&Path>,
    limit: Duration,
) -> Result<Plugin, Prepared> {
    let mut plugin = instantiate(manifest, compiled, cache_root).map_err(Prepared::Failed)?;
    let watch = crate::watchdog::watch(Instant::now() + limit, plugin.cancel_handle());
    let result = plugin.initialize();
    let interrupted = watch.interrupted();
    drop(watch);
    match result {
        Ok(()) => Ok(plugin),
        Err(_) if interrupted => Err(Prepared::TooSlow(limit)),
        Err(error) => Err(Prepared::Failed(instantiate_error(manifest, &error))),
    }
}

/// The error of a module whose instantiation failed with `error`.
fn instantiate_error(manifest: &Manifest, error: &extism::Error) -> Error {
    let root = one_line(&error.root_cause().to_string());
    let reason = match manifest.fuel {
        // wasmtime meters instantiation too; Extism gives it a budget of its own, `fuel` again,
        // before the call gets its whole `fuel`.
        Some(fuel) if root.contains("out of fuel") || root.contains("all fuel consumed") => {
            format!(
                "cannot be instantiated: its start function or `_initialize` ran out of fuel ({fuel} \
             instructions, a budget of its own beside the call's)"
            )
        }
        _ => format!("cannot be instantiated: {root}"),
    };
    Error::ModuleInvalid {
        function: manifest.name.clone(),
        reason,
    }
}

/// A new instance (Extism `Plugin`, its module not instantiated yet); it opens the function's
/// directory grants, so they are checked again first (`cache_root`: the runtime's caches).
fn instantiate(
    manifest: &Manifest,
    compiled: &CompiledPlugin,
    cache_root: Option<&Path>,
) -> Result<Plugin, Error> {
    if !manifest.allowed_paths.is_empty() {
        check_grants(manifest, cache_root)?;
    }
    Plugin::new_from_compiled(compiled).map_err(|error| instantiate_error(manifest, &error))
}

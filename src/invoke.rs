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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use extism::{CompiledPlugin, Plugin, PluginBuilder};
use tokio::sync::{Notify, oneshot};
use tracing::{info, warn};

use crate::artifacts::{self, Artifacts};
use crate::cache::Loaded;
use crate::egress::EgressPolicy;
use crate::error::Error;
use crate::host::CallHandle;
use crate::manifest::{InstanceMode, Manifest};

const WASM_PAGE: u64 = 64 * 1024;
/// How long a call that ignores its interrupt (stuck in a host call) is waited for after its timeout.
const INTERRUPT_GRACE: Duration = Duration::from_secs(1);
/// How often the interrupt is repeated until the call stops.
const INTERRUPT_REPEAT: Duration = Duration::from_millis(10);

/// How long a call waits for an engine preparing its next instance on the blocking pool
/// (concurrent invocations) before making a replica: an instance whose initialisation code hangs
/// must not hold up its function's next calls.
const PREPARE_WAIT: Duration = Duration::from_millis(50);

/// How long making an instance ahead of its call may take when the manifest sets no `timeout`.
const PREPARE_LIMIT: Duration = Duration::from_secs(30);

/// How much earlier than the call its outbound HTTP requests must end, at most.
const EGRESS_MARGIN: Duration = Duration::from_millis(100);

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
        let contents = format!(
            "[cache]\ndirectory = {:?}\n",
            dir.join("wasmtime").display().to_string()
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
            },
            Err(error) => {
                warn!(dir = %dir.display(), %error, "compile cache disabled: directory not writable");
                CompileOptions {
                    cache_config: None,
                    egress,
                    artifacts: None,
                    inline_calls: false,
                    after_response: Arc::default(),
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
    ready: Option<Plugin>,
}

/// What a call returned, and how long it waited for an instance on its critical path.
#[derive(Debug)]
pub struct Called {
    pub output: Vec<u8>,
    pub instantiate: Duration,
}

/// A function ready to call: its manifest and compiled module.
pub struct CompiledFunction {
    pub manifest: Arc<Manifest>,
    module: Bytes,
    options: CompileOptions,
    /// Engines not running a call.
    idle: Mutex<Vec<Engine>>,
    /// Engines whose call has answered and that are preparing their next instance.
    preparing: AtomicUsize,
    /// Signalled when an engine returns to `idle`.
    returned: Notify,
    /// Estimated bytes held, for the cache's weigher.
    pub weight: u32,
    /// How long fetching and compiling it took.
    pub loaded: Loaded,
}

impl CompiledFunction {
    /// Compiles `module` for `manifest` and checks that it exports every entrypoint the manifest
    /// names. Blocking: run it off the async runtime.
    pub fn compile(
        manifest: Arc<Manifest>,
        module: Bytes,
        options: CompileOptions,
    ) -> Result<CompiledFunction, Error> {
        let started = Instant::now();
        let (compiled, host) = build(&manifest, &module, &options)?;
        let plugin = instantiate(&manifest, &compiled)?;
        let entrypoints = std::iter::once(manifest.entrypoint.as_str())
            .chain(manifest.hooks.iter().filter_map(|hook| hook.entrypoint()));
        for entrypoint in entrypoints {
            if !plugin.function_exists(entrypoint) {
                return Err(Error::ModuleInvalid {
                    function: manifest.name.clone(),
                    reason: format!(
                        "entrypoint `{entrypoint}` is not an exported function of the module"
                    ),
                });
            }
        }
        info!(
            function = %manifest.name,
            module_bytes = module.len(),
            compile_ms = started.elapsed().as_secs_f64() * 1000.0,
            "compiled function"
        );
        // The instance that checked the entrypoints serves the first call, in either mode.
        let ready = Some(plugin);
        // Compiled code is a small multiple of the module; Extism's own kernel adds about 1 MiB.
        let weight = (module.len() as u64 * 4 + (1 << 20)).min(u32::MAX as u64) as u32;
        Ok(CompiledFunction {
            manifest,
            module,
            options,
            idle: Mutex::new(vec![Engine {
                compiled,
                host,
                ready,
            }]),
            preparing: AtomicUsize::new(0),
            returned: Notify::new(),
            loaded: Loaded::default(),
            weight,
        })
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Calls `entrypoint` with `input` for the invocation `request_id`, stopping it after
    /// `timeout`. The instance for the next call is made after this one has answered, off its
    /// critical path.
    pub async fn call(
        self: &Arc<Self>,
        entrypoint: &str,
        input: Vec<u8>,
        timeout: Duration,
        request_id: &str,
    ) -> Result<Called, Error> {
        let started = Instant::now();
        // Waiting for an engine preparing its next instance counts as instantiating.
        let (mut engine, waited) = self.checkout().await?;
        // Outbound requests end a little before the call does, so the plugin can still handle
        // their 504 before it is stopped.
        let egress_margin = (timeout / 10).min(EGRESS_MARGIN);
        engine
            .host
            .begin(request_id, started + timeout - egress_margin);
        let (mut plugin, instantiate_took) = match engine.ready.take() {
            Some(plugin) => (plugin, waited),
            None => match instantiate(&self.manifest, &engine.compiled) {
                Ok(plugin) => (plugin, started.elapsed()),
                Err(error) => {
                    self.checkin(engine);
                    return Err(error);
                }
            },
        };
        if self.options.inline_calls {
            // Sequential invocations: this thread has nothing else to do meanwhile, so the call
            // runs here, stopped by the watchdog thread; no hand-off on the critical path.
            let watch = crate::watchdog::watch(started + timeout, plugin.cancel_handle());
            let result = run(&mut plugin, entrypoint, &input);
            let interrupted = watch.interrupted();
            drop(watch);
            let keep = self.keeps(&result);
            self.preparing.fetch_add(1, Ordering::SeqCst);
            if keep {
                self.settle(engine, plugin, keep);
            } else {
                let this = Arc::clone(self);
                self.options
                    .after_response
                    .push(move || this.settle(engine, plugin, keep));
            }
            return self.outcome(result, interrupted, instantiate_took, started, timeout);
        }
        let cancel = plugin.cancel_handle();
        let entry = entrypoint.to_string();
        let (answer, mut answered) = oneshot::channel();
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let result = run(&mut plugin, &entry, &input);
            let keep = this.keeps(&result);
            this.preparing.fetch_add(1, Ordering::SeqCst);
            let _ = answer.send(result);
            // The caller has its answer; now the instance for the next call.
            this.settle(engine, plugin, keep);
        });

        let mut interrupted = false;
        let received = tokio::select! {
            received = &mut answered => received,
            () = tokio::time::sleep(timeout) => {
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
        let Ok(result) = received else {
            return Err(Error::FunctionTrap {
                function: self.name().to_string(),
                reason: "the runtime panicked during the call".to_string(),
            });
        };
        self.outcome(result, interrupted, instantiate_took, started, timeout)
    }

    /// Whether the instance that gave `result` serves the next call: `reuse` after a success.
    fn keeps(&self, result: &Result<Result<Vec<u8>, usize>, extism::Error>) -> bool {
        matches!(result, Ok(Ok(_))) && self.manifest.instance == InstanceMode::Reuse
    }

    /// After a call: keeps its instance (`keep`) or makes the next one, and returns the engine
    /// to the pool. Blocking unless `keep`; the caller counted the engine in `preparing`.
    fn settle(&self, mut engine: Engine, plugin: Plugin, keep: bool) {
        engine.ready = if keep {
            Some(plugin)
        } else {
            // The used instance goes first: its memory is unmapped before the next one's is mapped.
            drop(plugin);
            // Not ready (it failed to instantiate): the next call makes its own, and reports why.
            prepare(&self.manifest, &engine.compiled).ok()
        };
        self.checkin(engine);
        self.preparing.fetch_sub(1, Ordering::SeqCst);
    }

    fn outcome(
        &self,
        result: Result<Result<Vec<u8>, usize>, extism::Error>,
        interrupted: bool,
        instantiate_took: Duration,
        started: Instant,
        timeout: Duration,
    ) -> Result<Called, Error> {
        match result {
            Ok(Ok(output)) => Ok(Called {
                output,
                instantiate: instantiate_took,
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
                reason: root,
            };
        }
        Error::FunctionError {
            function,
            reason: error.to_string(),
        }
    }

    /// An idle engine; one about to return from preparing its next instance (a fraction of a
    /// millisecond, waited for up to `PREPARE_WAIT`); or a new replica when every engine is
    /// running a call. Also returns how long it waited for a preparing engine.
    async fn checkout(self: &Arc<Self>) -> Result<(Engine, Duration), Error> {
        let started = tokio::time::Instant::now();
        let give_up = started + PREPARE_WAIT;
        let mut waited = Duration::ZERO;
        if self.options.inline_calls && self.preparing.load(Ordering::SeqCst) > 0 {
            // Its engine is still waiting for the work after the last response (the host did
            // not run it): done here, on this call's critical path.
            self.options.after_response.run();
            waited = started.elapsed();
        }
        loop {
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(engine) = self.idle.lock().expect("engine pool lock").pop() {
                return Ok((engine, waited));
            }
            if self.preparing.load(Ordering::SeqCst) == 0
                || tokio::time::timeout_at(give_up, returned).await.is_err()
            {
                break;
            }
            waited = started.elapsed();
        }
        let this = Arc::clone(self);
        let replica = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let (compiled, host) = build(&this.manifest, &this.module, &this.options)?;
            info!(
                function = %this.name(),
                replica_ms = started.elapsed().as_secs_f64() * 1000.0,
                "engine replica for a concurrent call"
            );
            Ok(Engine {
                compiled,
                host,
                ready: None,
            })
        })
        .await
        .map_err(|panic| Error::ModuleInvalid {
            function: self.name().to_string(),
            reason: format!("compiling panicked: {panic}"),
        })??;
        Ok((replica, waited))
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
    match PluginBuilder::new(empty)
        .with_wasmtime_config(artifacts::wasmtime_config())
        .with_cache_config(config)
        .compile()
    {
        Ok(_) => info!(
            kernel_ms = started.elapsed().as_secs_f64() * 1000.0,
            "Extism kernel in the compile cache"
        ),
        Err(error) => warn!(%error, "Extism kernel not compiled ahead"),
    }
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
/// HTTP, logging), bound to a new call state.
fn build(
    manifest: &Manifest,
    module: &Bytes,
    options: &CompileOptions,
) -> Result<(CompiledPlugin, CallHandle), Error> {
    let is_binary = module.starts_with(b"\0asm");
    let is_text = module.trim_ascii_start().starts_with(b"(");
    if !is_binary && !is_text {
        return Err(Error::ModuleInvalid {
            function: manifest.name.clone(),
            reason: "is not a WebAssembly module (no `\\0asm` header)".to_string(),
        });
    }
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
    );
    let mut builder = PluginBuilder::new(plugin_manifest)
        .with_wasmtime_config(artifacts::wasmtime_config())
        .with_wasi(manifest.wasi)
        .with_functions(host.functions());
    builder = match &options.cache_config {
        Some(config) => builder.with_cache_config(config),
        None => builder.with_cache_disabled(),
    };
    if let Some(fuel) = manifest.fuel {
        builder = builder.with_fuel_limit(fuel);
    }
    let compiled = builder.compile().map_err(|error| Error::ModuleInvalid {
        function: manifest.name.clone(),
        reason: format!(
            "does not compile: {}",
            one_line(&error.root_cause().to_string())
        ),
    })?;
    Ok((compiled, host))
}

/// Calls `entrypoint`: its output, or `Err(len)` when the output is larger than allowed. The
/// output is borrowed from the plugin's memory and copied only if it is not too large.
fn run(
    plugin: &mut Plugin,
    entrypoint: &str,
    input: &[u8],
) -> Result<Result<Vec<u8>, usize>, extism::Error> {
    // `call`, not `call_get_error_code`: only `call` fails a plugin that returns a non-zero code
    // without setting an error message.
    plugin
        .call::<&[u8], &[u8]>(entrypoint, input)
        .map(|output| match output.len() {
            len if len > MAX_OUTPUT_BYTES => Err(len),
            _ => Ok(output.to_vec()),
        })
}

/// An instance made ahead of its call: Extism instantiates the module on a plugin's first call,
/// so a call of an export that does not exist instantiates it (running its initialisation, as
/// the call would have) and stops there. Its initialisation is stopped after the manifest's
/// `timeout` (else `PREPARE_LIMIT`), as a call's would be.
fn prepare(manifest: &Manifest, compiled: &CompiledPlugin) -> Result<Plugin, Error> {
    const NO_EXPORT: &str = "wasm-lambda:prepare";
    let mut plugin = instantiate(manifest, compiled)?;
    let limit = manifest.timeout.unwrap_or(PREPARE_LIMIT);
    let watch = crate::watchdog::watch(Instant::now() + limit, plugin.cancel_handle());
    let result = plugin.call::<&[u8], &[u8]>(NO_EXPORT, &[]);
    drop(watch);
    match result {
        Err(error) if error.to_string() == format!("Function not found: {NO_EXPORT}") => Ok(plugin),
        Err(error) => Err(Error::ModuleInvalid {
            function: manifest.name.clone(),
            reason: format!(
                "cannot be instantiated: {}",
                one_line(&error.root_cause().to_string())
            ),
        }),
        Ok(_) => Ok(plugin),
    }
}

fn instantiate(manifest: &Manifest, compiled: &CompiledPlugin) -> Result<Plugin, Error> {
    Plugin::new_from_compiled(compiled).map_err(|error| Error::ModuleInvalid {
        function: manifest.name.clone(),
        reason: format!(
            "cannot be instantiated: {}",
            one_line(&error.root_cause().to_string())
        ),
    })
}

//! The handler: one Lambda event in, one answer out.
//!
//! event -> classify -> route -> catalog (manifest) -> plugin cache (compiled) -> call -> shape.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::cache::PluginCache;
use crate::capabilities::{CallError, Capabilities, HostMeter, Invoker, Kind, METER, invoke_error};
use crate::catalog::{Catalog, Entry, Snapshot};
use crate::config::{Config, ENV_FUNCTIONS_DIR, Prewarm, StoreLocation};
use crate::egress::EgressPolicy;
use crate::error::Error;
use crate::invoke::{AfterResponse, CompileOptions, CompiledFunction, Loaded, warm_kernel};
use crate::loader::Loader;
use crate::metrics::{Meter, Usage};
use crate::router::HttpMatch;
use crate::store::{DirStore, FunctionStore, S3Store};
use crate::trigger::deliver::{Outcome, deliver};
use crate::trigger::request::{Called, Put};
use crate::trigger::{
    Batch, Event, HookKind, HttpRequest, HttpResponse, InvocationContext, RawEvent, Record,
    Request, direct_input, direct_output,
};

/// The timeout applied when the invocation carries no real deadline and the manifest none.
const FALLBACK_TIMEOUT: Duration = Duration::from_secs(30);

/// How long init waits for the store; Lambda allows init 10 s. Later calls retry.
const INIT_LOAD_WAIT: Duration = Duration::from_secs(8);

/// The Lambda variables `lambda_runtime` needs; checked so a missing one is an error, not a panic.
const LAMBDA_VARIABLES: &[&str] = &[
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
];

/// Time left for one invocation.
#[derive(Debug, Clone, Copy)]
struct Budget {
    /// When work must be over (deadline minus `DEADLINE_MARGIN`).
    until: Instant,
    /// False when the deadline had passed on arrival (local emulators).
    real: bool,
}

impl Budget {
    /// The budget for a deadline (epoch ms) seen at `now_ms`, keeping `margin` back to answer.
    fn new(deadline_ms: u64, now_ms: u64, margin: Duration) -> Budget {
        if deadline_ms > now_ms {
            let left = Duration::from_millis(deadline_ms - now_ms);
            Budget {
                until: Instant::now() + left.saturating_sub(margin),
                real: true,
            }
        } else {
            Budget {
                until: Instant::now() + FALLBACK_TIMEOUT,
                real: false,
            }
        }
    }

    fn remaining(&self) -> Duration {
        self.until.saturating_duration_since(Instant::now())
    }

    /// The budget with `reserve` kept back for what follows the work (at most a third of what
    /// is left, so a short deadline still leaves the work most of it).
    fn reserving(self, reserve: Duration) -> Budget {
        match self.real {
            true => Budget {
                until: self.until - reserve.min(self.remaining() / 3),
                ..self
            },
            false => self,
        }
    }

    /// min(manifest timeout, time left); without a real deadline the manifest's, else 30 s.
    fn call_timeout(&self, manifest_timeout: Option<Duration>) -> Duration {
        match (self.real, manifest_timeout) {
            (true, Some(timeout)) => timeout.min(self.remaining()),
            (true, None) => self.remaining(),
            (false, timeout) => timeout.unwrap_or(FALLBACK_TIMEOUT),
        }
    }
}

/// One invocation in progress: its Lambda context, time budget and metrics.
struct Invocation {
    context: Context,
    budget: Budget,
    meter: Meter,
}

/// Everything an invocation needs, built once at init and shared by every invocation.
pub struct Adapter {
    catalog: Catalog,
    loader: Loader,
    /// `SOURCE_NAMES`: deployed resource -> the name hooks use for it.
    source_names: BTreeMap<String, String>,
    deadline_margin: Duration,
    warned_no_deadline: AtomicBool,
    /// Whether an invocation was served yet: the first is the cold one.
    served: AtomicBool,
    /// Whether invocations write their metrics lines to stdout.
    metrics: bool,
    /// What calls leave for after their invocation has answered.
    after_response: Arc<AfterResponse>,
    /// What host capabilities act with; it invokes functions through this adapter.
    capabilities: Arc<Capabilities>,
    /// What a custom resource's outcome PUT may reach (the response URL comes in the event).
    egress: EgressPolicy,
    /// Whether init listed the store (it does when `PREWARM` names functions to compile then);
    /// otherwise [`Adapter::load_catalog`] lists it once the first invocation has answered.
    loaded_at_init: bool,
}

impl Adapter {
    /// Lets functions invoke each other through this adapter (`grants.functions`).
    pub fn serve_invocations(self: &Arc<Self>) {
        let invoker: Arc<dyn Invoker> = Arc::clone(self) as Arc<dyn Invoker>;
        self.capabilities.attach(Arc::downgrade(&invoker));
    }

    /// Stops writing metrics lines (for a CLI whose stdout carries the answer).
    pub fn without_metrics(mut self) -> Adapter {
        self.metrics = false;
        self
    }

    /// Checks that the process runs under the Lambda Runtime API, so a missing variable is an
    /// error naming it rather than a panic inside `lambda_runtime`.
    pub fn check_runtime_environment() -> anyhow::Result<()> {
        if let Some(missing) = LAMBDA_VARIABLES
            .iter()
            .find(|v| std::env::var_os(v).is_none())
        {
            anyhow::bail!("{missing} is not set: the bootstrap runs under the Lambda Runtime API");
        }
        Ok(())
    }

    /// Builds the store, cache and catalog; with `PREWARM`, lists the store and compiles those
    /// functions.
    pub async fn init(config: Config) -> anyhow::Result<Adapter> {
        let store = Adapter::store_for(&config).await?;
        Adapter::with_store(config, store).await
    }

    /// The function store `config` names.
    pub async fn store_for(config: &Config) -> anyhow::Result<Arc<dyn FunctionStore>> {
        Ok(match &config.store {
            StoreLocation::Directory(dir) => {
                if !dir.is_dir() {
                    anyhow::bail!(
                        "{ENV_FUNCTIONS_DIR}={:?} is invalid: not a directory",
                        dir.display().to_string()
                    );
                }
                Arc::new(DirStore::new(dir))
            }
            StoreLocation::S3 { bucket, prefix } => {
                Arc::new(S3Store::from_env(bucket, prefix).await)
            }
        })
    }

    /// Like [`Adapter::init`], over `store`.
    pub async fn with_store(
        config: Config,
        store: Arc<dyn FunctionStore>,
    ) -> anyhow::Result<Adapter> {
        if let Some(wanted) = config.slot_reset {
            let used = crate::artifacts::choose_slot_reset(wanted);
            if used != wanted {
                warn!(%wanted, %used, "SLOT_RESET: this kernel does not answer as `{wanted}` needs; `{used}` is used");
            }
        }
        debug!(slot_reset = %crate::artifacts::slot_reset(), "instance slots of `fresh` functions");
        let egress = EgressPolicy::new(config.allow_private_egress, config.runtime_api.as_deref());
        if egress.allows_private() {
            warn!(
                "ALLOW_PRIVATE_EGRESS=true: functions may call loopback, link-local and private \
                 addresses (the Lambda Runtime API excepted). For local development only: never \
                 set it in a deployed function"
            );
        }
        let mut options =
            CompileOptions::with_cache_dir(&std::env::temp_dir().join("wasm-lambda"), egress);
        options.inline_calls = config.max_concurrency == 1;
        let store_bucket = match &config.store {
            StoreLocation::S3 { bucket, .. } => Some(bucket.clone()),
            StoreLocation::Directory(_) => None,
        };
        options.capabilities = Arc::new(
            Capabilities::new(
                config.source_names.clone(),
                &config.kv_table,
                config.secrets_ttl,
            )
            .with_store_bucket(store_bucket),
        );
        let capabilities = Arc::clone(&options.capabilities);
        let egress = options.egress.clone();
        // The kernel every plugin embeds, into the compile cache (while the catalog loads, with
        // `PREWARM`).
        let kernel = {
            let options = options.clone();
            tokio::task::spawn_blocking(move || warm_kernel(&options))
        };
        let after_response = Arc::clone(&options.after_response);
        let plugins = PluginCache::new(config.cache_max_bytes);
        let adapter = Adapter {
            loader: Loader::new(
                Arc::clone(&store),
                config.revalidate_after,
                plugins,
                options,
            ),
            catalog: Catalog::new(store, config.revalidate_after),
            source_names: config.source_names.clone(),
            deadline_margin: config.deadline_margin,
            warned_no_deadline: AtomicBool::new(false),
            served: AtomicBool::new(false),
            metrics: true,
            after_response,
            capabilities,
            egress,
            loaded_at_init: config.prewarm != Prewarm::None,
        };
        // The listing need not hold up init (the bootstrap starts it once the first invocation
        // has answered): an invocation that routes before then lists the store itself, a direct
        // invocation reads its function's manifest itself. Only compiling functions at init
        // (`PREWARM`) needs it now.
        if adapter.loaded_at_init {
            let loaded = adapter.load_catalog().await;
            let _ = kernel.await;
            if let Some(snapshot) = loaded {
                adapter.prewarm(&config.prewarm, &snapshot).await;
            }
        } else {
            // The kernel every plugin embeds is in the compile cache before the first call, so
            // a first call that loads compiled artifacts compiles nothing.
            let _ = kernel.await;
        }
        Ok(adapter)
    }

    /// Whether init already listed the store.
    pub fn loaded_at_init(&self) -> bool {
        self.loaded_at_init
    }

    /// Lists the store into the catalog (bounded by init's wait), and says how it went.
    pub async fn load_catalog(&self) -> Option<Arc<Snapshot>> {
        match self.catalog.snapshot(INIT_LOAD_WAIT).await {
            Ok(snapshot) => {
                info!(
                    store = %self.catalog.store().describe(),
                    functions = snapshot.functions.len(),
                    invalid = snapshot.invalid.len(),
                    routes = snapshot.routes.http_routes().count(),
                    "catalog loaded"
                );
                Some(snapshot)
            }
            Err(error) => {
                warn!(%error, "function store unavailable for its listing; retrying on each invocation");
                None
            }
        }
    }

    async fn prewarm(&self, prewarm: &Prewarm, snapshot: &Snapshot) {
        let names: Vec<String> = match prewarm {
            Prewarm::None => return,
            Prewarm::All => snapshot.functions.keys().cloned().collect(),
            Prewarm::Only(names) => names.clone(),
        };
        for name in names {
            let result = match self.catalog.entry(&name, INIT_LOAD_WAIT).await {
                Ok(entry) => self
                    .loader
                    .compiled(&entry, INIT_LOAD_WAIT)
                    .await
                    .map(|_| ()),
                Err(error) => Err(error),
            };
            if let Err(error) = result {
                warn!(function = %name, %error, "prewarm failed");
            }
        }
    }

    /// Handles one invocation, and writes its metrics lines.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let (result, metrics) = self.handle_invocation(event, None).await;
        if !metrics.is_empty() {
            let _ = std::io::stdout().lock().write_all(&metrics);
        }
        result
    }

    /// Handles one invocation whose event was read from the JSON `text` (an HTTP function's
    /// `raw` is that text, as it came): its answer, and its metrics lines for stdout, which the
    /// runtime writes once the answer is posted (nothing when metrics are off).
    pub async fn handle_invocation(
        &self,
        event: LambdaEvent<Value>,
        text: Option<&[u8]>,
    ) -> (Result<Value, Error>, Vec<u8>) {
        let (payload, context) = event.into_parts();
        let raw = match text {
            Some(text) => RawEvent::Text(text),
            None => RawEvent::Tree(&payload),
        };
        self.handle_event(Event::classify(&payload), raw, context)
            .await
    }

    /// Handles one invocation of the event `classified` from `raw`: its answer, and its metrics
    /// lines for stdout (see [`Adapter::handle_invocation`]).
    pub(crate) async fn handle_event(
        &self,
        classified: Result<Event, Error>,
        raw: RawEvent<'_>,
        context: Context,
    ) -> (Result<Value, Error>, Vec<u8>) {
        let budget = self.budget(&context);
        let trigger = match &classified {
            Ok(Event::Direct { .. }) | Err(_) => "direct",
            Ok(Event::Http(_)) => HookKind::Http.name(),
            Ok(Event::Request(request)) => request.kind.name(),
            Ok(Event::Unrecognized { .. }) => HookKind::Raw.name(),
            Ok(Event::Batch(batch)) => batch
                .records
                .first()
                .map_or("records", |record| record.source.kind.name()),
        };
        let cold = !self.served.swap(true, Ordering::Relaxed);
        let meter = Meter::new(
            trigger,
            cold,
            &context.request_id,
            context.xray_trace_id.as_deref(),
        );
        let invocation = Invocation {
            context,
            budget,
            meter,
        };
        let result = match classified {
            Ok(Event::Direct { function, input }) => {
                let span = info_span!("invoke", function = %function, trigger = "direct");
                self.direct(&function, &input, &invocation)
                    .instrument(span)
                    .await
            }
            Ok(Event::Http(request)) => {
                let shape = request.shape;
                Ok(self.http(&request, raw, &invocation).await.shape(shape))
            }
            Ok(Event::Batch(batch)) => self.records(&batch, &invocation).await,
            Ok(Event::Request(request)) => self.request(&request, None, &invocation).await,
            Ok(Event::Unrecognized { request, error }) => {
                self.request(&request, Some(error), &invocation).await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = &result {
            warn!(error_type = error.error_type(), %error, "invocation failed");
        }
        let mut lines = Vec::new();
        if self.metrics {
            lines.reserve(640);
            invocation.meter.write_lines(&mut lines);
        }
        (result, lines)
    }

    /// The work calls left for after their invocation answered (with sequential invocations: the
    /// next `instance: fresh` instance, the used one dropped). The host calls it once the response
    /// is posted, before it asks for the next invocation. Blocking.
    pub fn after_response(&self) {
        self.after_response.run();
    }

    fn budget(&self, context: &Context) -> Budget {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let budget = Budget::new(context.deadline, now_ms, self.deadline_margin);
        if !budget.real && !self.warned_no_deadline.swap(true, Ordering::Relaxed) {
            warn!(
                deadline_ms = context.deadline,
                "invocation deadline already passed on arrival (local emulator?); \
                 using the manifest timeout, else 30s"
            );
        }
        budget
    }

    fn invocation_context(
        &self,
        context: &Context,
        function: &str,
        budget: Budget,
    ) -> InvocationContext {
        InvocationContext {
            request_id: context.request_id.clone(),
            function: function.to_string(),
            deadline_ms: context.deadline,
            remaining_ms: budget.remaining().as_millis() as u64,
            invoked_function_arn: context.invoked_function_arn.clone(),
            trace_id: context.xray_trace_id.clone(),
        }
    }

    async fn snapshot(&self, function: &str, budget: Budget) -> Result<Arc<Snapshot>, Error> {
        self.catalog
            .snapshot(budget.remaining())
            .await
            .map_err(|error| Error::StoreUnavailable {
                function: function.to_string(),
                reason: error.to_string(),
            })
    }

    /// The compiled function, loaded within `limit` (the call's own timeout: fetching and
    /// compiling count against it). A compile the limit cut short still finishes in the
    /// background, and the next call finds it compiled (wasmtime cannot stop a compile).
    async fn load(
        &self,
        entry: &Arc<Entry>,
        limit: Duration,
    ) -> Result<(Arc<CompiledFunction>, Loaded), Error> {
        let started = Instant::now();
        match tokio::time::timeout(limit, self.loader.compiled(entry, limit)).await {
            Ok(result) => result,
            Err(_) => Err(Error::FunctionTimeout {
                function: entry.manifest.name.clone(),
                elapsed_ms: started.elapsed().as_millis(),
                limit_ms: limit.as_millis(),
            }),
        }
    }

    /// Loads `function` and calls `entrypoint` (else the manifest's) with the input `input`
    /// builds from the invocation context once the function is loaded, all within the
    /// invocation's budget, and records what it cost.
    async fn call(
        &self,
        function: &str,
        entrypoint: Option<&str>,
        invocation: &Invocation,
        input: impl FnOnce(&InvocationContext) -> Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        self.call_reserving(function, entrypoint, invocation, Duration::ZERO, input)
            .await
    }

    /// Like [`Adapter::call`], keeping `reserve` of the invocation's time back from the call.
    async fn call_reserving(
        &self,
        function: &str,
        entrypoint: Option<&str>,
        invocation: &Invocation,
        reserve: Duration,
        input: impl FnOnce(&InvocationContext) -> Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        let mut usage = Usage::default();
        let result = self
            .run(function, entrypoint, invocation, reserve, input, &mut usage)
            .await;
        invocation
            .meter
            .record(function, usage, result.as_ref().err());
        result
    }

    async fn run(
        &self,
        function: &str,
        entrypoint: Option<&str>,
        invocation: &Invocation,
        reserve: Duration,
        input: impl FnOnce(&InvocationContext) -> Vec<u8>,
        usage: &mut Usage,
    ) -> Result<Vec<u8>, Error> {
        let budget = invocation.budget.reserving(reserve);
        let entry = self.catalog.entry(function, budget.remaining()).await?;
        let limit = budget.call_timeout(entry.manifest.timeout);
        let loading = Instant::now();
        let (compiled, loaded) = self.load(&entry, limit).await?;
        usage.loaded = loaded;
        let entrypoint = entrypoint.unwrap_or(&entry.manifest.entrypoint);
        let context = &invocation.context;
        let input = input(&self.invocation_context(context, function, budget));
        let started = Instant::now();
        let meter = Arc::new(HostMeter::traced(context.xray_trace_id.as_deref()));
        let result = METER
            .scope(
                Arc::clone(&meter),
                // The call has what loading left of the function's timeout.
                compiled.call(entrypoint, input, loading, limit, &context.request_id),
            )
            .await;
        usage.call = started.elapsed();
        usage.host = meter.usage();
        let called = result?;
        usage.instantiate = called.instantiate;
        usage.call = usage.call.saturating_sub(called.instantiate);
        Ok(called.output)
    }

    async fn direct(
        &self,
        function: &str,
        input: &Value,
        invocation: &Invocation,
    ) -> Result<Value, Error> {
        let output = self
            .call(function, None, invocation, |_| direct_input(input))
            .await?;
        Ok(direct_output(&output))
    }

    async fn http(
        &self,
        request: &HttpRequest,
        raw: RawEvent<'_>,
        invocation: &Invocation,
    ) -> HttpResponse {
        let snapshot = match self.snapshot(&request.path, invocation.budget).await {
            Ok(snapshot) => snapshot,
            Err(error) => {
                warn!(error_type = error.error_type(), %error, "function store unavailable");
                return HttpResponse::from_error(&error, &invocation.context.request_id);
            }
        };
        let matched = match snapshot.routes.match_http(&request.method, &request.path) {
            // Routed only by a function whose manifest is broken: answered with its error.
            HttpMatch::NotFound => snapshot
                .broken_routes
                .match_http(&request.method, &request.path),
            matched => matched,
        };
        let (route, params) = match matched {
            HttpMatch::Found { route, params } => (route, params),
            HttpMatch::MethodNotAllowed { allowed } => {
                return HttpResponse::method_not_allowed(&request.method, &request.path, &allowed);
            }
            HttpMatch::NotFound => return HttpResponse::not_found(&request.method, &request.path),
        };
        let span = info_span!("invoke", function = %route.function, trigger = "http");
        let input =
            |context: &InvocationContext| request.envelope(context, route.path(), &params, raw);
        async {
            let output = self
                .call(&route.function, Some(&route.entrypoint), invocation, input)
                .await?;
            HttpResponse::from_output(&route.function, &output)
        }
        .instrument(span)
        .await
        .unwrap_or_else(|error| {
            warn!(error_type = error.error_type(), %error, "function failed");
            HttpResponse::from_error(&error, &invocation.context.request_id)
        })
    }

    /// Delivers a batch of records to the functions hooked to each, and answers for the batch.
    async fn records(&self, batch: &Batch, invocation: &Invocation) -> Result<Value, Error> {
        let source = batch
            .records
            .first()
            .map(Record::describe)
            .unwrap_or_default();
        // Without a routing table nothing can be delivered: the whole event is retried.
        let snapshot = self.snapshot(&source, invocation.budget).await?;
        let has_time = || invocation.budget.remaining() > Duration::ZERO;
        let partitions: Vec<Option<&str>> = batch
            .records
            .iter()
            .map(|record| record.partition.as_deref())
            .collect();
        let outcomes = deliver(&partitions, batch.ordered, has_time, |index| {
            self.record(&batch.records[index], &snapshot, invocation)
        })
        .await;
        for (record, outcome) in batch.records.iter().zip(&outcomes) {
            if let Outcome::NotRun(reason) = outcome {
                warn!(record = %record.describe(), %reason, "record not run; reported failed");
            }
        }
        batch.answer(&outcomes)
    }

    /// Routes a request to its one function and answers it in its kind's shape; a request no
    /// hook takes is answered by its kind as failed (a custom resource still gets its PUT), and
    /// an event no kind recognized (`unrecognized`) fails with that error.
    async fn request(
        &self,
        request: &Request,
        unrecognized: Option<Error>,
        invocation: &Invocation,
    ) -> Result<Value, Error> {
        let budget = invocation.budget.reserving(request.reserve);
        let snapshot = match self.snapshot(&request.label, budget).await {
            Ok(snapshot) => snapshot,
            Err(error) => {
                return match unrecognized {
                    // An event no kind recognized stays what it is.
                    Some(unsupported) => Err(unsupported),
                    None => self.answer(request, "", Err(&error), invocation).await,
                };
            }
        };
        // A function whose manifest is broken is answered with its error when its hook is the
        // most specific: its request never falls to a broader hook (an authorizer's to a
        // catch-all that allows).
        let route = match (
            snapshot.routes.match_request(request),
            snapshot.broken_routes.match_request(request),
        ) {
            (Some(serving), Some(broken)) if broken.weight() > serving.weight() => Some(broken),
            (serving, broken) => serving.or(broken),
        };
        let Some(route) = route else {
            if let Some(error) = unrecognized {
                return Err(error);
            }
            let error = request.not_hooked();
            return self.answer(request, "", Err(&error), invocation).await;
        };
        let span = info_span!("invoke", function = %route.function, trigger = request.kind.name());
        let output = self
            .call_reserving(
                &route.function,
                Some(&route.entrypoint),
                invocation,
                request.reserve,
                |context| request.input(context),
            )
            .instrument(span)
            .await;
        let output = output.as_deref();
        self.answer(request, &route.function, output, invocation)
            .await
    }

    /// The answer of `request` for what its call ended with, after the PUT the answer needs.
    async fn answer(
        &self,
        request: &Request,
        function: &str,
        output: Result<&[u8], &Error>,
        invocation: &Invocation,
    ) -> Result<Value, Error> {
        if let Err(error) = output {
            warn!(request = %request.label, function, error_type = error.error_type(), %error, "request failed");
        }
        let context = &invocation.context;
        let answer = request.answer(Called {
            function,
            request_id: &context.request_id,
            invoked_function_arn: &context.invoked_function_arn,
            output,
        });
        if let Some(put) = answer.put {
            self.put(&put, &request.label, invocation).await?;
        }
        answer.value
    }

    /// PUTs `put` (a custom resource's outcome), retrying while the invocation has time; an
    /// error if it never got through, so Lambda retries the invocation.
    async fn put(&self, put: &Put, what: &str, invocation: &Invocation) -> Result<(), Error> {
        let budget = invocation.budget;
        // The margin kept for answering Lambda is the PUT's too; without a real deadline, 10 s.
        let until = match budget.real {
            true => budget.until + self.deadline_margin / 2,
            false => Instant::now() + Duration::from_secs(10),
        };
        let mut last_error = String::new();
        for attempt in 1..=3 {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let (egress, url, body) = (self.egress.clone(), put.url.clone(), put.body.clone());
            let sent =
                tokio::task::spawn_blocking(move || send_put(&egress, &url, body, left)).await;
            match sent {
                Ok(Ok(status)) if (200..300).contains(&status) => {
                    info!(request = %what, status, attempt, "outcome sent to the response URL");
                    return Ok(());
                }
                Ok(Ok(status)) => last_error = format!("the response URL answered HTTP {status}"),
                Ok(Err(error)) => last_error = error,
                Err(error) => last_error = error.to_string(),
            }
            warn!(request = %what, attempt, error = %last_error, "the outcome's PUT failed");
        }
        Err(Error::FunctionError {
            function: what.to_string(),
            reason: format!("the outcome could not be sent to its response URL: {last_error}"),
        })
    }

    /// Runs one record on every function hooked to it; fails if any of them failed or none is
    /// hooked.
    async fn record(
        &self,
        record: &Record,
        snapshot: &Snapshot,
        invocation: &Invocation,
    ) -> Result<Vec<u8>, Error> {
        // A deployed resource routes under the name the hooks use for it.
        let named = self
            .source_names
            .get(&record.source.resource)
            .map(|name| record.source.renamed(name));
        let source = named.as_ref().unwrap_or(&record.source);
        let mut routes = snapshot.routes.match_record(source);
        if routes.is_empty() {
            // Hooked only by a function whose manifest is broken: failed with its error, so
            // the source keeps the record.
            routes = snapshot.broken_routes.match_record(source);
        }
        if routes.is_empty() && record.optional {
            info!(record = %record.describe(), "no function is hooked to this control event; done");
            return Ok(Vec::new());
        }
        if routes.is_empty() {
            let error = Error::NotHooked {
                record: record.describe(),
            };
            warn!(%error, "record failed");
            return Err(error);
        }
        let mut first_error = None;
        let mut first_output = None;
        for route in routes {
            let trigger = record.source.kind.name();
            let span = info_span!("invoke", function = %route.function, trigger);
            let input =
                |context: &InvocationContext| record.input(context).to_string().into_bytes();
            let result = self
                .call(&route.function, Some(&route.entrypoint), invocation, input)
                .instrument(span)
                .await;
            match result {
                Ok(output) => {
                    debug!(
                        record = %record.describe(),
                        function = %route.function,
                        output = %String::from_utf8_lossy(&output),
                        "record delivered"
                    );
                    first_output.get_or_insert(output);
                }
                Err(error) => {
                    warn!(
                        record = %record.describe(),
                        function = %route.function,
                        error_type = error.error_type(),
                        %error,
                        "record failed"
                    );
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(first_output.unwrap_or_default()),
        }
    }
}

/// `function.invoke`: the callee runs as a direct invocation would run it, with its own
/// manifest, limits and grants, within the caller's deadline.
#[async_trait::async_trait]
impl Invoker for Adapter {
    async fn invoke(
        &self,
        caller: &str,
        function: &str,
        input: Vec<u8>,
        deadline: std::time::Instant,
        request_id: &str,
    ) -> Result<Vec<u8>, CallError> {
        let failed = |error: Error| {
            warn!(caller, function, error_type = error.error_type(), %error, "invoked function failed");
            invoke_error(function, &error)
        };
        let remaining = deadline.saturating_duration_since(std::time::Instant::now());
        let entry = self
            .catalog
            .entry(function, remaining)
            .await
            .map_err(failed)?;
        // A function is invoked only by the functions it names as its callers.
        if !entry.manifest.callers.iter().any(|name| name == caller) {
            return Err(CallError {
                kind: Kind::NotGranted,
                message: format!("function `{function}` does not list `{caller}` in its `callers`"),
            });
        }
        let limit = entry
            .manifest
            .timeout
            .map_or(remaining, |t| t.min(remaining));
        let loading = Instant::now();
        let (compiled, _) = self.load(&entry, limit).await.map_err(failed)?;
        let span = info_span!("invoke", function = %function, trigger = "function");
        let called = compiled
            .call(
                &entry.manifest.entrypoint,
                input,
                loading,
                limit,
                request_id,
            )
            .instrument(span)
            .await
            .map_err(failed)?;
        Ok(called.output)
    }
}

/// PUTs `body` to `url` with an empty content type (a presigned S3 URL is signed without one):
/// the HTTP status, or why there was none. The URL comes in the event, so it goes through the
/// egress policy (no private, loopback or link-local address) and must be an AWS HTTPS endpoint,
/// as CloudFormation's are; with `ALLOW_PRIVATE_EGRESS` (local development) any URL.
fn send_put(
    egress: &EgressPolicy,
    url: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<u16, String> {
    const AWS_HOSTS: &[&str] = &["*.amazonaws.com", "*.amazonaws.com.cn"];
    let local = egress.allows_private();
    if !local && !url.starts_with("https://") {
        return Err(format!("`{url}` is not an https URL"));
    }
    let hosts: Vec<String> = match local {
        true => vec!["*".to_string()],
        false => AWS_HOSTS.iter().map(|h| h.to_string()).collect(),
    };
    let host = url::Url::parse(url)
        .map_err(|error| format!("`{url}` is not a URL: {error}"))?
        .host_str()
        .unwrap_or_default()
        .to_string();
    if !crate::egress::host_allowed(&hosts, host.trim_start_matches('[').trim_end_matches(']')) {
        return Err(format!(
            "`{host}` is not an AWS endpoint ({})",
            AWS_HOSTS.join(", ")
        ));
    }
    let request = crate::egress::Request {
        method: "PUT".to_string(),
        url: url.to_string(),
        headers: [("content-type".to_string(), String::new())].into(),
        body: Some(body),
    };
    egress
        .fetch(request, &hosts, Instant::now() + timeout, 64 * 1024)
        .map(|response| response.status)
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARGIN: Duration = Duration::from_millis(50);

    fn close_to(actual: Duration, expected: Duration) -> bool {
        actual <= expected && expected - actual < Duration::from_millis(20)
    }

    #[test]
    fn the_call_timeout_is_the_smaller_of_manifest_and_deadline() {
        let now = 1_700_000_000_000;
        let budget = Budget::new(now + 1_000, now, MARGIN);
        assert!(budget.real);
        let timeout = budget.call_timeout(Some(Duration::from_secs(5)));
        assert!(close_to(timeout, Duration::from_millis(950)), "{timeout:?}");
        let timeout = budget.call_timeout(Some(Duration::from_millis(100)));
        assert_eq!(timeout, Duration::from_millis(100));
        let timeout = budget.call_timeout(None);
        assert!(close_to(timeout, Duration::from_millis(950)), "{timeout:?}");
    }

    #[test]
    fn a_deadline_inside_the_margin_leaves_no_time() {
        let now = 1_700_000_000_000;
        let budget = Budget::new(now + 30, now, MARGIN);
        assert_eq!(
            budget.call_timeout(Some(Duration::from_secs(5))),
            Duration::ZERO
        );
    }

    #[test]
    fn a_deadline_already_past_uses_the_manifest_timeout_else_30s() {
        // cargo lambda watch sends `Lambda-Runtime-Deadline-Ms: 600000`.
        let budget = Budget::new(600_000, 1_700_000_000_000, MARGIN);
        assert!(!budget.real);
        assert_eq!(
            budget.call_timeout(Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(budget.call_timeout(None), Duration::from_secs(30));
    }
}

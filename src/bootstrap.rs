//! The Lambda custom runtime's loop: the tokio runtime, the Runtime API client and the adapter.

use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use tracing::{Instrument, error, info, info_span, warn};

use crate::runtime_api::{ApiError, Invocation, RuntimeApi};
use crate::trigger::{Event, RawEvent, parse_event};
use crate::{Adapter, Config};

/// Why the bootstrap stopped.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long the first invocation's environment waits for the store's listing before it asks for
/// the next invocation (billed once per environment; a store of about 100 functions is listed
/// within it).
const FIRST_LISTING_WAIT: Duration = Duration::from_millis(100);

/// Installs the log subscriber as Lambda configures it (`AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`,
/// else info; `AWS_LAMBDA_LOG_FORMAT=JSON`), as `lambda_runtime`'s default does, but with colours
/// only on a terminal: written to a file or a pipe (Lambda, `cargo lambda watch > log`), text
/// lines carry no escape codes.
pub fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::filter::LevelFilter;

    let format = std::env::var("AWS_LAMBDA_LOG_FORMAT").unwrap_or_default();
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|level| level.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let subscriber = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(
            EnvFilter::builder()
                .with_default_directive(level.into())
                .from_env_lossy(),
        );
    if format.eq_ignore_ascii_case("json") {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
}

/// Serves invocations until the Runtime API goes away.
///
/// Sequential invocations (`AWS_LAMBDA_MAX_CONCURRENCY` unset or 1) run on one thread: the
/// Runtime API exchange, the event's handling and the call itself, with no hand-off between
/// threads on the way. Compiles and other blocking work still go to the blocking pool.
/// Concurrent invocations get a worker thread per core, and as many connections to the Runtime
/// API, each asking for invocations in turn, as the concurrency Lambda allows.
pub fn run(config: Config) -> Result<(), BoxError> {
    let mut runtime = if config.max_concurrency <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    runtime.enable_all().build()?.block_on(serve(config))
}

async fn serve(config: Config) -> Result<(), BoxError> {
    let endpoint = config.runtime_api.clone().unwrap_or_default();
    let lambda_config = Arc::new(lambda_runtime::Config::from_env());
    let mut api = RuntimeApi::new(&endpoint, Arc::clone(&lambda_config))?;
    let workers = config.max_concurrency.max(1);
    // Store, catalog, routes and plugin cache: built once, shared by every invocation.
    let adapter = match Adapter::init(config).await {
        Ok(adapter) => Arc::new(adapter),
        Err(error) => {
            let diagnostic = Diagnostic {
                error_type: "Runtime.InitError".to_string(),
                error_message: format!("{error:#}"),
            };
            if let Err(report) = api.init_failed(&diagnostic).await {
                warn!(%report, "init error not reported");
            }
            return Err(error.into());
        }
    };
    adapter.serve_invocations();
    // Init is over without the store's listing: it starts once the first invocation has
    // answered, so a cold first call has the network and the thread to itself (an invocation
    // that routes before then lists the store itself).
    let listing_due = Arc::new(AtomicBool::new(!adapter.loaded_at_init()));
    info!("ready for invocations");

    if workers == 1 {
        return serve_one_at_a_time(api, &adapter, &listing_due).await;
    }
    // Managed Instances: as many invocations at once as Lambda allows, each worker on its own
    // connection.
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let api = RuntimeApi::new(&endpoint, Arc::clone(&lambda_config))?;
        let (adapter, listing_due) = (Arc::clone(&adapter), Arc::clone(&listing_due));
        running.spawn(async move { serve_one_at_a_time(api, &adapter, &listing_due).await });
    }
    // The first worker that loses the Runtime API ends the process with its error.
    match running.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(panic)) => Err(panic.into()),
        None => Ok(()),
    }
}

/// Takes invocations one after the other from `api` and answers each.
async fn serve_one_at_a_time(
    mut api: RuntimeApi,
    adapter: &Arc<Adapter>,
    listing_due: &Arc<AtomicBool>,
) -> Result<(), BoxError> {
    loop {
        // The invocation's trace id reaches its function (`context.trace_id`) and the requests
        // its host calls make (capabilities), not the process environment: `_X_AMZN_TRACE_ID`,
        // which `lambda_runtime` set for every invocation, is never set (glibc keeps every value
        // ever set, so a new one per invocation grows the process without bound).
        let Invocation { context, event } = api.next().await?;
        let request_id = context.request_id.clone();
        let span = request_span(&context);
        let Answered { answer, metrics } =
            AssertUnwindSafe(answer(adapter, event, context).instrument(span))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Answered {
                    answer: Err(panicked(panic.as_ref())),
                    metrics: Vec::new(),
                });
        let posted = match answer {
            Ok(body) => api.respond(&request_id, &body).await,
            Err(diagnostic) => api.fail(&request_id, &diagnostic).await,
        };
        // The metrics lines once the answer is on its way, before the next invocation is asked
        // for (an environment waiting for one may be frozen, its lines with it).
        if !metrics.is_empty() {
            let _ = std::io::stdout().lock().write_all(&metrics);
        }
        match posted {
            Ok(()) => {}
            // Lambda refused this answer (too large, too late): the next invocation is served.
            // A 5xx is the Runtime API's own failure, after which a runtime is to exit.
            Err(error @ ApiError::Status { status, .. }) if status < 500 => {
                error!(%error, "answer not accepted")
            }
            Err(error) => return Err(error.into()),
        }
        // Once the response is posted, and before the next invocation is asked for, the work
        // the call left (the next `instance: fresh` instance). After the first, the store's
        // listing starts, and is waited for a little, so that a small store is listed before
        // Lambda freezes an environment with no invocation waiting; a larger one's listing goes
        // on beside the invocations that follow.
        adapter.after_response();
        if listing_due.load(Ordering::Relaxed) && listing_due.swap(false, Ordering::Relaxed) {
            let adapter = Arc::clone(adapter);
            let listing = tokio::spawn(async move {
                adapter.load_catalog().await;
            });
            let _ = tokio::time::timeout(FIRST_LISTING_WAIT, listing).await;
        }
    }
}

/// One invocation handled: the answer's JSON or why it failed, and its metrics lines.
pub struct Answered {
    pub answer: Result<Vec<u8>, Diagnostic>,
    pub metrics: Vec<u8>,
}

/// Handles the invocation of `event` (the JSON Lambda sent).
pub async fn answer(adapter: &Adapter, event: Vec<u8>, context: Context) -> Answered {
    let (answer, metrics) = match Event::from_text(&event) {
        // An HTTP API request: read with no tree of the event built.
        Some(http) => {
            adapter
                .handle_event(Ok(http), RawEvent::Text(&event), context)
                .await
        }
        None => {
            let parsed = match parse_event(&event) {
                Ok(parsed) => parsed,
                Err(error) => {
                    warn!(error_type = error.error_type(), %error, "invocation failed");
                    return Answered {
                        answer: Err(error.into()),
                        metrics: Vec::new(),
                    };
                }
            };
            adapter
                .handle_invocation(LambdaEvent::new(parsed, context), Some(&event))
                .await
        }
    };
    let answer = answer.map_err(Diagnostic::from).and_then(|answer| {
        serde_json::to_vec(&answer).map_err(|error| Diagnostic {
            error_type: "InvalidRequest".to_string(),
            error_message: format!("the answer could not be serialized: {error}"),
        })
    });
    Answered { answer, metrics }
}

/// The span every log line of an invocation is under, as `lambda_runtime` names it.
fn request_span(context: &Context) -> tracing::Span {
    match &context.xray_trace_id {
        Some(trace_id) => info_span!(
            "Lambda runtime invoke",
            requestId = %context.request_id,
            xrayTraceId = %trace_id
        ),
        None => info_span!("Lambda runtime invoke", requestId = %context.request_id),
    }
}

/// A panic while handling an invocation, as its failure (the process serves the next one).
fn panicked(panic: &(dyn std::any::Any + Send)) -> Diagnostic {
    let message = panic
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    error!(panic = %message, "invocation panicked");
    Diagnostic {
        error_type: "Runtime.Panic".to_string(),
        error_message: format!("the runtime panicked: {message}"),
    }
}

//! The Lambda custom runtime's loop: the tokio runtime, the Runtime API client and the adapter.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lambda_runtime::tower::{ServiceExt, layer::layer_fn};
use lambda_runtime::{LambdaEvent, Runtime, layers::TracingLayer, service_fn};
use tracing::{info, warn};

use crate::trigger::Payload;
use crate::{Adapter, Config};

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
/// Concurrent invocations get a worker thread per core.
pub fn run(config: Config) -> Result<(), lambda_runtime::Error> {
    let mut runtime = if config.sequential {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    runtime.enable_all().build()?.block_on(serve(config))
}

async fn serve(config: Config) -> Result<(), lambda_runtime::Error> {
    // Store, catalog, routes and plugin cache: built once, shared by every invocation.
    let adapter = Arc::new(Adapter::init(config).await?);
    adapter.serve_invocations();
    // Init is over without the store's listing: it starts once the first invocation has
    // answered, so a cold first call has the network and the thread to itself (an invocation
    // that routes before then lists the store itself).
    let listing_due = Arc::new(AtomicBool::new(!adapter.loaded_at_init()));
    info!("ready for invocations");

    let handler = {
        let adapter = Arc::clone(&adapter);
        service_fn(move |event: LambdaEvent<Payload>| {
            let adapter = Arc::clone(&adapter);
            async move {
                let (payload, context) = event.into_parts();
                match payload.into_event() {
                    Ok(event) => adapter.handle(LambdaEvent::new(event, context)).await,
                    Err(error) => {
                        warn!(error_type = error.error_type(), %error, "invocation failed");
                        Err(error)
                    }
                }
            }
        })
    };
    Runtime::new(handler)
        .layer(TracingLayer::new())
        // Outermost: once the response is posted, and before the next invocation is asked for,
        // the work the call left (the next `instance: fresh` instance). After the first, the
        // store's listing starts, and is waited for a little, so that a small store is listed
        // before Lambda freezes an environment with no invocation waiting; a larger one's
        // listing goes on beside the invocations that follow.
        .layer(layer_fn(move |inner| {
            let adapter = Arc::clone(&adapter);
            let listing_due = Arc::clone(&listing_due);
            ServiceExt::then(inner, move |result| async move {
                adapter.after_response();
                if listing_due.load(Ordering::Relaxed) && listing_due.swap(false, Ordering::Relaxed)
                {
                    let adapter = Arc::clone(&adapter);
                    let listing = tokio::spawn(async move {
                        adapter.load_catalog().await;
                    });
                    let _ = tokio::time::timeout(FIRST_LISTING_WAIT, listing).await;
                }
                result
            })
        }))
        .run_concurrent()
        .await
}

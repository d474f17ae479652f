//! `bootstrap`: the Lambda custom runtime.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use wasm_lambda::{Adapter, Config};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Logs as Lambda configures them: AWS_LAMBDA_LOG_LEVEL, AWS_LAMBDA_LOG_FORMAT, RUST_LOG.
    lambda_runtime::tracing::init_default_subscriber();

    // A bad setting stops the process here, naming the variable and its value.
    Adapter::check_runtime_environment()?;
    let config = Config::from_env()?;

    // Store, catalog, routes and plugin cache: built once, shared by every invocation.
    let adapter = Arc::new(Adapter::init(config).await?);

    // Sequential by default; concurrent when AWS_LAMBDA_MAX_CONCURRENCY > 1.
    lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<Value>| {
        let adapter = Arc::clone(&adapter);
        async move { adapter.handle(event).await }
    }))
    .await
}

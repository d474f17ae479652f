//! `bootstrap`: the Lambda custom runtime.

use wasm_lambda::{Adapter, Config};

fn main() -> Result<(), lambda_runtime::Error> {
    // Before any thread allocates: how the heap holds what loading functions leaves.
    wasm_lambda::fix_mmap_threshold();
    // Logs as Lambda configures them: AWS_LAMBDA_LOG_LEVEL, AWS_LAMBDA_LOG_FORMAT, RUST_LOG.
    wasm_lambda::bootstrap::init_logging();

    // A bad setting stops the process here, naming the variable and its value.
    Adapter::check_runtime_environment()?;
    let config = Config::from_env()?;

    wasm_lambda::bootstrap::run(config)
}

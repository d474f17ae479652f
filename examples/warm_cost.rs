//! What the bootstrap does for one warm invocation besides the Runtime API exchange, in process:
//! the event read, recognized and routed, the call, the answer serialized and the metrics line
//! written (to stdout), for the benchmark's HTTP and direct events. A quick loop to profile (`perf record`)
//! while working on the warm path; `make bench` gives the figures.
//!
//!     cargo build --release --example warm_cost
//!     FUNCTIONS_DIR=<store with hello and echo> target/release/examples/warm_cost [calls [HTTP|direct]] > /dev/null
use std::io::Write;
use std::time::Instant;

use lambda_runtime::Context;

fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("a number of calls"))
        .unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = wasm_lambda::Config::from_env().expect("FUNCTIONS_DIR names a store");
    let adapter = runtime
        .block_on(wasm_lambda::Adapter::init(config))
        .unwrap();
    let http = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/events/apigw-v2-get-hello.json"
    ))
    .unwrap();
    let direct = br#"{"function": "echo", "input": {"hello": "world", "n": [1, 2, 3]}}"#.to_vec();
    let only = std::env::args().nth(2);
    for (what, event) in [("HTTP", http), ("direct", direct)] {
        if only.as_deref().is_some_and(|only| only != what) {
            continue;
        }
        let mut context = Context::default();
        context.request_id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd".to_string();
        context.deadline = u64::MAX / 2;
        context.invoked_function_arn =
            "arn:aws:lambda:us-east-1:123456789012:function:bootstrap".to_string();
        context.xray_trace_id = Some("Root=1-5759e988-bd862e3fe1be46a994272793".to_string());
        for _ in 0..calls / 10 {
            let answer = runtime.block_on(wasm_lambda::bootstrap::answer(
                &adapter,
                event.clone(),
                context.clone(),
            ));
            assert!(answer.answer.is_ok(), "{what}: {:?}", answer.answer);
        }
        let started = Instant::now();
        let mut stdout = std::io::stdout().lock();
        for _ in 0..calls {
            let answered = runtime.block_on(wasm_lambda::bootstrap::answer(
                &adapter,
                event.clone(),
                context.clone(),
            ));
            stdout.write_all(&answered.metrics).unwrap();
        }
        eprintln!(
            "{what}: {:.2} us per invocation",
            started.elapsed().as_secs_f64() * 1e6 / calls as f64
        );
    }
}

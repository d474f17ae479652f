//! wasm-lambda: one AWS Lambda custom runtime hosting many WebAssembly functions.
//!
//! Each function is an Extism plugin (`.wasm`) with a YAML manifest, kept in a function store
//! (a local directory or S3). The bootstrap builds a routing table from the manifests' hooks,
//! keeps compiled plugins in a bounded cache, and routes every event to its function with a
//! timeout derived from the invocation deadline.
//!
//! Data flows one way:
//!
//! ```text
//! event (serde_json::Value)
//!   -> event      classify + normalize (direct; HTTP: API Gateway v1/v2, Function URL, ALB;
//!                 records: S3, SQS, SNS, DynamoDB Streams, Kinesis, EventBridge, schedules)
//!   -> router     routing table built from the manifests -> function(s) + entrypoint
//!   -> deliver    records in order on every hooked function, within the deadline
//!   -> catalog    manifests, refreshed from the store after REVALIDATE_AFTER
//!   -> cache      moka: (function, module digest, manifest digest) -> compiled function
//!   -> store      FunctionStore: a directory or S3; bytes + version tag
//!   -> invoke     engine + instance, deadline-bound call, trap/timeout/error mapping
//!   -> respond    the answer in the event's own shape (HTTP response, batchItemFailures)
//! ```
//!
//! What lives how long: the store, catalog, route table and plugin cache live as long as the
//! process (one Lambda execution environment); a compiled function as long as its module and
//! manifest are current and the cache keeps it; an instance for one call (`instance: fresh`) or
//! until its first error (`instance: reuse`).

pub mod app;
pub mod artifacts;
pub mod bootstrap;
pub mod cache;
pub mod capabilities;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod deliver;
pub mod egress;
pub mod error;
pub mod event;
pub mod history;
pub mod host;
pub mod invoke;
pub mod manifest;
pub mod metrics;
pub mod name;
pub mod publish;
pub mod respond;
pub mod router;
pub mod store;
pub mod units;
pub mod watchdog;

pub use app::Adapter;
pub use config::Config;
pub use error::Error;

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
//!   -> trigger    each kind's module recognizes and normalizes its events: direct; HTTP (API
//!                 Gateway v1/v2, Function URL, ALB, VPC Lattice); other requests (WebSocket,
//!                 authorizers, Cognito, AppSync, Bedrock agents, custom resources, SES, raw);
//!                 batches (S3, SQS, SNS, DynamoDB/DocumentDB, Kinesis, EventBridge, schedules,
//!                 Kafka, Amazon MQ, Firehose, CloudWatch Logs)
//!   -> router     routing table built from the manifests' checked hooks -> function(s)
//!   -> deliver    records in order (per partition) on every hooked function, within the deadline
//!   -> catalog    manifests, refreshed from the store after REVALIDATE_AFTER
//!   -> loader     compiled function: the plugin cache, or a miss fetched and compiled
//!   -> cache      moka: (function, module digest, manifest digest) -> compiled function
//!   -> store      FunctionStore: a directory or S3; bytes + version tag
//!   -> invoke     engine + instance, deadline-bound call, trap/timeout/error mapping
//!   -> trigger    the answer in the kind's own shape (HTTP response, IAM policy, Cognito event,
//!                 batchItemFailures, Firehose records, a custom resource's PUT, ...)
//! ```
//!
//! What lives how long: the store, catalog, route table and plugin cache live as long as the
//! process (one Lambda execution environment); a compiled function as long as its module and
//! manifest are current and the cache keeps it; an instance for one call (`instance: fresh`) or
//! until its first error (`instance: reuse`).

// The public surface: the two binaries' entry points (`bootstrap`, `cli`, and the allocator
// setting the runtime starts with), the adapter and its
// configuration (for the benchmarks), and the compiled-artifact bundle format and publish
// targets the fleet shares (the S3 tests inspect them). Everything else is the crate's own.
pub mod artifacts;
pub mod bootstrap;
pub mod cli;
pub mod publish;

mod app;
mod cache;
mod capabilities;
mod catalog;
mod config;
mod egress;
mod error;
mod history;
mod host;
mod invoke;
mod loader;
mod manifest;
mod metrics;
mod name;
mod router;
mod runtime_api;
mod store;
mod trigger;
mod units;
mod watchdog;

#[cfg(test)]
mod fuzz_tests;

pub use app::Adapter;
pub use cache::fix_mmap_threshold;
pub use config::{Config, StoreLocation};
pub use error::Error;
pub use units::parse_duration;

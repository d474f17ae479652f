//! Property: for random batches with random failing records, the records reported in
//! `batchItemFailures` are exactly the records that did not succeed: no failed record lost, none
//! reported twice, none that succeeded redone. Ordered batches (FIFO queues, streams) also report
//! every record after the first failure, which must not overtake it.
//!
//! Many batches run here, so they go through the library's `Adapter::handle` (the same code the
//! bootstrap runs for each invocation) with real compiled functions, rather than the emulator.

mod common;

use std::sync::OnceLock;

use base64::Engine as _;
use common::{Reaction, Store, event, reacting_to};
use lambda_runtime::{Context, LambdaEvent};
use proptest::prelude::*;
use serde_json::{Value, json};
use wasm_lambda::{Adapter, Config};

/// What a record's payload says: the functions fail on `poison` (job-worker, checker) and
/// `toxic` (auditor, a second function on each source, so records fan out). No function's name
/// holds either word: the name is part of the input.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Payload {
    Ok,
    Poison,
    Toxic,
}

impl Payload {
    fn text(self, index: usize) -> String {
        match self {
            Payload::Ok => format!("job {index}"),
            Payload::Poison => format!("poison {index}"),
            Payload::Toxic => format!("toxic {index}"),
        }
    }
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        3 => Just(Payload::Ok),
        1 => Just(Payload::Poison),
        1 => Just(Payload::Toxic),
    ]
}

struct World {
    runtime: tokio::runtime::Runtime,
    adapter: Adapter,
    _store: Store,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let store = Store::new();
        // The example job-worker records results through its grants; this property is about
        // delivery, so a worker failing on the same payloads stands in for it.
        store.add_wat(
            "job-worker",
            &reacting_to("poison", Reaction::Fail),
            "hooks:\n  - {type: sqs, queue: jobs}\n  - {type: sqs, queue: jobs.fifo}\n",
        );
        let toxic = reacting_to("toxic", Reaction::Fail);
        let any_failure = "  - {type: stream, stream: clicks}\n  - {type: database, source: users}\n";
        store.add_wat(
            "auditor",
            &toxic,
            &format!("hooks:\n  - {{type: sqs, queue: jobs}}\n  - {{type: sqs, queue: jobs.fifo}}\n{any_failure}"),
        );
        store.add_wat(
            "checker",
            &reacting_to("poison", Reaction::Fail),
            &format!("hooks:\n{any_failure}"),
        );
        let dir = store.path().to_str().unwrap().to_string();
        let config = Config::from_lookup(|name| (name == "FUNCTIONS_DIR").then(|| dir.clone()))
            .unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let adapter = runtime.block_on(Adapter::init(config)).unwrap();
        World {
            runtime,
            adapter,
            _store: store,
        }
    })
}

fn handle(event: Value) -> Value {
    let world = world();
    let invocation = LambdaEvent::new(event, Context::default());
    world
        .runtime
        .block_on(world.adapter.handle(invocation))
        .unwrap_or_else(|error| panic!("{error}"))
}

/// A batch of records made from the first record of `fixture`: record `i` gets id `ids[i]` and
/// carries `payloads[i]`, both written in by `edit`.
fn records(
    fixture: &str,
    payloads: &[Payload],
    id: impl Fn(usize) -> String,
    edit: impl Fn(&mut Value, &str, String),
) -> (Value, Vec<String>) {
    let template = event(fixture)["Records"][0].clone();
    let ids: Vec<String> = (0..payloads.len()).map(id).collect();
    let records: Vec<Value> = payloads
        .iter()
        .enumerate()
        .map(|(i, payload)| {
            let mut record = template.clone();
            edit(&mut record, &ids[i], payload.text(i));
            record
        })
        .collect();
    (json!({ "Records": records }), ids)
}

fn sqs(payloads: &[Payload], fifo: bool) -> (Value, Vec<String>) {
    let queue = if fifo { "jobs.fifo" } else { "jobs" };
    let arn = format!("arn:aws:sqs:us-east-1:123456789012:{queue}");
    records(
        "sqs-batch.json",
        payloads,
        |i| format!("m-{i}"),
        |record, id, text| {
            record["messageId"] = json!(id);
            record["body"] = json!(text);
            record["eventSourceARN"] = json!(arn);
        },
    )
}

fn kinesis(payloads: &[Payload]) -> (Value, Vec<String>) {
    records(
        "kinesis-clicks.json",
        payloads,
        |i| format!("{}", 1000 + i),
        |record, id, text| {
            let data = base64::engine::general_purpose::STANDARD.encode(text);
            record["kinesis"]["data"] = json!(data);
            record["kinesis"]["sequenceNumber"] = json!(id);
        },
    )
}

fn dynamodb(payloads: &[Payload]) -> (Value, Vec<String>) {
    records(
        "dynamodb-users.json",
        payloads,
        |i| format!("{}", 5000 + i),
        |record, id, text| {
            record["dynamodb"]["NewImage"]["name"] = json!({"S": text});
            record["dynamodb"]["SequenceNumber"] = json!(id);
        },
    )
}

/// The ids that must be reported: the failing records, and in an ordered batch every record from
/// the first failure on.
fn expected(payloads: &[Payload], ids: &[String], ordered: bool) -> Value {
    let first_failure = payloads.iter().position(|p| *p != Payload::Ok);
    let reported: Vec<Value> = payloads
        .iter()
        .zip(ids)
        .enumerate()
        .filter(|(i, (payload, _))| {
            **payload != Payload::Ok || (ordered && first_failure.is_some_and(|f| *i > f))
        })
        .map(|(_, (_, id))| json!({"itemIdentifier": id}))
        .collect();
    json!({ "batchItemFailures": reported })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 40,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn sqs_reports_exactly_the_failed_messages(
        payloads in proptest::collection::vec(payload(), 1..12),
        fifo in any::<bool>(),
    ) {
        let (event, ids) = sqs(&payloads, fifo);
        prop_assert_eq!(handle(event), expected(&payloads, &ids, fifo));
    }

    #[test]
    fn kinesis_reports_the_first_failure_and_everything_after_it(
        payloads in proptest::collection::vec(payload(), 1..12),
    ) {
        let (event, ids) = kinesis(&payloads);
        prop_assert_eq!(handle(event), expected(&payloads, &ids, true));
    }

    #[test]
    fn dynamodb_reports_the_first_failure_and_everything_after_it(
        payloads in proptest::collection::vec(payload(), 1..12),
    ) {
        let (event, ids) = dynamodb(&payloads);
        prop_assert_eq!(handle(event), expected(&payloads, &ids, true));
    }
}

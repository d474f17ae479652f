//! Timeouts, traps, memory limits, instance reuse and the compile cache, through the real
//! bootstrap under the Lambda Runtime API emulator.

mod common;

use std::time::{Duration, Instant};

use common::{Lambda, Store, WAT_PRELUDE, assert_error};
use serde_json::{Value, json};

const LOOP: &str =
    r#"(module (func (export "handle") (result i32) (loop $l (br $l)) (i32.const 0)))"#;
const TRAP: &str = r#"(module (func (export "handle") (result i32) unreachable))"#;
const RECURSE: &str = r#"(module
  (func $down (param i64) (result i64) (i64.add (call $down (local.get 0)) (i64.const 1)))
  (func (export "handle") (result i32) (drop (call $down (i64.const 0))) (i32.const 0)))"#;
const MEMORY_BOMB: &str = r#"(module
  (memory 1)
  (func (export "handle") (result i32)
    (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable))"#;

/// Counts its calls in a global and outputs the count; traps when given any input.
fn counter() -> String {
    format!(
        r#"(module {WAT_PRELUDE}
  (global $n (mut i32) (i32.const 0))
  (func (export "handle") (result i32)
    (if (i64.gt_u (call $input_length) (i64.const 0)) (then unreachable))
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (i32.store8 (i32.const 2048) (i32.add (i32.const 48) (global.get $n)))
    (call $out (i32.const 2048) (i32.const 1))
    (i32.const 0)))"#
    )
}

/// Fails the way an Extism plugin reports an error: `error_set` and a non-zero return.
const FAILS: &str = r#"(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (memory 1)
  (data (i32.const 0) "order 42 has no items")
  (func (export "handle") (result i32)
    (local $off i64) (local $i i32)
    (local.set $off (call $alloc (i64.const 21)))
    (block $done (loop $copy
      (br_if $done (i32.ge_u (local.get $i) (i32.const 21)))
      (call $store_u8 (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))
        (i32.load8_u (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $copy)))
    (call $error_set (local.get $off))
    (i32.const 1)))"#;

fn error_type(answer: &Value) -> &str {
    answer["errorType"].as_str().unwrap_or("(none)")
}

#[test]
fn a_function_that_never_returns_times_out_and_the_next_call_works() {
    let store = Store::new();
    store.add_wat("spin", LOOP, "timeout: 300ms\n");
    store.add_built("echo", "echo", "");
    let lambda = Lambda::start(store.path(), &[]);

    for _ in 0..2 {
        // The emulator's deadline is already past on arrival, so the manifest timeout applies.
        let started = Instant::now();
        let answer = lambda.call("spin", Value::Null);
        assert_error(&answer, "FunctionTimeout", "limit 300 ms");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(lambda.call("echo", json!("alive")), json!("alive"));
    }
    lambda.wait_for_log("deadline already passed on arrival", Duration::from_secs(5));
}

/// A module whose start function (run when it is instantiated) never returns.
const START_LOOP: &str = r#"(module
  (memory (export "memory") 1)
  (func $forever (loop $again (br $again)))
  (start $forever)
  (func (export "handle") (result i32) (i32.const 0)))"#;

#[test]
fn an_instantiation_that_never_ends_times_out_and_the_next_call_works() {
    let store = Store::new();
    store.add_wat("stuck", START_LOOP, "timeout: 300ms\n");
    store.add_wat(
        "stuck-fresh",
        START_LOOP,
        "timeout: 300ms\ninstance: fresh\n",
    );
    store.add_built("echo", "echo", "");
    let lambda = Lambda::start(store.path(), &[]);

    for _ in 0..2 {
        for function in ["stuck", "stuck-fresh"] {
            let started = Instant::now();
            let answer = lambda.call(function, Value::Null);
            assert_error(&answer, "FunctionTimeout", "limit 300 ms");
            assert!(started.elapsed() < Duration::from_secs(5));
            assert_eq!(lambda.call("echo", json!("alive")), json!("alive"));
        }
    }
}

#[test]
fn without_a_manifest_timeout_the_invocation_deadline_stops_the_call() {
    let store = Store::new();
    store.add_wat("spin", LOOP, "");
    store.add_built("echo", "echo", "");
    let lambda = Lambda::launch_with_timeout(
        &[("FUNCTIONS_DIR", store.path().to_str().unwrap())],
        Duration::from_secs(1),
    );

    for _ in 0..2 {
        let started = Instant::now();
        let answer = lambda.call("spin", Value::Null);
        assert_error(&answer, "FunctionTimeout", "function `spin` timed out");
        // The limit is what the deadline left after DEADLINE_MARGIN (50 ms), not a fallback.
        let message = answer["errorMessage"].as_str().unwrap();
        let limit: u64 = message
            .split("limit ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(|| panic!("{message}"));
        assert!((500..=950).contains(&limit), "{message}");
        assert!(started.elapsed() < Duration::from_secs(2), "{message}");
        assert_eq!(lambda.call("echo", json!("alive")), json!("alive"));
    }
    assert!(!lambda.logs().contains("deadline already passed on arrival"));
}

#[test]
fn traps_memory_limits_and_plugin_errors_fail_cleanly() {
    let store = Store::new();
    store.add_wat("trap", TRAP, "");
    store.add_wat("recurse", RECURSE, "");
    store.add_wat("bomb", MEMORY_BOMB, "memory_limit: 2MiB\n");
    store.add_wat("fails", FAILS, "");
    store.add_wat(
        "exit3",
        r#"(module (func (export "handle") (result i32) (i32.const 3)))"#,
        "",
    );
    store.add_built("echo", "echo", "");
    let lambda = Lambda::start(store.path(), &[]);

    let trap = lambda.call("trap", Value::Null);
    assert_error(&trap, "FunctionTrap", "unreachable");

    let recurse = lambda.call("recurse", Value::Null);
    assert_error(&recurse, "FunctionTrap", "stack");

    let bomb = lambda.call("bomb", Value::Null);
    assert_error(&bomb, "FunctionTrap", "memory limit of 2 MiB exceeded");

    let fails = lambda.call("fails", Value::Null);
    assert_error(&fails, "FunctionError", "order 42 has no items");

    // A non-zero return without an error message is a failure too, never a success.
    let exit3 = lambda.call("exit3", Value::Null);
    assert_error(&exit3, "FunctionError", "non-zero exit code: 3");

    // Every failure leaves the runtime healthy, and the failing functions fail the same way again.
    assert_eq!(
        lambda.call("echo", json!({"ok": true})),
        json!({"ok": true})
    );
    assert_eq!(
        error_type(&lambda.call("bomb", Value::Null)),
        "FunctionTrap"
    );
    assert_eq!(
        error_type(&lambda.call("trap", Value::Null)),
        "FunctionTrap"
    );
}

#[test]
fn reuse_keeps_a_warm_instance_until_an_error_and_fresh_never_does() {
    let store = Store::new();
    store.add_wat("warm", &counter(), "instance: reuse\n");
    store.add_wat("cold", &counter(), "instance: fresh\n");
    let lambda = Lambda::start(store.path(), &[]);

    let calls: Vec<Value> = (0..3).map(|_| lambda.call("warm", Value::Null)).collect();
    assert_eq!(calls, [json!(1), json!(2), json!(3)]);
    assert_eq!(
        error_type(&lambda.call("warm", json!("boom"))),
        "FunctionTrap"
    );
    assert_eq!(
        lambda.call("warm", Value::Null),
        json!(1),
        "the instance is dropped after an error"
    );

    let calls: Vec<Value> = (0..3).map(|_| lambda.call("cold", Value::Null)).collect();
    assert_eq!(calls, [json!(1), json!(1), json!(1)]);
}

#[test]
fn concurrent_cold_invocations_compile_a_function_once() {
    let store = Store::new();
    store.add_built("echo", "echo", "");
    let home = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let lambda = Lambda::start(
        store.path(),
        &[
            ("AWS_LAMBDA_MAX_CONCURRENCY", "4"),
            ("HOME", home.path().to_str().unwrap()),
            ("TMPDIR", tmp.path().to_str().unwrap()),
        ],
    );

    let lambda = &lambda;
    std::thread::scope(|scope| {
        let calls: Vec<_> = (0..4)
            .map(|i| scope.spawn(move || lambda.call("echo", json!({"call": i}))))
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            assert_eq!(call.join().unwrap(), json!({"call": i}));
        }
    });
    lambda.wait_for_log("compiled function function=echo", Duration::from_secs(5));
    let compiles = lambda
        .logs()
        .matches("compiled function function=echo")
        .count();
    assert_eq!(compiles, 1, "{}", lambda.logs());

    // The compile cache lives under the temp directory, never under $HOME (read-only on Lambda).
    assert_eq!(
        std::fs::read_dir(home.path()).unwrap().count(),
        0,
        "something was written to $HOME"
    );
    assert!(tmp.path().join("wasm-lambda/wasmtime").is_dir());
}

/// A start function that runs `count` loop iterations, and a `handle` that runs as many.
fn counting(count: u32) -> String {
    format!(
        r#"(module
  (func $count (local $i i32)
    (loop $again
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const {count})))))
  (start $count)
  (func (export "handle") (result i32) (call $count) (i32.const 0)))"#
    )
}

#[test]
fn fuel_bounds_each_call_and_instantiation_apart() {
    let store = Store::new();
    // About 4 instructions per iteration: 100,000 iterations need about 400,000.
    store.add_wat(
        "enough",
        &counting(100_000),
        "fuel: 1000000
",
    );
    store.add_wat(
        "enough-fresh",
        &counting(100_000),
        "fuel: 1000000
instance: fresh
",
    );
    store.add_wat(
        "starved",
        &counting(100_000),
        "fuel: 10000
",
    );
    store.add_built("echo", "echo", "");
    let lambda = Lambda::start(store.path(), &[]);

    // Instantiating does not spend the call's budget: each call has its whole `fuel`.
    for name in ["enough", "enough-fresh"] {
        for _ in 0..3 {
            assert_eq!(lambda.call(name, Value::Null), json!(""));
        }
    }
    assert_error(
        &lambda.call("starved", Value::Null),
        "ModuleInvalid",
        "its start function or `_initialize` ran out of fuel (10000 instructions",
    );
    assert_eq!(lambda.call("echo", json!("alive")), json!("alive"));
}

#[test]
fn a_fresh_function_its_engines_pool_cannot_hold_still_runs() {
    // Three memories: more than a pooled instance's slots take.
    let wat = common::constant_plugin("\"many\"").replacen(
        "(func $out (param",
        "(memory $second 1) (memory $third 1) (func $out (param",
        1,
    );
    let store = Store::new();
    store.add_wat("many", &wat, "instance: fresh\n");
    let lambda = Lambda::start(store.path(), &[]);
    for _ in 0..3 {
        assert_eq!(lambda.call("many", Value::Null), json!("many"));
    }
    lambda.wait_for_log("instances not pooled", Duration::from_secs(5));
}

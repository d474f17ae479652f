//! The local directory store: discovery, isolation of bad functions, and changes picked up on
//! the next invocation without a restart.

mod common;

use std::time::Duration;

use common::{Lambda, Store, assert_error, constant_plugin};
use serde_json::{Value, json};

fn hello_manifest(greeting: &str) -> String {
    format!(
        "name: hello\nruntime: wasm\nconfig: {{greeting: {greeting}}}\nhooks:\n  - {{type: http, method: GET, path: \"/hello/{{name}}\"}}\n"
    )
}

#[test]
fn one_bad_function_is_skipped_and_the_rest_serve() {
    let store = Store::new();
    store.add_built("echo", "echo", "");
    store.add(
        "broken",
        "name: broken\nruntime: wasm\ntimeout: soon\n",
        None,
    );
    store.add("absent", "name: absent\nruntime: wasm\n", None);
    store.add(
        "garbage",
        "name: garbage\nruntime: wasm\n",
        Some(b"not a wasm module"),
    );
    let lambda = Lambda::start(store.path(), &[]);

    assert_eq!(lambda.call("echo", json!("fine")), json!("fine"));

    let broken = lambda.call("broken", Value::Null);
    assert_eq!(broken["errorType"], "ManifestInvalid", "{broken}");
    let message = broken["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("broken/manifest.yaml: timeout: `soon`"),
        "{message}"
    );

    let absent = lambda.call("absent", Value::Null);
    assert_error(
        &absent,
        "ModuleInvalid",
        "absent/absent.wasm does not exist",
    );

    let garbage = lambda.call("garbage", Value::Null);
    assert_error(
        &garbage,
        "ModuleInvalid",
        "garbage.wasm: is not a WebAssembly module",
    );

    lambda.wait_for_log(
        "function unavailable: invalid manifest",
        Duration::from_secs(5),
    );
    assert_eq!(
        lambda.call("echo", json!("still fine")),
        json!("still fine")
    );
}

#[test]
fn changes_are_served_from_the_next_invocation_without_a_restart() {
    let store = Store::new();
    let hello = std::fs::read(common::built_function("hello")).unwrap();
    store.add("hello", &hello_manifest("Hello"), Some(&hello));
    store.add_wat("version", &constant_plugin("\"v1\""), "");
    let lambda = Lambda::start(store.path(), &[]);

    assert_eq!(lambda.url("GET", "/hello/ada", None).2, "Hello, ada!\n");
    assert_eq!(lambda.call("version", Value::Null), json!("v1"));

    // A new manifest (new config) is used by the next call.
    store.add("hello", &hello_manifest("Howdy"), None);
    assert_eq!(lambda.url("GET", "/hello/ada", None).2, "Howdy, ada!\n");

    // So is a rebuilt module.
    store.add_wat("version", &constant_plugin("\"v2\""), "");
    assert_eq!(lambda.call("version", Value::Null), json!("v2"));

    // A new function is routable at once; a deleted one is gone.
    store.add_wat(
        "added",
        &constant_plugin("new here"),
        "hooks:\n  - {type: http, method: GET, path: /added}\n",
    );
    assert_eq!(lambda.url("GET", "/added", None).2, "new here");
    std::fs::remove_dir_all(store.path().join("version")).unwrap();
    assert_eq!(
        lambda.call("version", Value::Null)["errorType"],
        "FunctionNotFound"
    );

    // A broken edit makes only that function unavailable until it is fixed.
    store.add("hello", "name: hello\nruntime: node\n", None);
    let broken = lambda.url("GET", "/hello/ada", None);
    assert_eq!(broken.0, 404, "{broken:?}");
    assert_eq!(
        lambda.call("hello", Value::Null)["errorType"],
        "ManifestInvalid"
    );
    store.add("hello", &hello_manifest("Back"), None);
    assert_eq!(lambda.url("GET", "/hello/ada", None).2, "Back, ada!\n");
}

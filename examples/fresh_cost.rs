//! What an `instance: fresh` call costs in Extism, phase by phase, against an `instance: reuse`
//! one, on the same pooled engine settings the bootstrap uses: a quick loop to profile
//! (`perf record`) while working on instantiation; `make bench` gives the figures.
//!
//!     cargo build --release --example fresh_cost
//!     target/release/examples/fresh_cost [module.wasm] [calls]   # UNPOOLED=1: no pool
use extism::*;
use std::time::{Duration, Instant};

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or("functions/echo/target/wasm32-unknown-unknown/release/echo.wasm".into());
    let n: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(20000);
    let pooled = std::env::var("UNPOOLED").is_err();
    let wasm = std::fs::read(path).unwrap();
    let mut config = wasm_lambda::artifacts::wasmtime_config();
    if pooled {
        wasm_lambda::artifacts::pool_instances(&mut config, 64 << 20);
    }
    let fns: Vec<Function> = (0..9)
        .map(|i| {
            Function::new(
                format!("f{i}"),
                [PTR],
                [PTR],
                UserData::new(()),
                |_, _, _, _| Ok(()),
            )
            .with_namespace("extism:host/user")
        })
        .collect();
    let compiled = PluginBuilder::new(Manifest::new([Wasm::data(wasm)]).with_memory_max(1024))
        .with_wasmtime_config(config)
        .with_functions(fns)
        .with_cache_disabled()
        .compile()
        .unwrap();
    let input = br#"{"hello":"world","n":1}"#;
    let (mut new, mut init, mut call, mut drop_t) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    let start = Instant::now();
    for _ in 0..n {
        let t0 = Instant::now();
        let mut plugin = Plugin::new_from_compiled(&compiled).unwrap();
        let t1 = Instant::now();
        plugin.initialize().unwrap();
        let t2 = Instant::now();
        let out = plugin
            .call::<&[u8], &[u8]>("handle", input)
            .unwrap()
            .to_vec();
        assert_eq!(out, input);
        let t3 = Instant::now();
        drop(plugin);
        let t4 = Instant::now();
        new += t1 - t0;
        init += t2 - t1;
        call += t3 - t2;
        drop_t += t4 - t3;
    }
    let total = start.elapsed();
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "pooled={pooled} per instance: new {:.1} us, init {:.1} us, call {:.1} us, drop {:.1} us, total {:.1} us",
        us(new),
        us(init),
        us(call),
        us(drop_t),
        us(total)
    );
    // `reuse`: one instance, n calls.
    let mut plugin = Plugin::new_from_compiled(&compiled).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        let _ = plugin
            .call::<&[u8], &[u8]>("handle", input)
            .unwrap()
            .to_vec();
    }
    println!("reuse call {:.1} us", us(t.elapsed()));
}

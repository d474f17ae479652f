//! `make bench`: wasm-lambda against a native Rust Lambda, side by side in one run, and its cold
//! paths, init and memory. Writes BENCHMARKS.md.
//!
//! - Warm: the release `bootstrap` serving `hello.wasm` / `echo.wasm` and a native
//!   `lambda_runtime` handler doing the same work (`examples/native_hello.rs`), both runtimes of
//!   one cargo-lambda emulator, in alternating blocks; latency at the client and CPU time of each
//!   runtime process (`/proc/<pid>/task/*/schedstat`); the bootstrap also with its stdout
//!   `/dev/null`, for what its metrics lines cost.
//! - `instance: reuse` against `instance: fresh`, in process through `Adapter::handle`: the time
//!   an invocation takes, to the microsecond.
//! - Cold misses with the store in S3 (moto): a ~100 KB and a ~1 MB module, compiled, or loaded
//!   from the compiled-artifact cache in /tmp or in S3; read from the metrics lines.
//! - Init: process start to the first `/next`, and to the first routed answer, with 1, 100,
//!   1,000 and 10,000 functions in S3.
//! - Memory: RSS after init, and with 100 functions loaded, with and without CACHE_MAX_BYTES.
//! - Host calls: a key-value get and an S3 get through a function's capabilities against the same
//!   SDK call made natively in this process, on the same local server.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ROOT, S3Server, Store, WAT_PRELUDE, block_on, free_port};
use serde_json::{Value, json};
use wasm_lambda::artifacts::{SlotReset, choose_slot_reset, slot_reset};

const BUCKET: &str = "functions";
/// Invocations per block, and blocks per side, of the warm comparison.
const BLOCK: usize = 500;
const BLOCKS: usize = 10;
/// Trials of each cold and init measurement (their median is reported).
const TRIALS: usize = 9;

/// A child process killed when dropped, its output collected.
struct Running {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(command: &mut Command) -> Running {
        Running::spawn_with_stdout(command, Stdio::piped())
    }

    /// As [`Running::spawn`], its stdout going to `stdout` (collected only if that is a pipe).
    fn spawn_with_stdout(command: &mut Command, stdout: Stdio) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let output = common::collect(&mut child);
        Running { child, output }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the process has spent so far, in nanoseconds, over all its threads.
    fn cpu_ns(&self) -> u64 {
        let tasks = format!("/proc/{}/task", self.pid());
        std::fs::read_dir(tasks)
            .map(|tasks| {
                tasks
                    .filter_map(Result::ok)
                    .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
                    .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or_default()
    }

    /// `VmRSS` or `VmHWM` in KiB.
    fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_default()
    }

    /// The metrics lines the process wrote so far.
    fn metrics(&self) -> Vec<Value> {
        self.output
            .lock()
            .unwrap()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line.get("_aws").is_some())
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bootstrap() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bootstrap"))
}

fn native() -> PathBuf {
    let path = Path::new(ROOT).join("target/release/examples/native_hello");
    assert!(
        path.exists(),
        "build it first: cargo build --release --example native_hello"
    );
    path
}

/// The Lambda environment of a runtime serving `function` on the emulator at `port`.
fn runtime(program: &Path, runtime_api: &str, function: &str) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_LEVEL", "WARN")
        .envs(std::env::var("SLOT_RESET").map(|how| ("SLOT_RESET", how)));
    command
}

/// The emulator, serving the functions `adapter` and `native` (it accepts only binary names of
/// the Cargo project it runs in, so it runs in a scratch one).
struct Emulator {
    port: u16,
    _process: Running,
    _project: tempfile::TempDir,
}

impl Emulator {
    fn start() -> Emulator {
        let project = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(project.path().join("src/bin")).unwrap();
        std::fs::write(
            project.path().join("Cargo.toml"),
            "[package]\nname = \"bench\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             [[bin]]\nname = \"adapter\"\npath = \"src/bin/adapter.rs\"\n\
             [[bin]]\nname = \"native\"\npath = \"src/bin/native.rs\"\n\
             [[bin]]\nname = \"native_ct\"\npath = \"src/bin/native_ct.rs\"\n\
             [[bin]]\nname = \"adapter_null\"\npath = \"src/bin/adapter_null.rs\"\n",
        )
        .unwrap();
        for bin in ["adapter", "native", "native_ct", "adapter_null"] {
            std::fs::write(
                project.path().join(format!("src/bin/{bin}.rs")),
                "fn main() {}\n",
            )
            .unwrap();
        }
        let port = free_port();
        let process = Running::spawn(&mut common::emulator_command(port, project.path()));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the emulator did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Emulator {
            port,
            _process: process,
            _project: project,
        }
    }

    fn runtime_api(&self, function: &str) -> String {
        format!("http://127.0.0.1:{}/.rt/{function}", self.port)
    }

    fn url(&self, function: &str) -> String {
        format!(
            "http://127.0.0.1:{}/2015-03-31/functions/{function}/invocations",
            self.port
        )
    }
}

/// A kept-alive HTTP/1.1 client of the emulator that writes each request whole, in one `write`,
/// as Lambda's front end hands an invocation over. A client that writes a request's head and body
/// apart (ureq does) gets about one answer in four 40 ms late from the emulator, and every runtime
/// measured behind it then waits idle and takes its next invocation cold: a p99 of 45 ms on every
/// side and twice the CPU per invocation.
struct Client {
    connection: std::cell::RefCell<Option<std::io::BufReader<std::net::TcpStream>>>,
}

fn agent() -> Client {
    Client {
        connection: std::cell::RefCell::new(None),
    }
}

impl Client {
    /// POSTs `body` to `url` (`http://host:port/path`): the status and the body of the answer.
    fn post(&self, url: &str, body: &[u8]) -> (u16, Vec<u8>) {
        use std::io::{BufRead, Write};
        let rest = url.strip_prefix("http://").expect("an http:// URL");
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        let mut slot = self.connection.borrow_mut();
        let reader = slot.get_or_insert_with(|| {
            let stream = std::net::TcpStream::connect(authority).unwrap();
            stream.set_nodelay(true).unwrap();
            std::io::BufReader::new(stream)
        });
        reader.get_mut().write_all(&request).unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("{url}: not an HTTP answer: {line:?}"));
        let (mut length, mut chunked, mut close) = (None, false, false);
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let Some((name, value)) = line.trim_end().split_once(':') else {
                break;
            };
            let (name, value) = (name.to_ascii_lowercase(), value.trim().to_ascii_lowercase());
            match name.as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.contains("chunked"),
                "connection" => close = value == "close",
                _ => {}
            }
        }
        let mut answer = Vec::new();
        if chunked {
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let size = usize::from_str_radix(line.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                reader.read_exact(&mut chunk).unwrap();
                if size == 0 {
                    break;
                }
                answer.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(length) = length {
            answer.resize(length, 0);
            reader.read_exact(&mut answer).unwrap();
        } else {
            reader.read_to_end(&mut answer).unwrap();
            close = true;
        }
        if close {
            *slot = None;
        }
        (status, answer)
    }
}

/// Invokes and checks the answer; returns the latency.
fn invoke(client: &Client, url: &str, event: &[u8], expect: &str) -> Duration {
    let started = Instant::now();
    let (_, body) = client.post(url, event);
    let took = started.elapsed();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains(expect), "{url}: {body}");
    took
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 * p) as usize).min(values.len() - 1)]
}

/// The bootstrap as the emulator's `adapter`, serving the directory store `store`, whose
/// manifests it trusts for 30 s as it does the S3 store's.
fn adapter_over(emulator: &Emulator, store: &Store) -> Running {
    Running::spawn(&mut adapter_command(emulator, store, "adapter"))
}

/// The bootstrap as the emulator's `function`, serving the directory store `store`.
fn adapter_command(emulator: &Emulator, store: &Store, function: &str) -> Command {
    let mut command = runtime(&bootstrap(), &emulator.runtime_api(function), function);
    command
        .env("FUNCTIONS_DIR", store.path())
        .env("REVALIDATE_AFTER", "30s")
        .env("TMPDIR", store.path());
    command
}

/// One side of the warm comparison.
#[derive(Default)]
struct Side {
    latencies_us: Vec<f64>,
    cpu_us_per_block: Vec<f64>,
    busy: Duration,
}

impl Side {
    fn block(&mut self, runtime: &Running, agent: &Client, url: &str, event: &[u8], expect: &str) {
        let cpu = runtime.cpu_ns();
        let started = Instant::now();
        for _ in 0..BLOCK {
            let took = invoke(agent, url, event, expect);
            self.latencies_us.push(took.as_secs_f64() * 1e6);
        }
        self.busy += started.elapsed();
        let spent = runtime.cpu_ns().saturating_sub(cpu) as f64 / 1000.0;
        self.cpu_us_per_block.push(spent / BLOCK as f64);
    }

    fn median_us(&self) -> f64 {
        median(&mut self.latencies_us.clone())
    }

    fn p99_us(&self) -> f64 {
        percentile(&mut self.latencies_us.clone(), 0.99)
    }

    fn throughput(&self) -> f64 {
        self.latencies_us.len() as f64 / self.busy.as_secs_f64()
    }

    fn cpu_us(&self) -> f64 {
        median(&mut self.cpu_us_per_block.clone())
    }
}

struct Warm {
    kind: &'static str,
    /// `#[tokio::main]` (a multi-threaded runtime), as `cargo lambda new` writes it.
    native: Side,
    /// The same handler on a current-thread runtime.
    native_ct: Side,
    adapter: Side,
    /// The bootstrap with its stdout `/dev/null`: its metrics lines go nowhere, for next to nothing.
    adapter_null: Side,
    /// Median over the blocks of adapter / native, for latency and for CPU.
    block_latency_ratio: f64,
    block_cpu_ratio: f64,
    /// Median over the blocks of the CPU of adapter / native on one thread, and of the adapter
    /// writing to `/dev/null` / native on one thread: each block against the one run next to it, so
    /// that the host's changes of speed during the run fall on both sides.
    block_cpu_ratio_ct: f64,
    block_cpu_ratio_null_ct: f64,
}

/// The warm comparison for HTTP and direct invocations.
fn warm() -> Vec<Warm> {
    let emulator = Emulator::start();
    let store = Store::new();
    store.add_built(
        "hello",
        "hello",
        "config: {greeting: Hello}\nhooks:\n  - {type: http, method: GET, path: \"/hello/{name}\"}\n",
    );
    store.add_built("echo", "echo", "");
    let native_ct = Running::spawn(
        runtime(&native(), &emulator.runtime_api("native_ct"), "native_ct")
            .env("NATIVE_RUNTIME", "current_thread"),
    );
    let native = Running::spawn(&mut runtime(
        &native(),
        &emulator.runtime_api("native"),
        "native",
    ));
    let adapter = adapter_over(&emulator, &store);
    // The same bootstrap with its stdout `/dev/null`: what writing its metrics lines costs
    // (Lambda reads a runtime's stdout through a pipe, as `adapter` is read here).
    let adapter_null = Running::spawn_with_stdout(
        &mut adapter_command(&emulator, &store, "adapter_null"),
        Stdio::null(),
    );
    let agent = agent();
    let http = serde_json::to_vec(&common::event("apigw-v2-get-hello.json")).unwrap();
    let input = json!({"hello": "world", "n": [1, 2, 3]});
    let kinds: [(&str, Vec<u8>, Vec<u8>, &str); 2] = [
        (
            "HTTP (API Gateway v2 GET /hello/{name})",
            http.clone(),
            http,
            "Hello, ada!",
        ),
        (
            "direct (echo)",
            serde_json::to_vec(&json!({"input": input})).unwrap(),
            serde_json::to_vec(&json!({"function": "echo", "input": input})).unwrap(),
            "world",
        ),
    ];
    let mut results = Vec::new();
    for (kind, native_event, adapter_event, expect) in kinds {
        let (native_url, native_ct_url, adapter_url, adapter_null_url) = (
            emulator.url("native"),
            emulator.url("native_ct"),
            emulator.url("adapter"),
            emulator.url("adapter_null"),
        );
        for _ in 0..200 {
            invoke(&agent, &native_url, &native_event, expect);
            invoke(&agent, &native_ct_url, &native_event, expect);
            invoke(&agent, &adapter_url, &adapter_event, expect);
            invoke(&agent, &adapter_null_url, &adapter_event, expect);
        }
        let (mut n, mut n_ct) = (Side::default(), Side::default());
        let (mut a, mut a_null) = (Side::default(), Side::default());
        let (mut latency_ratios, mut cpu_ratios) = (Vec::new(), Vec::new());
        let (mut cpu_ratios_ct, mut cpu_ratios_null_ct) = (Vec::new(), Vec::new());
        let last_cpu = |side: &Side| *side.cpu_us_per_block.last().unwrap();
        for _ in 0..BLOCKS {
            // The single-threaded native handler runs between the bootstrap's two sides.
            n.block(&native, &agent, &native_url, &native_event, expect);
            a_null.block(
                &adapter_null,
                &agent,
                &adapter_null_url,
                &adapter_event,
                expect,
            );
            n_ct.block(&native_ct, &agent, &native_ct_url, &native_event, expect);
            a.block(&adapter, &agent, &adapter_url, &adapter_event, expect);
            let last = |side: &Side| {
                median(&mut side.latencies_us[side.latencies_us.len() - BLOCK..].to_vec())
            };
            latency_ratios.push(last(&a) / last(&n));
            cpu_ratios.push(last_cpu(&a) / last_cpu(&n));
            cpu_ratios_ct.push(last_cpu(&a) / last_cpu(&n_ct));
            cpu_ratios_null_ct.push(last_cpu(&a_null) / last_cpu(&n_ct));
        }
        results.push(Warm {
            kind,
            native: n,
            native_ct: n_ct,
            adapter: a,
            adapter_null: a_null,
            block_latency_ratio: median(&mut latency_ratios),
            block_cpu_ratio: median(&mut cpu_ratios),
            block_cpu_ratio_ct: median(&mut cpu_ratios_ct),
            block_cpu_ratio_null_ct: median(&mut cpu_ratios_null_ct),
        });
    }
    results
}

/// `instance: reuse` against `instance: fresh`, direct invocations through the Runtime API loop
/// in alternating blocks. A fresh instance is made after each call's response is posted, before
/// the runtime asks for the next invocation.
struct Instances {
    /// Median latency at the client, µs.
    reuse_us: f64,
    fresh_us: f64,
    /// Median critical path inside the runtime (waiting for an instance, instantiating and
    /// calling: `instantiate_ms + call_ms` of the metrics lines), µs.
    reuse_path_us: f64,
    fresh_path_us: f64,
    /// Median over the blocks of the runtime's CPU per invocation, µs: the whole cost of each
    /// mode, the instance made after the response included.
    reuse_cpu_us: f64,
    fresh_cpu_us: f64,
}

fn instances(emulator: &Emulator) -> Instances {
    let store = Store::new();
    store.add_built("reuse", "echo", "instance: reuse\n");
    store.add_built("fresh", "echo", "instance: fresh\n");
    let adapter = adapter_over(emulator, &store);
    let agent = agent();
    let url = emulator.url("adapter");
    let event = |function: &str| {
        serde_json::to_vec(&json!({"function": function, "input": {"n": 1}})).unwrap()
    };
    let (reuse_event, fresh_event) = (event("reuse"), event("fresh"));
    for _ in 0..200 {
        invoke(&agent, &url, &reuse_event, "\"n\"");
        invoke(&agent, &url, &fresh_event, "\"n\"");
    }
    let (mut reuse, mut fresh) = (Vec::new(), Vec::new());
    let (mut reuse_cpu, mut fresh_cpu) = (Vec::new(), Vec::new());
    let per_call_us = |since: u64| (adapter.cpu_ns() - since) as f64 / 1000.0 / BLOCK as f64;
    for _ in 0..BLOCKS {
        let cpu = adapter.cpu_ns();
        for _ in 0..BLOCK {
            reuse.push(invoke(&agent, &url, &reuse_event, "\"n\"").as_secs_f64() * 1e6);
        }
        reuse_cpu.push(per_call_us(cpu));
        let cpu = adapter.cpu_ns();
        for _ in 0..BLOCK {
            fresh.push(invoke(&agent, &url, &fresh_event, "\"n\"").as_secs_f64() * 1e6);
        }
        // The block's last instance, made after its answer, counts in the next block: 1/BLOCK.
        fresh_cpu.push(per_call_us(cpu));
    }
    let metrics = adapter.metrics();
    let path_us = |function: &str| {
        let mut paths: Vec<f64> = metrics
            .iter()
            .filter(|line| line["function"] == function)
            .skip(200)
            .map(|line| {
                (line["instantiate_ms"].as_f64().unwrap() + line["call_ms"].as_f64().unwrap())
                    * 1000.0
            })
            .collect();
        median(&mut paths)
    };
    Instances {
        reuse_us: median(&mut reuse),
        fresh_us: median(&mut fresh),
        reuse_path_us: path_us("reuse"),
        fresh_path_us: path_us("fresh"),
        reuse_cpu_us: median(&mut reuse_cpu),
        fresh_cpu_us: median(&mut fresh_cpu),
    }
}

/// Concurrent callers of one runtime under `AWS_LAMBDA_MAX_CONCURRENCY`, as Managed Instances
/// run it (8 per vCPU for Rust; 16 on this 2-core machine).
const CONCURRENCY: usize = 16;
/// Calls per well-behaved caller in each run.
const CONCURRENT_CALLS: usize = 300;

/// One run of concurrent callers against one runtime.
#[derive(Default)]
struct Load {
    /// Latencies of the well-behaved calls, µs.
    latencies_us: Vec<f64>,
    wall: Duration,
    cpu_ns: u64,
    /// Calls the hostile caller made meanwhile.
    hostile_calls: usize,
}

impl Load {
    fn throughput(&self) -> f64 {
        self.latencies_us.len() as f64 / self.wall.as_secs_f64()
    }

    fn p99_us(&self) -> f64 {
        percentile(&mut self.latencies_us.clone(), 0.99)
    }

    fn median_us(&self) -> f64 {
        median(&mut self.latencies_us.clone())
    }

    fn cpu_us(&self) -> f64 {
        self.cpu_ns as f64 / 1000.0 / (self.latencies_us.len() + self.hostile_calls) as f64
    }
}

/// `CONCURRENCY` callers of `runtime` at `url`: each well-behaved one sends `event`
/// `CONCURRENT_CALLS` times; with `hostile`, one of them instead sends each of those events in
/// turn until the others are done.
fn load(runtime: &Running, url: &str, event: &[u8], expect: &str, hostile: &[Vec<u8>]) -> Load {
    let done = std::sync::atomic::AtomicBool::new(false);
    let cpu = runtime.cpu_ns();
    let started = Instant::now();
    let well_behaved = CONCURRENCY - usize::from(!hostile.is_empty());
    let (latencies, hostile_calls) = std::thread::scope(|scope| {
        let callers: Vec<_> = (0..well_behaved)
            .map(|_| {
                scope.spawn(|| {
                    let agent = agent();
                    (0..CONCURRENT_CALLS)
                        .map(|_| invoke(&agent, url, event, expect).as_secs_f64() * 1e6)
                        .collect::<Vec<f64>>()
                })
            })
            .collect();
        let hostile_caller = (!hostile.is_empty()).then(|| {
            scope.spawn(|| {
                let agent = agent();
                let mut calls = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    invoke(&agent, url, &hostile[calls % hostile.len()], "");
                    calls += 1;
                }
                calls
            })
        });
        let latencies: Vec<f64> = callers
            .into_iter()
            .flat_map(|caller| caller.join().unwrap())
            .collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let hostile_calls = hostile_caller.map_or(0, |caller| caller.join().unwrap());
        (latencies, hostile_calls)
    });
    Load {
        latencies_us: latencies,
        wall: started.elapsed(),
        cpu_ns: runtime.cpu_ns() - cpu,
        hostile_calls,
    }
}

/// The native handler and the adapter, each under `CONCURRENCY` callers of direct `echo`
/// invocations: alone, and with one caller sending a hostile function's calls (one that runs
/// until its 100 ms timeout, one that traps, one that allocates past its 64 MiB limit; natively,
/// the same work: 100 ms of CPU, an error, 64 MiB allocated).
struct Concurrent {
    native: Load,
    adapter: Load,
    native_hostile: Load,
    adapter_hostile: Load,
}

fn concurrent() -> Concurrent {
    let emulator = Emulator::start();
    let store = Store::new();
    store.add_built("echo", "echo", "");
    let hostile = common::hostile_wasm();
    for (name, entrypoint, extra) in [
        ("spin", "spin", "timeout: 100ms\n"),
        ("trap", "crash_bare", ""),
        ("bomb", "memory_bomb", "memory_limit: 64MiB\n"),
    ] {
        store.add_module(
            name,
            &hostile,
            &format!("wasi: true\nentrypoint: {entrypoint}\n{extra}"),
        );
    }
    let concurrency = CONCURRENCY.to_string();
    let native = Running::spawn(
        runtime(&native(), &emulator.runtime_api("native"), "native")
            .env("AWS_LAMBDA_MAX_CONCURRENCY", &concurrency),
    );
    let adapter = Running::spawn(
        runtime(&bootstrap(), &emulator.runtime_api("adapter"), "adapter")
            .env("FUNCTIONS_DIR", store.path())
            .env("REVALIDATE_AFTER", "30s")
            .env("TMPDIR", store.path())
            .env("AWS_LAMBDA_MAX_CONCURRENCY", &concurrency),
    );
    let input = json!({"hello": "world", "n": [1, 2, 3]});
    let native_event = serde_json::to_vec(&json!({"input": input})).unwrap();
    let adapter_event = serde_json::to_vec(&json!({"function": "echo", "input": input})).unwrap();
    let native_hostile: Vec<Vec<u8>> = ["spin", "trap", "bomb"]
        .iter()
        .map(|how| serde_json::to_vec(&json!({"hostile": how})).unwrap())
        .collect();
    let adapter_hostile: Vec<Vec<u8>> = ["spin", "trap", "bomb"]
        .iter()
        .map(|function| serde_json::to_vec(&json!({"function": function, "input": ""})).unwrap())
        .collect();
    let (native_url, adapter_url) = (emulator.url("native"), emulator.url("adapter"));
    // Warm: every engine replica the callers will use, and the hostile functions compiled.
    load(
        &native,
        &native_url,
        &native_event,
        "world",
        &native_hostile,
    );
    load(
        &adapter,
        &adapter_url,
        &adapter_event,
        "world",
        &adapter_hostile,
    );
    Concurrent {
        native: load(&native, &native_url, &native_event, "world", &[]),
        adapter: load(&adapter, &adapter_url, &adapter_event, "world", &[]),
        native_hostile: load(
            &native,
            &native_url,
            &native_event,
            "world",
            &native_hostile,
        ),
        adapter_hostile: load(
            &adapter,
            &adapter_url,
            &adapter_event,
            "world",
            &adapter_hostile,
        ),
    }
}

/// One host call against the same SDK call made natively.
struct HostCall {
    call: &'static str,
    /// Per call, µs (medians).
    native_us: f64,
    host_us: f64,
}

/// Calls per invocation when timing host calls: the invocation's own cost is measured apart
/// (the same invocation making none) and taken off.
const HOST_CALLS: usize = 20;

fn host_calls(s3: &S3Server, emulator: &Emulator) -> Vec<HostCall> {
    let config = s3.sdk_config();
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let client = s3.client();
    s3.create_bucket("uploads");
    s3.put("uploads", "bench/object", &[7u8; 1024]);
    block_on(async {
        wasm_lambda::cli::provision::create_kv_table(&dynamodb, "wasm-lambda-kv")
            .await
            .unwrap();
        // A namespace is its function's own: keyed `<function>/<namespace>`.
        dynamodb
            .put_item()
            .table_name("wasm-lambda-kv")
            .item(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S("capable/bench".into()),
            )
            .item("sk", aws_sdk_dynamodb::types::AttributeValue::S("k".into()))
            .item(
                "value",
                aws_sdk_dynamodb::types::AttributeValue::B(vec![1u8; 64].into()),
            )
            .send()
            .await
            .unwrap();
    });
    let store = Store::new();
    store.add_module(
        "capable",
        &common::hostile_wasm(),
        "wasi: true
entrypoint: capability
grants:
  kv: [bench]
  s3: [{bucket: uploads, prefix: bench/, access: read}]
",
    );
    let mut command = runtime(&bootstrap(), &emulator.runtime_api("adapter"), "adapter");
    command
        .env("FUNCTIONS_DIR", store.path())
        .env("REVALIDATE_AFTER", "30s")
        .env("TMPDIR", store.path())
        .envs(s3.aws_env());
    let _adapter = Running::spawn(&mut command);
    let agent = agent();
    let url = emulator.url("adapter");
    let event = |op: &str, args: Value, repeat: usize| {
        serde_json::to_vec(&json!({
            "function": "capable",
            "input": {"op": op, "args": args, "repeat": repeat},
        }))
        .unwrap()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut results = Vec::new();
    for (call, op, args) in [
        (
            "key-value get (64 B)",
            "kv.get",
            json!({"ns": "bench", "key": "k"}),
        ),
        (
            "S3 get (1 KB)",
            "s3.get",
            json!({"bucket": "uploads", "key": "bench/object"}),
        ),
    ] {
        let (none, some) = (event(op, args.clone(), 0), event(op, args, HOST_CALLS));
        for _ in 0..20 {
            invoke(&agent, &url, &some, "body_len");
        }
        let native_call = || {
            runtime.block_on(async {
                if op == "kv.get" {
                    dynamodb
                        .get_item()
                        .table_name("wasm-lambda-kv")
                        .key(
                            "pk",
                            aws_sdk_dynamodb::types::AttributeValue::S("capable/bench".into()),
                        )
                        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("k".into()))
                        .consistent_read(true)
                        .send()
                        .await
                        .unwrap();
                } else {
                    let object = client
                        .get_object()
                        .bucket("uploads")
                        .key("bench/object")
                        .send()
                        .await
                        .unwrap();
                    object.body.collect().await.unwrap();
                }
            })
        };
        for _ in 0..20 {
            native_call();
        }
        let (mut native, mut host) = (Vec::new(), Vec::new());
        for _ in 0..TRIALS * 3 {
            // Alternating: the invocation without calls, with them, and the native calls.
            let base = invoke(&agent, &url, &none, "null").as_secs_f64();
            let with = invoke(&agent, &url, &some, "body_len").as_secs_f64();
            host.push((with - base).max(0.0) * 1e6 / HOST_CALLS as f64);
            let started = Instant::now();
            for _ in 0..HOST_CALLS {
                native_call();
            }
            native.push(started.elapsed().as_secs_f64() * 1e6 / HOST_CALLS as f64);
        }
        results.push(HostCall {
            call,
            native_us: median(&mut native),
            host_us: median(&mut host),
        });
    }
    results
}

/// A module with a `handle` that outputs `"big"` and `count` filler functions of a few hundred
/// bytes of code each (a loop of arithmetic and memory traffic), all in a table so none is dead.
fn filler_module(count: usize) -> Vec<u8> {
    let mut wat = format!("(module {WAT_PRELUDE}\n  (data (i32.const 1024) \"\\22big\\22\")\n");
    for i in 0..count {
        let mut body = String::new();
        for k in 0..12 {
            let _ = write!(
                body,
                " (local.set $a (i32.add (i32.mul (local.get $a) (i32.const {})) (i32.xor (local.get $b) (i32.const {}))))\
                 (local.set $b (i32.rotl (i32.add (local.get $b) (i32.load (i32.and (local.get $a) (i32.const 4092)))) (i32.const {})))",
                i * 31 + k + 3,
                k * 17 + 1,
                k % 31 + 1
            );
        }
        let _ = writeln!(
            wat,
            "  (func $f{i} (param $n i32) (result i32) (local $a i32) (local $b i32)\
             (local.set $a (local.get $n)) (block $done (loop $again\
             (br_if $done (i32.eqz (local.get $n))){body}\
             (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br $again)))\
             (i32.add (local.get $a) (local.get $b)))"
        );
    }
    let names: Vec<String> = (0..count).map(|i| format!("$f{i}")).collect();
    let _ = writeln!(
        wat,
        "  (table {count} funcref) (elem (i32.const 0) {})",
        names.join(" ")
    );
    wat.push_str(
        "  (func (export \"handle\") (result i32) (call $out (i32.const 1024) (i32.const 5)) (i32.const 0)))",
    );
    wat::parse_str(wat).unwrap()
}

/// A module of about `bytes`.
fn big_module(bytes: usize) -> Vec<u8> {
    let sample = filler_module(100).len();
    filler_module(100 * bytes / sample)
}

fn put(s3: &S3Server, key: &str, body: &[u8]) {
    s3.put(BUCKET, key, body);
}

fn delete_prefix(s3: &S3Server, prefix: &str) {
    let client = s3.client();
    let listed = block_on(
        client
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(prefix)
            .send(),
    )
    .unwrap();
    for key in listed.contents().iter().filter_map(|o| o.key()) {
        block_on(client.delete_object().bucket(BUCKET).key(key).send()).unwrap();
    }
}

/// The bootstrap on the S3 store, with its compile cache in `tmp`, on its own emulator.
fn s3_bootstrap(s3: &S3Server, tmp: &Path, emulator: &Emulator, extra: &[(&str, &str)]) -> Running {
    let mut command = runtime(&bootstrap(), &emulator.runtime_api("adapter"), "adapter");
    command
        .envs(s3.env())
        .env("FUNCTIONS_BUCKET", BUCKET)
        .env("TMPDIR", tmp)
        .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
        .env("RUST_LOG", "info,wasm_lambda=debug");
    for (name, value) in extra {
        command.env(name, value);
    }
    Running::spawn(&mut command)
}

/// The trials of each case: (fetch ms, fetch + compile ms).
struct Cold {
    module: String,
    compiled: Vec<(f64, f64)>,
    from_tmp: Vec<(f64, f64)>,
    from_s3: Vec<(f64, f64)>,
    /// The artifacts `wasm-lambda publish --target host` uploads, from S3.
    published: Vec<(f64, f64)>,
    /// wasmtime alone compiling the module (ms), in this process, alongside each trial.
    compiler: Vec<f64>,
}

/// Median fetch and total over the trials.
fn medians(trials: &[(f64, f64)]) -> (f64, f64) {
    let mut fetch: Vec<f64> = trials.iter().map(|t| t.0).collect();
    let mut total: Vec<f64> = trials.iter().map(|t| t.1).collect();
    (median(&mut fetch), median(&mut total))
}

/// Cold misses: the first invocation of a function in a new environment, its fetch and compile
/// (or artifact load) time from the metrics line.
fn cold(s3: &S3Server, emulator: &Emulator) -> Vec<Cold> {
    let hello = std::fs::read(common::built_function("hello")).unwrap();
    let modules = [("hello", hello), ("big", big_module(1 << 20))];
    let agent = agent();
    let mut results = Vec::new();
    for (name, module) in modules {
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&module));
        put(s3, &format!("{name}/{digest}.wasm"), &module);
        put(
            s3,
            &format!("{name}/manifest.yaml"),
            format!("name: {name}\nruntime: wasm\nmodule: {digest}.wasm\nsha256: {digest}\n")
                .as_bytes(),
        );
        let event =
            serde_json::to_vec(&json!({"function": name, "input": {"params": {"name": "x"}}}))
                .unwrap();
        let load_ms = |tmp: &Path, expect_artifact: &str| {
            let process = s3_bootstrap(s3, tmp, emulator, &[]);
            invoke(&agent, &emulator.url("adapter"), &event, "");
            let started = Instant::now();
            let line = loop {
                if let Some(line) = process.metrics().pop() {
                    break line;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "no metrics line"
                );
                std::thread::sleep(Duration::from_millis(10));
            };
            assert_eq!(
                line["artifact"],
                expect_artifact,
                "{line}\n{}",
                process.output.lock().unwrap()
            );
            // An environment that compiled shares the artifacts in the background, and lives on
            // after the invocation (as in Lambda) long enough to finish.
            if expect_artifact == "compiled" {
                let started = Instant::now();
                while !process
                    .output
                    .lock()
                    .unwrap()
                    .contains("compiled artifacts shared")
                {
                    assert!(
                        started.elapsed() < Duration::from_secs(10),
                        "artifacts not shared"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            let fetch = line["fetch_ms"].as_f64().unwrap();
            (fetch, fetch + line["compile_ms"].as_f64().unwrap())
        };
        // The compiler's part of a miss: the module compiled with a plugin's engine settings,
        // without cache, in this process (its memory already in use: a first compile is left out).
        let engine =
            wasmtime::Engine::new(&wasm_lambda::artifacts::plugin_engine_config(false)).unwrap();
        let compile_alone = || {
            let started = Instant::now();
            wasmtime::Module::new(&engine, &module).unwrap();
            started.elapsed().as_secs_f64() * 1000.0
        };
        compile_alone();
        let target = wasm_lambda::artifacts::CompileTarget::Host;
        let published_key = format!("_compiled/{}", target.key(&digest, false));
        let published_bundle = target.bundle(&module, false).unwrap();
        let (mut compiled, mut from_tmp, mut from_s3) = (Vec::new(), Vec::new(), Vec::new());
        let (mut compiler, mut published) = (Vec::new(), Vec::new());
        for _ in 0..TRIALS {
            delete_prefix(s3, "_compiled/");
            compiler.push(compile_alone());
            let tmp = tempfile::tempdir().unwrap();
            compiled.push(load_ms(tmp.path(), "compiled"));
            from_tmp.push(load_ms(tmp.path(), "loaded"));
            let fresh_tmp = tempfile::tempdir().unwrap();
            from_s3.push(load_ms(fresh_tmp.path(), "loaded"));
            put(s3, &published_key, &published_bundle);
            let fresh_tmp = tempfile::tempdir().unwrap();
            published.push(load_ms(fresh_tmp.path(), "loaded"));
        }
        results.push(Cold {
            module: format!("{name} ({} KB)", module.len() / 1000),
            compiled,
            from_tmp,
            from_s3,
            published,
            compiler,
        });
    }
    results
}

/// Process start to the first `/next` with `count` functions in the store; and the RSS then.
/// One request read off a connection: its request line, and its body by `content-length`.
fn read_request(reader: &mut std::io::BufReader<std::net::TcpStream>) -> Option<String> {
    use std::io::BufRead;
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|n| *n > 0)?;
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(line.trim_end().to_string())
}

/// A stand-in for the Runtime API: hands out `event` on the first `/next` (none after), and
/// reports when each request arrived (its line, the time since `started`).
fn runtime_api(
    listener: TcpListener,
    event: Value,
    started: Instant,
) -> std::sync::mpsc::Receiver<(String, f64)> {
    use std::io::Write as _;
    let (sender, receiver) = std::sync::mpsc::channel();
    let handed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let (sender, event, handed_out) =
                (sender.clone(), event.clone(), Arc::clone(&handed_out));
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = std::io::BufReader::new(stream);
                while let Some(line) = read_request(&mut reader) {
                    let at = started.elapsed().as_secs_f64() * 1000.0;
                    let _ = sender.send((line.clone(), at));
                    if line.contains("/runtime/invocation/next") {
                        if handed_out.swap(true, std::sync::atomic::Ordering::SeqCst) {
                            return; // The second /next waits for ever.
                        }
                        let body = event.to_string();
                        let deadline = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_millis()
                            + 30_000;
                        let _ = write!(
                            writer,
                            "HTTP/1.1 200 OK\r\nlambda-runtime-aws-request-id: r-1\r\n\
                             lambda-runtime-deadline-ms: {deadline}\r\n\
                             lambda-runtime-invoked-function-arn: \
                             arn:aws:lambda:us-east-1:123456789012:function:adapter\r\n\
                             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                    } else {
                        let _ =
                            write!(writer, "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
                    }
                }
            });
        }
    });
    receiver
}

/// Process start to the first `/next`, and to the answer of the first invocation that needs the
/// routing table (an HTTP request for the first function), with `count` functions in S3; RSS at
/// the first `/next`.
fn init(s3: &S3Server, count: usize) -> (f64, f64, u64) {
    let prefix = format!("init{count}/");
    let module = wat::parse_str(common::constant_plugin("\"ok\"")).unwrap();
    s3.put_functions(BUCKET, &prefix, count, &module, "/");
    let client = s3.client();
    block_on(async {
        // As `wasm-lambda publish` leaves it: with the manifest index.
        let target = wasm_lambda::publish::Target::new(BUCKET.to_string(), prefix.clone());
        target.write_index(&client).await.unwrap();
    });
    let mut event: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{ROOT}/tests/fixtures/events/apigw-v2-get-hello.json"
        ))
        .unwrap(),
    )
    .unwrap();
    event["rawPath"] = json!("/f0000");
    event["requestContext"]["http"]["path"] = json!("/f0000");
    let (mut took, mut routed, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..TRIALS {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let runtime_api_url = format!("http://{}", listener.local_addr().unwrap());
        let tmp = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let requests = runtime_api(listener, event.clone(), started);
        let mut command = runtime(&bootstrap(), &runtime_api_url, "adapter");
        command
            .envs(s3.env())
            .env("FUNCTIONS_BUCKET", BUCKET)
            .env("FUNCTIONS_PREFIX", &prefix)
            .env("TMPDIR", tmp.path());
        let process = Running::spawn(&mut command);
        let wait = |what: &str| {
            loop {
                let (line, at) = requests
                    .recv_timeout(Duration::from_secs(120))
                    .unwrap_or_else(|_| panic!("no {what}: {}", process.output.lock().unwrap()));
                if line.contains(what) {
                    return at;
                }
            }
        };
        took.push(wait("/runtime/invocation/next"));
        rss.push(process.memory_kib("VmRSS:") as f64);
        routed.push(wait("/runtime/invocation/r-1/response"));
    }
    (
        median(&mut took),
        median(&mut routed),
        median(&mut rss) as u64,
    )
}

/// Memory with 100 functions loaded.
#[derive(Default)]
struct Memory {
    peak_mib: f64,
    after_mib: f64,
    /// RSS grown per function loaded after the first, KiB.
    per_function_kib: f64,
    /// The cache's weight of one, KiB.
    weight_kib: f64,
}

/// RSS after loading 100 functions, with `CACHE_MAX_BYTES` if given.
fn memory(emulator: &Emulator, cache_max: Option<&str>) -> Memory {
    let store = Store::new();
    let hello = std::fs::read(common::built_function("hello")).unwrap();
    for i in 0..100 {
        let name = format!("h{i:03}");
        store.add(
            &name,
            &format!("name: {name}\nruntime: wasm\n"),
            Some(&hello),
        );
    }
    let mut command = runtime(&bootstrap(), &emulator.runtime_api("adapter"), "adapter");
    command
        .env("FUNCTIONS_DIR", store.path())
        .env("TMPDIR", store.path())
        // For the `compiled function` lines, which carry each one's weight.
        .env("AWS_LAMBDA_LOG_LEVEL", "INFO");
    if let Some(max) = cache_max {
        command.env("CACHE_MAX_BYTES", max);
    }
    let process = Running::spawn(&mut command);
    let agent = agent();
    let mut first_kib = 0;
    for i in 0..100 {
        let event = serde_json::to_vec(
            &json!({"function": format!("h{i:03}"), "input": {"params": {"name": "x"}}}),
        )
        .unwrap();
        invoke(&agent, &emulator.url("adapter"), &event, "Hello");
        if i == 0 {
            first_kib = process.memory_kib("VmRSS:");
        }
    }
    let loaded_kib = process.memory_kib("VmRSS:");
    let weights: Vec<f64> = process
        .output
        .lock()
        .unwrap()
        .lines()
        .filter(|line| line.contains("compiled function"))
        .filter_map(|line| {
            line.split("weight_bytes=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(weights.len(), 100, "a weight per function");
    // Evictions are applied as the cache does its housekeeping: give it a few calls.
    for _ in 0..20 {
        let event =
            serde_json::to_vec(&json!({"function": "h099", "input": {"params": {"name": "x"}}}))
                .unwrap();
        invoke(&agent, &emulator.url("adapter"), &event, "Hello");
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    Memory {
        peak_mib: mib(process.memory_kib("VmHWM:")),
        after_mib: mib(process.memory_kib("VmRSS:")),
        per_function_kib: loaded_kib.saturating_sub(first_kib) as f64 / 99.0,
        weight_kib: weights.iter().sum::<f64>() / weights.len() as f64 / 1024.0,
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {}, {rustc}", kernel.trim())
}

fn check(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

fn main() {
    // `cargo test --all-targets` builds this too, and runs it without `--bench`: nothing to
    // measure then.
    if !std::env::args().any(|arg| arg == "--bench") {
        eprintln!("benchmarks run with `make bench`");
        return;
    }
    // The bootstraps it starts inherit `SLOT_RESET`; the report names the reset they use.
    if let Ok(how) = std::env::var("SLOT_RESET") {
        let how: SlotReset = how
            .parse()
            .unwrap_or_else(|error| panic!("SLOT_RESET={how:?}: {error}"));
        choose_slot_reset(how);
    }
    // `BENCH=cold,init` runs some parts only (and writes no BENCHMARKS.md).
    let only = std::env::var("BENCH").ok();
    let part = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|p| p == name))
    };
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let emulator = Emulator::start();
    let warm = if part("warm") {
        eprintln!("warm: adapter against native ...");
        warm()
    } else {
        Vec::new()
    };
    let instances = part("instances").then(|| {
        eprintln!("instance: reuse against fresh ...");
        instances(&emulator)
    });
    let cold = if part("cold") {
        eprintln!("cold misses from S3 ...");
        cold(&s3, &emulator)
    } else {
        Vec::new()
    };
    let inits: Vec<(usize, f64, f64, u64)> = if part("init") {
        eprintln!("init ...");
        [1, 100, 1000, 10_000]
            .into_iter()
            .map(|count| {
                let (ms, routed, rss) = init(&s3, count);
                (count, ms, routed, rss)
            })
            .collect()
    } else {
        Vec::new()
    };
    let concurrency = part("concurrency").then(|| {
        eprintln!("concurrent callers ...");
        concurrent()
    });
    let host = if part("host") {
        eprintln!("host calls against native SDK calls ...");
        host_calls(&s3, &emulator)
    } else {
        Vec::new()
    };
    let (unbounded, bounded) = if part("memory") {
        eprintln!("memory ...");
        (memory(&emulator, None), memory(&emulator, Some("16MiB")))
    } else {
        (Memory::default(), Memory::default())
    };

    let mut doc = String::new();
    let _ = writeln!(doc, "# Benchmarks\n");
    let _ = writeln!(
        doc,
        "Measured by `make bench` (the harness is `benches/harness.rs`) on {}. Figures are medians \
         unless said otherwise; ratios compare two things measured side by side in the same run. \
         Absolute times on a shared 2-core machine are noisy; ratios are what to read.\n",
        machine()
    );
    let _ = writeln!(
        doc,
        "## Warm invocations: wasm-lambda against a native Rust Lambda\n"
    );
    let _ = writeln!(
        doc,
        "All are runtimes of one cargo-lambda Runtime API emulator, invoked in alternating blocks of \
         {BLOCK} ({} each). Latency is at the client, through the emulator; CPU is the runtime \
         process's own time per invocation. The native Lambda (`examples/native_hello.rs`) runs as \
         `cargo lambda new` writes one, under `#[tokio::main]` (a multi-threaded runtime): the \
         baseline of the target. It also runs on a current-thread runtime (`native, 1 thread`), as \
         the bootstrap does with sequential invocations. The adapter serves `functions/hello` and \
         `functions/echo` from a directory store trusted for 30 s (as the S3 store is), and writes \
         a metrics line per invocation to its stdout, a pipe the harness reads, as Lambda reads \
         a runtime's; `wasm-lambda, stdout /dev/null` is the same bootstrap writing its lines to \
         `/dev/null`: what is left without them. The per-block CPU ratios divide each block's CPU by that \
         of the block run next to it (the single-threaded native handler runs between the \
         bootstrap's two sides), so that the host's changes of speed during the run fall on both \
         sides; the target is read on that ratio.\n",
        BLOCK * BLOCKS
    );
    let _ = writeln!(
        doc,
        "| invocation | side | median | p99 | throughput | CPU / invocation |"
    );
    let _ = writeln!(doc, "|---|---|---|---|---|---|");
    for w in &warm {
        for (side, s) in [
            ("native", &w.native),
            ("native, 1 thread", &w.native_ct),
            ("wasm-lambda", &w.adapter),
            ("wasm-lambda, stdout /dev/null", &w.adapter_null),
        ] {
            let _ = writeln!(
                doc,
                "| {} | {side} | {:.0} µs | {:.0} µs | {:.0}/s | {:.0} µs |",
                w.kind,
                s.median_us(),
                s.p99_us(),
                s.throughput(),
                s.cpu_us()
            );
        }
    }
    let _ = writeln!(
        doc,
        "\n| invocation | median latency ratio | per-block latency ratio | per-block CPU ratio | target: median ratio ≤ 1.10 | against native, 1 thread: latency, CPU, per-block CPU | target: per-block CPU ≤ 1.2 × native, 1 thread | stdout /dev/null: per-block CPU against native, 1 thread |"
    );
    let _ = writeln!(doc, "|---|---|---|---|---|---|---|---|");
    for w in &warm {
        let ratio = w.adapter.median_us() / w.native.median_us();
        let _ = writeln!(
            doc,
            "| {} | {ratio:.3} | {:.3} | {:.3} | {} | {:.3}, {:.3}, {:.3} | {} | {:.3} |",
            w.kind,
            w.block_latency_ratio,
            w.block_cpu_ratio,
            check(ratio <= 1.10),
            w.adapter.median_us() / w.native_ct.median_us(),
            w.adapter.cpu_us() / w.native_ct.cpu_us(),
            w.block_cpu_ratio_ct,
            check(w.block_cpu_ratio_ct <= 1.2),
            w.block_cpu_ratio_null_ct,
        );
    }
    let _ = writeln!(doc, "\n## `instance: reuse` against `instance: fresh`\n");
    let _ = writeln!(
        doc,
        "Direct invocations of `echo` as `instance: reuse` and as `instance: fresh`, through the \
         Runtime API loop (the emulator), {} each, alternating blocks. `fresh` makes each call's \
         instance (instantiated, its memory initialised) once the previous call's response is \
         posted, before the runtime asks for the next invocation. The critical path is measured \
         inside the runtime: waiting for an instance, instantiating and calling \
         (`instantiate_ms + call_ms` of the metrics lines), median. The latency at the client \
         also carries the preparation, since the client sends each invocation once the previous \
         one has answered: the runtime asks for it only when its next instance is ready. CPU is \
         the runtime process's own time per invocation (median over the blocks): everything a \
         mode costs, the instance made after the answer included. A `fresh` instance's pooled \
         slot is reset on this host by {}.\n",
        BLOCK * BLOCKS,
        match slot_reset() {
            SlotReset::Scan => {
                "the kernel's page scan (`SLOT_RESET=scan`, `PAGEMAP_SCAN`: the pages that \
                 hold anything zeroed in place, up to 1 MiB)"
            }
            SlotReset::Read => {
                "reading the page map (`SLOT_RESET=read`: the pages present or swapped out \
                 zeroed in place, up to 1 MiB)"
            }
            SlotReset::Zero => {
                "zeroing the first 16 KiB of each memory and handing the rest back \
                 (`SLOT_RESET=zero`)"
            }
        }
    );
    let _ = writeln!(doc, "| measure | reuse | fresh | fresh adds | target |");
    let _ = writeln!(doc, "|---|---|---|---|---|");
    if let Some(i) = &instances {
        for (measure, reuse, fresh, limit) in [
            ("CPU per invocation", i.reuse_cpu_us, i.fresh_cpu_us, 50.0),
            (
                "critical path, in the runtime",
                i.reuse_path_us,
                i.fresh_path_us,
                20.0,
            ),
        ] {
            let adds = fresh - reuse;
            let _ = writeln!(
                doc,
                "| {measure} | {reuse:.1} µs | {fresh:.1} µs | {adds:.1} µs | ≤ {limit} µs: {} |",
                check(adds <= limit)
            );
        }
        let _ = writeln!(
            doc,
            "| latency at the client | {:.1} µs | {:.1} µs | {:.1} µs | (reported) |",
            i.reuse_us,
            i.fresh_us,
            i.fresh_us - i.reuse_us
        );
    }
    let _ = writeln!(doc, "\n## Cold misses, store in S3\n");
    let _ = writeln!(
        doc,
        "The first invocation of a function in a new execution environment: fetching the module from \
         S3 (moto, on loopback) and compiling it, or loading its compiled artifact from the cache in \
         /tmp or from S3 (`_compiled/`). Fetch + compile time from the metrics line, median of {TRIALS} \
         new processes each, and the fastest and slowest. `wasmtime alone` is the compiler's part of \
         a compiled miss, measured alongside each trial: `wasmtime::Module::new` of the module with a \
         plugin's engine settings, in the harness's own process; the rest of a miss is the fetch, \
         Extism's plugin setup (its kernel from the cache, linking, a first instance) and a new \
         process's first use of its memory. `artifact in S3` is the bundle an environment that \
         compiled shared; `published` the one `wasm-lambda publish --target host` uploads, so \
         that no environment compiles: the first call of a function published with its \
         artifacts.\n"
    );
    let _ = writeln!(
        doc,
        "| module | compiled | wasmtime alone | artifact in /tmp | artifact in S3 | published | target (100 KB): ≤ 80 ms compiled, ≤ 10 ms published |"
    );
    let _ = writeln!(doc, "|---|---|---|---|---|---|---|");
    let cell = |trials: &[(f64, f64)]| {
        let (fetch, total) = medians(trials);
        let mut totals: Vec<f64> = trials.iter().map(|t| t.1).collect();
        totals.sort_by(f64::total_cmp);
        let (fastest, slowest) = (totals[0], totals[totals.len() - 1]);
        format!("{total:.1} ms (fetch {fetch:.1}; {fastest:.1}-{slowest:.1})")
    };
    for (i, c) in cold.iter().enumerate() {
        let (compiled, published) = (medians(&c.compiled).1, medians(&c.published).1);
        let target = if i == 0 {
            format!(
                "compiled: {}; published: {}",
                check(compiled <= 80.0),
                check(published <= 10.0)
            )
        } else {
            "(reported)".to_string()
        };
        let _ = writeln!(
            doc,
            "| {} | {} | {:.1} ms | {} | {} | {} | {target} |",
            c.module,
            cell(&c.compiled),
            median(&mut c.compiler.clone()),
            cell(&c.from_tmp),
            cell(&c.from_s3),
            cell(&c.published)
        );
    }
    let _ = writeln!(doc, "\n## Init\n");
    let _ = writeln!(
        doc,
        "Process start to the first `/next` (init), functions in S3 (moto on loopback) as \
         `wasm-lambda publish` leaves them, with the manifest index; RSS at that moment. The \
         store is listed once the first invocation has answered, not during init: `first routed \
         answer` is process start to the answer of the first invocation that needs the routing \
         table (an HTTP request for the first function, handed out on the first `/next`), which \
         lists the store itself (and reads the index once) and compiles. Median of {TRIALS}.\n"
    );
    let _ = writeln!(
        doc,
        "| functions | init | first routed answer | RSS at init | target |"
    );
    let _ = writeln!(doc, "|---|---|---|---|---|");
    for (count, ms, routed, rss) in &inits {
        let target = match count {
            10_000 => format!("init ≤ 50 ms: {}", check(*ms <= 50.0)),
            100 => format!("init ≤ 150 ms: {}", check(*ms <= 150.0)),
            1 => format!("RSS ≤ 30 MB: {}", check(*rss as f64 / 1024.0 <= 30.0)),
            _ => "(reported)".to_string(),
        };
        let _ = writeln!(
            doc,
            "| {count} | {ms:.1} ms | {routed:.1} ms | {:.1} MiB | {target} |",
            *rss as f64 / 1024.0
        );
    }
    let _ = writeln!(doc, "\n## Memory with 100 functions loaded\n");
    let _ = writeln!(
        doc,
        "100 copies of `hello` each invoked once, then a few more calls. `RSS per function` is \
         what the process grew by per function loaded after the first (its compiled code, \
         engine and warm instance), `weight` what the plugin cache counts for one; with a \
         bounded cache, functions are evicted as they are loaded, so the growth is not theirs.\n"
    );
    let _ = writeln!(
        doc,
        "| CACHE_MAX_BYTES | peak RSS | RSS after | RSS per function | weight | weight / RSS | target: ≤ 1 MiB, weight within 25% |"
    );
    let _ = writeln!(doc, "|---|---|---|---|---|---|---|");
    let per = &unbounded;
    let ratio = per.weight_kib / per.per_function_kib;
    let _ = writeln!(
        doc,
        "| default (256 MiB) | {:.1} MiB | {:.1} MiB | {:.0} KiB | {:.0} KiB | {ratio:.2} | {} |",
        per.peak_mib,
        per.after_mib,
        per.per_function_kib,
        per.weight_kib,
        check(per.per_function_kib <= 1024.0 && (0.75..=1.25).contains(&ratio))
    );
    let _ = writeln!(
        doc,
        "| 16MiB | {:.1} MiB | {:.1} MiB | | {:.0} KiB | | |",
        bounded.peak_mib, bounded.after_mib, bounded.weight_kib
    );
    if let Some(c) = &concurrency {
        let _ = writeln!(doc, "\n## Concurrent invocations\n");
        let _ = writeln!(
            doc,
            "`AWS_LAMBDA_MAX_CONCURRENCY={CONCURRENCY}` (Managed Instances run 8 per vCPU for \
             Rust): {CONCURRENCY} callers through the emulator, each making {CONCURRENT_CALLS} \
             direct invocations of `echo`, against the native handler under \
             `lambda_runtime::run_concurrent` on `#[tokio::main]`. Then the same with one caller \
             replaced by a hostile one, which calls in turn a function that runs until its 100 ms \
             timeout, one that traps and one that allocates past its 64 MiB limit (natively: \
             100 ms of CPU, an error, 64 MiB allocated) until the others are done; latencies are \
             the well-behaved calls'. CPU per invocation counts every call, hostile ones \
             included.\n"
        );
        let _ = writeln!(
            doc,
            "| run | side | throughput | median | p99 | CPU / invocation | hostile calls |"
        );
        let _ = writeln!(doc, "|---|---|---|---|---|---|---|");
        for (run, side, l) in [
            ("16 callers", "native", &c.native),
            ("16 callers", "wasm-lambda", &c.adapter),
            ("15 callers + 1 hostile", "native", &c.native_hostile),
            ("15 callers + 1 hostile", "wasm-lambda", &c.adapter_hostile),
        ] {
            let _ = writeln!(
                doc,
                "| {run} | {side} | {:.0}/s | {:.0} µs | {:.0} µs | {:.0} µs | {} |",
                l.throughput(),
                l.median_us(),
                l.p99_us(),
                l.cpu_us(),
                l.hostile_calls
            );
        }
        let _ = writeln!(
            doc,
            "\n| ratio, wasm-lambda / native | throughput | p99 |\n|---|---|---|\n| 16 callers | {:.3} | {:.3} |\n| with a hostile caller | {:.3} | {:.3} |",
            c.adapter.throughput() / c.native.throughput(),
            c.adapter.p99_us() / c.native.p99_us(),
            c.adapter_hostile.throughput() / c.native_hostile.throughput(),
            c.adapter_hostile.p99_us() / c.native_hostile.p99_us(),
        );
    }
    let _ = writeln!(doc, "\n## Host calls against native SDK calls\n");
    let _ = writeln!(
        doc,
        "A function's capability call (the hostile test plugin's raw `call`, {HOST_CALLS} per \
         invocation, less the same invocation making none) against the same SDK call made by the \
         harness itself on a current-thread runtime, both on the same local server (moto, on \
         loopback), alternating, median of {} trials. The server's own time dominates both.\n",
        TRIALS * 3
    );
    let _ = writeln!(
        doc,
        "| call | native SDK | through the host | overhead | target: ≤ native × 1.10 + 50 µs |"
    );
    let _ = writeln!(doc, "|---|---|---|---|---|");
    for h in &host {
        let _ = writeln!(
            doc,
            "| {} | {:.0} µs | {:.0} µs | {:+.0} µs ({:.2}×) | {} |",
            h.call,
            h.native_us,
            h.host_us,
            h.host_us - h.native_us,
            h.host_us / h.native_us,
            check(h.host_us <= h.native_us * 1.10 + 50.0)
        );
    }
    let _ = writeln!(
        doc,
        "\nReproduce: `make bench` (about ten minutes, most of it the release build)."
    );

    if only.is_none() {
        std::fs::write(Path::new(ROOT).join("BENCHMARKS.md"), &doc).unwrap();
    }
    println!("{doc}");
}

//! Test harness: the real `bootstrap` binary under cargo-lambda's Lambda Runtime API emulator,
//! each on free loopback ports, over a function store made for the test.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `cargo-lambda` from the project's virtualenv (installed by `make test`), else from PATH.
fn cargo_lambda() -> PathBuf {
    let venv = Path::new(ROOT).join(".venv/bin/cargo-lambda");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("cargo-lambda")
    }
}

/// A child process killed when dropped, its output collected in memory.
struct Process {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Process {
    fn spawn(mut command: Command) -> Process {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut output = output.lock().unwrap();
                    output.push_str(&line);
                    output.push('\n');
                }
            });
        }
        Process { child, output }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The emulator and one bootstrap connected to it.
pub struct Lambda {
    pub port: u16,
    emulator: Process,
    bootstrap: Process,
    agent: ureq::Agent,
}

/// Strips ANSI colour codes so log assertions read plain text.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Lambda {
    /// Starts the emulator and the bootstrap over `functions` with extra environment `env`.
    pub fn start(functions: &Path, env: &[(&str, &str)]) -> Lambda {
        let port = free_port();
        let mut emulator = Command::new(cargo_lambda());
        emulator
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
            ])
            .arg(port.to_string())
            .current_dir(ROOT);
        let emulator = Process::spawn(emulator);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "emulator did not listen on {port}: {}",
                emulator.output.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }

        let mut bootstrap = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
        bootstrap
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("RUST_LOG", "info")
            .env("FUNCTIONS_DIR", functions);
        for (name, value) in env {
            bootstrap.env(name, value);
        }
        let bootstrap = Process::spawn(bootstrap);
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let lambda = Lambda {
            port,
            emulator,
            bootstrap,
            agent,
        };
        lambda.wait_for_log("catalog loaded", Duration::from_secs(30));
        lambda
    }

    /// Invokes the function with `event`; returns the emulator's JSON answer.
    pub fn invoke(&self, event: &Value) -> Value {
        let url = format!(
            "http://127.0.0.1:{}/2015-03-31/functions/_/invocations",
            self.port
        );
        let mut response = self
            .agent
            .post(&url)
            .send_json(event)
            .unwrap_or_else(|e| panic!("invoke failed: {e}\nlogs:\n{}", self.logs()));
        response
            .body_mut()
            .read_json()
            .unwrap_or_else(|e| panic!("answer is not JSON: {e}\nlogs:\n{}", self.logs()))
    }

    /// `{"function": name, "input": input}`
    pub fn call(&self, function: &str, input: Value) -> Value {
        self.invoke(&serde_json::json!({"function": function, "input": input}))
    }

    /// A Function URL request: (status, content-type, body).
    pub fn url(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String, String) {
        let url = format!("http://127.0.0.1:{}/lambda-url/_{path}", self.port);
        let mut response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.unwrap_or("")),
        }
        .unwrap_or_else(|e| panic!("{method} {path} failed: {e}\nlogs:\n{}", self.logs()));
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap();
        (status, content_type, body)
    }

    /// Everything the bootstrap logged so far, without colours.
    pub fn logs(&self) -> String {
        plain(&self.bootstrap.output.lock().unwrap())
    }

    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let started = Instant::now();
        while !self.logs().contains(needle) {
            assert!(
                started.elapsed() < timeout,
                "bootstrap never logged {needle:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Where `make functions` leaves an example function's module.
pub fn built_function(name: &str) -> PathBuf {
    let path = Path::new(ROOT).join(format!(
        "functions/{name}/target/wasm32-unknown-unknown/release/{name}.wasm"
    ));
    assert!(
        path.exists(),
        "{} is missing: run `make functions` (make test does)",
        path.display()
    );
    path
}

/// `count_vowels.wasm`, the plugin shipped inside the `extism-pdk` crate package: a plugin
/// built elsewhere, which must run unchanged.
pub fn count_vowels_wasm() -> PathBuf {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(Path::new(ROOT).join("functions/echo/Cargo.toml"))
        .output()
        .expect("cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let package = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "extism-pdk")
        .expect("extism-pdk in the echo function's dependencies");
    let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap());
    manifest.parent().unwrap().join("count_vowels.wasm")
}

/// A function store in a temporary directory.
pub struct Store {
    pub dir: tempfile::TempDir,
}

impl Store {
    pub fn new() -> Store {
        Store {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `<name>/manifest.yaml` and, if given, `<name>/<name>.wasm`.
    pub fn add(&self, name: &str, manifest: &str, module: Option<&[u8]>) -> &Store {
        let dir = self.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(module) = module {
            std::fs::write(dir.join(format!("{name}.wasm")), module).unwrap();
        }
        std::fs::write(dir.join("manifest.yaml"), manifest).unwrap();
        self
    }

    /// Adds a function from WAT source with `extra` manifest lines.
    pub fn add_wat(&self, name: &str, wat: &str, extra: &str) -> &Store {
        let module = wat::parse_str(wat).unwrap();
        self.add(
            name,
            &format!("name: {name}\nruntime: wasm\n{extra}"),
            Some(&module),
        )
    }

    /// Adds an example function's built module with a manifest written here.
    pub fn add_built(&self, name: &str, module_of: &str, manifest_extra: &str) -> &Store {
        let module = std::fs::read(built_function(module_of)).unwrap();
        self.add(
            name,
            &format!("name: {name}\nruntime: wasm\n{manifest_extra}"),
            Some(&module),
        )
    }
}

/// Extism imports plus helpers shared by the WAT test plugins: `$out` copies `len` bytes of
/// linear memory at `ptr` to the plugin's output.
pub const WAT_PRELUDE: &str = r#"
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (memory (export "memory") 1)
  (func $out (param $ptr i32) (param $len i32)
    (local $off i64) (local $i i32)
    (local.set $off (call $alloc (i64.extend_i32_u (local.get $len))))
    (block $done
      (loop $copy
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (call $store_u8
          (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $copy)))
    (call $output_set (local.get $off) (i64.extend_i32_u (local.get $len))))
"#;

/// A plugin whose `handle` outputs `text`.
pub fn constant_plugin(text: &str) -> String {
    let escaped: String = text.bytes().map(|b| format!("\\{b:02x}")).collect();
    format!(
        r#"(module {WAT_PRELUDE}
  (data (i32.const 1024) "{escaped}")
  (func (export "handle") (result i32)
    (call $out (i32.const 1024) (i32.const {len}))
    (i32.const 0)))"#,
        len = text.len()
    )
}

/// Reads an event fixture from `tests/fixtures/events/`.
pub fn event(name: &str) -> Value {
    let path = Path::new(ROOT).join("tests/fixtures/events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Asserts that `answer` is a Lambda error of `error_type` whose message contains `needle`.
#[track_caller]
pub fn assert_error(answer: &Value, error_type: &str, needle: &str) {
    assert_eq!(answer["errorType"], error_type, "{answer}");
    let message = answer["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "{error_type} message lacks {needle:?}: {message}"
    );
}

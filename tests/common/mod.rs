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

/// A free loopback port (bound then released), never the same twice in one test process: tests
/// run in parallel, and a port released by one could otherwise be handed to another's server.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap();
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
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
        let output = collect(&mut child);
        Process { child, output }
    }
}

/// Collects a child's piped stdout and stderr, line by line, into one growing string.
pub fn collect(child: &mut Child) -> Arc<Mutex<String>> {
    let output = Arc::new(Mutex::new(String::new()));
    let streams = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ];
    for stream in streams.into_iter().flatten() {
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
    output
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
    /// The bootstrap's own `/tmp` (a fresh execution environment) unless the test gives one.
    _tmp: Option<tempfile::TempDir>,
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

/// `cargo lambda watch` serving only the Runtime API emulator on `port`, for the binaries of the
/// Cargo project in `project`.
pub fn emulator_command(port: u16, project: &Path) -> Command {
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
        .current_dir(project);
    emulator
}

impl Lambda {
    /// Starts the emulator and the bootstrap over the directory store `functions`, with extra
    /// environment `env`.
    pub fn start(functions: &Path, env: &[(&str, &str)]) -> Lambda {
        let dir = functions.to_str().unwrap();
        let mut all = vec![("FUNCTIONS_DIR", dir)];
        all.extend_from_slice(env);
        Lambda::launch(&all)
    }

    /// Starts the emulator and the bootstrap with environment `env` (plus the Lambda basics).
    pub fn launch(env: &[(&str, &str)]) -> Lambda {
        Lambda::launch_with(env, None)
    }

    /// Like [`Lambda::launch`], but every invocation reaches the bootstrap with a real deadline
    /// `timeout` from when it is handed over, as Lambda sends it (the emulator sends none).
    pub fn launch_with_timeout(env: &[(&str, &str)], timeout: Duration) -> Lambda {
        Lambda::launch_with(env, Some(timeout))
    }

    fn launch_with(env: &[(&str, &str)], timeout: Option<Duration>) -> Lambda {
        let port = free_port();
        let emulator = Process::spawn(emulator_command(port, Path::new(ROOT)));
        wait_for_port(port, || emulator.output.lock().unwrap().clone());

        let runtime_port = match timeout {
            Some(timeout) => deadline_proxy(port, timeout),
            None => port,
        };
        let mut bootstrap = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
        bootstrap
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{runtime_port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            // No instance metadata here: a capability without AWS configured fails at once
            // rather than after the metadata service's timeouts.
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "info");
        let tmp =
            (!env.iter().any(|(name, _)| *name == "TMPDIR")).then(|| tempfile::tempdir().unwrap());
        if let Some(tmp) = &tmp {
            bootstrap.env("TMPDIR", tmp.path());
        }
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
            _tmp: tmp,
        };
        // Init is over when the bootstrap says it is ready for invocations. Above info nothing
        // says so; invocations then simply queue until it is.
        let quiet = env.iter().any(|(name, value)| {
            *name == "AWS_LAMBDA_LOG_LEVEL"
                && matches!(value.to_ascii_uppercase().as_str(), "WARN" | "ERROR")
        });
        let started = Instant::now();
        while !quiet && !lambda.logs().contains("ready for invocations") {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "bootstrap did not start:\n{}\nemulator:\n{}",
                lambda.logs(),
                lambda.emulator.output.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        lambda
    }

    /// Invokes the function with `event`; returns the emulator's JSON answer.
    pub fn invoke(&self, event: &Value) -> Value {
        self.invoke_raw(&event.to_string())
    }

    /// Invokes the function with `body` as it is, JSON or not; returns the emulator's answer.
    pub fn invoke_raw(&self, body: &str) -> Value {
        let url = format!(
            "http://127.0.0.1:{}/2015-03-31/functions/_/invocations",
            self.port
        );
        let mut response = self
            .agent
            .post(&url)
            .header("content-type", "application/json")
            .send(body)
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

    /// The bootstrap's process id.
    pub fn bootstrap_pid(&self) -> u32 {
        self.bootstrap.child.id()
    }

    /// The bootstrap's resident memory, in KiB.
    pub fn bootstrap_rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.bootstrap.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// Everything the bootstrap logged so far, without colours.
    pub fn logs(&self) -> String {
        plain(&self.bootstrap.output.lock().unwrap())
    }

    /// The metrics lines (EMF) written so far for calls of `function`, in order. A call's line is
    /// written once its response is posted: it may come after the answer.
    pub fn metrics_of(&self, function: &str) -> Vec<Value> {
        self.logs()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line.get("_aws").is_some() && line["function"] == function)
            .collect()
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

/// How a [`proxy`] passes the heads of the HTTP messages of one direction: each as the edit
/// returns it, or, when it returns `None`, nothing more on that connection, which is held open,
/// silent. Bodies (by `content-length`) pass unchanged.
pub type HeadEdit = Arc<dyn Fn(String) -> Option<String> + Send + Sync>;

/// Listens on a free loopback port and forwards every connection to `upstream`, the requests'
/// heads through `requests` and the responses' through `responses` (a direction without an edit
/// is copied as it is). Returns the port.
pub fn proxy(upstream: u16, requests: Option<HeadEdit>, responses: Option<HeadEdit>) -> u16 {
    let port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (client_in, server_out) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let requests = requests.clone();
            std::thread::spawn(move || relay(client_in, server_out, requests));
            let responses = responses.clone();
            std::thread::spawn(move || relay(server, client, responses));
        }
    });
    port
}

/// Copies from `from` to `to`, each message's head through `edit` (see [`HeadEdit`]).
fn relay(mut from: TcpStream, mut to: TcpStream, edit: Option<HeadEdit>) {
    use std::io::Write;
    let Some(edit) = edit else {
        let _ = std::io::copy(&mut from, &mut to);
        return;
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    // Body bytes of the current message still to pass through unchanged.
    let mut body_left = 0usize;
    loop {
        if body_left > 0 && !pending.is_empty() {
            let take = body_left.min(pending.len());
            let body: Vec<u8> = pending.drain(..take).collect();
            body_left -= take;
            if to.write_all(&body).is_err() {
                return;
            }
            continue;
        }
        if body_left == 0
            && let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head: Vec<u8> = pending.drain(..end + 4).collect();
            let Some(head) = edit(String::from_utf8_lossy(&head).into_owned()) else {
                let _held = (from, to);
                loop {
                    std::thread::park();
                }
            };
            body_left = head
                .split("\r\n")
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if to.write_all(head.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => pending.extend_from_slice(&buffer[..read]),
        }
    }
    let _ = to.write_all(&pending);
}

/// Sits between the bootstrap and the emulator and gives each invocation a real deadline: the
/// emulator's `Lambda-Runtime-Deadline-Ms: 600000` becomes now + `timeout` in epoch
/// milliseconds, as Lambda sends it. Everything else passes through byte for byte. Returns its
/// port.
fn deadline_proxy(upstream: u16, timeout: Duration) -> u16 {
    let with_deadline = move |head: String| {
        let mut out = String::new();
        for line in head.split_inclusive("\r\n") {
            if line
                .to_ascii_lowercase()
                .starts_with("lambda-runtime-deadline-ms:")
            {
                let deadline = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    + timeout;
                out.push_str(&format!(
                    "lambda-runtime-deadline-ms: {}\r\n",
                    deadline.as_millis()
                ));
                continue;
            }
            out.push_str(line);
        }
        Some(out)
    };
    proxy(upstream, None, Some(Arc::new(with_deadline)))
}

fn wait_for_port(port: u16, output: impl Fn() -> String) {
    let started = Instant::now();
    // A connection from the port to itself (TCP's simultaneous open, when the ephemeral source
    // port the kernel picks is `port`) succeeds with nothing listening: it does not count.
    let listening = || {
        TcpStream::connect(("127.0.0.1", port))
            .is_ok_and(|stream| stream.local_addr().ok() != stream.peer_addr().ok())
    };
    while !listening() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing listens on {port}: {}",
            output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An S3-compatible server (`moto_server`) on a free loopback port. Its data lives in memory:
/// a restarted server is empty.
pub struct S3Server {
    pub port: u16,
    process: Option<Process>,
    /// Where the server records requests once asked to ([`S3Server::start_recording`]).
    recording: tempfile::TempDir,
}

impl S3Server {
    /// Puts `count` functions `f0000`, `f0001`, ... under `prefix` in `bucket`, each with
    /// `module` and a manifest routing `GET {route}{name}` to it, as a publish would lay them out
    /// (module name aside).
    pub fn put_functions(
        &self,
        bucket: &str,
        prefix: &str,
        count: usize,
        module: &[u8],
        route: &str,
    ) {
        use futures::StreamExt;
        let client = self.client();
        block_on(async {
            futures::stream::iter(0..count)
                .map(|i| {
                    let client = client.clone();
                    async move {
                        let name = format!("f{i:04}");
                        let manifest = format!(
                            "name: {name}\nruntime: wasm\nhooks: [{{type: http, path: {route}{name}}}]\n"
                        );
                        let objects = [
                            (format!("{prefix}{name}/{name}.wasm"), module.to_vec()),
                            (format!("{prefix}{name}/manifest.yaml"), manifest.into_bytes()),
                        ];
                        for (key, body) in objects {
                            client
                                .put_object()
                                .bucket(bucket)
                                .key(key)
                                .body(aws_sdk_s3::primitives::ByteStream::from(body))
                                .send()
                                .await
                                .unwrap();
                        }
                    }
                })
                .buffer_unordered(32)
                .collect::<Vec<()>>()
                .await;
        });
    }

    pub fn start() -> S3Server {
        let mut server = S3Server {
            port: free_port(),
            process: None,
            recording: tempfile::tempdir().unwrap(),
        };
        server.restart();
        server
    }

    /// Starts the server (again) on the same port.
    pub fn restart(&mut self) {
        let venv = Path::new(ROOT).join(".venv/bin/moto_server");
        let program = if venv.exists() {
            venv
        } else {
            PathBuf::from("moto_server")
        };
        let mut command = Command::new(program);
        command
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .env(
                "MOTO_RECORDER_FILEPATH",
                self.recording.path().join("requests.jsonl"),
            );
        let process = Process::spawn(command);
        wait_for_port(self.port, || process.output.lock().unwrap().clone());
        self.process = Some(process);
    }

    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Has the server record every request from now on, headers included (moto's recorder).
    pub fn start_recording(&self) {
        let url = format!("{}/moto-api/recorder/start-recording", self.endpoint());
        ureq::post(&url).send_empty().unwrap();
    }

    /// The requests recorded since [`S3Server::start_recording`]: each `{"method", "url",
    /// "headers", "body"}`.
    pub fn recorded(&self) -> Vec<Value> {
        let url = format!("{}/moto-api/recorder/download-recording", self.endpoint());
        let text = ureq::get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        text.lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment that points the AWS SDK at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL_S3", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
            ("AWS_CONFIG_FILE", "/nonexistent".to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".to_string()),
        ]
    }

    /// The environment that points every AWS service (S3, DynamoDB, SQS, SNS, Secrets Manager,
    /// SSM) at this server.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.env();
        env.push(("AWS_ENDPOINT_URL", self.endpoint()));
        env
    }

    /// An AWS SDK configuration for this server (any service's client).
    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(self.endpoint())
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    "test", "test", None, None, "test",
                ))
                .load(),
        )
    }

    /// The object `key` of `bucket`, if there is one.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        block_on(async {
            let object = self
                .client()
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await;
            Some(
                object
                    .ok()?
                    .body
                    .collect()
                    .await
                    .ok()?
                    .into_bytes()
                    .to_vec(),
            )
        })
    }

    /// `wasm-lambda provision dir` against this server, with `extra` environment: creates what
    /// the functions' grants and hooks name.
    pub fn provision(&self, dir: &Path, extra: &[(&str, &str)]) {
        let output = Command::new(env!("CARGO_BIN_EXE_wasm-lambda"))
            .arg("provision")
            .arg(dir)
            .env_remove("SOURCE_NAMES")
            .envs(self.aws_env())
            .envs(extra.iter().copied())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "provision failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The server's request log so far (one line per request), including every request answered
    /// before this call: the server logs a request only after answering it, and its log reaches
    /// us through a pipe, so a marker request is sent and its line waited for first.
    pub fn requests(&self) -> Vec<String> {
        const MARK: &str = "/wasm-lambda-test-sync-";
        static MARKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let Some(process) = &self.process else {
            return Vec::new();
        };
        let mark = format!(
            "{MARK}{}",
            MARKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
            use std::io::Write;
            let _ = write!(
                stream,
                "GET {mark} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
            );
            let _ = stream.read_to_end(&mut Vec::new());
            let started = Instant::now();
            while !process.output.lock().unwrap().contains(&format!("{mark} ")) {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the S3 server did not log {mark}"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // Lines of requests answered with other than 200 are coloured.
        plain(&process.output.lock().unwrap())
            .lines()
            .filter(|line| line.contains("HTTP/1.1\"") && !line.contains(MARK))
            .map(str::to_string)
            .collect()
    }

    /// An S3 client for this server.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Creates `bucket`.
    pub fn create_bucket(&self, bucket: &str) {
        block_on(self.client().create_bucket().bucket(bucket).send()).unwrap();
    }

    /// Writes `key` in `bucket`.
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let body = aws_sdk_s3::primitives::ByteStream::from(body.to_vec());
        block_on(
            self.client()
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(body)
                .send(),
        )
        .unwrap();
    }

    /// `wasm-lambda publish --bucket bucket args...` against this server: (success, stdout, stderr).
    pub fn publish(&self, bucket: &str, args: &[&str]) -> (bool, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_wasm-lambda"))
            .args(["publish", "--bucket", bucket])
            .args(args)
            .envs(self.env())
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// Runs a future to completion on a fresh single-threaded runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Where `make functions` leaves an example function's module.
pub fn built_function(name: &str) -> PathBuf {
    // Cargo names the artifact after the crate, with `-` as `_`.
    let file = name.replace('-', "_");
    let path = Path::new(ROOT).join(format!(
        "functions/{name}/target/wasm32-unknown-unknown/release/{file}.wasm"
    ));
    assert!(
        path.exists(),
        "{} is missing: run `make functions` (make test does)",
        path.display()
    );
    path
}

/// The sandbox tests' attack plugin, built by `make plugins` (make test does).
pub fn hostile_wasm() -> Vec<u8> {
    let path =
        Path::new(ROOT).join("tests/plugins/hostile/target/wasm32-wasip1/release/hostile.wasm");
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run `make plugins` (make test does)",
            path.display()
        )
    })
}

/// A plain HTTP server on a free loopback port, the destination of outbound-HTTP tests:
/// - `/hello`: 200 `hello from upstream`, with an `x-upstream` header;
/// - `/redirect?to=<url>`: 302 to `<url>`;
/// - `/endless`: 200, a body that never ends;
/// - `/slow`: 200 after 10 s.
pub struct Upstream {
    pub port: u16,
}

impl Upstream {
    pub fn start() -> Upstream {
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                std::thread::spawn(move || Upstream::serve(stream));
            }
        });
        Upstream { port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn serve(mut stream: TcpStream) {
        use std::io::Write;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let target = head.split(' ').nth(1).unwrap_or("/").to_string();
        let respond = |stream: &mut TcpStream, status: &str, headers: &str, body: &str| {
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        };
        if let Some(to) = target.strip_prefix("/redirect?to=") {
            respond(&mut stream, "302 Found", &format!("location: {to}\r\n"), "");
        } else if target == "/endless" {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n");
            let chunk = vec![b'z'; 64 * 1024];
            while stream.write_all(&chunk).is_ok() {}
        } else if target == "/slow" {
            std::thread::sleep(Duration::from_secs(10));
            respond(&mut stream, "200 OK", "", "finally");
        } else if target == "/hello" {
            respond(
                &mut stream,
                "200 OK",
                "x-upstream: yes\r\n",
                "hello from upstream",
            );
        } else {
            respond(&mut stream, "404 Not Found", "", "no such path");
        }
    }
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

    /// Adds a function running `module` with `extra` manifest lines.
    pub fn add_module(&self, name: &str, module: &[u8], extra: &str) -> &Store {
        self.add(
            name,
            &format!("name: {name}\nruntime: wasm\n{extra}"),
            Some(module),
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

/// Extism imports plus helpers shared by the WAT test plugins: `$put` copies `len` bytes of
/// linear memory at `ptr` into Extism's memory and returns their offset there, `$out` makes them
/// the plugin's output.
pub const WAT_PRELUDE: &str = r#"
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (memory (export "memory") 1)
  (func $put (param $ptr i32) (param $len i32) (result i64)
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
    (local.get $off))
  (func $out (param $ptr i32) (param $len i32)
    (call $output_set
      (call $put (local.get $ptr) (local.get $len))
      (i64.extend_i32_u (local.get $len))))
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

/// What a [`reacting_to`] plugin does when its input contains the needle.
#[derive(Debug, Clone, Copy)]
pub enum Reaction {
    /// Returns 1: a plugin error.
    Fail,
    /// Never returns.
    Spin,
}

/// A plugin whose `handle` succeeds (with no output) unless its input contains `needle`; then it
/// reacts as `reaction` says.
pub fn reacting_to(needle: &str, reaction: Reaction) -> String {
    let escaped: String = needle.bytes().map(|b| format!("\\{b:02x}")).collect();
    let react = match reaction {
        Reaction::Fail => "(return (i32.const 1))",
        Reaction::Spin => "(loop $forever (br $forever))",
    };
    format!(
        r#"(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{escaped}")
  (func (export "handle") (result i32)
    (local $n i64) (local $i i64) (local $j i32)
    (local.set $n (call $input_length))
    (block $done
      (loop $outer
        (br_if $done (i64.gt_u (i64.add (local.get $i) (i64.const {len})) (local.get $n)))
        (local.set $j (i32.const 0))
        (block $mismatch
          (loop $inner
            (if (i32.ge_u (local.get $j) (i32.const {len})) (then {react}))
            (br_if $mismatch
              (i32.ne
                (call $input_load_u8 (i64.add (local.get $i) (i64.extend_i32_u (local.get $j))))
                (i32.load8_u (local.get $j))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $inner)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $outer)))
    (i32.const 0)))"#,
        len = needle.len()
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

/// Polls `condition` until it holds, failing after `timeout` with `what`.
#[track_caller]
pub fn eventually(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

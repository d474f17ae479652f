//! The Lambda Runtime API client the bootstrap serves invocations with: `GET .../next`, then the
//! answer's `POST .../response` or `.../error`, over one kept-alive HTTP/1.1 connection.
//!
//! The protocol is four requests on a local socket, so the client is written for it: a request is
//! one `write`, a response is read into one buffer and parsed with `httparse`, and the context
//! is taken from the headers as they are. `lambda_runtime`'s client (hyper's pooled client under
//! tower services, a connection task fed through channels, every header parsed into a map) spent
//! about 35 µs of CPU per invocation on it, of a native handler's 55; this does what a minimal
//! loop of `write` and `read` does (README: Performance).
//!
//! `lambda_runtime` stays the source of the types an invocation is described with
//! ([`Context`], [`Diagnostic`]).

use std::sync::Arc;

use lambda_runtime::{Context, Diagnostic};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The API's version prefix.
const VERSION: &str = "/2018-06-01/runtime";

/// A response head larger than this is refused (the Runtime API's are a few hundred bytes).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// An event larger than this is refused (Lambda's largest is 6 MB).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Headers of a response read, at most (the Runtime API sends about ten).
const MAX_HEADERS: usize = 64;

/// What went wrong talking to the Runtime API: the process cannot serve without it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("AWS_LAMBDA_RUNTIME_API={0:?} is invalid: {1}")]
    Endpoint(String, &'static str),
    #[error("the Lambda Runtime API at {authority}: {error}")]
    Io {
        authority: String,
        error: std::io::Error,
    },
    #[error("the Lambda Runtime API answered {what}")]
    Protocol { what: String },
    #[error("the Lambda Runtime API answered HTTP {status} to {request}: {body}")]
    Status {
        request: &'static str,
        status: u16,
        body: String,
    },
}

/// One invocation: its context and the event as Lambda sent it.
#[derive(Debug)]
pub struct Invocation {
    pub context: Context,
    pub event: Vec<u8>,
}

/// The client: where the API is, and the connection to it once made.
pub struct RuntimeApi {
    /// `host:port`.
    authority: String,
    /// The path the API's routes sit under: empty in Lambda, a prefix under some emulators
    /// (`cargo lambda watch --only-lambda-apis` serves `/.rt/<function>`).
    base: String,
    config: Arc<lambda_runtime::Config>,
    connection: Option<Connection>,
    /// The request being written, kept between requests for its capacity.
    request: Vec<u8>,
}

/// A connection and what has been read from it but not consumed.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// `buffer[start..]` is unread.
    start: usize,
}

/// A response: its status, the headers the client uses, and its body.
#[derive(Debug, Default)]
struct Response {
    status: u16,
    body: Vec<u8>,
    lambda: LambdaHeaders,
}

/// The invocation headers of a `next` response.
#[derive(Debug, Default)]
struct LambdaHeaders {
    request_id: Option<String>,
    deadline_ms: Option<String>,
    function_arn: Option<String>,
    trace_id: Option<String>,
    client_context: Option<String>,
    cognito_identity: Option<String>,
    tenant_id: Option<String>,
}

/// How a response's body is delimited.
enum Framing {
    Length(usize),
    Chunked,
    /// Neither: the body runs until the server closes the connection.
    UntilClose,
}

impl RuntimeApi {
    /// A client of the API at `endpoint` (`AWS_LAMBDA_RUNTIME_API`: `host:port`, optionally
    /// `http://` before it and a path after it). Connects on first use.
    pub fn new(
        endpoint: &str,
        config: Arc<lambda_runtime::Config>,
    ) -> Result<RuntimeApi, ApiError> {
        let invalid = |reason| ApiError::Endpoint(endpoint.to_string(), reason);
        let rest = match endpoint.split_once("://") {
            Some(("http", rest)) => rest,
            Some(_) => return Err(invalid("only http:// is spoken")),
            None => endpoint,
        };
        let (authority, base) = match rest.find('/') {
            Some(at) => (&rest[..at], rest[at..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() || !authority.contains(':') {
            return Err(invalid("not host:port"));
        }
        Ok(RuntimeApi {
            authority: authority.to_string(),
            base: base.to_string(),
            config,
            connection: None,
            request: Vec::with_capacity(8 * 1024),
        })
    }

    /// The next invocation, waiting for it as long as it takes.
    pub async fn next(&mut self) -> Result<Invocation, ApiError> {
        loop {
            let response = self
                .exchange("next", "GET", "/invocation/next", &[], None)
                .await?;
            match response.status {
                200 => return self.invocation(response),
                // No invocation yet (some emulators say so rather than hold the request).
                204 => continue,
                status => return Err(status_error("next", status, &response.body)),
            }
        }
    }

    /// Posts the answer to invocation `request_id`.
    pub async fn respond(&mut self, request_id: &str, answer: &[u8]) -> Result<(), ApiError> {
        let path = format!("/invocation/{request_id}/response");
        let response = self
            .exchange("response", "POST", &path, &[], Some(answer))
            .await?;
        match response.status {
            200..=299 => Ok(()),
            status => Err(status_error("response", status, &response.body)),
        }
    }

    /// Posts invocation `request_id`'s failure.
    pub async fn fail(
        &mut self,
        request_id: &str,
        diagnostic: &Diagnostic,
    ) -> Result<(), ApiError> {
        let path = format!("/invocation/{request_id}/error");
        self.post_error("error", &path, "Unhandled", diagnostic)
            .await
    }

    /// Posts why init failed, before the process exits.
    pub async fn init_failed(&mut self, diagnostic: &Diagnostic) -> Result<(), ApiError> {
        self.post_error("init error", "/init/error", "Runtime.InitError", diagnostic)
            .await
    }

    async fn post_error(
        &mut self,
        request: &'static str,
        path: &str,
        error_type: &str,
        diagnostic: &Diagnostic,
    ) -> Result<(), ApiError> {
        let body = serde_json::to_vec(diagnostic).unwrap_or_default();
        let headers = [("Lambda-Runtime-Function-Error-Type", error_type)];
        let response = self
            .exchange(request, "POST", path, &headers, Some(&body))
            .await?;
        match response.status {
            200..=299 => Ok(()),
            status => Err(status_error(request, status, &response.body)),
        }
    }

    fn invocation(&self, response: Response) -> Result<Invocation, ApiError> {
        let headers = response.lambda;
        let missing = |header: &str| ApiError::Protocol {
            what: format!("an invocation without `{header}`"),
        };
        let request_id = headers
            .request_id
            .ok_or_else(|| missing("Lambda-Runtime-Aws-Request-Id"))?;
        let deadline = headers
            .deadline_ms
            .ok_or_else(|| missing("Lambda-Runtime-Deadline-Ms"))?
            .parse::<u64>()
            .map_err(|_| ApiError::Protocol {
                what: "a `Lambda-Runtime-Deadline-Ms` that is not a number".to_string(),
            })?;
        let mut context = Context::default();
        context.request_id = request_id;
        context.deadline = deadline;
        context.invoked_function_arn = headers.function_arn.unwrap_or_default();
        context.xray_trace_id = headers.trace_id;
        // As `lambda_runtime` reads them: JSON the mobile SDKs send, absent otherwise.
        context.client_context = headers
            .client_context
            .and_then(|text| serde_json::from_str(&text).ok());
        context.identity = headers
            .cognito_identity
            .and_then(|text| serde_json::from_str(&text).ok());
        context.tenant_id = headers.tenant_id;
        context.env_config = Arc::clone(&self.config);
        Ok(Invocation {
            context,
            event: response.body,
        })
    }

    /// Sends one request and reads its response, on the kept connection or a new one. A kept
    /// connection the server closed while idle (found closed before any answer came) is
    /// replaced and the request sent again on the new one, once.
    async fn exchange(
        &mut self,
        request: &'static str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response, ApiError> {
        self.write_request(method, path, headers, body);
        let reused = self.connection.is_some();
        match self.send().await {
            Ok(response) => Ok(response),
            Err(Sent::Stale) if reused => {
                self.connection = None;
                self.send()
                    .await
                    .map_err(|sent| self.sent_error(request, sent))
            }
            Err(sent) => Err(self.sent_error(request, sent)),
        }
    }

    fn write_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) {
        use std::io::Write;
        let request = &mut self.request;
        request.clear();
        let _ = write!(
            request,
            "{method} {}{VERSION}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: wasm-lambda/{}\r\n",
            self.base,
            self.authority,
            env!("CARGO_PKG_VERSION")
        );
        for (name, value) in headers {
            let _ = write!(request, "{name}: {value}\r\n");
        }
        match body {
            Some(body) => {
                let _ = write!(
                    request,
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                request.extend_from_slice(body);
            }
            None => request.extend_from_slice(b"\r\n"),
        }
    }

    /// Writes the request and reads the response.
    async fn send(&mut self) -> Result<Response, Sent> {
        if self.connection.is_none() {
            let stream = TcpStream::connect(&self.authority)
                .await
                .map_err(Sent::Failed)?;
            // Requests are written whole: nothing gains from waiting to coalesce them.
            stream.set_nodelay(true).map_err(Sent::Failed)?;
            self.connection = Some(Connection {
                stream,
                buffer: Vec::with_capacity(16 * 1024),
                start: 0,
            });
        }
        let connection = self.connection.as_mut().expect("connected above");
        if let Err(error) = connection.stream.write_all(&self.request).await {
            self.connection = None;
            return Err(Sent::Stale.or_failed(error));
        }
        match connection.read_response().await {
            Ok((response, keep)) => {
                if !keep {
                    self.connection = None;
                }
                Ok(response)
            }
            Err(error) => {
                self.connection = None;
                Err(error)
            }
        }
    }

    fn sent_error(&self, request: &'static str, sent: Sent) -> ApiError {
        match sent {
            Sent::Stale => ApiError::Io {
                authority: self.authority.clone(),
                error: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the connection closed before the answer to {request}"),
                ),
            },
            Sent::Failed(error) => ApiError::Io {
                authority: self.authority.clone(),
                error,
            },
            Sent::Invalid(what) => ApiError::Protocol { what },
        }
    }
}

/// How sending a request failed.
enum Sent {
    /// The connection was closed before any of the answer came: the request may not have
    /// reached the server.
    Stale,
    Failed(std::io::Error),
    Invalid(String),
}

impl Sent {
    /// A write that failed because the peer had closed the connection is `Stale`.
    fn or_failed(self, error: std::io::Error) -> Sent {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
        match error.kind() {
            BrokenPipe | ConnectionReset | ConnectionAborted => self,
            _ => Sent::Failed(error),
        }
    }
}

fn status_error(request: &'static str, status: u16, body: &[u8]) -> ApiError {
    ApiError::Status {
        request,
        status,
        body: String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned(),
    }
}

impl Connection {
    /// Reads one response; also says whether the connection may be kept.
    async fn read_response(&mut self) -> Result<(Response, bool), Sent> {
        let (mut response, framing, mut keep) = self.read_head().await?;
        response.body = match framing {
            Framing::Length(length) => self.take(length).await?,
            Framing::Chunked => self.read_chunked().await?,
            Framing::UntilClose => {
                keep = false;
                self.read_to_close().await?
            }
        };
        Ok((response, keep))
    }

    /// Reads and parses a response head, consuming it from the buffer.
    async fn read_head(&mut self) -> Result<(Response, Framing, bool), Sent> {
        let mut first_read = true;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut headers);
            let unread = &self.buffer[self.start..];
            match parsed.parse(unread) {
                Ok(httparse::Status::Complete(length)) => {
                    let head = head(&parsed)?;
                    self.start += length;
                    return Ok(head);
                }
                Ok(httparse::Status::Partial) if unread.len() < MAX_HEAD_BYTES => {}
                Ok(httparse::Status::Partial) => {
                    return Err(Sent::Invalid(format!(
                        "a response head over {MAX_HEAD_BYTES} bytes"
                    )));
                }
                Err(error) => {
                    return Err(Sent::Invalid(format!("a malformed response ({error})")));
                }
            }
            let nothing_yet = first_read && unread.is_empty();
            first_read = false;
            if self.fill().await? == 0 {
                return Err(match nothing_yet {
                    true => Sent::Stale,
                    false => Sent::Invalid("a response cut short".to_string()),
                });
            }
        }
    }

    /// Reads more into the buffer (dropping what was consumed first); how much came.
    async fn fill(&mut self) -> Result<usize, Sent> {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        if self.buffer.capacity() - self.buffer.len() < 4096 {
            self.buffer.reserve(16 * 1024);
        }
        self.stream
            .read_buf(&mut self.buffer)
            .await
            .map_err(|error| Sent::Stale.or_failed(error))
    }

    /// The next `length` bytes.
    async fn take(&mut self, length: usize) -> Result<Vec<u8>, Sent> {
        if length > MAX_BODY_BYTES {
            return Err(Sent::Invalid(format!(
                "a body of {length} bytes, over the {MAX_BODY_BYTES} read"
            )));
        }
        let buffered = (self.buffer.len() - self.start).min(length);
        let mut body = Vec::with_capacity(length);
        body.extend_from_slice(&self.buffer[self.start..self.start + buffered]);
        self.start += buffered;
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        if body.len() < length {
            let rest = length - body.len();
            body.resize(length, 0);
            let tail = body.len() - rest;
            self.stream
                .read_exact(&mut body[tail..])
                .await
                .map_err(|_| Sent::Invalid("a body cut short".to_string()))?;
        }
        Ok(body)
    }

    /// A chunked body, its trailers skipped.
    async fn read_chunked(&mut self) -> Result<Vec<u8>, Sent> {
        let mut body = Vec::new();
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buffer[self.start..]) {
                    Ok(httparse::Status::Complete((consumed, size))) => {
                        self.start += consumed;
                        break size;
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.fill().await? == 0 {
                            return Err(Sent::Invalid("a chunked body cut short".to_string()));
                        }
                    }
                    Err(_) => return Err(Sent::Invalid("a malformed chunk size".to_string())),
                }
            };
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            if size == 0 {
                break;
            }
            if body.len().saturating_add(size) > MAX_BODY_BYTES {
                return Err(Sent::Invalid(format!(
                    "a chunked body over the {MAX_BODY_BYTES} bytes read"
                )));
            }
            body.extend_from_slice(&self.take(size).await?);
            self.expect_line_end().await?;
        }
        // Trailers, up to the empty line.
        loop {
            let line = self.line().await?;
            if line == 0 {
                return Ok(body);
            }
        }
    }

    /// Consumes a `\r\n`.
    async fn expect_line_end(&mut self) -> Result<(), Sent> {
        match self.line().await? {
            0 => Ok(()),
            _ => Err(Sent::Invalid("a chunk not followed by CRLF".to_string())),
        }
    }

    /// Consumes one line; returns its length without the line end.
    async fn line(&mut self) -> Result<usize, Sent> {
        loop {
            let unread = &self.buffer[self.start..];
            if let Some(at) = unread.windows(2).position(|pair| pair == b"\r\n") {
                self.start += at + 2;
                return Ok(at);
            }
            if unread.len() > MAX_HEAD_BYTES {
                return Err(Sent::Invalid("a chunked body's line too long".to_string()));
            }
            if self.fill().await? == 0 {
                return Err(Sent::Invalid("a chunked body cut short".to_string()));
            }
        }
    }

    async fn read_to_close(&mut self) -> Result<Vec<u8>, Sent> {
        while self.fill().await? > 0 {
            if self.buffer.len() - self.start > MAX_BODY_BYTES {
                return Err(Sent::Invalid(format!(
                    "a body over the {MAX_BODY_BYTES} bytes read"
                )));
            }
        }
        let body = self.buffer[self.start..].to_vec();
        self.buffer.clear();
        self.start = 0;
        Ok(body)
    }
}

/// The status, the headers the client uses, how the body is framed and whether the connection
/// may be kept, from a parsed head.
fn head(parsed: &httparse::Response) -> Result<(Response, Framing, bool), Sent> {
    let mut response = Response {
        status: parsed.code.unwrap_or_default(),
        ..Response::default()
    };
    let mut framing = Framing::UntilClose;
    let mut keep = parsed.version == Some(1);
    for header in parsed.headers.iter() {
        let value = || String::from_utf8_lossy(header.value).trim().to_string();
        let lambda = &mut response.lambda;
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let length = std::str::from_utf8(header.value)
                .ok()
                .and_then(|text| text.trim().parse::<usize>().ok())
                .ok_or_else(|| Sent::Invalid("an invalid Content-Length".to_string()))?;
            if !matches!(framing, Framing::Chunked) {
                framing = Framing::Length(length);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if value().to_ascii_lowercase().ends_with("chunked") {
                framing = Framing::Chunked;
            }
        } else if name.eq_ignore_ascii_case("connection") {
            keep = !value().eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("lambda-runtime-aws-request-id") {
            lambda.request_id = Some(value());
        } else if name.eq_ignore_ascii_case("lambda-runtime-deadline-ms") {
            lambda.deadline_ms = Some(value());
        } else if name.eq_ignore_ascii_case("lambda-runtime-invoked-function-arn") {
            lambda.function_arn = Some(value());
        } else if name.eq_ignore_ascii_case("lambda-runtime-trace-id") {
            lambda.trace_id = Some(value());
        } else if name.eq_ignore_ascii_case("lambda-runtime-client-context") {
            lambda.client_context = Some(value());
        } else if name.eq_ignore_ascii_case("lambda-runtime-cognito-identity") {
            lambda.cognito_identity = Some(value());
        } else if name.eq_ignore_ascii_case("lambda-runtime-aws-tenant-id") {
            lambda.tenant_id = Some(value());
        }
    }
    // A response to a request that has no body of its own (204, 304) ends at its head.
    if matches!(response.status, 204 | 304 | 100..=199) {
        framing = Framing::Length(0);
    }
    Ok((response, framing, keep))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::TcpListener;

    /// A Runtime API peer that answers each request it reads with the next of `answers` (raw
    /// bytes), closing the connection where an answer is `None`; returns the requests it read.
    async fn peer(
        answers: Vec<Option<&'static [u8]>>,
    ) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/.rt/fn", listener.local_addr().unwrap());
        let served = tokio::spawn(async move {
            let mut requests = Vec::new();
            let mut answers = answers.into_iter().peekable();
            'connections: loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                loop {
                    let mut request = String::new();
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if read.read_line(&mut line).await.unwrap() == 0 {
                            match answers.peek() {
                                Some(_) => continue 'connections,
                                None => return requests,
                            }
                        }
                        if let Some(value) =
                            line.to_ascii_lowercase().strip_prefix("content-length:")
                        {
                            length = value.trim().parse().unwrap();
                        }
                        request.push_str(&line);
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    read.read_exact(&mut body).await.unwrap();
                    request.push_str(&String::from_utf8(body).unwrap());
                    requests.push(request);
                    match answers.next() {
                        Some(Some(answer)) => write.write_all(answer).await.unwrap(),
                        Some(None) => continue 'connections,
                        None => return requests,
                    }
                }
            }
        });
        (endpoint, served)
    }

    fn client(endpoint: &str) -> RuntimeApi {
        RuntimeApi::new(endpoint, Arc::new(lambda_runtime::Config::default())).unwrap()
    }

    const EVENT: &[u8] = b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r-1\r\n\
        Lambda-Runtime-Deadline-Ms: 1700000000000\r\n\
        Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:1:function:f\r\n\
        Lambda-Runtime-Trace-Id: Root=1-abc;Sampled=1\r\n\
        Content-Length: 11\r\n\r\n{\"a\": true}";

    #[tokio::test]
    async fn an_invocation_is_read_with_its_context() {
        let (endpoint, served) = peer(vec![Some(EVENT)]).await;
        let mut api = client(&endpoint);
        let invocation = api.next().await.unwrap();
        assert_eq!(invocation.event, br#"{"a": true}"#);
        let context = invocation.context;
        assert_eq!(context.request_id, "r-1");
        assert_eq!(context.deadline, 1_700_000_000_000);
        assert_eq!(
            context.invoked_function_arn,
            "arn:aws:lambda:us-east-1:1:function:f"
        );
        assert_eq!(
            context.xray_trace_id.as_deref(),
            Some("Root=1-abc;Sampled=1")
        );
        drop(api);
        let requests = served.await.unwrap();
        assert!(
            requests[0].starts_with("GET /.rt/fn/2018-06-01/runtime/invocation/next HTTP/1.1\r\n"),
            "{requests:?}"
        );
    }

    #[tokio::test]
    async fn chunked_bodies_and_no_invocation_yet_are_read() {
        let chunked: &[u8] = b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r-2\r\n\
            Lambda-Runtime-Deadline-Ms: 1\r\nTransfer-Encoding: chunked\r\n\r\n\
            4\r\n{\"a\"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n";
        let (endpoint, _) = peer(vec![
            Some(b"HTTP/1.1 204 No Content\r\n\r\n"),
            Some(chunked),
        ])
        .await;
        let invocation = client(&endpoint).next().await.unwrap();
        assert_eq!(invocation.event, br#"{"a": 1}"#);
        assert_eq!(invocation.context.request_id, "r-2");
    }

    #[tokio::test]
    async fn an_answer_is_posted_on_the_kept_connection_or_a_new_one() {
        let accepted: &[u8] =
            b"HTTP/1.1 202 Accepted\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n";
        // The peer closes the connection after the first answer: the client sends the next
        // request again on a new one.
        let (endpoint, served) =
            peer(vec![Some(EVENT), None, Some(accepted), Some(accepted)]).await;
        let mut api = client(&endpoint);
        api.next().await.unwrap();
        api.respond("r-1", br#"{"ok":1}"#).await.unwrap();
        let failure = Diagnostic {
            error_type: "FunctionError".to_string(),
            error_message: "no".to_string(),
        };
        api.fail("r-1", &failure).await.unwrap();
        drop(api);
        let requests = served.await.unwrap();
        assert_eq!(requests.len(), 4, "{requests:?}");
        let response = &requests[2];
        assert!(
            response
                .starts_with("POST /.rt/fn/2018-06-01/runtime/invocation/r-1/response HTTP/1.1"),
            "{response}"
        );
        assert!(response.ends_with("\r\n\r\n{\"ok\":1}"), "{response}");
        let error = &requests[3];
        assert!(error.contains("/invocation/r-1/error HTTP/1.1"), "{error}");
        assert!(
            error.contains("Lambda-Runtime-Function-Error-Type: Unhandled"),
            "{error}"
        );
        assert!(
            error.ends_with(r#"{"errorType":"FunctionError","errorMessage":"no"}"#),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_refusal_names_the_request_and_status() {
        let refused: &[u8] =
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\n\r\ntoo large";
        let (endpoint, _) = peer(vec![Some(EVENT), Some(refused)]).await;
        let mut api = client(&endpoint);
        api.next().await.unwrap();
        let error = api.respond("r-1", b"{}").await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "the Lambda Runtime API answered HTTP 413 to response: too large"
        );
    }

    #[tokio::test]
    async fn a_malformed_answer_or_endpoint_is_an_error_naming_it() {
        let (endpoint, _) = peer(vec![Some(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        )])
        .await;
        let error = client(&endpoint).next().await.unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`Lambda-Runtime-Aws-Request-Id`"),
            "{error}"
        );
        for endpoint in ["", "https://127.0.0.1:9001", "localhost"] {
            let error = RuntimeApi::new(endpoint, Arc::default()).err().unwrap();
            assert!(
                error.to_string().starts_with("AWS_LAMBDA_RUNTIME_API="),
                "{error}"
            );
        }
    }
}

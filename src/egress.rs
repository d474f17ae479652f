//! Outbound HTTP for functions.
//!
//! A function may call only the hosts its manifest lists in `allowed_hosts`, and never, whatever
//! that list says (even `*`):
//! - loopback, link-local (169.254.0.0/16 and fe80::/10: the instance metadata service), private
//!   (10/8, 172.16/12, 192.168/16, 100.64/10), unique-local (fc00::/7) and other non-public
//!   ranges;
//! - this machine's own addresses (every address of its interfaces reaches its wildcard
//!   listeners);
//! - the Lambda Runtime API (`AWS_LAMBDA_RUNTIME_API`), which would let it read or answer other
//!   invocations: its port is refused on every address that is not public (loopback, `0.0.0.0`,
//!   `::`, IPv4 written as IPv6 in any of its forms, private ranges) and on every address of
//!   this machine, however the address is spelled, in every mode.
//!
//! The address check runs on every address a name resolves to, before any connection is made, so
//! a public-looking name that resolves to 127.0.0.1 is refused too; redirects are followed here,
//! one hop at a time, each hop checked again (host and addresses). Every request ends by the
//! invocation deadline, and a response larger than the function's `max_http_response_bytes` is
//! refused rather than read. Proxy variables in the environment are ignored: the check must see
//! the real destination.
//!
//! For local development only, `ALLOW_PRIVATE_EGRESS=true` lifts the address check (not the
//! Runtime API's). Host spellings such as `0x7f.1`, `2130706433` or `127.1` are read by the URL
//! parser as the address they mean before any check.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Instant;

use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;

/// Why an outbound request did not complete; each maps to the HTTP status the function sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// Refused by policy: the host is not allowed, or it is or resolves to a forbidden address.
    #[error("refused: {0}")]
    Refused(String),
    /// The request could not be made or its response not read.
    #[error("failed: {0}")]
    Failed(String),
    /// The invocation deadline came first.
    #[error("timed out: {0}")]
    TimedOut(String),
    /// The response is larger than `max_http_response_bytes`.
    #[error("response too large: {0}")]
    TooLarge(String),
}

impl EgressError {
    /// The status the function's HTTP call answers with, as a proxy would: 403 refused by
    /// policy, 502 failed or too large, 504 timed out.
    pub fn status(&self) -> u16 {
        match self {
            EgressError::Refused(_) => 403,
            EgressError::Failed(_) | EgressError::TooLarge(_) => 502,
            EgressError::TimedOut(_) => 504,
        }
    }

    /// A short name for the `x-wasm-lambda-error` header.
    pub fn kind(&self) -> &'static str {
        match self {
            EgressError::Refused(_) => "egress-refused",
            EgressError::Failed(_) => "egress-failed",
            EgressError::TimedOut(_) => "egress-timeout",
            EgressError::TooLarge(_) => "egress-too-large",
        }
    }
}

/// An outbound request as a function makes it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<Vec<u8>>,
}

/// A response: status, headers (repeated ones joined with `, `), body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// Whether `host` matches one of `patterns`: a name (`api.example.com`), a wildcard for its
/// subdomains (`*.example.org`, not `example.org` itself), or `*`. Case-insensitive.
pub fn host_allowed(patterns: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    patterns.iter().any(|pattern| {
        let pattern = pattern.to_ascii_lowercase();
        match pattern.strip_prefix("*.") {
            _ if pattern == "*" => true,
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
            None => host == pattern,
        }
    })
}

/// Why `ip` is not a public address a function may reach, if it is not.
pub fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_loopback() => "loopback address",
        _ if ip.is_link_local() => "link-local address (instance metadata)",
        _ if ip.is_private() => "private address",
        _ if ip.is_unspecified() || a == 0 => "unspecified (\"this network\") address",
        _ if ip.is_broadcast() => "broadcast address",
        _ if ip.is_multicast() => "multicast address",
        _ if ip.is_documentation() => "documentation address",
        (100, 64..=127, _) => "shared (carrier-grade NAT) address",
        (192, 0, 0) => "IETF protocol address",
        (198, 18..=19, _) => "benchmarking address",
        (240..=255, _, _) => "reserved address",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // IPv4 addresses written as IPv6 are judged as the IPv4 address they carry.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let segments = ip.segments();
    let embedded = |high: u16, low: u16| {
        Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8)
    };
    Some(match segments {
        _ if ip.is_loopback() => "loopback address",
        _ if ip.is_unspecified() => "unspecified address",
        _ if ip.is_unicast_link_local() => "link-local address",
        _ if ip.is_unique_local() => "unique-local address",
        _ if ip.is_multicast() => "multicast address",
        // fec0::/10, deprecated site-local.
        [s, ..] if s & 0xffc0 == 0xfec0 => "site-local address",
        // 2001:db8::/32, documentation.
        [0x2001, 0x0db8, ..] => "documentation address",
        // NAT64 (64:ff9b::/96) and IPv4-compatible (::/96) carry an IPv4 address.
        [0x0064, 0xff9b, 0, 0, 0, 0, high, low] | [0, 0, 0, 0, 0, 0, high, low] => {
            return forbidden_v4(embedded(high, low));
        }
        // 6to4 (2002::/16) carries one in its next 32 bits.
        [0x2002, high, low, ..] => return forbidden_v4(embedded(high, low)),
        _ => return None,
    })
}

/// The process-wide egress policy and HTTP client.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    agent: ureq::Agent,
    checks: Arc<AddressChecks>,
}

/// The checks applied to every address before connecting.
#[derive(Debug)]
struct AddressChecks {
    allow_private: bool,
    /// The Runtime API's addresses and port (`AWS_LAMBDA_RUNTIME_API`), resolved once.
    runtime_api: Vec<SocketAddr>,
    runtime_port: Option<u16>,
    /// This machine's own addresses, read once from its interfaces.
    own: Vec<IpAddr>,
}

impl AddressChecks {
    fn check(&self, address: SocketAddr) -> Result<(), String> {
        let ip = canonical(address.ip());
        let own = self.own.contains(&ip);
        // The Runtime API's listener may answer on loopback, the wildcard or any local address,
        // whichever way they are written: its port is refused on all of them, in every mode.
        let runtime_api = self.runtime_api.contains(&address)
            || (Some(address.port()) == self.runtime_port
                && (own || forbidden_range(ip).is_some()));
        if runtime_api {
            return Err(format!("{address} is the Lambda Runtime API"));
        }
        if self.allow_private {
            return Ok(());
        }
        match forbidden_range(ip) {
            Some(range) => Err(format!("{} is a {range}", address.ip())),
            None if own => Err(format!("{} is an address of this machine", address.ip())),
            None => Ok(()),
        }
    }
}

/// An IPv4 address written as IPv6 (`::ffff:127.0.0.1`) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The addresses of this machine's network interfaces (empty if they cannot be read).
fn own_addresses() -> Vec<IpAddr> {
    let mut addresses = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that we only read, then free once.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return addresses;
        }
        let mut entry = list;
        while !entry.is_null() {
            let address = (*entry).ifa_addr;
            if !address.is_null() {
                match i32::from((*address).sa_family) {
                    libc::AF_INET => {
                        let v4 = &*(address as *const libc::sockaddr_in);
                        let octets = v4.sin_addr.s_addr.to_ne_bytes();
                        addresses.push(IpAddr::V4(Ipv4Addr::from(octets)));
                    }
                    libc::AF_INET6 => {
                        let v6 = &*(address as *const libc::sockaddr_in6);
                        addresses.push(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            entry = (*entry).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    addresses
}

/// A refusal raised inside the resolver, carried out through ureq's error.
#[derive(Debug)]
struct Blocked(String);

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Blocked {}

/// Resolves as usual, then refuses the request if any address is forbidden. ureq connects only
/// to the addresses returned here, so what was checked is what is reached.
#[derive(Debug)]
struct CheckingResolver {
    checks: Arc<AddressChecks>,
}

impl Resolver for CheckingResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addresses = DefaultResolver::default().resolve(uri, config, timeout)?;
        for address in addresses.iter() {
            if let Err(reason) = self.checks.check(*address) {
                let host = uri.host().unwrap_or_default();
                return Err(ureq::Error::Other(Box::new(Blocked(format!(
                    "{host} resolves to {reason}"
                )))));
            }
        }
        Ok(addresses)
    }
}

impl Default for EgressPolicy {
    /// The strict policy: public addresses only.
    fn default() -> EgressPolicy {
        EgressPolicy::new(false, None)
    }
}

impl EgressPolicy {
    /// The policy: `allow_private` lifts the address check (local development only);
    /// `runtime_api` is `AWS_LAMBDA_RUNTIME_API` (`127.0.0.1:9001`, or with `http://`).
    pub fn new(allow_private: bool, runtime_api: Option<&str>) -> EgressPolicy {
        let authority = runtime_api.map(|api| {
            let api = api
                .trim_start_matches("http://")
                .trim_start_matches("https://");
            api.split('/').next().unwrap_or(api).to_string()
        });
        let runtime_api: Vec<SocketAddr> = authority
            .as_deref()
            .and_then(|authority| authority.to_socket_addrs().ok())
            .map(Iterator::collect)
            .unwrap_or_default();
        // The port even when the host does not resolve here; HTTP's when none is written.
        let runtime_port = runtime_api.first().map(SocketAddr::port).or_else(|| {
            authority.as_deref().map(|authority| {
                authority
                    .rsplit_once(':')
                    .and_then(|(_, port)| port.parse().ok())
                    .unwrap_or(80)
            })
        });
        let checks = Arc::new(AddressChecks {
            allow_private,
            runtime_api,
            runtime_port,
            own: own_addresses(),
        });
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .proxy(None)
            .user_agent("wasm-lambda")
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            CheckingResolver {
                checks: Arc::clone(&checks),
            },
        );
        EgressPolicy { agent, checks }
    }

    /// Whether the address check is lifted (`ALLOW_PRIVATE_EGRESS`).
    pub fn allows_private(&self) -> bool {
        self.checks.allow_private
    }

    /// Makes `request` for a function allowed to reach `allowed_hosts`, following redirects,
    /// by `deadline`, reading at most `max_bytes` of body.
    pub fn fetch(
        &self,
        mut request: Request,
        allowed_hosts: &[String],
        deadline: Instant,
        max_bytes: u64,
    ) -> Result<Response, EgressError> {
        let mut url = url::Url::parse(&request.url).map_err(|error| {
            EgressError::Failed(format!("`{}` is not a URL: {error}", request.url))
        })?;
        for _ in 0..=MAX_REDIRECTS {
            let response = self.send(&url, &request, allowed_hosts, deadline, max_bytes)?;
            let location = response
                .headers
                .get("location")
                .filter(|_| matches!(response.status, 301 | 302 | 303 | 307 | 308));
            let Some(location) = location else {
                return Ok(response);
            };
            url = url.join(location).map_err(|error| {
                EgressError::Failed(format!("redirect to `{location}` is not a URL: {error}"))
            })?;
            // 301, 302 and 303 become a GET without a body; 307 and 308 repeat the request.
            if matches!(response.status, 301..=303) {
                request.method = "GET".to_string();
                request.body = None;
            }
        }
        Err(EgressError::Failed(format!(
            "more than {MAX_REDIRECTS} redirects, last to {url}"
        )))
    }

    /// One hop: checks the host against `allowed_hosts`, then sends.
    fn send(
        &self,
        url: &url::Url,
        request: &Request,
        allowed_hosts: &[String],
        deadline: Instant,
        max_bytes: u64,
    ) -> Result<Response, EgressError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressError::Refused(format!(
                "{url}: only http and https are allowed"
            )));
        }
        let host = url.host_str().unwrap_or_default();
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        if !host_allowed(allowed_hosts, bare_host) {
            return Err(EgressError::Refused(format!(
                "{host} is not in the function's allowed_hosts"
            )));
        }
        // An IP literal is checked here; a name, on each address it resolves to.
        if let Ok(ip) = bare_host.parse::<IpAddr>() {
            let port = url.port_or_known_default().unwrap_or(80);
            self.checks
                .check(SocketAddr::new(ip, port))
                .map_err(EgressError::Refused)?;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(EgressError::TimedOut(format!(
                "{url}: the invocation deadline has passed"
            )));
        }
        let mut builder = ureq::http::Request::builder()
            .method(request.method.to_ascii_uppercase().as_str())
            .uri(url.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let built = builder
            .body(request.body.clone().unwrap_or_default())
            .map_err(|error| EgressError::Failed(format!("{url}: {error}")))?;
        let configured = self
            .agent
            .configure_request(built)
            .timeout_global(Some(remaining))
            .build();
        let response = self
            .agent
            .run(configured)
            .map_err(|error| classify(url, error))?;

        let status = response.status().as_u16();
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in response.headers() {
            let Ok(value) = value.to_str() else { continue };
            headers
                .entry(name.as_str().to_string())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(value);
                })
                .or_insert_with(|| value.to_string());
        }
        let mut body = Vec::new();
        response
            .into_body()
            .into_reader()
            .take(max_bytes.saturating_add(1))
            .read_to_end(&mut body)
            .map_err(|error| {
                if error.kind() == std::io::ErrorKind::TimedOut || deadline <= Instant::now() {
                    EgressError::TimedOut(format!("{url}: reading the response: {error}"))
                } else {
                    EgressError::Failed(format!("{url}: reading the response: {error}"))
                }
            })?;
        if body.len() as u64 > max_bytes {
            return Err(EgressError::TooLarge(format!(
                "{url}: more than max_http_response_bytes ({max_bytes} bytes)"
            )));
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn classify(url: &url::Url, error: ureq::Error) -> EgressError {
    match error {
        ureq::Error::Other(inner) if inner.is::<Blocked>() => {
            EgressError::Refused(inner.to_string())
        }
        ureq::Error::Timeout(_) => {
            EgressError::TimedOut(format!("{url}: no answer before the invocation deadline"))
        }
        other => EgressError::Failed(format!("{url}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(ip: &str) -> Option<&'static str> {
        forbidden_range(ip.parse().unwrap())
    }

    #[test]
    fn non_public_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "169.254.169.254",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "ff02::1",
        ] {
            assert!(forbidden(ip).is_some(), "{ip} must be forbidden");
        }
        assert_eq!(
            forbidden("169.254.169.254"),
            Some("link-local address (instance metadata)")
        );
        for ip in ["1.1.1.1", "52.94.236.248", "172.32.0.1", "2606:4700::1111"] {
            assert_eq!(forbidden(ip), None, "{ip} is public");
        }
    }

    #[test]
    fn hosts_match_names_wildcards_and_star() {
        let patterns = vec!["api.example.com".to_string(), "*.example.org".to_string()];
        assert!(host_allowed(&patterns, "api.example.com"));
        assert!(host_allowed(&patterns, "API.Example.com."));
        assert!(host_allowed(&patterns, "a.example.org"));
        assert!(host_allowed(&patterns, "a.b.example.org"));
        assert!(!host_allowed(&patterns, "example.org"));
        assert!(!host_allowed(&patterns, "evilexample.org"));
        assert!(!host_allowed(&patterns, "api.example.com.evil.net"));
        assert!(!host_allowed(&[], "api.example.com"));
        assert!(host_allowed(&["*".to_string()], "anything.net"));
    }

    #[test]
    fn the_runtime_api_port_is_refused_on_every_local_spelling_in_every_mode() {
        for allow_private in [true, false] {
            let policy = EgressPolicy::new(allow_private, Some("http://127.0.0.1:9001/.rt"));
            for address in [
                "127.0.0.1:9001",
                "127.0.0.2:9001",
                "0.0.0.0:9001",
                "[::1]:9001",
                "[::]:9001",
                "[::ffff:127.0.0.1]:9001",
                "[::ffff:0.0.0.0]:9001",
                "[::127.0.0.1]:9001",
                "[64:ff9b::7f00:1]:9001",
                "[2002:7f00:1::1]:9001",
                "10.0.0.1:9001",
                "169.254.100.1:9001",
            ] {
                let refused = policy.checks.check(address.parse().unwrap());
                assert!(
                    refused
                        .as_ref()
                        .is_err_and(|reason| reason.contains("Lambda Runtime API")),
                    "{address} (allow_private {allow_private}): {refused:?}"
                );
            }
            // This machine's own addresses too, whatever they are.
            for own in &policy.checks.own {
                let address = SocketAddr::new(*own, 9001);
                assert!(policy.checks.check(address).is_err(), "{address}");
            }
        }
    }

    #[test]
    fn this_machines_own_addresses_are_refused_in_strict_mode() {
        let strict = EgressPolicy::new(false, None);
        assert!(strict.checks.own.iter().any(|ip| ip.is_loopback()));
        for own in &strict.checks.own {
            assert!(
                strict.checks.check(SocketAddr::new(*own, 80)).is_err(),
                "{own}"
            );
        }
    }

    #[test]
    fn the_runtime_api_is_refused_even_when_private_egress_is_allowed() {
        let policy = EgressPolicy::new(true, Some("http://127.0.0.1:9001/.rt"));
        assert!(
            policy
                .checks
                .check("127.0.0.1:9001".parse().unwrap())
                .unwrap_err()
                .contains("Lambda Runtime API")
        );
        assert!(
            policy
                .checks
                .check("127.0.0.1:8080".parse().unwrap())
                .is_ok()
        );
        let strict = EgressPolicy::new(false, Some("127.0.0.1:9001"));
        assert!(
            strict
                .checks
                .check("127.0.0.1:8080".parse().unwrap())
                .is_err()
        );
    }
}

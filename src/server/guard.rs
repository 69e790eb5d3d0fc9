//! The origin guard: who may read and who may control the relay.
//!
//! Any web page the streamer opens can send requests to the relay, and a DNS-rebinding page
//! can even read the answers (its own hostname resolves to the relay's address). So:
//! - **every** request, websocket handshake included, must name the relay itself in `Host`:
//!   a loopback name, the bound address, or (bound to `0.0.0.0`/`::`) one of the machine's
//!   interface addresses. A rebinding page sends its own hostname and gets nothing.
//! - reading events from another *origin* stays allowed on purpose: LIVE events are public,
//!   and overlays hosted elsewhere read `ws://127.0.0.1:PORT/ws`.
//! - every request that changes something, and every websocket control op, must come from
//!   the relay's own origin (or from no browser at all: no `Origin` header), and, when the
//!   relay has an access token (always for a bind other than loopback), carry that token.
//!   A LAN client can forge `Host` and `Origin`, but not the token.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often at most a miss re-reads the interface addresses (DHCP may change them).
const INTERFACE_REFRESH: Duration = Duration::from_secs(5);

/// The headers (and query parameter) that matter, as a request sent them.
#[derive(Debug, Clone, Default)]
pub struct RequestOrigin {
    pub origin: Option<String>,
    pub host: Option<String>,
    /// `?token=`, `X-Tikrelay-Token` or `Authorization: Bearer`.
    pub token: Option<String>,
}

impl RequestOrigin {
    /// Reads the guard's inputs from request headers and the query string.
    pub fn from_parts(headers: &hyper::HeaderMap, query: Option<&str>) -> RequestOrigin {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let bearer = text("authorization").and_then(|a| {
            a.strip_prefix("Bearer ")
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        let token = query
            .and_then(token_from_query)
            .or_else(|| text("x-tikrelay-token"))
            .or(bearer);
        RequestOrigin {
            origin: text("origin"),
            host: text("host"),
            token,
        }
    }
}

/// The `token` parameter of a query string, percent-decoded.
pub fn token_from_query(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token")
            .then(|| super::percent_decode(v))
            .flatten()
            .filter(|t| !t.is_empty())
    })
}

/// Which hosts count as the relay itself, and the access token if there is one.
#[derive(Debug)]
pub struct OriginPolicy {
    port: u16,
    bound: IpAddr,
    token: Option<String>,
    /// The machine's own addresses, for a relay bound to all interfaces.
    interfaces: Mutex<(Vec<IpAddr>, Option<Instant>)>,
}

impl OriginPolicy {
    /// A policy without a token: control needs the relay's own origin only.
    pub fn new(addr: SocketAddr) -> OriginPolicy {
        OriginPolicy {
            port: addr.port(),
            bound: addr.ip(),
            token: None,
            interfaces: Mutex::new((Vec::new(), None)),
        }
    }

    /// Requires `token` for every control request and op.
    pub fn with_token(mut self, token: Option<String>) -> OriginPolicy {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn is_own_ip(&self, ip: IpAddr) -> bool {
        if ip == self.bound {
            return true;
        }
        let unspecified = self.bound.is_unspecified();
        if ip.is_loopback() {
            return unspecified || self.bound.is_loopback();
        }
        if !unspecified {
            return false;
        }
        let mut cached = self.interfaces.lock().expect("interfaces lock");
        if cached.0.contains(&ip) {
            return true;
        }
        let stale = cached.1.is_none_or(|at| at.elapsed() >= INTERFACE_REFRESH);
        if stale {
            *cached = (super::interfaces::addresses(), Some(Instant::now()));
            return cached.0.contains(&ip);
        }
        false
    }

    /// True when `host` (a `Host` header or the authority of an `Origin`) names this relay.
    fn is_own_host(&self, host: &str) -> bool {
        let Some((name, port)) = split_host(host) else {
            return false;
        };
        if port.unwrap_or(80) != self.port {
            return false;
        }
        let name = name.to_ascii_lowercase();
        if name == "localhost" {
            return self.bound.is_loopback() || self.bound.is_unspecified();
        }
        name.parse::<IpAddr>().is_ok_and(|ip| self.is_own_ip(ip))
    }

    /// Allows any request whose `Host` names the relay (or that has none: not a browser).
    pub fn check_host(&self, host: Option<&str>) -> Result<(), String> {
        match host {
            Some(h) if !self.is_own_host(h) => Err(format!(
                "forbidden: Host {h:?} is not this relay (pages of other sites may not read it); open http://127.0.0.1:{port}/ on this PC, or http://<this PC's IP address>:{port}/ from another one",
                port = self.port
            )),
            _ => Ok(()),
        }
    }

    /// Allows a request that changes state, or says why not.
    pub fn check_change(&self, req: &RequestOrigin) -> Result<(), String> {
        let host = req.host.as_deref().unwrap_or("");
        self.check_host(req.host.as_deref())?;
        if let Some(origin) = req.origin.as_deref() {
            let own = origin.strip_prefix("http://").is_some_and(|h| {
                self.is_own_host(h) && (host.is_empty() || h.eq_ignore_ascii_case(host))
            });
            if !own {
                return Err(format!(
                    "forbidden: requests from {origin:?} may not control the relay; use the dashboard at http://127.0.0.1:{}/",
                    self.port
                ));
            }
        }
        if let Some(expected) = &self.token {
            let given = req.token.as_deref().unwrap_or("");
            if !same_secret(given, expected) {
                return Err(if given.is_empty() {
                    "forbidden: this relay needs its access token for control; open the dashboard or overlay URL that tikrelay printed at start (it ends with ?token=…)".to_string()
                } else {
                    "forbidden: wrong access token; use the URLs tikrelay printed at start, or the --token / TIKRELAY_TOKEN it runs with".to_string()
                });
            }
        }
        Ok(())
    }
}

/// Splits `name[:port]` or `[v6][:port]`; `None` for a malformed port.
fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = host.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        return Some((ip, port));
    }
    match host.rsplit_once(':') {
        Some((name, port)) => Some((name, Some(port.parse().ok()?))),
        None => Some((host, None)),
    }
}

/// Compares secrets in time that does not depend on where they differ.
fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new random access token: 128 bits as 32 hex digits, safe in a URL.
pub fn generate_token() -> String {
    super::headers::random_hex(16)
}

/// The token as logs may show it: the first 4 characters only.
pub fn masked(token: &str) -> String {
    let head: String = token.chars().take(4).collect();
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(origin: Option<&str>, host: &str) -> RequestOrigin {
        RequestOrigin {
            origin: origin.map(str::to_string),
            host: Some(host.to_string()),
            token: None,
        }
    }

    #[test]
    fn only_the_relay_itself_may_change_things() {
        let p = OriginPolicy::new("127.0.0.1:8642".parse().unwrap());
        assert!(p.check_change(&req(None, "127.0.0.1:8642")).is_ok());
        assert!(
            p.check_change(&req(Some("http://127.0.0.1:8642"), "127.0.0.1:8642"))
                .is_ok()
        );
        assert!(
            p.check_change(&req(Some("http://localhost:8642"), "localhost:8642"))
                .is_ok()
        );
        assert!(
            p.check_change(&req(Some("https://evil.example"), "127.0.0.1:8642"))
                .is_err()
        );
        assert!(
            p.check_change(&req(Some("http://127.0.0.1:9999"), "127.0.0.1:8642"))
                .is_err()
        );
        assert!(
            p.check_change(&req(None, "evil.example:8642")).is_err(),
            "DNS rebinding"
        );
        assert!(
            p.check_change(&req(Some("null"), "127.0.0.1:8642"))
                .is_err()
        );
    }

    #[test]
    fn host_check_names_the_relay_only() {
        let p = OriginPolicy::new("127.0.0.2:8642".parse().unwrap());
        assert!(p.check_host(Some("127.0.0.2:8642")).is_ok());
        assert!(p.check_host(Some("localhost:8642")).is_ok());
        assert!(p.check_host(None).is_ok(), "HTTP/1.0 clients send no Host");
        assert!(p.check_host(Some("rebind.example:8642")).is_err());
        assert!(p.check_host(Some("127.0.0.2:8643")).is_err());
        assert!(p.check_host(Some("127.0.0.2:x")).is_err());
        assert!(p.check_host(Some("192.168.1.5:8642")).is_err());
        let lan = OriginPolicy::new("192.168.1.5:8642".parse().unwrap());
        assert!(lan.check_host(Some("192.168.1.5:8642")).is_ok());
        assert!(lan.check_host(Some("192.168.1.6:8642")).is_err());
        let v6 = OriginPolicy::new("[::1]:8642".parse().unwrap());
        assert!(v6.check_host(Some("[::1]:8642")).is_ok());
        assert!(v6.check_host(Some("[::1]:1")).is_err());
    }

    #[test]
    fn with_a_token_control_needs_it() {
        let p = OriginPolicy::new("0.0.0.0:8642".parse().unwrap())
            .with_token(Some("s3cret-token".into()));
        let mut r = req(None, "127.0.0.1:8642");
        assert!(p.check_change(&r).is_err(), "no token");
        r.token = Some("s3cret-tokeX".into());
        assert!(p.check_change(&r).is_err(), "wrong token");
        r.token = Some("s3cret-token".into());
        assert!(p.check_change(&r).is_ok());
        r.origin = Some("http://evil.example".into());
        assert!(
            p.check_change(&r).is_err(),
            "a token does not make any origin own"
        );
    }

    #[test]
    fn tokens_come_from_query_or_headers() {
        let mut h = hyper::HeaderMap::new();
        assert_eq!(
            RequestOrigin::from_parts(&h, Some("a=1&token=ab%2Fc")).token,
            Some("ab/c".into())
        );
        h.insert("authorization", "Bearer xyz".parse().unwrap());
        assert_eq!(
            RequestOrigin::from_parts(&h, None).token,
            Some("xyz".into())
        );
        h.insert("x-tikrelay-token", "hdr".parse().unwrap());
        assert_eq!(
            RequestOrigin::from_parts(&h, None).token,
            Some("hdr".into())
        );
        assert_eq!(masked("abcdef123"), "abcd…");
        assert_eq!(generate_token().len(), 32);
    }
}

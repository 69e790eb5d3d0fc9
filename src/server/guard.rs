//! The origin guard. Any web page the streamer opens can send requests to loopback, so every
//! request that changes something, and every websocket control op, must come from the relay's
//! own origin. Requests without an `Origin` header (curl, scripts) are allowed; the `Host`
//! header must name the relay itself, which defeats DNS rebinding (a hostile domain that
//! resolves to 127.0.0.1 still sends its own name as `Host`).

use std::net::SocketAddr;

/// The headers that matter, as a request sent them.
#[derive(Debug, Clone, Default)]
pub struct RequestOrigin {
    pub origin: Option<String>,
    pub host: Option<String>,
}

/// Which hosts count as the relay itself.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    port: u16,
    /// Listening on a loopback address: only loopback host names are the relay.
    loopback_only: bool,
    /// The address as given (e.g. a LAN IP when the streamer chose one).
    bound_host: String,
}

impl OriginPolicy {
    pub fn new(addr: SocketAddr) -> OriginPolicy {
        OriginPolicy {
            port: addr.port(),
            loopback_only: addr.ip().is_loopback(),
            bound_host: match addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            },
        }
    }

    fn is_own_host(&self, host: &str) -> bool {
        let (name, port) = match host.rsplit_once(':') {
            Some((n, p)) if !n.ends_with(']') || host.starts_with('[') => {
                (n, p.parse::<u16>().ok())
            }
            _ => (host, None),
        };
        let port_ok = port.unwrap_or(80) == self.port;
        let name = name.to_ascii_lowercase();
        let loopback = name == "localhost"
            || name == "[::1]"
            || name
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback());
        port_ok && (loopback || (!self.loopback_only && name == self.bound_host))
    }

    /// Allows a request that changes state, or says why not.
    pub fn check_change(&self, req: &RequestOrigin) -> Result<(), String> {
        let host = req.host.as_deref().unwrap_or("");
        if !host.is_empty() && !self.is_own_host(host) {
            return Err(format!(
                "forbidden: Host {host:?} is not this relay; open the dashboard at http://127.0.0.1:{}/",
                self.port
            ));
        }
        match req.origin.as_deref() {
            None => Ok(()),
            Some(origin) => {
                let own = origin.strip_prefix("http://").is_some_and(|h| {
                    self.is_own_host(h) && (host.is_empty() || h.eq_ignore_ascii_case(host))
                });
                if own {
                    Ok(())
                } else {
                    Err(format!(
                        "forbidden: requests from {origin:?} may not control the relay; use the dashboard at http://127.0.0.1:{}/",
                        self.port
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(origin: Option<&str>, host: &str) -> RequestOrigin {
        RequestOrigin {
            origin: origin.map(str::to_string),
            host: Some(host.to_string()),
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
}

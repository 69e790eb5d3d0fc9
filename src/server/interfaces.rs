//! The machine's own IP addresses. A relay bound to `0.0.0.0` or `::` is reached as
//! `http://<one of them>:PORT/` from other PCs, so the origin guard counts each of them as the
//! relay's host.

use std::net::IpAddr;

/// Every address of every interface (loopback included); empty if they cannot be listed.
#[cfg(unix)]
pub fn addresses() -> Vec<IpAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we only read, then free once.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            tracing::warn!(
                "cannot list this PC's network addresses ({}); from other PCs, start tikrelay with --host set to this PC's IP address",
                std::io::Error::last_os_error()
            );
            return out;
        }
        let mut cur = list;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = addr as *const libc::sockaddr_in;
                        let raw = u32::from_be((*sin).sin_addr.s_addr);
                        out.push(IpAddr::V4(Ipv4Addr::from(raw)));
                    }
                    libc::AF_INET6 => {
                        let sin6 = addr as *const libc::sockaddr_in6;
                        out.push(IpAddr::V6(Ipv6Addr::from((*sin6).sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    out
}

/// Elsewhere: the address the default route leaves from (a UDP "connect" sends nothing).
#[cfg(not(unix))]
pub fn addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    for (bind, probe) in [("0.0.0.0:0", "192.0.2.1:9"), ("[::]:0", "[2001:db8::1]:9")] {
        if let Ok(s) = std::net::UdpSocket::bind(bind)
            && s.connect(probe).is_ok()
            && let Ok(a) = s.local_addr()
        {
            out.push(a.ip());
        }
    }
    out
}

#[cfg(all(test, unix))]
mod tests {
    #[test]
    fn loopback_is_among_the_addresses() {
        let all = super::addresses();
        assert!(
            all.iter().any(|ip| ip.is_loopback()),
            "getifaddrs lists lo: {all:?}"
        );
    }
}

//! What a starting relay tells the streamer: the listening line (the first stdout line, which
//! scripts and tests read), the dashboard, the TikFinity-compatible socket, the addresses other
//! PCs use and every overlay page's URL; and the access token those URLs carry when control needs
//! one.

use std::io::Write;
use std::net::SocketAddr;

use crate::cli::CommonArgs;
use crate::server;

use super::Running;

/// `--token`, else a new one when the relay listens beyond loopback (other PCs can reach it,
/// and they can forge any `Host` or `Origin`); `None` means control needs the own origin only.
pub(super) fn access_token(common: &CommonArgs, addr: SocketAddr) -> Option<String> {
    let given = common
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    match given {
        Some(t) => Some(t.to_string()),
        None if addr.ip().is_loopback() => None,
        None => Some(server::guard::generate_token()),
    }
}

impl Running {
    /// The dashboard's URL, with the token when control needs one.
    pub(super) fn dashboard_url(&self) -> String {
        match self.relay.origin.token() {
            Some(t) => format!("http://{}/?token={t}", self.addr),
            None => format!("http://{}/", self.addr),
        }
    }

    /// Prints the listening line and the URLs (with the token, when one is needed).
    pub(super) fn print_urls(&self) {
        let base = format!("http://{}", self.addr);
        let token = self.relay.origin.token();
        let with_token = |path: &str| match token {
            Some(t) => format!("{path}?token={t}"),
            None => path.to_string(),
        };
        let mut out = std::io::stdout().lock();
        // The first stdout line is machine-read: keep its format.
        let _ = writeln!(out, "listening on {base}");
        let _ = writeln!(out, "dashboard: {base}{}", with_token("/"));
        if let Some(addr) = self.compat_addr {
            let _ = writeln!(
                out,
                "TikFinity-compatible socket (for TikFinity widgets): {}",
                crate::compat::url(addr)
            );
        }
        if let Some(t) = token {
            // The token is printed here (stdout, for the streamer), never logged in full.
            tracing::info!(
                "control needs the access token {}; the URLs below carry it",
                server::guard::masked(t)
            );
            let _ = writeln!(
                out,
                "access token: required to control the relay; keep these URLs private"
            );
        }
        if self.addr.ip().is_unspecified() {
            for ip in server::lan_addresses() {
                let host = SocketAddr::new(ip, self.addr.port());
                let _ = writeln!(out, "from other PCs: http://{host}{}", with_token("/"));
            }
        }
        let _ = writeln!(out, "overlays (add as OBS Browser sources):");
        for page in self.relay.themes.pages() {
            let _ = writeln!(
                out,
                "  {base}{}  ({}x{})",
                with_token(&page.path),
                page.width,
                page.height
            );
        }
        // Last, so it is the line a console window shows at the bottom.
        let _ = writeln!(
            out,
            "tikrelay is running: the dashboard is at {}; press Ctrl-C (or close this window) to stop",
            self.dashboard_url()
        );
        let _ = out.flush();
    }
}

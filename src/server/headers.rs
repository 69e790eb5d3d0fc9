//! Security headers. Every response gets `X-Content-Type-Options: nosniff` and
//! `Referrer-Policy: no-referrer` (overlay URLs may carry the access token). Pages get a
//! Content-Security-Policy that allows only the relay's own origin, plus TikTok's image hosts
//! for avatars and gift pictures; their inline `<script>`/`<style>` run only with the
//! per-response nonce the templates get as `{{relay.nonce}}`. The dashboard may not be framed
//! at all (`X-Frame-Options: DENY`, `frame-ancestors 'none'`): a framing page could trick a
//! click on its buttons.

use warp::http::{HeaderValue, header};
use warp::reply::Response;

/// Hosts TikTok serves avatars and gift images from (https only).
pub const TIKTOK_IMAGE_HOSTS: &[&str] = &[
    "https://*.tiktokcdn.com",
    "https://*.tiktokcdn-us.com",
    "https://*.tiktokcdn-eu.com",
    "https://*.ibyteimg.com",
    "https://*.byteimg.com",
    "https://*.ibytedtos.com",
    "https://*.byteoversea.com",
    "https://*.muscdn.com",
];

/// `n` random bytes as hex (nonces and tokens).
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    if let Err(e) = getrandom::fill(&mut bytes) {
        // The OS always has randomness; if it does not, refuse to hand out guessable secrets.
        panic!("the OS gave no random bytes ({e}); tikrelay cannot make a secret");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh nonce for one page response.
pub fn nonce() -> String {
    random_hex(16)
}

/// Which page a policy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// An overlay page: may be embedded (a streamer's own page may frame it).
    Overlay,
    /// The dashboard: never framed.
    Dashboard,
    /// Any other HTML (a theme's own .html file): no inline code at all.
    OtherHtml,
}

/// The Content-Security-Policy of a page. `host` is the request's `Host`, already checked by
/// the guard: the websocket lives there.
pub fn csp(page: Page, nonce: Option<&str>, host: Option<&str>) -> String {
    let inline = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    // Only characters of a host[:port] go into the header.
    let ws = host
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .map(|h| format!(" ws://{h} wss://{h}"))
        .unwrap_or_default();
    let mut policy = format!(
        "default-src 'self'; script-src 'self'{inline}; style-src 'self'{inline}; \
         style-src-attr 'unsafe-inline'; img-src 'self' data: blob: {images}; \
         media-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'{ws}; \
         object-src 'none'; base-uri 'self'; form-action 'self'",
        images = TIKTOK_IMAGE_HOSTS.join(" "),
    );
    if page == Page::Dashboard {
        policy.push_str("; frame-ancestors 'none'");
    }
    policy
}

/// Puts the page's policy (and, for the dashboard, the framing ban) on `res`.
pub fn page(res: &mut Response, page: Page, nonce: Option<&str>, host: Option<&str>) {
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp(page, nonce, host)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    if page == Page::Dashboard {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
}

/// Headers every response gets; HTML without a policy of its own gets the strict one.
pub fn common(res: &mut Response, host: Option<&str>) {
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    if html && !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        page(res, Page::OtherHtml, None, host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_allow_the_relay_and_tiktok_images_only() {
        let p = csp(Page::Dashboard, Some("abc"), Some("127.0.0.1:8642"));
        assert!(p.contains("script-src 'self' 'nonce-abc';"), "{p}");
        assert!(p.contains("connect-src 'self' ws://127.0.0.1:8642 wss://127.0.0.1:8642"));
        assert!(p.contains("https://*.tiktokcdn.com"));
        assert!(p.ends_with("frame-ancestors 'none'"));
        let o = csp(Page::Overlay, None, Some("evil\"; script-src *"));
        assert!(
            !o.contains("evil"),
            "a strange Host never reaches the header"
        );
        assert!(!o.contains("frame-ancestors"));
        assert!(!o.contains("nonce"));
        assert_ne!(nonce(), nonce());
    }
}

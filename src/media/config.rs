//! The config file's `[media]` table: the image cache's size cap and extra allowed hosts.
//!
//! ```toml
//! [media]
//! cache_mb = 200                # size cap of the image cache (default 200)
//! allow_hosts = ["127.0.0.1"]   # hosts besides TikTok's image hosts (exact names, http too)
//! ```

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::AllowList;

/// The cache's default size cap, in MiB.
pub const DEFAULT_CACHE_MB: f64 = 200.0;
/// The largest cap accepted, in MiB (100 GiB).
const MAX_CACHE_MB: f64 = 100.0 * 1024.0;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMedia {
    cache_mb: Option<Spanned<f64>>,
    allow_hosts: Option<Vec<Spanned<String>>>,
}

/// The validated `[media]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaSettings {
    /// Size cap of the cache folder, in bytes.
    pub max_bytes: u64,
    pub allow: AllowList,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            max_bytes: (DEFAULT_CACHE_MB * 1024.0 * 1024.0) as u64,
            allow: AllowList::default(),
        }
    }
}

/// A `[media]` value that cannot be used: where it is and why.
#[derive(Debug)]
pub struct Invalid {
    pub span: Range<usize>,
    pub message: String,
}

/// Checks `[media]` (defaults when absent).
pub fn settings(raw: Option<RawMedia>) -> Result<MediaSettings, Invalid> {
    let raw = raw.unwrap_or_default();
    let mut s = MediaSettings::default();
    if let Some(mb) = &raw.cache_mb {
        let v = *mb.get_ref();
        if !(v > 0.0 && v <= MAX_CACHE_MB) {
            return Err(Invalid {
                span: mb.span(),
                message: format!(
                    "[media] cache_mb must be above 0 and at most {MAX_CACHE_MB}, e.g. {DEFAULT_CACHE_MB}"
                ),
            });
        }
        s.max_bytes = (v * 1024.0 * 1024.0) as u64;
    }
    for h in raw.allow_hosts.unwrap_or_default() {
        let host = h
            .get_ref()
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c))
            && (!host.contains(':') || host.parse::<std::net::Ipv6Addr>().is_ok());
        if !ok {
            return Err(Invalid {
                span: h.span(),
                message: format!(
                    "[media] allow_hosts entry {:?} must be a bare host name or IP address, e.g. \"127.0.0.1\" (no scheme, port or path)",
                    h.get_ref()
                ),
            });
        }
        s.allow.extra_hosts.push(host.to_ascii_lowercase());
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MediaSettings, Invalid> {
        #[derive(Deserialize)]
        struct Wrap {
            media: Option<RawMedia>,
        }
        settings(toml::from_str::<Wrap>(text).unwrap().media)
    }

    #[test]
    fn media_settings_have_defaults_and_refuse_bad_values() {
        assert_eq!(parse("").unwrap(), MediaSettings::default());
        let s = parse("[media]\ncache_mb = 0.5\nallow_hosts = [\"127.0.0.1\", \"CDN.Example\"]")
            .unwrap();
        assert_eq!(s.max_bytes, 512 * 1024);
        assert_eq!(s.allow.extra_hosts, ["127.0.0.1", "cdn.example"]);
        for bad in [
            "[media]\ncache_mb = 0",
            "[media]\ncache_mb = -1",
            "[media]\nallow_hosts = [\"http://127.0.0.1\"]",
            "[media]\nallow_hosts = [\"127.0.0.1:80\"]",
            "[media]\nallow_hosts = [\"\"]",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.message.contains("[media]"), "{bad}: {}", e.message);
        }
    }
}

//! Images that outlive their links: avatars and gift images served from the relay.
//!
//! TikTok's image URLs are signed and expire within hours, so a page reloaded late or a
//! replayed recording would show broken images, and every overlay would reach out to TikTok's
//! CDN. So every event also carries a relay URL next to the original ([`link`]): `user.avatar`
//! next to `user.avatar_url`, `gift.image` next to `gift.image_url`. A relay URL is
//! `/media/<key>?src=<original URL, percent-encoded>`, where `key` is a hash of the original's
//! path (TikTok signs the query, which changes; the path names the image). The first request
//! for a key fetches `src`, only from an allowed host ([`AllowList`]: TikTok's image hosts,
//! https only, plus hosts the config names), checks that the answer is an image, and stores it
//! in the data dir ([`cache`]); every later request is served from disk, even after the
//! original has expired, and needs no `src`. The cache has a size cap and evicts the least
//! recently used images. Recordings keep the original URLs; replay maps them again.

pub mod cache;
pub mod config;

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::events::{Event, EventKind, GiftInfo, User};

pub use cache::{Image, MediaCache, MediaError};
pub use config::MediaSettings;

/// The path every relay URL starts with.
pub const ROUTE: &str = "/media/";
/// Hex characters of a cache key (128 bits of SHA-256).
pub const KEY_LEN: usize = 32;

/// Registrable domains TikTok serves avatars and gift images from (any subdomain, https).
pub const TIKTOK_IMAGE_DOMAINS: &[&str] = &[
    "tiktokcdn.com",
    "tiktokcdn-us.com",
    "tiktokcdn-eu.com",
    "ibyteimg.com",
    "byteimg.com",
    "ibytedtos.com",
    "byteoversea.com",
    "muscdn.com",
];

/// The cache key of an image URL: the hash of its path, so the same image under a fresh
/// signature (or from another TikTok CDN host) is the same entry. `None` for anything but an
/// absolute http(s) URL.
pub fn key_of(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return None;
    }
    let digest = Sha256::digest(parsed.path().as_bytes());
    let mut key = String::with_capacity(KEY_LEN);
    for b in &digest[..KEY_LEN / 2] {
        let _ = write!(key, "{b:02x}");
    }
    Some(key)
}

/// The relay URL of an image URL, or `None` when it is not an absolute http(s) URL (the
/// demo's own `/overlays/…` images stay as they are).
pub fn relay_url(original: &str) -> Option<String> {
    let key = key_of(original)?;
    let src = percent_encoding::utf8_percent_encode(original, QUERY_VALUE);
    Some(format!("{ROUTE}{key}?src={src}"))
}

/// Everything but unreserved characters is encoded, so the URL survives as one query value.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Sets the relay URLs of every user and gift image in `event` from their originals.
pub fn link(event: &mut Event) {
    if let Some(u) = &mut event.user {
        link_user(u);
    }
    match &mut event.kind {
        EventKind::Gift { gift, .. } | EventKind::Combo { gift, .. } => link_gift(gift),
        EventKind::Battle { teams, .. } => {
            for t in teams {
                link_user(&mut t.host);
            }
        }
        _ => {}
    }
}

fn link_user(u: &mut User) {
    u.avatar = u.avatar_url.as_deref().and_then(relay_url);
}

fn link_gift(g: &mut GiftInfo) {
    g.image = g.image_url.as_deref().and_then(relay_url);
}

/// The hosts images may be fetched from. Never an open proxy: TikTok's image domains over
/// https, and the hosts the config names exactly (any scheme, for a local mirror or a test).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    /// Extra host names or IP addresses, lowercase, without port.
    pub extra_hosts: Vec<String>,
}

impl AllowList {
    /// Whether `url` may be fetched.
    pub fn allows(&self, url: &reqwest::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let scheme = url.scheme();
        if !matches!(scheme, "http" | "https") || !url.username().is_empty() {
            return false;
        }
        if self.extra_hosts.contains(&host) {
            return true;
        }
        scheme == "https"
            && TIKTOK_IMAGE_DOMAINS.iter().any(|d| {
                host.strip_suffix(d)
                    .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Source;

    #[test]
    fn the_key_ignores_the_signature_and_the_cdn_host() {
        let a = "https://p16-sign-va.tiktokcdn.com/tos-maliva-avt-0068/abc~tplv-tiktok-shrink:72:72.webp?x-expires=1&x-signature=A";
        let b = "https://p77-sign-sg.tiktokcdn.com/tos-maliva-avt-0068/abc~tplv-tiktok-shrink:72:72.webp?x-expires=2&x-signature=B";
        let other = "https://p16-sign-va.tiktokcdn.com/tos-maliva-avt-0068/xyz.webp";
        assert_eq!(key_of(a), key_of(b));
        assert_ne!(key_of(a), key_of(other));
        assert_eq!(key_of(a).unwrap().len(), KEY_LEN);
        assert_eq!(key_of("/overlays/default/images/avatar-1.svg"), None);
        assert_eq!(key_of("data:image/png;base64,AAAA"), None);
        assert_eq!(key_of("javascript:alert(1)"), None);
    }

    #[test]
    fn relay_urls_carry_the_original_as_one_query_value() {
        let original = "https://p16.tiktokcdn.com/a b/c.webp?x=1&y=\"2\"#f";
        let url = relay_url(original).unwrap();
        assert!(url.starts_with(ROUTE));
        let (path, query) = url.split_once("?src=").unwrap();
        assert_eq!(&path[ROUTE.len()..], key_of(original).unwrap());
        assert!(!query.contains(['&', '?', '#', '"', ' ', '/']));
        let back = percent_encoding::percent_decode_str(query)
            .decode_utf8()
            .unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn link_maps_users_gifts_and_battle_hosts_and_leaves_local_images() {
        let gift = GiftInfo {
            image_url: Some("https://p19-webcast.tiktokcdn.com/img/rose.png".into()),
            ..GiftInfo::default()
        };
        let mut e = Event::new(
            EventKind::Gift {
                gift,
                count: 1,
                diamonds_total: 1,
                combo_id: None,
            },
            "1",
            Source::Tiktok,
        )
        .with_user(Some(User {
            avatar_url: Some("/overlays/default/images/avatar-1.svg".into()),
            ..User::default()
        }));
        link(&mut e);
        assert_eq!(e.user.as_ref().unwrap().avatar, None);
        match &e.kind {
            EventKind::Gift { gift, .. } => assert_eq!(
                gift.image,
                relay_url("https://p19-webcast.tiktokcdn.com/img/rose.png")
            ),
            _ => unreachable!(),
        }
    }

    #[test]
    fn only_tiktok_image_hosts_over_https_and_named_hosts_are_allowed() {
        let list = AllowList {
            extra_hosts: vec!["127.0.0.1".into()],
        };
        let ok = |u: &str| list.allows(&reqwest::Url::parse(u).unwrap());
        assert!(ok("https://p16-sign-va.tiktokcdn.com/a.webp"));
        assert!(ok("https://tiktokcdn.com/a.webp"));
        assert!(ok("https://p3.byteimg.com/a.png"));
        assert!(ok("http://127.0.0.1:8080/a.png"));
        assert!(!ok("http://p16-sign-va.tiktokcdn.com/a.webp"), "http");
        assert!(!ok("https://eviltiktokcdn.com/a.webp"));
        assert!(!ok("https://tiktokcdn.com.evil.example/a.webp"));
        assert!(!ok("https://example.com/a.png"));
        assert!(!ok("https://user@p16.tiktokcdn.com/a.png"));
        assert!(!ok("http://127.0.0.2/a.png"));
        assert!(!ok("file:///etc/passwd"));
        assert!(!AllowList::default().allows(&reqwest::Url::parse("http://127.0.0.1/a").unwrap()));
    }
}

//! The image cache on disk: fetch once from an allowed host, keep, serve, evict.
//!
//! Each image is one file named by its key in `<data dir>/media/`. The index (key, size, last
//! use) lives in memory and is rebuilt from the folder at start, last use from the files'
//! modification times, which a hit moves forward, so least-recently-used survives restarts.
//! After each store the least recently used images are deleted until the folder is under its
//! cap. Only what looks like an image (PNG, JPEG, GIF, WebP, AVIF/HEIC by their magic bytes)
//! is stored or served: the answer comes from the relay's own origin, so an HTML or SVG file
//! from a host must never be served as such.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::{AllowList, KEY_LEN, MediaSettings, key_of};

/// Largest single image accepted from a host.
pub const MAX_IMAGE_BYTES: u64 = 5 * 1024 * 1024;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);
/// Redirects followed (each to an allowed host only).
const MAX_REDIRECTS: usize = 3;

/// An image ready to send.
#[derive(Debug, Clone)]
pub struct Image {
    pub bytes: Bytes,
    pub content_type: &'static str,
}

/// Why an image cannot be served. Each names the cause and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("not a media key (expected {KEY_LEN} hex characters)")]
    BadKey,
    #[error("image not cached yet and no src= given to fetch it from")]
    NotCached,
    #[error("src is not an absolute http(s) URL")]
    BadSource,
    #[error("src does not belong to this key")]
    KeyMismatch,
    #[error(
        "host {0:?} is not an allowed image host (TikTok's image hosts over https; add others under [media] allow_hosts)"
    )]
    HostNotAllowed(String),
    #[error("the image host answered {0}")]
    Upstream(u16),
    #[error("the image host could not be reached: {0}")]
    Fetch(String),
    #[error("the image is larger than {} MiB", MAX_IMAGE_BYTES / 1024 / 1024)]
    TooLarge,
    #[error("the host's answer is not an image (PNG, JPEG, GIF, WebP or AVIF)")]
    NotAnImage,
    #[error("the media cache folder {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl MediaError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            MediaError::BadKey | MediaError::BadSource | MediaError::KeyMismatch => 400,
            MediaError::NotCached => 404,
            MediaError::HostNotAllowed(_) => 403,
            MediaError::Upstream(_)
            | MediaError::Fetch(_)
            | MediaError::TooLarge
            | MediaError::NotAnImage => 502,
            MediaError::Io { .. } => 500,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    size: u64,
    /// Position in the use order: higher is more recent.
    used: u64,
}

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<String, Entry>,
    total: u64,
    clock: u64,
}

impl Index {
    fn touch(&mut self, key: &str) {
        self.clock += 1;
        if let Some(e) = self.entries.get_mut(key) {
            e.used = self.clock;
        }
    }

    fn insert(&mut self, key: String, size: u64) {
        self.clock += 1;
        let old = self.entries.insert(
            key,
            Entry {
                size,
                used: self.clock,
            },
        );
        self.total = self.total + size - old.map_or(0, |o| o.size);
    }

    /// Least recently used keys to delete so the total fits `cap`, never `keep`.
    fn evict(&mut self, cap: u64, keep: &str) -> Vec<String> {
        let mut gone = Vec::new();
        while self.total > cap {
            let Some(victim) = self
                .entries
                .iter()
                .filter(|(k, _)| k.as_str() != keep)
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = self.entries.remove(&victim) {
                self.total -= e.size;
            }
            gone.push(victim);
        }
        gone
    }
}

/// The relay's image cache.
pub struct MediaCache {
    dir: PathBuf,
    cap: u64,
    allow: AllowList,
    /// Built at the first fetch: most sessions serve from disk or never see an image URL.
    client: std::sync::OnceLock<reqwest::Client>,
    index: Mutex<Index>,
}

impl MediaCache {
    /// Opens (creating it if needed) the cache in `dir` and reads what it holds.
    pub fn open(dir: &Path, settings: &MediaSettings) -> Result<MediaCache, MediaError> {
        let io = |source| MediaError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            if is_key(&name) {
                let when = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                found.push((when, name, meta.len()));
            } else if name.ends_with(".part") {
                // A store that was cut off (the relay stopped mid-write).
                let _ = std::fs::remove_file(entry.path());
            }
        }
        found.sort();
        let mut index = Index::default();
        for (_, key, size) in found {
            index.insert(key, size);
        }
        let cache = MediaCache {
            dir: dir.to_path_buf(),
            cap: settings.max_bytes,
            allow: settings.allow.clone(),
            client: std::sync::OnceLock::new(),
            index: Mutex::new(index),
        };
        // A smaller cap than last time applies at once.
        let gone = cache.lock().evict(cache.cap, "");
        cache.delete(&gone);
        Ok(cache)
    }

    /// Bytes the cached images take.
    pub fn total_bytes(&self) -> u64 {
        self.lock().total
    }

    /// Number of cached images.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The image for `key`: from disk if cached, else fetched from `src` and stored.
    pub async fn get(&self, key: &str, src: Option<&str>) -> Result<Image, MediaError> {
        if !is_key(key) {
            return Err(MediaError::BadKey);
        }
        if let Some(image) = self.read_cached(key).await {
            return Ok(image);
        }
        let src = src.ok_or(MediaError::NotCached)?;
        let url = reqwest::Url::parse(src).map_err(|_| MediaError::BadSource)?;
        if key_of(src).as_deref() != Some(key) {
            return Err(MediaError::KeyMismatch);
        }
        if !self.allow.allows(&url) {
            return Err(MediaError::HostNotAllowed(
                url.host_str().unwrap_or_default().to_string(),
            ));
        }
        let bytes = self.fetch(url).await?;
        let content_type = image_type(&bytes).ok_or(MediaError::NotAnImage)?;
        self.store(key, &bytes).await?;
        Ok(Image {
            bytes,
            content_type,
        })
    }

    async fn read_cached(&self, key: &str) -> Option<Image> {
        let path = self.dir.join(key);
        let bytes = Bytes::from(tokio::fs::read(&path).await.ok()?);
        let Some(content_type) = image_type(&bytes) else {
            // Not written by this cache (or damaged): drop it and fetch again.
            let _ = tokio::fs::remove_file(&path).await;
            self.forget(key);
            return None;
        };
        self.lock().touch(key);
        // The modification time is the use time that survives a restart; best effort.
        let _ = std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        Some(Image {
            bytes,
            content_type,
        })
    }

    async fn fetch(&self, url: reqwest::Url) -> Result<Bytes, MediaError> {
        let client = match self.client.get() {
            Some(c) => c,
            None => {
                let c = client(self.allow.clone())?;
                self.client.get_or_init(|| c)
            }
        };
        let mut res = client
            .get(url)
            .send()
            .await
            .map_err(|e| MediaError::Fetch(crate::sources::live::room::error_chain(&e)))?;
        if !res.status().is_success() {
            return Err(MediaError::Upstream(res.status().as_u16()));
        }
        if res.content_length().is_some_and(|n| n > MAX_IMAGE_BYTES) {
            return Err(MediaError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = res
            .chunk()
            .await
            .map_err(|e| MediaError::Fetch(crate::sources::live::room::error_chain(&e)))?
        {
            if (body.len() + chunk.len()) as u64 > MAX_IMAGE_BYTES {
                return Err(MediaError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    }

    /// Writes the image (to a part file first, so a reader never sees half an image), then
    /// evicts down to the cap. An image larger than the whole cap is served but not kept.
    async fn store(&self, key: &str, bytes: &[u8]) -> Result<(), MediaError> {
        let size = bytes.len() as u64;
        if size > self.cap {
            return Ok(());
        }
        let path = self.dir.join(key);
        let part = self
            .dir
            .join(format!("{key}.{}.part", crate::events::local_id("m")));
        let io = |source| MediaError::Io {
            path: path.clone(),
            source,
        };
        tokio::fs::write(&part, bytes).await.map_err(io)?;
        if let Err(e) = tokio::fs::rename(&part, &path).await {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(io(e));
        }
        let gone = {
            let mut index = self.lock();
            index.insert(key.to_string(), size);
            index.evict(self.cap, key)
        };
        self.delete(&gone);
        Ok(())
    }

    fn delete(&self, keys: &[String]) {
        for key in keys {
            if let Err(e) = std::fs::remove_file(self.dir.join(key))
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(
                    "media cache: cannot delete {} ({e}); it stays on disk",
                    self.dir.join(key).display()
                );
            }
        }
    }

    fn forget(&self, key: &str) {
        let mut index = self.lock();
        if let Some(e) = index.entries.remove(key) {
            index.total -= e.size;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        // The index is only counters; a panic elsewhere cannot leave it unusable.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn client(allow: AllowList) -> Result<reqwest::Client, MediaError> {
    // reqwest is built without a default TLS provider; the binary installs ring at start, and
    // so does this, for a relay embedded without that (an error only means one is installed).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS || !allow.allows(attempt.url()) {
            attempt.stop()
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(policy)
        .user_agent(crate::sources::live::BROWSER_USER_AGENT)
        .build()
        .map_err(|e| MediaError::Fetch(format!("cannot build the HTTP client: {e}")))
}

fn is_key(s: &str) -> bool {
    s.len() == KEY_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The content type of an image by its first bytes, or `None` if it is not one of the
/// formats TikTok serves.
pub fn image_type(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some("image/webp")
    } else if b.len() >= 12 && &b[4..8] == b"ftyp" {
        match &b[8..12] {
            b"avif" | b"avis" => Some("image/avif"),
            b"heic" | b"heix" | b"mif1" => Some("image/heic"),
            _ => None,
        }
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_takes_the_least_recently_used_and_keeps_the_new_one() {
        let mut index = Index::default();
        index.insert("a".into(), 40);
        index.insert("b".into(), 40);
        index.touch("a");
        index.insert("c".into(), 40);
        assert_eq!(index.evict(100, "c"), ["b"]);
        assert_eq!(index.total, 80);
        // Even when the new one alone is over the cap, it is not the one evicted.
        index.insert("d".into(), 90);
        let mut gone = index.evict(100, "d");
        gone.sort();
        assert_eq!(gone, ["a", "c"]);
        assert_eq!(index.total, 90);
    }

    #[test]
    fn only_image_formats_are_recognised() {
        assert_eq!(image_type(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(image_type(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(image_type(b"\0\0\0\x1cftypavif"), Some("image/avif"));
        assert_eq!(image_type(b"<svg onload=alert(1)>"), None);
        assert_eq!(image_type(b"<!doctype html>"), None);
        assert_eq!(image_type(b""), None);
    }

    #[test]
    fn keys_are_exactly_lowercase_hex_of_the_right_length() {
        assert!(is_key(&"0a".repeat(16)));
        assert!(!is_key(&"0A".repeat(16)));
        assert!(!is_key("../../etc/passwd"));
        assert!(!is_key(&"a".repeat(31)));
    }
}

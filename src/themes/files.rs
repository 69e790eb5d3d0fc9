//! A theme's static files and their URLs: which request paths may name a file (plain relative
//! paths only, never out of the theme's folder or into its templates), reading the file from the
//! embedded or on-disk theme within the size limit, its MIME type, and names as URL path segments.

use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};

use super::{MAX_STATIC_FILE_BYTES, Origin};

/// A static file of a theme from `origin`, never from outside the theme's folder; templates and
/// `theme.json` are not served.
pub(super) fn read(origin: &Origin, path: &str) -> Option<(Cow<'static, [u8]>, &'static str)> {
    let rel = safe_relative_path(path)?;
    if rel.extension().is_some_and(|e| e == "hbs") || rel == Path::new("theme.json") {
        return None;
    }
    let mime = mime_for(&rel);
    match origin {
        // include_dir paths are relative to the embedded root, which includes the theme name.
        Origin::Builtin(dir) => dir
            .get_file(dir.path().join(&rel))
            .map(|f| (Cow::Borrowed(f.contents()), mime)),
        Origin::Folder(root) => {
            let root = root.canonicalize().ok()?;
            let full = root.join(&rel).canonicalize().ok()?;
            // canonicalize resolves symlinks, so a link pointing out of the theme fails here.
            if !full.starts_with(&root) || !full.is_file() {
                return None;
            }
            let size = std::fs::metadata(&full).ok()?.len();
            if size > MAX_STATIC_FILE_BYTES {
                tracing::warn!(
                    "{}: {size} bytes, over the {MAX_STATIC_FILE_BYTES}-byte limit for theme files; not served",
                    full.display()
                );
                return None;
            }
            std::fs::read(full).ok().map(|b| (Cow::Owned(b), mime))
        }
    }
}

/// Characters left as they are in a URL path segment (RFC 3986 unreserved); the rest is
/// percent-encoded, so theme and page names with spaces or accents give working URLs.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `name` as one URL path segment.
pub fn url_segment(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, SEGMENT).to_string()
}

/// Accepts only plain relative paths: no `..`, no root, no drive, no backslash, no NUL.
pub fn safe_relative_path(path: &str) -> Option<PathBuf> {
    if path.is_empty() || path.contains('\\') || path.contains('\0') {
        return None;
    }
    let p = Path::new(path);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn mime_for(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_never_escape() {
        assert!(safe_relative_path("style.css").is_some());
        assert!(safe_relative_path("images/a.svg").is_some());
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a\\..\\x",
            "",
            "a\0b",
            "./../x",
        ] {
            assert!(safe_relative_path(bad).is_none(), "{bad:?}");
        }
    }
}

//! Changes the relay makes to the config file itself (today: the sign server's API key, entered
//! on the dashboard). The file is edited in place with `toml_edit`, so the streamer's comments,
//! order and other settings stay exactly as they were; only `[live] sign_api_key` changes. The
//! result is validated before it is written, and written atomically (a temp file renamed over
//! the old one), so a failed write never leaves half a config.

use std::path::Path;

use super::{Config, ConfigError, read_bounded};

/// The longest key accepted; real ones are a few dozen characters.
pub const MAX_KEY_LEN: usize = 512;

/// Why the key could not be stored. No message holds the key.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error(
        "the key holds spaces or control characters, or is longer than {MAX_KEY_LEN} characters; paste just the key"
    )]
    BadKey,
    #[error("{0}; fix the config file first, then enter the key again")]
    Config(#[from] ConfigError),
    #[error(
        "the config file {file} has a mistake at line {line}, column {column}: {message}; fix it first, then enter the key again"
    )]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cannot write the config file {file}: {source}")]
    Write {
        file: String,
        source: std::io::Error,
    },
}

/// Stores `key` as `[live] sign_api_key` in the config file at `path` (an empty key removes
/// it), keeping everything else in the file as it was.
pub fn set_sign_api_key(path: &Path, key: &str) -> Result<(), EditError> {
    let key = key.trim();
    if key.len() > MAX_KEY_LEN || key.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(EditError::BadKey);
    }
    let file = path.display().to_string();
    let text = read_bounded(path, &file)?;
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        let (line, column) = super::line_col(&text, e.span().map_or(0, |s| s.start));
        EditError::Syntax {
            file: file.clone(),
            line,
            column,
            message: e.message().trim_end().to_string(),
        }
    })?;
    if key.is_empty() {
        if let Some(live) = doc.get_mut("live").and_then(|l| l.as_table_like_mut()) {
            live.remove("sign_api_key");
        }
    } else {
        if doc.get("live").is_none() {
            doc.insert("live", toml_edit::Item::Table(toml_edit::Table::new()));
        }
        let Some(live) = doc["live"].as_table_like_mut() else {
            return Err(EditError::Syntax {
                file,
                line: 1,
                column: 1,
                message: "`live` is not a table; make it [live]".into(),
            });
        };
        live.insert("sign_api_key", toml_edit::value(key));
    }
    let new_text = doc.to_string();
    // The edit must leave a config the relay accepts (it reloads it at once).
    Config::parse(&new_text, &file)?;
    write_atomic(path, new_text.as_bytes()).map_err(|source| EditError::Write { file, source })
}

/// Writes `bytes` to a temp file next to `path`, flushes it, and renames it over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map_or_else(
        || "tikrelay.toml".into(),
        |n| n.to_string_lossy().to_string(),
    );
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    let result = written.and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_stored_and_the_rest_of_the_file_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tikrelay.toml");
        std::fs::write(&path, super::super::DEFAULT_CONFIG).unwrap();
        set_sign_api_key(&path, "  euler_abcdefghijklmnop1234 ").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines()
                .filter(|l| !l.starts_with("sign_api_key"))
                .collect::<Vec<_>>(),
            super::super::DEFAULT_CONFIG.lines().collect::<Vec<_>>(),
            "everything else kept, in order"
        );
        let config = Config::parse(&text, "t").unwrap();
        assert_eq!(
            config.sign_api_key.as_deref(),
            Some("euler_abcdefghijklmnop1234")
        );
        assert_eq!(config.triggers.len(), 3);

        set_sign_api_key(&path, "other_key_0123456789").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("sign_api_key").count(), 2, "comment + one key");
        assert!(!text.contains("euler_abc"));

        set_sign_api_key(&path, "").unwrap();
        let config = Config::parse(&std::fs::read_to_string(&path).unwrap(), "t").unwrap();
        assert_eq!(config.sign_api_key, None);
    }

    #[test]
    fn a_broken_file_or_key_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tikrelay.toml");
        std::fs::write(&path, "[queues.main]\nmax_pending = = 3\n").unwrap();
        let e = set_sign_api_key(&path, "abc").unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(!e.contains("abc"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[queues.main]\nmax_pending = = 3\n"
        );
        assert!(matches!(
            set_sign_api_key(&path, "a b"),
            Err(EditError::BadKey)
        ));
    }
}

//! Where the config file lives when `--config` is not given, and its creation on the first
//! start: `%APPDATA%\tikrelay\tikrelay.toml` on Windows, `~/Library/Application
//! Support/tikrelay/tikrelay.toml` on macOS, `$XDG_CONFIG_HOME/tikrelay/tikrelay.toml`
//! (`~/.config/…` by default) elsewhere. The first start writes [`super::DEFAULT_CONFIG`], the
//! built-in setup with its comments, so a streamer finds a file that explains itself where such
//! files usually are.

use std::path::{Path, PathBuf};

/// The config file's name inside its folder.
pub const FILE_NAME: &str = "tikrelay.toml";

/// The per-user config file, whether or not it exists yet; `None` when the variable it comes
/// from (`APPDATA` on Windows, `HOME` elsewhere, unless `XDG_CONFIG_HOME` is set) is not set.
pub fn default_path() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let dir = if cfg!(windows) {
        env("APPDATA")?
    } else if cfg!(target_os = "macos") {
        env("HOME")?.join("Library/Application Support")
    } else {
        // The XDG spec says a relative XDG_CONFIG_HOME is invalid and to be ignored.
        env("XDG_CONFIG_HOME")
            .filter(|d| d.is_absolute())
            .or_else(|| env("HOME").map(|h| h.join(".config")))?
    };
    Some(dir.join("tikrelay").join(FILE_NAME))
}

/// Why the first-start config could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the config file {}: {source}", path.display())]
pub struct CreateError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Writes the commented default config to `path` (creating its folder) unless a file is there
/// already. Returns whether it wrote one. An existing file is never overwritten, also not when
/// two relays start at once (the file is created exclusively).
pub fn create_if_missing(path: &Path) -> Result<bool, CreateError> {
    use std::io::Write;
    let err = |source| CreateError {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(err(e)),
    };
    let text = if cfg!(windows) {
        // Notepad copes with LF today, but older editors show one long line.
        super::DEFAULT_CONFIG.replace('\n', "\r\n")
    } else {
        super::DEFAULT_CONFIG.to_string()
    };
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(err)?;
    Ok(true)
}

/// The config file a relay uses: `explicit` (`--config`) if given, else the per-user file,
/// created on the first start. `None` (the built-in default, logged) when there is no per-user
/// folder or the file cannot be created there.
pub fn resolve_and_create(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let Some(path) = default_path() else {
        let var = if cfg!(windows) { "APPDATA" } else { "HOME" };
        tracing::warn!(
            "no config folder found ({var} is not set); using the built-in config; pass --config FILE to use a file"
        );
        return None;
    };
    match create_if_missing(&path) {
        Ok(true) => {
            tracing::info!(
                "created the config file {} (edit it while tikrelay runs: changes apply when you save)",
                path.display()
            );
            Some(path)
        }
        Ok(false) => Some(path),
        Err(e) => {
            tracing::warn!("{e}; using the built-in config; pass --config FILE to use a file");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_start_writes_the_commented_default_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/tikrelay").join(FILE_NAME);
        assert!(create_if_missing(&path).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# An alert queue"), "{text}");
        let config = super::super::Config::parse(&text, "t").unwrap();
        assert_eq!(config.triggers.len(), 3);
        std::fs::write(&path, "# mine\n").unwrap();
        assert!(!create_if_missing(&path).unwrap(), "never overwritten");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");
    }
}

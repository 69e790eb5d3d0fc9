//! `tikrelay theme new DIR`: a new theme folder, copied from the built-in `default` theme so
//! it starts complete (every page, the stylesheet, scripts, images and sounds) and is edited
//! from there. An existing folder is never overwritten.

use std::path::{Path, PathBuf};

use include_dir::Dir;

use super::BUILTIN_OVERLAYS;

/// The built-in theme a new theme starts from.
pub const TEMPLATE_THEME: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "{0} already exists and is not empty; pick a new folder name (nothing was overwritten)"
    )]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Copies the built-in theme into `dir` (created, with its parents). Returns the files written.
pub fn new_theme(dir: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
    let occupied = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        // A file (not a folder) of that name, or an unreadable folder.
        Err(_) => dir.exists(),
    };
    if occupied {
        return Err(ScaffoldError::Exists(dir.to_path_buf()));
    }
    let source = BUILTIN_OVERLAYS
        .get_dir(TEMPLATE_THEME)
        .expect("the built-in default theme is embedded");
    let mut written = Vec::new();
    copy_dir(source, source.path(), dir, &mut written)?;
    Ok(written)
}

fn copy_dir(
    dir: &Dir<'static>,
    root: &Path,
    target: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), ScaffoldError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScaffoldError::Io { path, source }
    };
    for f in dir.files() {
        let rel = f.path().strip_prefix(root).unwrap_or(f.path());
        let out = target.join(rel);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&out, f.contents()).map_err(io(&out))?;
        written.push(out);
    }
    for d in dir.dirs() {
        copy_dir(d, root, target, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::themes::{ThemeRegistry, ThemeSources};

    #[test]
    fn a_new_theme_is_a_complete_copy_and_is_never_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mine");
        let files = new_theme(&dir).unwrap();
        assert!(files.iter().any(|f| f.ends_with("theme.json")));
        assert!(dir.join("style.css").is_file());
        // Served as a theme of its own (the folder is the theme), with no problems.
        let reg = ThemeRegistry::load(ThemeSources {
            overlays_dir: Some(dir.clone()),
            templates_dir: None,
        });
        assert!(reg.problems().is_empty(), "{:?}", reg.problems());
        assert!(reg.theme("mine").is_some());
        std::fs::write(dir.join("style.css"), "/* mine */").unwrap();
        assert!(matches!(new_theme(&dir), Err(ScaffoldError::Exists(_))));
        assert_eq!(
            std::fs::read_to_string(dir.join("style.css")).unwrap(),
            "/* mine */"
        );
    }
}

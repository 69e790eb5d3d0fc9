//! `tikrelay check` and `tikrelay theme new`: validate the config and themes the common options
//! point at, or scaffold a theme, and print what was found or made. Invalid input is a usage
//! error (exit 2) listing each problem with its file and position.

use std::io::Write;

use crate::cli::CommonArgs;
use crate::themes::ThemeRegistry;

use super::{AppError, load_config, theme_sources};

/// `tikrelay check`: validates what the common options point at (the config, then the
/// themes), prints one line per part, and fails (exit 2) on the first invalid one.
pub fn check(common: &CommonArgs) -> Result<(), AppError> {
    let config = load_config(common)?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "config ok: {} ({} triggers; queues: {})",
        config.origin,
        config.triggers.len(),
        config.queues.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    drop(out);
    check_overlays(common)
}

/// Loads and renders every theme and template the relay would serve.
fn check_overlays(common: &CommonArgs) -> Result<(), AppError> {
    let registry = ThemeRegistry::load(theme_sources(common));
    let problems = registry.problems();
    let mut out = std::io::stdout().lock();
    if problems.is_empty() {
        let pages = registry.pages();
        let themes: std::collections::BTreeSet<&str> =
            pages.iter().map(|p| p.theme.as_str()).collect();
        let _ = writeln!(
            out,
            "ok: {} theme(s), {} page(s) load and render",
            themes.len(),
            pages.len()
        );
        return Ok(());
    }
    let base = common.overlays.as_deref();
    let single = theme_sources(common).single_theme().is_some();
    let list: Vec<String> = problems
        .iter()
        .map(|p| match (base, p.theme.as_str()) {
            (_, "templates") => match &common.templates {
                Some(t) => format!("{}: {}", t.join(&p.file).display(), located(p)),
                None => format!("templates/{}: {}", p.file, located(p)),
            },
            (Some(dir), theme) => {
                let root = if single {
                    dir.to_path_buf()
                } else {
                    dir.join(theme)
                };
                format!("{}: {}", root.join(&p.file).display(), located(p))
            }
            (None, _) => p.to_string(),
        })
        .collect();
    Err(AppError::Usage(format!(
        "{} problem(s) in themes; fix them and run `tikrelay check` again:\n  {}",
        list.len(),
        list.join("\n  ")
    )))
}

/// `line L, column C: message` of a problem, for messages that name the file already.
fn located(p: &crate::themes::TemplateProblem) -> String {
    match (p.line, p.column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: {}", p.message),
        (Some(l), None) => format!("line {l}: {}", p.message),
        _ => p.message.clone(),
    }
}

/// `tikrelay theme new DIR`.
pub(super) fn theme_new(dir: &std::path::Path) -> Result<(), AppError> {
    let files = crate::themes::scaffold::new_theme(dir).map_err(|e| match e {
        e @ crate::themes::scaffold::ScaffoldError::Exists(_) => AppError::Usage(e.to_string()),
        e => AppError::Other(e.into()),
    })?;
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_else(|| dir.display().to_string());
    let shown = dir.display();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "created theme {name:?} in {shown} ({} files)\n\nnext:\n  1. run:   tikrelay demo --overlays {shown}\n  2. open:  http://127.0.0.1:8642/overlays/{name}/alerts (every page is listed on the dashboard, http://127.0.0.1:8642/)\n  3. edit {shown}/style.css or any .hbs file: open pages update as you save\n  4. check: tikrelay check --overlays {shown}",
        files.len()
    );
    Ok(())
}

//! `tikrelay check` and `tikrelay theme new`: validate the config and themes the common options
//! point at, or scaffold a theme, and print what was found or made. Invalid input is a usage
//! error (exit 2) listing each problem with its file and position.

use std::io::Write;

use crate::cli::CommonArgs;
use crate::themes::ThemeRegistry;

use super::{AppError, load_config, theme_sources};

/// `tikrelay check`: validates what the common options point at (the config, then the
/// themes, then the sound and image files alerts name), prints one line per part, and fails
/// (exit 2) on the first invalid one.
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
    let registry = ThemeRegistry::load(theme_sources(common));
    check_overlays(common, &registry)?;
    let missing = missing_alert_files(&config, &registry);
    if missing.is_empty() {
        return Ok(());
    }
    Err(AppError::Usage(format!(
        "{} file(s) named by triggers are in no theme; add them to a theme folder (--overlays) or fix the names, then run `tikrelay check` again:\n  {}",
        missing.len(),
        missing.join("\n  ")
    )))
}

/// The sound and image files alerts name (literally, not through a template) that no theme
/// has. A name relative to the page (`sounds/horn.mp3`) is looked up in every theme, as any
/// theme's alerts page may play it; `/overlays/THEME/…` in that theme. Web addresses and other
/// relay paths are not files of a theme and are left alone.
fn missing_alert_files(config: &crate::config::Config, registry: &ThemeRegistry) -> Vec<String> {
    let themes: std::collections::BTreeSet<String> =
        registry.pages().into_iter().map(|p| p.theme).collect();
    let has = |theme: &str, file: &str| registry.file(theme, file).is_some();
    config
        .alert_files
        .iter()
        .filter_map(|f| {
            let path = f.path.trim();
            let path = path.split(['?', '#']).next().unwrap_or(path);
            if path.is_empty() || path.contains(':') || path.starts_with("//") {
                return None;
            }
            let found = match path.strip_prefix("/overlays/") {
                Some(rest) => {
                    let (theme, file) = rest.split_once('/')?;
                    has(theme, file)
                }
                None if path.starts_with('/') => return None,
                None => {
                    let file = path.strip_prefix("./").unwrap_or(path);
                    themes.iter().any(|t| has(t, file))
                }
            };
            let trigger = config.triggers.get(f.trigger).map_or("?", |t| t.name.as_str());
            (!found).then(|| {
                format!(
                    "{}: line {}, column {}: trigger {trigger:?} names the {} file {path:?}, which no theme has (themes: {})",
                    config.origin,
                    f.line,
                    f.column,
                    f.var,
                    themes.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            })
        })
        .collect()
}

/// Loads and renders every theme and template the relay would serve.
fn check_overlays(common: &CommonArgs, registry: &ThemeRegistry) -> Result<(), AppError> {
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

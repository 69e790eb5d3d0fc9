//! Hot reload: watches the `--overlays` and `--templates` folders and turns saves into theme
//! changes for live pages, and those changes into the `reload` and `template_error` messages
//! the hub sends them.
//!
//! The folders are watched, never single files, because editors save by writing a temporary
//! file and renaming it over the original (the original's inode, and a file watch on it, is
//! gone after the first save). notify-debouncer-full folds a burst of events (a rename, a
//! format-on-save, a `git checkout`) into one batch; each batch re-loads the whole registry
//! (cheap: a theme is a few small files), then says what changed: a `.css` file is a
//! `css_only` reload that pages apply in place, anything else reloads the theme's pages, and a
//! template that no longer compiles is reported instead of reloaded (its last good version
//! keeps serving, so reloading would show nothing new).
//!
//! Links to folders are not followed (a link loop, or a link to a big tree, would otherwise be
//! walked and watched whole). A watched folder that is deleted takes its watch with it, so the
//! roots are also checked every [`ROOT_CHECK`]: a folder that is gone is logged (pages keep the
//! themes as last loaded), and one that comes back (or was replaced) is watched again and
//! reloaded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer_opt};
use tokio::sync::mpsc;

use super::{TemplateProblem, ThemeRegistry};
use crate::hub::{Audience, Outbound};

/// Quiet time that ends a burst of saves. Small, so a save shows within a fraction of a second.
pub const DEBOUNCE: Duration = Duration::from_millis(60);

/// How often the watched folders are checked for having been deleted or replaced.
pub const ROOT_CHECK: Duration = Duration::from_secs(1);

/// Files whose change matters to a page; editor swap and backup files are not among them.
const WATCHED_EXTENSIONS: &[&str] = &[
    "hbs", "json", "css", "js", "mjs", "html", "svg", "png", "jpg", "jpeg", "gif", "webp", "wav",
    "ogg", "mp3", "woff", "woff2", "ttf", "otf",
];

/// What live pages must learn after a batch of saves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThemeChange {
    /// Reload the pages of `theme` (every page when `None`: a shared template changed). With
    /// `css_only`, pages swap the stylesheet `path` in place and keep their state.
    Reload {
        theme: Option<String>,
        path: String,
        css_only: bool,
    },
    /// A saved file does not load; its last good version (if any) keeps serving.
    Error(TemplateProblem),
}

impl ThemeChange {
    /// The message that tells live pages: `reload` (logged as it goes out) or `template_error`.
    pub fn message(self) -> Outbound {
        match self {
            ThemeChange::Reload {
                theme,
                path,
                css_only,
            } => {
                tracing::info!(
                    "reload {}/{path}{}",
                    theme.as_deref().unwrap_or("(all pages)"),
                    if css_only { " (css only)" } else { "" }
                );
                Outbound::relay(
                    "reload",
                    serde_json::json!({"theme": theme, "path": path, "css_only": css_only}),
                    Audience::All,
                )
            }
            ThemeChange::Error(p) => Outbound::relay(
                "template_error",
                serde_json::json!({
                    "theme": p.theme,
                    "file": p.file,
                    "line": p.line,
                    "column": p.column,
                    "message": p.message,
                    "serving_last_good": p.serving_last_good,
                }),
                Audience::All,
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path} for changes: {source}")]
pub struct WatchError {
    path: PathBuf,
    source: notify::Error,
}

type FolderDebouncer = Debouncer<notify::RecommendedWatcher, RecommendedCache>;

/// Keeps the folder watch alive; dropping it stops hot reload.
pub struct ThemeWatcher {
    _debouncer: Arc<Mutex<FolderDebouncer>>,
}

/// Where a changed file belongs.
#[derive(Debug, Clone)]
struct Roots {
    /// Canonical `--overlays` folder.
    overlays: Option<PathBuf>,
    /// Set when the overlays folder is itself one theme.
    single_theme: Option<String>,
    templates: Option<PathBuf>,
    /// Theme folders that are links (to a theme kept elsewhere): canonical target and theme
    /// name. Links are not followed by the folder watch, so each target is watched itself.
    linked: Vec<(PathBuf, String)>,
}

/// Theme folders in `overlays` that are links to folders outside it, as (target, name).
fn linked_themes(overlays: &Path) -> Vec<(PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(overlays) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
        .filter_map(|e| {
            let target = e.path().canonicalize().ok().filter(|t| t.is_dir())?;
            // A link into (or around) the overlays folder is watched already, or would loop.
            if target.starts_with(overlays) || overlays.starts_with(&target) {
                return None;
            }
            let name = e.file_name().to_string_lossy().to_string();
            (!name.starts_with('.')).then_some((target, name))
        })
        .take(super::MAX_THEMES)
        .collect()
}

/// Starts watching the registry's folders (none when only built-in themes are served). Every
/// batch of changes is handed to `on_change` from a tokio task.
pub fn spawn(
    registry: Arc<ThemeRegistry>,
    on_change: impl Fn(Vec<ThemeChange>) + Send + Sync + 'static,
) -> Result<Option<ThemeWatcher>, WatchError> {
    let sources = registry.sources().clone();
    let canonical = |p: &PathBuf| p.canonicalize().unwrap_or_else(|_| p.clone());
    let roots = Roots {
        overlays: sources.overlays_dir.as_ref().map(canonical),
        single_theme: sources.single_theme(),
        templates: sources.templates_dir.as_ref().map(canonical),
        linked: Vec::new(),
    };
    let mut roots = roots;
    if let (Some(overlays), None) = (&roots.overlays, &roots.single_theme) {
        roots.linked = linked_themes(overlays);
    }
    let dirs: Vec<PathBuf> = roots
        .overlays
        .iter()
        .chain(roots.templates.iter())
        .chain(roots.linked.iter().map(|(target, _)| target))
        .cloned()
        .collect();
    if dirs.is_empty() {
        return Ok(None);
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<PathBuf>>();
    let root_tx = tx.clone();
    let mut debouncer = new_debouncer_opt(
        DEBOUNCE,
        None,
        move |result: DebounceEventResult| match result {
            Ok(events) => {
                let paths: Vec<PathBuf> = events
                    .into_iter()
                    .filter(|e| changes_content(&e.event.kind))
                    .flat_map(|e| e.event.paths)
                    .collect();
                if !paths.is_empty() {
                    let _ = tx.send(paths);
                }
            }
            Err(errors) => {
                for e in errors {
                    tracing::warn!("theme folder watch: {e}");
                }
            }
        },
        RecommendedCache::new(),
        notify::Config::default().with_follow_symlinks(false),
    )
    .map_err(|source| WatchError {
        path: dirs[0].clone(),
        source,
    })?;
    for dir in &dirs {
        debouncer
            .watch(dir, RecursiveMode::Recursive)
            .map_err(|source| WatchError {
                path: dir.clone(),
                source,
            })?;
        tracing::info!("watching {} for theme changes", dir.display());
    }
    let debouncer = Arc::new(Mutex::new(debouncer));
    tokio::spawn(watch_roots(
        Arc::downgrade(&debouncer),
        dirs.clone(),
        root_tx,
    ));
    tokio::spawn(async move {
        while let Some(mut paths) = rx.recv().await {
            // Batches that arrive while a reload runs are folded into the next one.
            while let Ok(more) = rx.try_recv() {
                paths.extend(more);
            }
            let mut changed = classify(&roots, &paths);
            // A watched folder itself came back or went away: every page may change.
            if paths.iter().any(|p| dirs.contains(p)) {
                changed.entry(None).or_default().push(String::new());
            }
            if changed.is_empty() {
                continue;
            }
            // Stylesheets, scripts and images are read from disk on every request: only
            // templates and theme.json (or a whole theme folder) need the registry re-loaded.
            let needs_reload = changed.values().flatten().any(|f| {
                f.is_empty() || f.ends_with(".hbs") || f.rsplit('/').next() == Some("theme.json")
            });
            let problems = if needs_reload {
                let registry = registry.clone();
                match tokio::task::spawn_blocking(move || registry.reload()).await {
                    Ok(problems) => problems,
                    Err(_) => continue,
                }
            } else {
                registry.problems()
            };
            // While a watched folder is gone, pages keep what they show: reloading them now
            // would find their stylesheets and scripts missing.
            if dirs.iter().any(|d| folder_id(d).is_none()) {
                continue;
            }
            let changes = changes_for(&changed, &problems);
            if !changes.is_empty() {
                on_change(changes);
            }
        }
    });
    Ok(Some(ThemeWatcher {
        _debouncer: debouncer,
    }))
}

/// Which folder is at a path: its device and inode, so a folder deleted and created again
/// between two checks is still seen as new. `None` when there is no folder.
#[cfg(unix)]
fn folder_id(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir).ok().filter(|m| m.is_dir())?;
    Some((m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn folder_id(dir: &Path) -> Option<(u64, u64)> {
    dir.is_dir().then_some((0, 0))
}

/// Checks the watched folders every [`ROOT_CHECK`]: one that is gone is logged; one that is
/// back (or was replaced by a new folder) is watched again, and its path is sent as a change
/// so the registry reloads. Ends when the watcher is dropped.
async fn watch_roots(
    debouncer: std::sync::Weak<Mutex<FolderDebouncer>>,
    dirs: Vec<PathBuf>,
    changes: mpsc::UnboundedSender<Vec<PathBuf>>,
) {
    let mut ids: Vec<Option<(u64, u64)>> = dirs.iter().map(|d| folder_id(d)).collect();
    let mut tick = tokio::time::interval(ROOT_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(debouncer) = debouncer.upgrade() else {
            return;
        };
        for (dir, id) in dirs.iter().zip(ids.iter_mut()) {
            let now = folder_id(dir);
            if now == *id {
                continue;
            }
            match now {
                None => tracing::warn!(
                    "{} is gone: hot reload waits for it to come back; pages keep the themes as last loaded",
                    dir.display()
                ),
                Some(_) => {
                    let mut d = debouncer.lock().expect("watcher lock");
                    // The old watch went with the old folder; drop what is left of it.
                    let _ = d.unwatch(dir);
                    if let Err(e) = d.watch(dir, RecursiveMode::Recursive) {
                        tracing::warn!("cannot watch {} again: {e}; retrying", dir.display());
                        continue;
                    }
                    tracing::info!(
                        "{} is back: watching it for theme changes again",
                        dir.display()
                    );
                }
            }
            *id = now;
            if now.is_some() && changes.send(vec![dir.clone()]).is_err() {
                return;
            }
        }
    }
}

/// Whether an event can change what a page shows. Reads (access events, and the metadata
/// changes a read can cause) are left out: the reload itself reads every file, and counting
/// its reads as changes would reload forever.
fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::ModifyKind;
    !matches!(
        kind,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_))
    )
}

/// Changed files per theme (`None`: shared templates), as paths relative to the theme.
type Changed = BTreeMap<Option<String>, Vec<String>>;

fn classify(roots: &Roots, paths: &[PathBuf]) -> Changed {
    let mut out: Changed = BTreeMap::new();
    for path in paths {
        let Some((theme, rel)) = locate(roots, path) else {
            continue;
        };
        let files = out.entry(theme).or_default();
        if !files.contains(&rel) {
            files.push(rel);
        }
    }
    out
}

/// The theme and theme-relative path of a changed file, or `None` for files no page uses.
fn locate(roots: &Roots, path: &Path) -> Option<(Option<String>, String)> {
    let to_rel = |p: &Path| p.to_string_lossy().replace('\\', "/");
    if let Some(rel) = roots
        .templates
        .as_ref()
        .and_then(|t| path.strip_prefix(t).ok())
    {
        return relevant(rel).then(|| (None, to_rel(rel)));
    }
    for (target, name) in &roots.linked {
        if let Ok(rel) = path.strip_prefix(target) {
            return relevant(rel).then(|| (Some(name.clone()), to_rel(rel)));
        }
    }
    let rel = path.strip_prefix(roots.overlays.as_ref()?).ok()?;
    if let Some(name) = &roots.single_theme {
        return relevant(rel).then(|| (Some(name.clone()), to_rel(rel)));
    }
    let mut parts = rel.components();
    let theme = parts.next()?.as_os_str().to_string_lossy().to_string();
    if theme.starts_with('.') {
        return None;
    }
    let inner = parts.as_path();
    if inner.as_os_str().is_empty() {
        // The theme folder itself was created, removed or renamed.
        return Some((Some(theme), String::new()));
    }
    relevant(inner).then(|| (Some(theme), to_rel(inner)))
}

fn relevant(rel: &Path) -> bool {
    let hidden = rel
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
    let known = rel
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| WATCHED_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    !hidden && known
}

fn changes_for(changed: &Changed, problems: &[TemplateProblem]) -> Vec<ThemeChange> {
    let mut out = Vec::new();
    for (theme, files) in changed {
        let problem_theme = theme.as_deref().unwrap_or("templates");
        let mut reload_path = None;
        let mut css = Vec::new();
        for file in files {
            if let Some(p) = problems
                .iter()
                .find(|p| p.theme == problem_theme && p.file == *file)
            {
                out.push(ThemeChange::Error(p.clone()));
            } else if file.ends_with(".css") {
                css.push(file.clone());
            } else if reload_path.is_none() {
                reload_path = Some(file.clone());
            }
        }
        // One full reload covers the stylesheets too; otherwise each sheet swaps in place.
        if let Some(path) = reload_path {
            out.push(ThemeChange::Reload {
                theme: theme.clone(),
                path,
                css_only: false,
            });
        } else {
            for path in css {
                out.push(ThemeChange::Reload {
                    theme: theme.clone(),
                    path,
                    css_only: true,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> Roots {
        Roots {
            overlays: Some(PathBuf::from("/o")),
            single_theme: None,
            templates: Some(PathBuf::from("/t")),
            linked: vec![(PathBuf::from("/elsewhere/kept"), "linked".into())],
        }
    }

    #[test]
    fn changes_become_reload_and_template_error_messages_for_every_page() {
        let parse = |m: &Outbound| serde_json::from_str::<serde_json::Value>(&m.json).unwrap();
        let reload = ThemeChange::Reload {
            theme: Some("neon".into()),
            path: "style.css".into(),
            css_only: true,
        }
        .message();
        assert_eq!(&*reload.type_name, "reload");
        assert_eq!(reload.audience, Audience::All);
        assert!(!reload.is_event);
        assert_eq!(
            parse(&reload),
            serde_json::json!({"v": 1, "type": "reload", "theme": "neon", "path": "style.css", "css_only": true})
        );
        let error = ThemeChange::Error(TemplateProblem {
            theme: "neon".into(),
            file: "alerts.hbs".into(),
            line: Some(3),
            column: None,
            message: "unclosed block".into(),
            serving_last_good: true,
        })
        .message();
        assert_eq!(&*error.type_name, "template_error");
        assert_eq!(error.audience, Audience::All);
        assert_eq!(
            parse(&error),
            serde_json::json!({"v": 1, "type": "template_error", "theme": "neon", "file": "alerts.hbs",
                "line": 3, "column": null, "message": "unclosed block", "serving_last_good": true})
        );
    }

    #[test]
    fn paths_map_to_themes_and_editor_files_are_ignored() {
        let r = roots();
        let loc = |p: &str| locate(&r, Path::new(p));
        assert_eq!(
            loc("/o/mine/style.css"),
            Some((Some("mine".into()), "style.css".into()))
        );
        assert_eq!(
            loc("/o/mine/images/a.svg"),
            Some((Some("mine".into()), "images/a.svg".into()))
        );
        assert_eq!(loc("/t/layout.hbs"), Some((None, "layout.hbs".into())));
        assert_eq!(
            loc("/elsewhere/kept/chat.hbs"),
            Some((Some("linked".into()), "chat.hbs".into()))
        );
        assert_eq!(loc("/o/mine"), Some((Some("mine".into()), String::new())));
        for ignored in [
            "/o/mine/.style.css.swp",
            "/o/mine/style.css~",
            "/o/mine/4913",
            "/o/.git/config.json",
            "/elsewhere/x.css",
        ] {
            assert_eq!(loc(ignored), None, "{ignored}");
        }
        let single = Roots {
            single_theme: Some("mine".into()),
            ..roots()
        };
        assert_eq!(
            locate(&single, Path::new("/o/chat.hbs")),
            Some((Some("mine".into()), "chat.hbs".into()))
        );
    }

    #[test]
    fn css_swaps_in_place_templates_reload_and_broken_files_report() {
        let mut changed: Changed = BTreeMap::new();
        changed.insert(Some("a".into()), vec!["style.css".into()]);
        changed.insert(
            Some("b".into()),
            vec!["style.css".into(), "chat.hbs".into()],
        );
        changed.insert(Some("c".into()), vec!["alerts.hbs".into()]);
        let broken = TemplateProblem {
            theme: "c".into(),
            file: "alerts.hbs".into(),
            line: Some(3),
            column: Some(1),
            message: "bad".into(),
            serving_last_good: true,
        };
        let out = changes_for(&changed, std::slice::from_ref(&broken));
        assert_eq!(
            out,
            vec![
                ThemeChange::Reload {
                    theme: Some("a".into()),
                    path: "style.css".into(),
                    css_only: true
                },
                ThemeChange::Reload {
                    theme: Some("b".into()),
                    path: "chat.hbs".into(),
                    css_only: false
                },
                ThemeChange::Error(broken),
            ]
        );
    }
}

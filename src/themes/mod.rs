//! Overlay themes: the registry of theme folders and shared templates, and page rendering.
//!
//! Built-in themes (`overlays/`) and shared templates (`templates/`) are embedded in the binary
//! so it runs from any folder. `--overlays DIR` adds the subfolders of DIR as themes, shadowing
//! built-in ones of the same name; `--templates DIR` replaces the shared templates. A theme is
//! `theme.json` (fields and pages), one `<page>.hbs` per overlay page, and static files. Pages
//! render through the shared `layout` partial with handlebars' HTML escaping left on, so viewer
//! text can never become markup. Static files are served only from inside their theme.
//!
//! [`ThemeRegistry::reload`] re-reads the folders while the relay runs ([`watch`] calls it on
//! every save). A template or `theme.json` that no longer loads keeps its last good version
//! serving, per file, and is reported as a [`TemplateProblem`]; the others update at once.
//! This module keeps the registry; reading the folders lives in `load`, what `theme.json`
//! declares and the problems reported in `manifest`, the handlebars setup and page context in
//! `render`, static files and URL segments in `files`, and what a template may do (nesting,
//! partial depth, the stack it renders on) in [`limits`], which the config's trigger texts use too.

mod fields;
mod files;
pub mod limits;
mod load;
mod manifest;
pub mod probe;
mod render;
pub mod scaffold;
pub mod watch;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::RwLock;

use handlebars::Handlebars;
use include_dir::{Dir, include_dir};
use serde_json::Value;

pub use fields::{FieldSpec, resolve_fields, validate_spec};
pub use files::{safe_relative_path, url_segment};
pub use limits::compile_checked;
use load::load_all;
pub use load::{MAX_STATIC_FILE_BYTES, MAX_THEME_DEPTH, MAX_THEME_ENTRIES, MAX_THEMES};
pub use manifest::{FieldWarning, Manifest, PageInfo, PageListing, TemplateProblem, ThemeError};
pub use render::script_safe_json;
use render::{page_context, page_template_name};

static BUILTIN_OVERLAYS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/overlays");
static BUILTIN_TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// Field warnings kept for the dashboard (bad query values in overlay URLs).
const FIELD_WARNINGS_KEPT: usize = 50;

/// Where a theme's files come from.
#[derive(Debug, Clone)]
pub enum Origin {
    Builtin(&'static Dir<'static>),
    Folder(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Theme {
    pub name: String,
    pub manifest: Manifest,
    pub origin: Origin,
}

struct Loaded {
    hb: Handlebars<'static>,
    themes: BTreeMap<String, Theme>,
    problems: Vec<TemplateProblem>,
}

/// Where themes and templates are read from.
#[derive(Debug, Clone, Default)]
pub struct ThemeSources {
    pub overlays_dir: Option<PathBuf>,
    pub templates_dir: Option<PathBuf>,
}

impl ThemeSources {
    /// When the overlays folder is itself a theme (it holds a `theme.json`), its name; then
    /// `--overlays mytheme` serves the folder `tikrelay theme new mytheme` made.
    pub fn single_theme(&self) -> Option<String> {
        let dir = self.overlays_dir.as_ref()?;
        if !dir.join("theme.json").is_file() {
            return None;
        }
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        dir.file_name().map(|n| n.to_string_lossy().to_string())
    }
}

pub struct ThemeRegistry {
    sources: ThemeSources,
    loaded: RwLock<Loaded>,
    field_warnings: std::sync::Mutex<std::collections::VecDeque<FieldWarning>>,
    reloading: std::sync::Mutex<()>,
}

impl ThemeRegistry {
    /// Loads every theme. Broken templates are recorded as problems, not errors: the rest of
    /// the themes still serve.
    pub fn load(sources: ThemeSources) -> ThemeRegistry {
        let loaded = load_all(&sources, None);
        for p in &loaded.problems {
            tracing::error!("template problem: {p}");
        }
        ThemeRegistry {
            sources,
            loaded: RwLock::new(loaded),
            field_warnings: Default::default(),
            reloading: std::sync::Mutex::new(()),
        }
    }

    /// Re-reads every folder. Files that no longer load keep their last good version; the
    /// problems found are returned (and logged when new).
    pub fn reload(&self) -> Vec<TemplateProblem> {
        // Serialises reloads (each builds on the last); pages keep rendering from the current
        // registry while the next one is built under the read lock.
        let _one_at_a_time = self.reloading.lock().expect("reload lock");
        let next = load_all(
            &self.sources,
            Some(&self.loaded.read().expect("themes lock")),
        );
        let mut guard = self.loaded.write().expect("themes lock");
        for p in &next.problems {
            if !guard.problems.contains(p) {
                tracing::error!("template problem: {p}");
            }
        }
        for p in &guard.problems {
            if !next
                .problems
                .iter()
                .any(|n| n.theme == p.theme && n.file == p.file)
            {
                tracing::info!("fixed: {}/{} loads again", p.theme, p.file);
            }
        }
        *guard = next;
        guard.problems.clone()
    }

    /// The most recent rejected query values, newest last.
    pub fn field_warnings(&self) -> Vec<FieldWarning> {
        self.field_warnings
            .lock()
            .expect("warnings lock")
            .iter()
            .cloned()
            .collect()
    }

    pub fn sources(&self) -> &ThemeSources {
        &self.sources
    }

    /// Problems found by the last load.
    pub fn problems(&self) -> Vec<TemplateProblem> {
        self.loaded.read().expect("themes lock").problems.clone()
    }

    /// The theme called `name`, which may also be given as it appears in a URL path
    /// (percent-encoded: `my%20theme`).
    pub fn theme(&self, name: &str) -> Option<Theme> {
        find_theme(&self.loaded.read().expect("themes lock").themes, name).cloned()
    }

    /// Every page of every theme, for the dashboard.
    pub fn pages(&self) -> Vec<PageListing> {
        let loaded = self.loaded.read().expect("themes lock");
        let mut out = Vec::new();
        for theme in loaded.themes.values() {
            for (page, info) in &theme.manifest.pages {
                out.push(PageListing {
                    theme: theme.name.clone(),
                    page: page.clone(),
                    path: format!(
                        "/overlays/{}/{}",
                        url_segment(&theme.name),
                        url_segment(page)
                    ),
                    width: info.width,
                    height: info.height,
                    description: info.description.clone(),
                });
            }
        }
        out
    }

    /// Renders an overlay page; `query` overrides the theme's field defaults.
    pub fn render_page(
        &self,
        theme_name: &str,
        page: &str,
        query: &HashMap<String, String>,
        relay: Value,
    ) -> Result<String, ThemeError> {
        let loaded = self.loaded.read().expect("themes lock");
        let theme = find_theme(&loaded.themes, theme_name)
            .ok_or_else(|| ThemeError::NoTheme(theme_name.into()))?;
        let theme_name = theme.name.as_str();
        let info = theme
            .manifest
            .pages
            .get(page)
            .ok_or_else(|| ThemeError::NoPage {
                theme: theme_name.into(),
                page: page.into(),
            })?;
        let (fields, warnings) = resolve_fields(&theme.manifest.fields, query);
        if !warnings.is_empty() {
            let mut kept = self.field_warnings.lock().expect("warnings lock");
            for w in &warnings {
                tracing::warn!("{theme_name}/{page}: {w}");
                if kept.len() == FIELD_WARNINGS_KEPT {
                    kept.pop_front();
                }
                kept.push_back(FieldWarning {
                    theme: theme_name.into(),
                    page: page.into(),
                    message: w.clone(),
                });
            }
        }
        let ctx = page_context(theme_name, page, info, fields, &warnings, relay);
        limits::render(&loaded.hb, &page_template_name(theme_name, page), &ctx)
            .map_err(|e| ThemeError::Render(format!("{theme_name}/{page}.hbs: {e}")))
    }

    /// The field declarations of every theme, for the dashboard's URL builder.
    pub fn fields(&self) -> BTreeMap<String, BTreeMap<String, FieldSpec>> {
        let loaded = self.loaded.read().expect("themes lock");
        loaded
            .themes
            .iter()
            .map(|(name, t)| (name.clone(), t.manifest.fields.clone()))
            .collect()
    }

    /// Renders a shared template (the dashboard) with `ctx`.
    pub fn render_shared(&self, name: &str, ctx: &Value) -> Result<String, ThemeError> {
        let loaded = self.loaded.read().expect("themes lock");
        limits::render(&loaded.hb, name, ctx)
            .map_err(|e| ThemeError::Render(format!("{name}.hbs: {e}")))
    }

    /// A static file of a theme, never from outside the theme's folder.
    pub fn file(&self, theme_name: &str, path: &str) -> Option<(Cow<'static, [u8]>, &'static str)> {
        let theme = self.theme(theme_name)?;
        files::read(&theme.origin, path)
    }
}

/// Looks a theme up by its folder name, or by the name as a URL path carries it: the router
/// hands over path segments as sent, so `my theme` arrives as `my%20theme`. The exact name is
/// tried first, so a router that decodes first works the same.
fn find_theme<'a>(themes: &'a BTreeMap<String, Theme>, name: &str) -> Option<&'a Theme> {
    themes.get(name).or_else(|| {
        let decoded = percent_encoding::percent_decode_str(name)
            .decode_utf8()
            .ok()?;
        themes.get(decoded.as_ref())
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn builtin_default_theme_renders_its_alerts_page() {
        let reg = ThemeRegistry::load(ThemeSources::default());
        assert!(reg.problems().is_empty(), "{:?}", reg.problems());
        let html = reg
            .render_page(
                "default",
                "alerts",
                &HashMap::new(),
                json!({"ws_url": "/ws"}),
            )
            .unwrap();
        assert!(html.contains("/relay.js"));
        assert!(reg.file("default", "style.css").is_some());
        assert!(reg.file("default", "alerts.hbs").is_none());
        assert!(reg.file("default", "../default/style.css").is_none());
    }

    fn theme_folder() -> (tempfile::TempDir, PathBuf, ThemeRegistry) {
        let tmp = tempfile::tempdir().unwrap();
        let overlays = tmp.path().join("overlays");
        scaffold::new_theme(&overlays.join("mine")).unwrap();
        std::fs::create_dir_all(overlays.join("notes")).unwrap();
        std::fs::write(overlays.join("notes/todo.txt"), "not a theme").unwrap();
        let reg = ThemeRegistry::load(ThemeSources {
            overlays_dir: Some(overlays.clone()),
            templates_dir: None,
        });
        (tmp, overlays.join("mine"), reg)
    }

    fn render(reg: &ThemeRegistry, page: &str) -> String {
        reg.render_page("mine", page, &HashMap::new(), json!({"ws_url": "/ws"}))
            .unwrap()
    }

    #[test]
    fn a_broken_template_keeps_its_last_good_version_until_fixed() {
        let (_tmp, theme, reg) = theme_folder();
        assert!(reg.problems().is_empty(), "{:?}", reg.problems());
        assert!(
            reg.theme("notes").is_none(),
            "a folder without theme.json is no theme"
        );
        let page = theme.join("viewers.hbs");
        let good = std::fs::read_to_string(&page).unwrap();
        std::fs::write(&page, good.replace("{{/layout}}", "<i>v2</i>{{/layout}}")).unwrap();
        assert!(reg.reload().is_empty());
        assert!(render(&reg, "viewers").contains("<i>v2</i>"));

        std::fs::write(
            &page,
            good.replace("{{/layout}}", "{{#if x}}\n<i>v3</i>{{/layout}}"),
        )
        .unwrap();
        let problems = reg.reload();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].file, "viewers.hbs");
        assert!(problems[0].line.is_some());
        assert!(problems[0].serving_last_good);
        assert!(
            render(&reg, "viewers").contains("<i>v2</i>"),
            "last good serves"
        );
        assert!(
            render(&reg, "chat").contains("chat.js"),
            "other pages unaffected"
        );

        // A page caught empty mid-save is not served either.
        std::fs::write(&page, "").unwrap();
        assert_eq!(reg.reload()[0].message, "the file is empty");
        assert!(render(&reg, "viewers").contains("<i>v2</i>"));

        std::fs::write(&page, good.replace("{{/layout}}", "<i>v4</i>{{/layout}}")).unwrap();
        assert!(reg.reload().is_empty());
        assert!(render(&reg, "viewers").contains("<i>v4</i>"));
    }

    #[test]
    fn a_broken_theme_json_keeps_the_theme_serving() {
        let (_tmp, theme, reg) = theme_folder();
        let manifest = theme.join("theme.json");
        let good = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, good.replacen('{', "{,", 1)).unwrap();
        let problems = reg.reload();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            (problems[0].file.as_str(), problems[0].line),
            ("theme.json", Some(1))
        );
        assert!(problems[0].serving_last_good);
        assert!(render(&reg, "goal").contains("goal.js"));
        std::fs::write(&manifest, good).unwrap();
        assert!(reg.reload().is_empty());
    }

    #[test]
    fn bad_field_declarations_are_reported_with_their_line() {
        let (_tmp, theme, reg) = theme_folder();
        let manifest = theme.join("theme.json");
        let text = std::fs::read_to_string(&manifest).unwrap().replace(
            r#""chat_max": {"type": "number", "default": 8"#,
            r#""chat_max": {"type": "number", "default": 80"#,
        );
        std::fs::write(&manifest, &text).unwrap();
        let problems = reg.reload();
        assert_eq!(problems.len(), 1, "{problems:?}");
        let line = text
            .lines()
            .position(|l| l.contains("\"chat_max\""))
            .unwrap()
            + 1;
        assert_eq!(problems[0].line, Some(line));
        assert!(
            problems[0].message.contains("chat_max"),
            "{}",
            problems[0].message
        );
        assert!(!reg.fields()["mine"].contains_key("chat_max"));
    }

    #[test]
    fn the_builtin_theme_declares_every_page_with_a_size_and_description() {
        let reg = ThemeRegistry::load(ThemeSources::default());
        let pages: Vec<PageListing> = reg.pages();
        for want in [
            "alerts",
            "combo",
            "chat",
            "likes",
            "goal",
            "viewers",
            "topgifters",
        ] {
            let p = pages
                .iter()
                .find(|p| p.theme == "default" && p.page == want)
                .unwrap_or_else(|| panic!("no page {want}"));
            assert!(!p.description.is_empty() && p.width > 0 && p.height > 0);
        }
        for page in pages {
            let html = reg
                .render_page(
                    "default",
                    &page.page,
                    &HashMap::new(),
                    json!({"ws_url": "/ws"}),
                )
                .unwrap();
            // No request may leave the machine: no absolute URLs in the pages.
            assert!(
                !html.contains("http://") && !html.contains("https://"),
                "{}",
                page.page
            );
        }
    }
}

//! Overlay themes: the registry of theme folders and shared templates, and page rendering.
//!
//! Built-in themes (`overlays/`) and shared templates (`templates/`) are embedded in the binary
//! so it runs from any folder. `--overlays DIR` adds the subfolders of DIR as themes, shadowing
//! built-in ones of the same name; `--templates DIR` replaces the shared templates. A theme is
//! `theme.json` (fields and pages), one `<page>.hbs` per overlay page, and static files. Pages
//! render through the shared `layout` partial with handlebars' HTML escaping left on, so viewer
//! text can never become markup. Static files are served only from inside their theme.

mod fields;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::RwLock;

use handlebars::Handlebars;
use include_dir::{Dir, include_dir};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use fields::{FieldSpec, resolve_fields};

static BUILTIN_OVERLAYS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/overlays");
static BUILTIN_TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// Largest template or theme.json read from disk.
const MAX_TEMPLATE_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("no theme named {0:?}")]
    NoTheme(String),
    #[error("theme {theme:?} has no page {page:?}")]
    NoPage { theme: String, page: String },
    #[error("{0}")]
    Render(String),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A template or manifest that does not load: where and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TemplateProblem {
    pub theme: String,
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for TemplateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.theme, self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// `theme.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub fields: BTreeMap<String, FieldSpec>,
    #[serde(default)]
    pub pages: BTreeMap<String, PageInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageInfo {
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    #[serde(default)]
    pub description: String,
}

fn default_width() -> u32 {
    1920
}
fn default_height() -> u32 {
    1080
}

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

/// A page as the dashboard lists it.
#[derive(Debug, Clone, Serialize)]
pub struct PageListing {
    pub theme: String,
    pub page: String,
    pub path: String,
    pub width: u32,
    pub height: u32,
    pub description: String,
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

pub struct ThemeRegistry {
    sources: ThemeSources,
    loaded: RwLock<Loaded>,
}

impl ThemeRegistry {
    /// Loads every theme. Broken templates are recorded as problems, not errors: the rest of
    /// the themes still serve.
    pub fn load(sources: ThemeSources) -> ThemeRegistry {
        let loaded = load_all(&sources);
        for p in &loaded.problems {
            tracing::error!("template problem: {p}");
        }
        ThemeRegistry {
            sources,
            loaded: RwLock::new(loaded),
        }
    }

    pub fn sources(&self) -> &ThemeSources {
        &self.sources
    }

    /// Problems found by the last load.
    pub fn problems(&self) -> Vec<TemplateProblem> {
        self.loaded.read().expect("themes lock").problems.clone()
    }

    pub fn theme(&self, name: &str) -> Option<Theme> {
        self.loaded
            .read()
            .expect("themes lock")
            .themes
            .get(name)
            .cloned()
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
                    path: format!("/overlays/{}/{}", theme.name, page),
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
        let theme = loaded
            .themes
            .get(theme_name)
            .ok_or_else(|| ThemeError::NoTheme(theme_name.into()))?;
        let info = theme
            .manifest
            .pages
            .get(page)
            .ok_or_else(|| ThemeError::NoPage {
                theme: theme_name.into(),
                page: page.into(),
            })?;
        let (fields, warnings) = resolve_fields(&theme.manifest.fields, query);
        for w in &warnings {
            tracing::warn!("{theme_name}/{page}: {w}");
        }
        // What relay.js reads from the page (window.TIKRELAY).
        let page_config = json!({
            "theme": theme_name,
            "page": page,
            "fields": fields,
            "ws_url": relay.get("ws_url"),
            "version": relay.get("version"),
            "width": info.width,
            "height": info.height,
        });
        let ctx = json!({
            "theme": theme_name,
            "page": page,
            "size": {"width": info.width, "height": info.height},
            "fields": fields,
            "field_warnings": warnings,
            "relay": relay,
            "page_config": page_config,
        });
        loaded
            .hb
            .render(&page_template_name(theme_name, page), &ctx)
            .map_err(|e| ThemeError::Render(format!("{theme_name}/{page}.hbs: {e}")))
    }

    /// Renders a shared template (the dashboard) with `ctx`.
    pub fn render_shared(&self, name: &str, ctx: &Value) -> Result<String, ThemeError> {
        let loaded = self.loaded.read().expect("themes lock");
        loaded
            .hb
            .render(name, ctx)
            .map_err(|e| ThemeError::Render(format!("{name}.hbs: {e}")))
    }

    /// A static file of a theme, never from outside the theme's folder.
    pub fn file(&self, theme_name: &str, path: &str) -> Option<(Cow<'static, [u8]>, &'static str)> {
        let rel = safe_relative_path(path)?;
        if rel.extension().is_some_and(|e| e == "hbs") || rel == Path::new("theme.json") {
            return None;
        }
        let theme = self.theme(theme_name)?;
        let mime = mime_for(&rel);
        match theme.origin {
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
                std::fs::read(full).ok().map(|b| (Cow::Owned(b), mime))
            }
        }
    }
}

fn page_template_name(theme: &str, page: &str) -> String {
    format!("{theme}/{page}")
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

/// A file of a theme or template set, wherever it lives.
struct SourceFile {
    /// Path relative to its root, with `/`.
    rel: String,
    text: Result<String, String>,
}

fn builtin_files(dir: &'static Dir<'static>) -> Vec<SourceFile> {
    let mut out = Vec::new();
    collect_builtin(dir, dir.path(), &mut out);
    out
}

fn collect_builtin(dir: &'static Dir<'static>, root: &Path, out: &mut Vec<SourceFile>) {
    for f in dir.files() {
        let rel = f.path().strip_prefix(root).unwrap_or(f.path());
        let is_text = matches!(
            rel.extension().and_then(|e| e.to_str()),
            Some("hbs" | "json")
        );
        if is_text {
            out.push(SourceFile {
                rel: rel.to_string_lossy().replace('\\', "/"),
                text: f
                    .contents_utf8()
                    .map(str::to_string)
                    .ok_or_else(|| "not UTF-8".to_string()),
            });
        }
    }
    for d in dir.dirs() {
        collect_builtin(d, root, out);
    }
}

fn folder_files(root: &Path) -> Vec<SourceFile> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let is_text = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("hbs" | "json")
            );
            if !is_text {
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let text = match entry.metadata() {
                Ok(m) if m.len() > MAX_TEMPLATE_BYTES => {
                    Err(format!("file is over the {MAX_TEMPLATE_BYTES}-byte limit"))
                }
                _ => std::fs::read_to_string(&path).map_err(|e| e.to_string()),
            };
            out.push(SourceFile { rel, text });
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

fn new_handlebars() -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    // Escaping stays on (the default): viewer text is never markup.
    hb.register_helper("json", Box::new(json_helper));
    hb
}

/// `{{{json value}}}`: JSON safe to place inside a `<script>` element (no `<`, `>` or `&`).
fn json_helper(
    h: &handlebars::Helper,
    _: &Handlebars,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let value = h.param(0).map(|p| p.value().clone()).unwrap_or(Value::Null);
    out.write(&script_safe_json(&value))?;
    Ok(())
}

/// JSON text that cannot close a `<script>` element or open a comment.
pub fn script_safe_json(value: &Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn template_problem(theme: &str, file: &str, e: &handlebars::TemplateError) -> TemplateProblem {
    TemplateProblem {
        theme: theme.into(),
        file: file.into(),
        line: e.pos().map(|p| p.0),
        column: e.pos().map(|p| p.1),
        message: e.reason().to_string(),
    }
}

fn load_all(sources: &ThemeSources) -> Loaded {
    let mut hb = new_handlebars();
    let mut problems = Vec::new();

    let template_files = match &sources.templates_dir {
        Some(dir) => folder_files(dir),
        None => builtin_files(&BUILTIN_TEMPLATES),
    };
    for f in template_files {
        let Some(stem) = f.rel.strip_suffix(".hbs") else {
            continue;
        };
        let name = stem.strip_prefix("partials/").unwrap_or(stem);
        match &f.text {
            Ok(text) => {
                if let Err(e) = hb.register_template_string(name, text) {
                    problems.push(template_problem("templates", &f.rel, &e));
                }
            }
            Err(e) => problems.push(problem("templates", &f.rel, e)),
        }
    }

    let mut themes: BTreeMap<String, (Origin, Vec<SourceFile>)> = BTreeMap::new();
    for d in BUILTIN_OVERLAYS.dirs() {
        let name = d.path().to_string_lossy().to_string();
        themes.insert(name, (Origin::Builtin(d), builtin_files(d)));
    }
    if let Some(dir) = &sources.overlays_dir {
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if !path.is_dir() {
                        continue;
                    }
                    let name = entry.file_name().to_string_lossy().to_string();
                    if name.starts_with('.') {
                        continue;
                    }
                    let files = folder_files(&path);
                    themes.insert(name, (Origin::Folder(path), files));
                }
            }
            Err(e) => problems.push(problem(
                &dir.display().to_string(),
                "",
                &format!("cannot read the overlays folder: {e}"),
            )),
        }
    }

    let mut loaded_themes = BTreeMap::new();
    for (name, (origin, files)) in themes {
        let manifest = match files.iter().find(|f| f.rel == "theme.json") {
            Some(SourceFile { text: Ok(text), .. }) => match serde_json::from_str::<Manifest>(text)
            {
                Ok(m) => m,
                Err(e) => {
                    problems.push(TemplateProblem {
                        theme: name.clone(),
                        file: "theme.json".into(),
                        line: Some(e.line()),
                        column: Some(e.column()),
                        message: e.to_string(),
                    });
                    continue;
                }
            },
            Some(SourceFile { text: Err(e), .. }) => {
                problems.push(problem(&name, "theme.json", e));
                continue;
            }
            None => {
                problems.push(problem(
                    &name,
                    "theme.json",
                    "missing: every theme needs a theme.json",
                ));
                continue;
            }
        };
        let mut manifest = manifest;
        for f in &files {
            let Some(page) = f.rel.strip_suffix(".hbs") else {
                continue;
            };
            if page.contains('/') {
                continue;
            }
            match &f.text {
                Ok(text) => {
                    if let Err(e) =
                        hb.register_template_string(&page_template_name(&name, page), text)
                    {
                        problems.push(template_problem(&name, &f.rel, &e));
                    }
                }
                Err(e) => problems.push(problem(&name, &f.rel, e)),
            }
            // A page template without an entry in theme.json still serves, at 1920x1080.
            manifest.pages.entry(page.to_string()).or_insert(PageInfo {
                width: default_width(),
                height: default_height(),
                description: String::new(),
            });
        }
        // Pages listed in theme.json without a template cannot render.
        manifest
            .pages
            .retain(|page, _| hb.has_template(&page_template_name(&name, page)));
        loaded_themes.insert(
            name.clone(),
            Theme {
                name,
                manifest,
                origin,
            },
        );
    }
    Loaded {
        hb,
        themes: loaded_themes,
        problems,
    }
}

fn problem(theme: &str, file: &str, message: &str) -> TemplateProblem {
    TemplateProblem {
        theme: theme.into(),
        file: file.into(),
        line: None,
        column: None,
        message: message.into(),
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

    #[test]
    fn script_json_cannot_close_the_script() {
        let s = script_safe_json(&json!({"x": "</script><script>alert(1)</script>"}));
        assert!(!s.contains('<') && !s.contains('>'));
    }

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
}

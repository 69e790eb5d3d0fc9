//! Reading theme and template folders into a registry: the folder walk and its limits, the
//! built-in files, `theme.json`, compiling every template through [`limits`], and keeping the
//! last good version of whatever no longer loads.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use handlebars::Handlebars;
use include_dir::Dir;
use serde_json::json;

use super::manifest::{default_height, default_width};
use super::render::{new_handlebars, page_context, page_template_name};
use super::{
    BUILTIN_OVERLAYS, BUILTIN_TEMPLATES, Loaded, Manifest, Origin, PageInfo, TemplateProblem,
    Theme, ThemeSources, limits, resolve_fields, validate_spec,
};

/// Largest template or theme.json read from disk.
const MAX_TEMPLATE_BYTES: u64 = limits::MAX_TEMPLATE_BYTES as u64;
/// Folders read below a theme's folder. Themes keep images and sounds one or two folders down
/// (`images/gifts/`); 8 leaves room for any layout and stops a walk into a deep tree.
pub const MAX_THEME_DEPTH: usize = 8;
/// Files and folders read per theme. The built-in theme has about 40; 2,000 fits a theme with
/// image sequences and stops `--overlays` pointed at a home folder or a linked big tree from
/// reading it all (at every save).
pub const MAX_THEME_ENTRIES: usize = 2000;
/// Themes loaded from one overlays folder.
pub const MAX_THEMES: usize = 200;
/// Largest static file served (read whole into memory per request): a long sound or a short
/// video clip fits; anything bigger is refused with a log line.
pub const MAX_STATIC_FILE_BYTES: u64 = 20 * 1024 * 1024;

/// A file of a theme or template set, wherever it lives.
pub(super) struct SourceFile {
    /// Path relative to its root, with `/`.
    pub(super) rel: String,
    pub(super) text: Result<String, String>,
}

pub(super) fn builtin_files(dir: &'static Dir<'static>) -> Vec<SourceFile> {
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

/// Reads the templates and manifests of a theme or template folder, within the folder limits.
/// Links to folders are never followed (a link to `.` would loop forever, a link to `/` read
/// the whole disk); a linked file is read only when it resolves inside `root`.
fn folder_files(root: &Path) -> Vec<SourceFile> {
    let mut out = Vec::new();
    let canonical_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    let mut entries_seen = 0usize;
    'walk: while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            entries_seen += 1;
            if entries_seen > MAX_THEME_ENTRIES {
                tracing::warn!(
                    "{}: more than {MAX_THEME_ENTRIES} files and folders; the rest are not read (limit: {MAX_THEME_ENTRIES} per theme)",
                    root.display()
                );
                break 'walk;
            }
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if depth + 1 > MAX_THEME_DEPTH {
                    tracing::warn!(
                        "{}: folders nested more than {MAX_THEME_DEPTH} deep are not read (limit: {MAX_THEME_DEPTH})",
                        path.display()
                    );
                    continue;
                }
                stack.push((path, depth + 1));
                continue;
            }
            let is_text = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("hbs" | "json")
            );
            if !is_text {
                continue;
            }
            if kind.is_symlink() {
                match path.canonicalize() {
                    Ok(target) if target.starts_with(&canonical_root) && target.is_file() => {}
                    _ => {
                        tracing::debug!(
                            "{} is a link to a folder or to outside {}: not read",
                            path.display(),
                            root.display()
                        );
                        continue;
                    }
                }
            }
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let text = match std::fs::metadata(&path) {
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

/// Whether a subfolder of the overlays folder is a theme: a `theme.json` or a page template at
/// its top. Only the top is looked at, so pointing `--overlays` at a big folder stays quick.
fn looks_like_theme(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().take(MAX_THEME_ENTRIES).any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name == "theme.json" || name.ends_with(".hbs")
    })
}

/// Handlebars answers a syntax error with the whole list of tokens its grammar expected; say
/// what usually causes it instead.
fn readable_reason(reason: &str) -> String {
    if reason.starts_with("invalid handlebars syntax") && reason.contains("expected escape") {
        "invalid handlebars syntax: a {{#block}} without its {{/block}}, or a stray {{ or }}".into()
    } else {
        reason.into()
    }
}

/// Registers a template; when it does not compile, records the problem and keeps the previous
/// registry's version of it (if there was one) serving.
pub(super) fn register(
    hb: &mut Handlebars<'static>,
    previous: Option<&Loaded>,
    name: &str,
    text: &Result<String, String>,
    mut on_error: TemplateProblem,
    problems: &mut Vec<TemplateProblem>,
) {
    let failed = match text {
        // An empty page is what an editor that truncates before writing leaves for an
        // instant; serving it would strand open pages (no relay.js, so no later reload).
        // Partials may be empty on purpose.
        Ok(text) if text.trim().is_empty() && !on_error.file.starts_with("partials/") => {
            on_error.message = "the file is empty".into();
            on_error
        }
        Ok(text) => match limits::compile_checked(name, text) {
            Ok(template) => {
                hb.register_template(name, template);
                return;
            }
            Err(e) => {
                on_error.line = e.line;
                on_error.column = e.column;
                on_error.message = readable_reason(&e.message);
                on_error
            }
        },
        Err(e) => {
            on_error.message = e.clone();
            on_error
        }
    };
    let mut failed = failed;
    if let Some(last_good) = previous.and_then(|p| p.hb.get_template(name)) {
        hb.register_template(name, last_good.clone());
        failed.serving_last_good = true;
    }
    problems.push(failed);
}

pub(super) fn load_all(sources: &ThemeSources, previous: Option<&Loaded>) -> Loaded {
    let mut hb = new_handlebars();
    let mut problems = Vec::new();

    let template_files = match &sources.templates_dir {
        Some(dir) => folder_files(dir),
        None => builtin_files(&BUILTIN_TEMPLATES),
    };
    // Shared template name -> its file, for problems found across templates.
    let mut shared_files = HashMap::new();
    for f in template_files {
        let Some(stem) = f.rel.strip_suffix(".hbs") else {
            continue;
        };
        let name = stem.strip_prefix("partials/").unwrap_or(stem);
        shared_files.insert(name.to_string(), f.rel.clone());
        register(
            &mut hb,
            previous,
            name,
            &f.text,
            problem("templates", &f.rel, ""),
            &mut problems,
        );
    }

    let mut themes: BTreeMap<String, (Origin, Vec<SourceFile>)> = BTreeMap::new();
    // Themes of an overlays folder that cannot be read now, as they last loaded.
    let mut kept: BTreeMap<String, Theme> = BTreeMap::new();
    for d in BUILTIN_OVERLAYS.dirs() {
        let name = d.path().to_string_lossy().to_string();
        themes.insert(name, (Origin::Builtin(d), builtin_files(d)));
    }
    if let (Some(dir), Some(name)) = (&sources.overlays_dir, sources.single_theme()) {
        let files = folder_files(dir);
        themes.insert(name, (Origin::Folder(dir.clone()), files));
    } else if let Some(dir) = &sources.overlays_dir {
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                let mut found = 0usize;
                for entry in entries.flatten() {
                    let path = entry.path();
                    // A theme folder may itself be a link (to a theme kept elsewhere).
                    if !path.is_dir() {
                        continue;
                    }
                    let name = entry.file_name().to_string_lossy().to_string();
                    if name.starts_with('.') {
                        continue;
                    }
                    // A folder with neither theme.json nor templates is not a theme (notes,
                    // assets): skip it quietly instead of reporting it.
                    if !looks_like_theme(&path) {
                        tracing::debug!("{} is not a theme (no theme.json)", path.display());
                        continue;
                    }
                    found += 1;
                    if found > MAX_THEMES {
                        tracing::warn!(
                            "{}: more than {MAX_THEMES} themes; the rest are not loaded (limit: {MAX_THEMES})",
                            dir.display()
                        );
                        break;
                    }
                    let files = folder_files(&path);
                    themes.insert(name, (Origin::Folder(path), files));
                }
            }
            Err(e) => {
                // Deleted (or being replaced): the themes it held keep serving as last loaded.
                let mut p = problem(
                    &dir.display().to_string(),
                    "",
                    &format!("cannot read the overlays folder: {e}"),
                );
                for (name, theme) in previous.map(|l| &l.themes).into_iter().flatten() {
                    if matches!(&theme.origin, Origin::Folder(root) if root.starts_with(dir)) {
                        keep_previous_templates(&mut hb, previous, name);
                        kept.insert(name.clone(), theme.clone());
                        p.serving_last_good = true;
                    }
                }
                problems.push(p);
            }
        }
    }

    let mut loaded_themes = kept;
    let mut fresh = Vec::new();
    for (name, (origin, files)) in themes {
        let manifest = match load_manifest(&name, &files, &mut problems) {
            Some(m) => m,
            None => {
                // theme.json does not load: the theme keeps serving as it last loaded.
                if let Some(old) = previous.and_then(|p| p.themes.get(&name)) {
                    if let Some(last) = problems.last_mut() {
                        last.serving_last_good = true;
                    }
                    keep_previous_templates(&mut hb, previous, &name);
                    loaded_themes.insert(name, old.clone());
                }
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
            register(
                &mut hb,
                previous,
                &page_template_name(&name, page),
                &f.text,
                problem(&name, &f.rel, ""),
                &mut problems,
            );
            // A page template without an entry in theme.json still serves, at 1920x1080.
            manifest.pages.entry(page.to_string()).or_insert(PageInfo {
                width: default_width(),
                height: default_height(),
                description: String::new(),
            });
        }
        fresh.push(Theme {
            name,
            manifest,
            origin,
        });
    }
    // Partials may include each other across files (a page, a shared partial, another
    // theme's page): only with every template registered can includes be followed.
    refuse_recursive_partials(&mut hb, previous, &shared_files, &mut problems);
    for mut theme in fresh {
        let name = theme.name.clone();
        // Pages listed in theme.json without a template cannot render.
        theme
            .manifest
            .pages
            .retain(|page, _| hb.has_template(&page_template_name(&name, page)));
        check_renders(&mut hb, previous, &name, &theme.manifest, &mut problems);
        loaded_themes.insert(name, theme);
    }
    Loaded {
        hb,
        themes: loaded_themes,
        problems,
    }
}

/// Registers the templates `theme` had in the previous registry, for a theme that keeps
/// serving as it last loaded.
fn keep_previous_templates(hb: &mut Handlebars<'static>, previous: Option<&Loaded>, theme: &str) {
    let Some(previous) = previous else {
        return;
    };
    let prefix = format!("{theme}/");
    for (tpl_name, tpl) in previous.hb.get_templates() {
        if tpl_name.starts_with(&prefix) {
            hb.register_template(tpl_name, tpl.clone());
        }
    }
}

/// The theme and file a registered template name comes from (`theme/page` is a page, any
/// other name a shared template).
fn template_origin(name: &str, shared_files: &HashMap<String, String>) -> (String, String) {
    match name.split_once('/') {
        Some((theme, page)) => (theme.to_string(), format!("{page}.hbs")),
        None => (
            "templates".to_string(),
            shared_files
                .get(name)
                .cloned()
                .unwrap_or_else(|| format!("{name}.hbs")),
        ),
    }
}

/// Finds partials that include themselves or nest too deep ([`limits::check_partials`]) and
/// takes the template with the include out: its last good version serves if it has one (and
/// is checked again), else it is not served.
pub(super) fn refuse_recursive_partials(
    hb: &mut Handlebars<'static>,
    previous: Option<&Loaded>,
    shared_files: &HashMap<String, String>,
    problems: &mut Vec<TemplateProblem>,
) {
    let mut replaced = std::collections::HashSet::new();
    // Each round takes at least one template out, so this ends.
    for _ in 0..=hb.get_templates().len() {
        let found = limits::check_partials(hb);
        if found.is_empty() {
            return;
        }
        for p in found {
            let (theme, file) = template_origin(&p.template, shared_files);
            let last_good = previous
                .filter(|_| replaced.insert(p.template.clone()))
                .and_then(|l| l.hb.get_template(&p.template));
            match last_good {
                Some(t) => hb.register_template(&p.template, t.clone()),
                None => hb.unregister_template(&p.template),
            }
            let serving_last_good = last_good.is_some();
            if let Some(q) = problems
                .iter_mut()
                .find(|q| q.theme == theme && q.file == file)
            {
                q.serving_last_good = serving_last_good;
                continue;
            }
            problems.push(TemplateProblem {
                theme,
                file,
                line: p.line,
                column: p.column,
                message: p.message,
                serving_last_good,
            });
        }
    }
}

/// Parses and checks a theme's `theme.json`. `None` (with a problem recorded) when it cannot
/// be used at all; fields with a bad declaration are reported and dropped.
pub(super) fn load_manifest(
    name: &str,
    files: &[SourceFile],
    problems: &mut Vec<TemplateProblem>,
) -> Option<Manifest> {
    let text = match files.iter().find(|f| f.rel == "theme.json") {
        Some(SourceFile { text: Ok(text), .. }) => text,
        Some(SourceFile { text: Err(e), .. }) => {
            problems.push(problem(name, "theme.json", e));
            return None;
        }
        None => {
            problems.push(problem(
                name,
                "theme.json",
                "missing: every theme needs a theme.json (copy one with `tikrelay theme new`)",
            ));
            return None;
        }
    };
    let mut manifest = match serde_json::from_str::<Manifest>(text) {
        Ok(m) => m,
        Err(e) => {
            problems.push(TemplateProblem {
                theme: name.into(),
                file: "theme.json".into(),
                line: Some(e.line()),
                column: Some(e.column()),
                message: e.to_string(),
                serving_last_good: false,
            });
            return None;
        }
    };
    manifest
        .fields
        .retain(|field, spec| match validate_spec(spec) {
            Ok(()) => true,
            Err(why) => {
                // serde_json does not keep positions; the key's first occurrence is close enough.
                let needle = format!("\"{field}\"");
                let line = text
                    .lines()
                    .position(|l| l.contains(&needle))
                    .map(|i| i + 1);
                problems.push(TemplateProblem {
                    theme: name.into(),
                    file: "theme.json".into(),
                    line,
                    column: None,
                    message: format!("field {field:?}: {why}; the field is left out"),
                    serving_last_good: false,
                });
                false
            }
        });
    Some(manifest)
}

pub(super) fn problem(theme: &str, file: &str, message: &str) -> TemplateProblem {
    TemplateProblem {
        theme: theme.into(),
        file: file.into(),
        line: None,
        column: None,
        message: message.into(),
        serving_last_good: false,
    }
}

/// Renders every page of `theme` with its default fields; a page that compiles but cannot
/// render (a missing partial, a helper error) is a problem too. With a previous registry, such
/// a page goes back to its last good version.
pub(super) fn check_renders(
    hb: &mut Handlebars<'static>,
    previous: Option<&Loaded>,
    theme: &str,
    manifest: &Manifest,
    problems: &mut Vec<TemplateProblem>,
) {
    let (fields, _) = resolve_fields(&manifest.fields, &HashMap::new());
    let relay = json!({"ws_url": "/ws", "version": env!("CARGO_PKG_VERSION")});
    for (page, info) in &manifest.pages {
        let name = page_template_name(theme, page);
        let file = format!("{page}.hbs");
        if problems.iter().any(|p| p.theme == theme && p.file == file) {
            continue;
        }
        let ctx = page_context(theme, page, info, fields.clone(), &[], relay.clone());
        if let Err(e) = limits::render(hb, &name, &ctx) {
            let mut p = problem(theme, &file, &e.reason().to_string());
            p.line = e.line_no;
            p.column = e.column_no;
            if e.template_name.as_deref().is_some_and(|t| t != name) {
                p.message = format!(
                    "{} (in {})",
                    p.message,
                    e.template_name.as_deref().unwrap_or("")
                );
            }
            if let Some(last_good) = previous.and_then(|p| p.hb.get_template(&name)) {
                hb.register_template(&name, last_good.clone());
                p.serving_last_good = true;
            }
            problems.push(p);
        }
    }
}

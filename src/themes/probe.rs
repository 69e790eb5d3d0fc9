//! One `theme.json` or one page template checked exactly as theme loading checks it, without a
//! theme folder on disk. The fuzz targets and the corpus replay test call these, so they
//! exercise the registry's own parse, validation, compile and render steps.

use std::sync::OnceLock;

use handlebars::Handlebars;

use super::load::{
    SourceFile, builtin_files, check_renders, load_manifest, problem, refuse_recursive_partials,
    register,
};
use super::manifest::{default_height, default_width};
use super::render::{new_handlebars, page_template_name};
use super::{BUILTIN_TEMPLATES, Manifest, PageInfo, TemplateProblem};

/// The theme name problems are reported under.
const THEME: &str = "probe";

/// Parses and validates `theme.json` text: the manifest (fields with a bad declaration left
/// out), or `None` when it cannot be used, and every problem found.
pub fn manifest(text: &str) -> (Option<Manifest>, Vec<TemplateProblem>) {
    let files = [SourceFile {
        rel: "theme.json".into(),
        text: Ok(text.to_string()),
    }];
    let mut problems = Vec::new();
    let manifest = load_manifest(THEME, &files, &mut problems);
    (manifest, problems)
}

/// Registers `text` as a page of a theme next to the built-in shared templates (the `layout`
/// partial, the `json` helper) and renders it with the default page context, as loading and
/// hot reload do (template limits, recursive partials refused); returns the problems found (none when the page serves).
pub fn page_template(text: &str) -> Vec<TemplateProblem> {
    // The shared templates are the same for every call: compile them once.
    static SHARED: OnceLock<Handlebars<'static>> = OnceLock::new();
    let shared = SHARED.get_or_init(|| {
        let mut hb = new_handlebars();
        let mut problems = Vec::new();
        for f in builtin_files(&BUILTIN_TEMPLATES) {
            let Some(stem) = f.rel.strip_suffix(".hbs") else {
                continue;
            };
            let name = stem.strip_prefix("partials/").unwrap_or(stem);
            let blank = problem("templates", &f.rel, "");
            register(&mut hb, None, name, &f.text, blank, &mut problems);
        }
        assert!(problems.is_empty(), "built-in templates: {problems:?}");
        hb
    });
    let mut hb = shared.clone();
    let mut problems = Vec::new();
    let page = "page";
    let file = format!("{page}.hbs");
    let source = Ok(text.to_string());
    let name = page_template_name(THEME, page);
    register(
        &mut hb,
        None,
        &name,
        &source,
        problem(THEME, &file, ""),
        &mut problems,
    );
    // As `load_all` does: partials that include themselves are taken out before rendering.
    let shared_files = Default::default();
    refuse_recursive_partials(&mut hb, None, &shared_files, &mut problems);
    let mut manifest = Manifest::default();
    if hb.has_template(&name) {
        manifest.pages.insert(
            page.to_string(),
            PageInfo {
                width: default_width(),
                height: default_height(),
                description: String::new(),
            },
        );
    }
    check_renders(&mut hb, None, THEME, &manifest, &mut problems);
    problems
}

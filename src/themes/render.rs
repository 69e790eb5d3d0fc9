//! How a page renders: the handlebars registry every template is compiled into (HTML escaping
//! on, the `json` helper, the limit guards of [`super::limits`]), the name a page's template is
//! registered under, and the context a page renders with (DESIGN.md "Theme folders"), including
//! the JSON `relay.js` reads, made safe to place inside a `<script>` element.

use handlebars::Handlebars;
use serde_json::{Value, json};

use super::{PageInfo, limits};

/// The render context of a page (DESIGN.md "Theme folders").
pub(super) fn page_context(
    theme_name: &str,
    page: &str,
    info: &PageInfo,
    fields: Value,
    warnings: &[String],
    relay: Value,
) -> Value {
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
    json!({
        "theme": theme_name,
        "page": page,
        "size": {"width": info.width, "height": info.height},
        "fields": fields,
        "field_warnings": warnings,
        "relay": relay,
        "page_config": page_config,
    })
}

pub(super) fn page_template_name(theme: &str, page: &str) -> String {
    format!("{theme}/{page}")
}

pub(super) fn new_handlebars() -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    // Escaping stays on (the default): viewer text is never markup.
    hb.register_helper("json", Box::new(json_helper));
    limits::register_guard(&mut hb);
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::themes::{
        BUILTIN_OVERLAYS, BUILTIN_TEMPLATES, ThemeRegistry, ThemeSources, resolve_fields,
    };

    #[test]
    fn script_json_cannot_close_the_script() {
        let s = script_safe_json(&json!({"x": "</script><script>alert(1)</script>"}));
        assert!(!s.contains('<') && !s.contains('>'));
    }

    #[test]
    fn the_limit_guards_change_no_byte_of_the_builtin_pages() {
        let reg = ThemeRegistry::load(ThemeSources::default());
        let mut plain = Handlebars::new();
        plain.register_helper("json", Box::new(json_helper));
        let shared = BUILTIN_TEMPLATES.dirs().flat_map(|d| d.files());
        for f in BUILTIN_TEMPLATES.files().chain(shared) {
            if f.path().extension().is_some_and(|e| e == "hbs") {
                let name = f.path().file_stem().unwrap().to_string_lossy();
                plain
                    .register_template_string(&name, f.contents_utf8().unwrap())
                    .unwrap();
            }
        }
        let theme = BUILTIN_OVERLAYS.get_dir("default").unwrap();
        for f in theme.files() {
            if f.path().extension().is_some_and(|e| e == "hbs") {
                let page = f.path().file_stem().unwrap().to_string_lossy();
                plain
                    .register_template_string(
                        &format!("default/{page}"),
                        f.contents_utf8().unwrap(),
                    )
                    .unwrap();
            }
        }
        let relay = json!({"ws_url": "/ws", "version": "1"});
        for page in reg.pages() {
            let checked = reg
                .render_page("default", &page.page, &HashMap::new(), relay.clone())
                .unwrap();
            let theme = reg.theme("default").unwrap();
            let (fields, _) = resolve_fields(&theme.manifest.fields, &HashMap::new());
            let info = &theme.manifest.pages[&page.page];
            let ctx = page_context("default", &page.page, info, fields, &[], relay.clone());
            let unguarded = plain
                .render(&page_template_name("default", &page.page), &ctx)
                .unwrap();
            assert_eq!(checked, unguarded, "{}", page.page);
        }
    }
}

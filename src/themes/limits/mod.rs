//! Limits on what a handlebars template may do, in one place for theme pages, shared templates
//! and the config's trigger texts: how deep blocks and expressions nest, how deep partials
//! include partials, and the stack rendering runs on.
//!
//! Handlebars recurses for every nested block, expression and partial, both in its parser and
//! when rendering, and has no limit of its own: 3,000 nested `{{#if}}` or an inline partial
//! that includes itself overflow the stack, which aborts the whole process. So every template
//! goes through [`compile_checked`] (nesting is measured on the text *before* the parser sees
//! it, then on the compiled tree), [`check_partials`] refuses partials that include
//! themselves or nest too deep (with the file and line of the include), and [`render`] is the
//! defence in depth: every partial include is wrapped at compile time in a guard helper that
//! counts the depth while rendering (so dynamic partial names are bounded too) and moves
//! rendering to a fresh stack segment when the current one runs low.
//!
//! This module holds the limits, the entry points and the render-time guard; the text scan
//! lives in `scan` and the check across templates in `partials`.

mod partials;
mod scan;

use std::cell::Cell;
use std::sync::LazyLock;

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, Renderable, Template,
};
use serde::Serialize;

pub use partials::check_partials;
use scan::scan_nesting;

/// Largest template text compiled. The built-in pages are under 1 KB and the dashboard 25 KB.
pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;
/// Tags (`{{…}}`) in one template; the built-in dashboard has 24. The parser works out the line
/// of every tag by counting from the start of the text, so its time grows with tags × size:
/// 1,000 tags in 256 KB take about 2 s in a debug build, 10,000 would take minutes.
pub const MAX_TAGS: usize = 1000;
/// Blocks open at once in one template (`{{#if}}`, `{{#each}}`, `{{#> partial}}`,
/// `{{#*inline}}`, each `{{else if}}` link counting as one more). The built-in pages nest 4
/// deep; 40 leaves room for any hand-written page while keeping a render far from the stack's end.
pub const MAX_NESTING: usize = 40;
/// Brackets open at once inside one tag: subexpressions `(…)`, array and object literals.
pub const MAX_EXPRESSION_NESTING: usize = 16;
/// Partials rendering inside partials at once (a page in `layout` is 1; a partial block's
/// `{{> @partial-block}}` counts as one more). Real themes use 2 or 3.
pub const MAX_PARTIAL_DEPTH: usize = 16;
/// Rendering moves to a fresh stack segment when less than this is left. One template between
/// two partial includes uses well under it: a debug build overflowed its 8 MB main stack at
/// about 1,500 nested blocks (some 5 KB a level), so 40 blocks and 16 subexpressions need about
/// 300 KB; a test renders the deepest allowed chain on a 256 KB thread.
const RED_ZONE: usize = 1024 * 1024;
/// Size of a fresh stack segment (address space; only the pages used are touched).
const STACK_SEGMENT: usize = 8 * 1024 * 1024;
/// The block helper every partial include is wrapped in.
const GUARD_HELPER: &str = "__tikrelay_partial";

/// Why a template text is refused, with the 1-based line and column in the text when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CompileError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

/// A partial include that would recurse or nest too deep, found by [`check_partials`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialProblem {
    /// Registered name of the template the include is written in.
    pub template: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

/// Compiles `text` as the template `name` within the limits, ready for
/// `Handlebars::register_template` in a registry set up with [`register_guard`]. This is the
/// one entry point for template text from files, the config, and the fuzz target.
pub fn compile_checked(name: &str, text: &str) -> Result<Template, CompileError> {
    if text.len() > MAX_TEMPLATE_BYTES {
        return Err(CompileError {
            line: None,
            column: None,
            message: format!(
                "the template is {} bytes, over the {MAX_TEMPLATE_BYTES}-byte limit",
                text.len()
            ),
        });
    }
    scan_nesting(text)?;
    let mut template =
        Template::compile_with_name(text, name.to_string()).map_err(|e| CompileError {
            line: e.pos().map(|p| p.0),
            column: e.pos().map(|p| p.1),
            message: e.reason().to_string(),
        })?;
    guard_tree(&mut template, 0)?;
    Ok(template)
}

/// Registers the guard helper that partial includes are wrapped in; every registry that
/// renders templates from [`compile_checked`] needs it.
pub fn register_guard(hb: &mut Handlebars<'_>) {
    hb.register_helper(GUARD_HELPER, Box::new(PartialGuard));
}

/// Renders `name` from `hb` with the render-time limits: partial depth counted, and the stack
/// grown when it runs low, so no template can overflow it.
pub fn render<T: Serialize>(
    hb: &Handlebars<'_>,
    name: &str,
    data: &T,
) -> Result<String, RenderError> {
    let _restore = DepthRestore(PARTIAL_DEPTH.replace(0));
    stacker::maybe_grow(RED_ZONE, STACK_SEGMENT, || hb.render(name, data))
}

// ---- after the parser: the compiled tree (the text was scanned before, in `scan`) ----

/// The wrapper block an include is put in: `{{#__tikrelay_partial}}{{> …}}{{/…}}`.
static GUARD_BLOCK: LazyLock<HelperTemplate> = LazyLock::new(|| {
    let t = Template::compile(&format!("{{{{#{GUARD_HELPER}}}}}{{{{/{GUARD_HELPER}}}}}"))
        .expect("the guard block compiles");
    match t.elements.into_iter().next() {
        Some(TemplateElement::HelperBlock(mut ht)) => {
            ht.template = None;
            *ht
        }
        _ => unreachable!("the guard block is a helper block"),
    }
});

/// Checks block depth on the compiled tree (exact, where the text scan over-counts), checks
/// inline partial names, and wraps every partial include in the guard block.
fn guard_tree(t: &mut Template, depth: usize) -> Result<(), CompileError> {
    let at = |t: &Template, idx: usize| t.mapping.get(idx).map(|m| (m.0, m.1));
    for idx in 0..t.elements.len() {
        let pos = at(t, idx);
        let err = |message: String| CompileError {
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            message,
        };
        let is_block = matches!(
            t.elements[idx],
            TemplateElement::HelperBlock(_)
                | TemplateElement::DecoratorBlock(_)
                | TemplateElement::PartialBlock(_)
        );
        if is_block && depth + 1 > MAX_NESTING {
            return Err(err(format!(
                "blocks nest more than {MAX_NESTING} deep here"
            )));
        }
        let wrap = match &mut t.elements[idx] {
            TemplateElement::HelperBlock(ht) => {
                for inner in [&mut ht.template, &mut ht.inverse].into_iter().flatten() {
                    guard_tree(inner, depth + 1)?;
                }
                false
            }
            TemplateElement::DecoratorBlock(dt) => {
                if dt.name.as_name() == Some("inline")
                    && !matches!(dt.params.first(), Some(Parameter::Literal(v)) if v.is_string())
                {
                    return Err(err(
                        "name an inline partial with a quoted string: {{#*inline \"name\"}}".into(),
                    ));
                }
                if let Some(inner) = &mut dt.template {
                    guard_tree(inner, depth + 1)?;
                }
                false
            }
            TemplateElement::PartialExpression(dt) | TemplateElement::PartialBlock(dt) => {
                if let Some(inner) = &mut dt.template {
                    guard_tree(inner, depth + 1)?;
                }
                true
            }
            _ => false,
        };
        if wrap {
            let include = std::mem::replace(
                &mut t.elements[idx],
                TemplateElement::RawString(String::new()),
            );
            let mut body = Template::default();
            body.name.clone_from(&t.name);
            body.elements.push(include);
            body.mapping.extend(t.mapping.get(idx).cloned());
            let mut block = GUARD_BLOCK.clone();
            block.template = Some(body);
            t.elements[idx] = TemplateElement::HelperBlock(Box::new(block));
        }
    }
    Ok(())
}

// ---- render time ----

thread_local! {
    /// Partials open in the render running on this thread.
    static PARTIAL_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Puts the depth back when a guard (or a render) ends, even on an error.
struct DepthRestore(usize);

impl Drop for DepthRestore {
    fn drop(&mut self) {
        PARTIAL_DEPTH.set(self.0);
    }
}

struct PartialGuard;

impl HelperDef for PartialGuard {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let Some(t) = h.template() else {
            return Ok(());
        };
        let depth = PARTIAL_DEPTH.get();
        if depth >= MAX_PARTIAL_DEPTH {
            return Err(RenderErrorReason::Other(format!(
                "partials nest more than {MAX_PARTIAL_DEPTH} deep here (a partial that includes itself?)"
            ))
            .into());
        }
        let _restore = DepthRestore(depth);
        PARTIAL_DEPTH.set(depth + 1);
        stacker::maybe_grow(RED_ZONE, STACK_SEGMENT, || t.render(r, ctx, rc, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn registry(templates: &[(&str, &str)]) -> Handlebars<'static> {
        let mut hb = Handlebars::new();
        register_guard(&mut hb);
        for (name, text) in templates {
            hb.register_template(name, compile_checked(name, text).unwrap());
        }
        hb
    }

    #[test]
    fn computed_partial_names_are_bounded_while_rendering() {
        let hb = registry(&[(
            "t",
            "{{#*inline \"r\"}}.{{> (lookup this \"n\")}}{{/inline}}{{> r}}",
        )]);
        assert!(
            check_partials(&hb).is_empty(),
            "cannot be seen before rendering"
        );
        let e = render(&hb, "t", &json!({"n": "r"})).unwrap_err();
        assert!(e.to_string().contains("more than 16 deep"), "{e}");
        assert_eq!(e.line_no, Some(1), "{e}");
        // The depth is reset for the next render, error or not.
        assert_eq!(render(&hb, "t", &json!({"n": "nothing"})).ok(), None);
        let ok = registry(&[(
            "t",
            "{{#*inline \"r\"}}fine{{/inline}}{{> (lookup this \"n\")}}",
        )]);
        assert_eq!(render(&ok, "t", &json!({"n": "r"})).unwrap(), "fine");
    }

    #[test]
    fn the_deepest_allowed_template_renders_on_a_small_stack() {
        // Every level at its limit: blocks, brackets and partials, on a 256 KB thread.
        let deep = format!(
            "{}{{{{not {}a{}}}}}{{{{> next}}}}{}",
            "{{#if a}}".repeat(MAX_NESTING),
            "(not ".repeat(MAX_EXPRESSION_NESTING - 1),
            ")".repeat(MAX_EXPRESSION_NESTING - 1),
            "{{/if}}".repeat(MAX_NESTING),
        );
        let mut templates = Vec::new();
        for i in 0..MAX_PARTIAL_DEPTH {
            let name = if i == 0 {
                "t".to_string()
            } else {
                format!("p{i}")
            };
            let next = if i + 1 == MAX_PARTIAL_DEPTH {
                "end".to_string()
            } else {
                format!("p{}", i + 1)
            };
            templates.push((name, deep.replace("next", &next)));
        }
        templates.push(("end".into(), "bottom".into()));
        let refs: Vec<(&str, &str)> = templates
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let hb = registry(&refs);
        assert!(check_partials(&hb).is_empty());
        let out = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || render(&hb, "t", &json!({"a": true})).map_err(|e| e.to_string()))
            .unwrap()
            .join()
            .expect("no stack overflow");
        let out = out.unwrap();
        assert!(out.ends_with("bottom"), "{out}");
    }

    #[test]
    fn wrapping_includes_changes_no_output() {
        let text =
            "a\n  {{> p x=1}}\nb {{#> p}}blk{{/p}}\n{{#*inline \"i\"}}I{{x}}{{/inline}}{{> i x=2}}";
        let mut plain = Handlebars::new();
        plain.register_template_string("t", text).unwrap();
        plain.register_template_string("p", "[{{x}}]\n").unwrap();
        let checked = registry(&[("t", text), ("p", "[{{x}}]\n")]);
        assert_eq!(
            plain.render("t", &json!({})).unwrap(),
            render(&checked, "t", &json!({})).unwrap()
        );
    }
}

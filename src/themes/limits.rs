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

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, Renderable, Template,
};
use serde::Serialize;

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
/// two partial includes uses well under it: 40 blocks and 16 subexpressions took about 300 KB
/// in a debug build.
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

// ---- before the parser: nesting measured on the text ----

/// Measures block and bracket nesting on the raw text, so the parser (which recurses for both)
/// never sees text deep enough to overflow it. It over-counts rather than under-counts: a
/// `{{` it cannot classify counts as whatever opens the most.
fn scan_nesting(text: &str) -> Result<(), CompileError> {
    let b = text.as_bytes();
    let too_deep = |at: usize, message: String| {
        let (line, column) = line_col(text, at);
        Err(CompileError {
            line: Some(line),
            column: Some(column),
            message,
        })
    };
    // Per open block: how many `{{else if …}}` links it has, each nesting one deeper.
    let mut frames: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut tags = 0usize;
    let mut i = 0;
    while let Some(start) = find(b, i, b"{{") {
        tags += 1;
        if tags > MAX_TAGS {
            return too_deep(
                start,
                format!("more than {MAX_TAGS} tags in one template; split it into partials"),
            );
        }
        // `\{{` is text; `\\{{` is a backslash and then a tag.
        if start >= 1 && b[start - 1] == b'\\' && !(start >= 2 && b[start - 2] == b'\\') {
            i = start + 2;
            continue;
        }
        if b[start..].starts_with(b"{{{{") {
            // A raw block: its text is not parsed, up to the next `{{{{` (its end tag).
            let is_end = skip_ws_tilde(&b[start + 4..]).first() == Some(&b'/');
            i = match find(b, start + 4, b"}}}}").and_then(|e| find(b, e + 4, b"{{{{")) {
                Some(next) if !is_end => next,
                _ => start + 4,
            };
            continue;
        }
        if b[start..].starts_with(b"{{!--")
            && let Some(e) = find(b, start + 5, b"--}}")
        {
            i = e + 4;
            continue;
        }
        if b[start..].starts_with(b"{{!") {
            i = find(b, start + 3, b"}}").map_or(b.len(), |e| e + 2);
            continue;
        }
        let end = find(b, start + 2, b"}}").unwrap_or(b.len());
        let body = &b[start + 2..end];
        let inner = skip_ws_tilde(body);
        match inner.first() {
            Some(b'#') => {
                frames.push(0);
                depth += 1;
            }
            Some(b'/') => {
                if let Some(links) = frames.pop() {
                    depth -= 1 + links;
                }
            }
            Some(b'^') if has_name_after(&inner[1..]) => chain(&mut frames, &mut depth),
            _ if inner.starts_with(b"else")
                && inner.get(4).is_some_and(|c| c.is_ascii_whitespace())
                && has_name_after(&inner[4..]) =>
            {
                chain(&mut frames, &mut depth)
            }
            _ => {}
        }
        if depth > MAX_NESTING {
            return too_deep(
                start,
                format!("blocks nest more than {MAX_NESTING} deep here; flatten the template"),
            );
        }
        let (mut open, mut most) = (0usize, 0usize);
        for &c in body {
            match c {
                b'(' | b'[' | b'{' => {
                    open += 1;
                    most = most.max(open);
                }
                b')' | b']' | b'}' => open = open.saturating_sub(1),
                _ => {}
            }
        }
        if most > MAX_EXPRESSION_NESTING {
            return too_deep(
                start,
                format!(
                    "brackets (subexpressions, literals) nest more than {MAX_EXPRESSION_NESTING} deep in this tag"
                ),
            );
        }
        i = (end + 2).min(b.len().max(start + 2));
    }
    Ok(())
}

fn chain(frames: &mut [usize], depth: &mut usize) {
    if let Some(links) = frames.last_mut() {
        *links += 1;
        *depth += 1;
    }
}

fn has_name_after(rest: &[u8]) -> bool {
    skip_ws_tilde(rest)
        .first()
        .is_some_and(|c| *c != b'}' && *c != b'~')
}

fn skip_ws_tilde(s: &[u8]) -> &[u8] {
    let mut s = s;
    while let Some((c, rest)) = s.split_first() {
        if c.is_ascii_whitespace() || *c == b'~' {
            s = rest;
        } else {
            break;
        }
    }
    s
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut at = offset.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

// ---- after the parser: the compiled tree ----

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

// ---- across templates: which partial includes which ----

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Node {
    Template(String),
    Inline(String),
}

/// One `{{> name}}` with a literal name: where it is written and in which node.
#[derive(Debug, Clone)]
struct Include {
    callee: String,
    template: String,
    line: Option<usize>,
    column: Option<usize>,
}

/// Finds partial includes (with literal names) that include themselves, directly or through
/// other partials, or chains deeper than [`MAX_PARTIAL_DEPTH`], across every template of `hb`.
/// An include resolves to the registered template and to every inline partial of that name,
/// which over-approximates handlebars' scoping. Includes with computed names cannot be
/// followed here; the render-time guard bounds them.
pub fn check_partials(hb: &Handlebars<'_>) -> Vec<PartialProblem> {
    let mut edges: BTreeMap<Node, Vec<Include>> = BTreeMap::new();
    let templates: BTreeMap<&String, &Template> = hb.get_templates().iter().collect();
    for (name, t) in &templates {
        let node = Node::Template((*name).clone());
        edges.entry(node.clone()).or_default();
        collect_includes(t, name, &node, &mut edges);
    }
    let inline_names: BTreeSet<String> = edges
        .keys()
        .filter_map(|n| match n {
            Node::Inline(s) => Some(s.clone()),
            Node::Template(_) => None,
        })
        .collect();
    let callees = |inc: &Include| -> Vec<Node> {
        let mut out = Vec::new();
        if inline_names.contains(&inc.callee) {
            out.push(Node::Inline(inc.callee.clone()));
        }
        if templates.contains_key(&inc.callee) {
            out.push(Node::Template(inc.callee.clone()));
        }
        out
    };
    let mut problems = Vec::new();
    let mut done: HashMap<Node, usize> = HashMap::new();
    for start in edges.keys() {
        let mut path: Vec<(Node, Option<Include>)> = vec![(start.clone(), None)];
        if let Err(p) = deepest(start, &edges, &callees, &mut done, &mut path)
            && !problems.contains(&p)
        {
            problems.push(p);
        }
    }
    problems
}

/// Longest include chain below `node` (memoised in `done`), or the first problem found.
fn deepest(
    node: &Node,
    edges: &BTreeMap<Node, Vec<Include>>,
    callees: &dyn Fn(&Include) -> Vec<Node>,
    done: &mut HashMap<Node, usize>,
    path: &mut Vec<(Node, Option<Include>)>,
) -> Result<usize, PartialProblem> {
    if let Some(d) = done.get(node) {
        return Ok(*d);
    }
    let mut most = 0;
    for inc in edges.get(node).map(Vec::as_slice).unwrap_or(&[]) {
        for callee in callees(inc) {
            let problem = |message: String| PartialProblem {
                template: inc.template.clone(),
                line: inc.line,
                column: inc.column,
                message,
            };
            if let Some(at) = path.iter().position(|(n, _)| *n == callee) {
                let mut names: Vec<String> = path[at..].iter().map(|(n, _)| show(n)).collect();
                names.push(show(&callee));
                return Err(problem(format!(
                    "partial {:?} includes itself ({}); a partial may not include itself, directly or through others",
                    inc.callee,
                    names.join(" → ")
                )));
            }
            if path.len() > MAX_PARTIAL_DEPTH {
                let mut names: Vec<String> = path.iter().map(|(n, _)| show(n)).collect();
                names.push(show(&callee));
                return Err(problem(format!(
                    "partials nest more than {MAX_PARTIAL_DEPTH} deep ({})",
                    names.join(" → ")
                )));
            }
            path.push((callee.clone(), Some(inc.clone())));
            let below = deepest(&callee, edges, callees, done, path);
            path.pop();
            let below = below?;
            // A chain found earlier (memoised) still counts from here.
            if path.len() + below > MAX_PARTIAL_DEPTH {
                let mut names: Vec<String> = path.iter().map(|(n, _)| show(n)).collect();
                names.push(show(&callee));
                names.push("…".into());
                return Err(problem(format!(
                    "partials nest more than {MAX_PARTIAL_DEPTH} deep ({})",
                    names.join(" → ")
                )));
            }
            most = most.max(below + 1);
        }
    }
    done.insert(node.clone(), most);
    Ok(most)
}

fn show(n: &Node) -> String {
    match n {
        Node::Template(s) | Node::Inline(s) => s.clone(),
    }
}

/// Records the literal-named includes in `t`, attributing those inside an inline partial's
/// body to that inline partial.
fn collect_includes(
    t: &Template,
    owner: &str,
    node: &Node,
    edges: &mut BTreeMap<Node, Vec<Include>>,
) {
    for (idx, el) in t.elements.iter().enumerate() {
        let pos = t.mapping.get(idx);
        match el {
            TemplateElement::HelperBlock(ht) => {
                for inner in [&ht.template, &ht.inverse].into_iter().flatten() {
                    collect_includes(inner, owner, node, edges);
                }
            }
            TemplateElement::DecoratorBlock(dt) => {
                let inline = match (dt.name.as_name(), dt.params.first()) {
                    (Some("inline"), Some(Parameter::Literal(v))) => v.as_str(),
                    _ => None,
                };
                if let Some(inner) = &dt.template {
                    match inline {
                        Some(name) => {
                            let inner_node = Node::Inline(name.to_string());
                            edges.entry(inner_node.clone()).or_default();
                            collect_includes(inner, owner, &inner_node, edges);
                        }
                        None => collect_includes(inner, owner, node, edges),
                    }
                }
            }
            TemplateElement::PartialExpression(dt) | TemplateElement::PartialBlock(dt) => {
                if let Parameter::Name(callee) = &dt.name
                    && callee != "@partial-block"
                {
                    edges.entry(node.clone()).or_default().push(Include {
                        callee: callee.clone(),
                        template: owner.to_string(),
                        line: pos.map(|p| p.0),
                        column: pos.map(|p| p.1),
                    });
                }
                if let Some(inner) = &dt.template {
                    collect_includes(inner, owner, node, edges);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn registry(templates: &[(&str, &str)]) -> Handlebars<'static> {
        let mut hb = Handlebars::new();
        register_guard(&mut hb);
        for (name, text) in templates {
            hb.register_template(name, compile_checked(name, text).unwrap());
        }
        hb
    }

    #[test]
    fn deep_text_is_refused_before_the_parser_sees_it() {
        let ifs = |n: usize| format!("{}x{}", "{{#if a}}".repeat(n), "{{/if}}".repeat(n));
        assert!(compile_checked("t", &ifs(MAX_NESTING)).is_ok());
        let e = compile_checked("t", &format!("ok\n{}", ifs(3000))).unwrap_err();
        assert_eq!(e.line, Some(2), "{e:?}");
        assert!(e.message.contains("nest"), "{e}");
        let elifs = format!("{{{{#if a}}}}{}{{{{/if}}}}", "{{else if a}}".repeat(3000));
        assert!(compile_checked("t", &elifs).is_err());
        let parens = format!("{{{{x {}a{}}}}}", "(f ".repeat(3000), ")".repeat(3000));
        assert!(compile_checked("t", &parens).is_err());
        let arrays = format!("{{{{x {}1{}}}}}", "[".repeat(3000), "]".repeat(3000));
        assert!(compile_checked("t", &arrays).is_err());
        // Sequential blocks, comments and escaped tags do not add up.
        let flat = "{{#if a}}x{{/if}}".repeat(200);
        assert!(compile_checked("t", &flat).is_ok());
        let comment = format!("{{{{!-- {} --}}}}ok", "{{#if a}}".repeat(100));
        assert!(compile_checked("t", &comment).is_ok());
        let escaped = format!("{}ok", "\\{{#if a}}".repeat(100));
        assert!(compile_checked("t", &escaped).is_ok());
        let raw = format!(
            "{{{{{{{{raw}}}}}}}}{}{{{{{{{{/raw}}}}}}}}",
            "{{#if a}}".repeat(100)
        );
        assert!(compile_checked("t", &raw).is_ok());
    }

    #[test]
    fn recursive_partials_are_refused_with_their_line() {
        let hb = registry(&[("t", "line 1\n{{#*inline \"r\"}}{{> r}}{{/inline}}{{> r}}")]);
        let problems = check_partials(&hb);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            (problems[0].template.as_str(), problems[0].line),
            ("t", Some(2))
        );
        assert!(
            problems[0].message.contains("includes itself"),
            "{problems:?}"
        );

        let hb = registry(&[("a", "{{> b}}"), ("b", "x {{#if y}}{{> a}}{{/if}}")]);
        assert!(!check_partials(&hb).is_empty());

        let chain: Vec<(String, String)> = (0..=MAX_PARTIAL_DEPTH + 1)
            .map(|i| (format!("p{i}"), format!("{{{{> p{}}}}}", i + 1)))
            .collect();
        let chain: Vec<(&str, &str)> = chain
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let problems = check_partials(&registry(&chain));
        assert!(
            problems.iter().any(|p| p.message.contains("more than")),
            "{problems:?}"
        );

        let fine = registry(&[
            ("layout", "<main>{{> @partial-block}}</main>"),
            ("card", "{{#> layout}}card{{/layout}}"),
            (
                "page",
                "{{#> layout}}{{> card}}{{#*inline \"x\"}}y{{/inline}}{{> x}}{{/layout}}",
            ),
        ]);
        assert!(
            check_partials(&fine).is_empty(),
            "{:?}",
            check_partials(&fine)
        );
        assert_eq!(
            render(&fine, "page", &json!({})).unwrap(),
            "<main><main>card</main>y</main>"
        );
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

//! Limits across templates: which partial includes which, so partials that include themselves
//! (directly or through others) or chain deeper than [`MAX_PARTIAL_DEPTH`] are refused at load
//! time, with the file and line of the include.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use handlebars::template::{Parameter, TemplateElement};
use handlebars::{Handlebars, Template};

use super::{MAX_PARTIAL_DEPTH, PartialProblem};

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

    use crate::themes::limits::render;
    use crate::themes::limits::tests::registry;

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
}

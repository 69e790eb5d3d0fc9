//! The first limit a template meets: block and bracket nesting measured on the raw text, before
//! handlebars' parser (which recurses for both) sees it, with the line and column of the tag
//! that goes too deep.

use super::{CompileError, MAX_EXPRESSION_NESTING, MAX_NESTING, MAX_TAGS};

/// Measures block and bracket nesting on the raw text, so the parser (which recurses for both)
/// never sees text deep enough to overflow it. It over-counts rather than under-counts: a
/// `{{` it cannot classify counts as whatever opens the most.
pub(super) fn scan_nesting(text: &str) -> Result<(), CompileError> {
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

#[cfg(test)]
mod tests {
    use crate::themes::limits::{MAX_NESTING, compile_checked};

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
}

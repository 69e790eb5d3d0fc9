//! Making viewer text inert before it goes into an action (an RCON command, a webhook body).
//!
//! A nickname is chosen by a stranger. Put raw into `tellraw @a {"text":"NAME"}` or
//! `summon zombie ~ ~ ~ {CustomName:'"NAME"'}`, a quote closes the string and the rest becomes
//! command syntax; `@a` in `say` becomes a target selector; a newline or `§` code changes what the
//! server shows. So [`safe_text`] works by allow-list: ASCII letters and digits, the space and a
//! few punctuation marks that mean nothing to Minecraft's command, JSON or NBT grammar; any
//! non-ASCII character except controls, invisible formatting characters and `§` (emoji and
//! non-Latin names keep working, and the game grammar is ASCII). Whitespace runs become one space
//! and the length is capped. [`safe_username`] falls back to the `unique_id` when the nickname is
//! empty or nothing of it survives.

use crate::events::User;

/// Characters kept from a nickname in actions.
pub const MAX_NAME_CHARS: usize = 32;
/// Characters kept from other viewer text (comments, gift names) in actions.
pub const MAX_TEXT_CHARS: usize = 100;

/// ASCII punctuation that is inert in Minecraft commands, JSON text and SNBT: no quotes,
/// backslash, braces, brackets, `@` (selectors), `~`/`^` (coordinates), `:`/`,`/`=` (NBT and
/// selector syntax), `/`, `;`, `$` (function macros) or `§` (formatting codes).
const SAFE_PUNCTUATION: &[char] = &['_', '-', '.', '!', '?', '(', ')', '+', '#', '*', '&', '%'];

fn keep(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || SAFE_PUNCTUATION.contains(&c);
    }
    !(c.is_control()
        || c == '§'
        // zero-width and bidi controls, line/paragraph separators, word joiners, BOM
        || ('\u{200B}'..='\u{200F}').contains(&c)
        || ('\u{2028}'..='\u{202E}').contains(&c)
        || ('\u{2060}'..='\u{206F}').contains(&c)
        || c == '\u{FEFF}'
        || ('\u{FFF9}'..='\u{FFFB}').contains(&c))
}

/// Viewer text made inert for commands: allowed characters only, whitespace collapsed to single
/// spaces, trimmed, at most `max_chars` characters.
pub fn safe_text(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    let mut count = 0;
    let mut pending_space = false;
    for c in text.chars() {
        if count >= max_chars {
            break;
        }
        if c.is_whitespace() {
            pending_space = count > 0;
            continue;
        }
        if !keep(c) {
            continue;
        }
        if pending_space {
            if count + 1 >= max_chars {
                break;
            }
            out.push(' ');
            count += 1;
            pending_space = false;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// The viewer's name made inert: the nickname, else the `unique_id`, else `someone`.
pub fn safe_username(user: Option<&User>) -> String {
    let Some(user) = user else {
        return "someone".to_string();
    };
    let nick = safe_text(&user.nickname, MAX_NAME_CHARS);
    if !nick.is_empty() {
        return nick;
    }
    let handle = safe_text(&user.unique_id, MAX_NAME_CHARS);
    if handle.is_empty() {
        "someone".to_string()
    } else {
        handle
    }
}

/// Makes every string in a JSON value inert (for the RCON template context).
pub fn sanitise_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => *s = safe_text(s, MAX_TEXT_CHARS),
        serde_json::Value::Array(items) => items.iter_mut().for_each(sanitise_json),
        serde_json::Value::Object(map) => map.values_mut().for_each(sanitise_json),
        _ => {}
    }
}

/// A rendered command made one line: controls dropped (the config's own text is trusted, but a
/// newline would still split it in the server's console and log).
pub fn one_line(command: &str) -> String {
    command
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(nickname: &str, unique_id: &str) -> User {
        User {
            nickname: nickname.into(),
            unique_id: unique_id.into(),
            ..User::default()
        }
    }

    #[test]
    fn syntax_characters_controls_and_codes_are_removed() {
        assert_eq!(safe_text("Ann\"};/op @a\n§kx", 32), "Annop a kx");
        assert_eq!(
            safe_text("a\\\"b'c{d}[e]:f,g=h~i^j$k;l/m", 32),
            "abcdefghijklm"
        );
        assert_eq!(safe_text("  lots   of\t\r\nspace  ", 32), "lots of space");
        assert_eq!(safe_text("x\u{202E}y\u{200B}z\u{0085}", 32), "xyz");
    }

    #[test]
    fn emoji_and_non_latin_names_survive() {
        assert_eq!(safe_text("Mía 🌹 小明", 32), "Mía 🌹 小明");
    }

    #[test]
    fn length_is_capped_in_characters() {
        assert_eq!(safe_text(&"é".repeat(100), 32).chars().count(), 32);
        assert_eq!(safe_text("aaaa bbbb", 5), "aaaa");
    }

    #[test]
    fn empty_nicknames_fall_back_to_the_handle() {
        assert_eq!(safe_username(Some(&user("", "ann.b_1"))), "ann.b_1");
        assert_eq!(safe_username(Some(&user("\"{}\"", "ann"))), "ann");
        assert_eq!(safe_username(Some(&user("", ""))), "someone");
        assert_eq!(safe_username(None), "someone");
    }
}

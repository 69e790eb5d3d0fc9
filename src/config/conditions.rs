//! A trigger's event type and match conditions (`on`, `gift`, `who`, `pattern`, `min_*`,
//! `every_likes`, `repeat`), each checked with the line and column of its value, split from
//! [`super::validate`], which checks the rest of a trigger and the other tables.

use std::time::Duration;

use regex::Regex;
use toml::Spanned;

use super::raw::RawTrigger;
use super::{ConfigError, Ctx, GiftMatch, OncePer, Trigger};
use crate::events::EVENT_TYPES;

/// `max_repeat` when a trigger leaves it out.
const DEFAULT_MAX_REPEAT: u32 = 100;

/// A trigger's `on`: one of the event types.
pub(super) fn event_type(cx: &Ctx, raw: &Spanned<String>) -> Result<String, ConfigError> {
    let on = raw.get_ref().trim().to_string();
    if !EVENT_TYPES.contains(&on.as_str()) {
        return Err(cx.err(
            raw.span(),
            format!(
                "unknown event type {on:?} in `on`; use one of: {}",
                EVENT_TYPES.join(", ")
            ),
        ));
    }
    Ok(on)
}

/// A trigger with its match conditions (which events, how often, how many times) and no
/// actions yet; each condition is refused where its event type cannot use it.
pub(super) fn conditions(
    cx: &Ctx,
    name: String,
    on: String,
    t: &RawTrigger,
) -> Result<Trigger, ConfigError> {
    let gift = gift_match(cx, &on, &t.gift)?;
    let pattern = pattern(cx, &on, &t.pattern)?;
    let who = who(cx, &t.who)?;
    let every_likes = every_likes(cx, &on, &t.every_likes)?;
    let per_unit = per_unit(cx, &on, &t.repeat)?;
    let max_repeat = match &t.max_repeat {
        None => DEFAULT_MAX_REPEAT,
        Some(m) if (1..=10_000).contains(m.get_ref()) => *m.get_ref(),
        Some(m) => return Err(cx.err(m.span(), "`max_repeat` must be between 1 and 10000")),
    };
    let once_per = match &t.follow_once_per {
        None => None,
        Some(v) => Some(match v.get_ref() {
            toml::Value::String(s) if s == "session" => OncePer::Session,
            toml::Value::Integer(n) if *n > 0 => OncePer::Window(Duration::from_secs(*n as u64)),
            _ => {
                return Err(cx.err(
                    v.span(),
                    "`follow_once_per` is \"session\" or a number of seconds, e.g. 3600",
                ));
            }
        }),
    };
    let stream = match &t.stream {
        None => None,
        Some(s) if s.get_ref().trim().is_empty() => {
            return Err(cx.err(
                s.span(),
                "`stream` names a stream, e.g. stream = \"alice\" (the host's handle, a demo's name or a replay file's stem); leave it out for every stream",
            ));
        }
        Some(s) => Some(s.get_ref().trim().trim_start_matches('@').to_string()),
    };
    Ok(Trigger {
        name,
        on,
        stream,
        gift,
        min_diamonds: t.min_diamonds,
        min_count: t.min_count,
        pattern,
        who,
        every_likes,
        cooldown: t.cooldown_ms.map(Duration::from_millis),
        user_cooldown: t.user_cooldown_ms.map(Duration::from_millis),
        per_unit,
        max_repeat,
        once_per,
        alert: None,
        rcon: Vec::new(),
        webhook: None,
        streamerbot: None,
        obs: None,
    })
}

/// `gift = "Rose"` or `gift = 5655`, for gifts and combos.
fn gift_match(
    cx: &Ctx,
    on: &str,
    gift: &Option<Spanned<toml::Value>>,
) -> Result<Option<GiftMatch>, ConfigError> {
    let Some(g) = gift else { return Ok(None) };
    if on != "gift" && on != "combo" {
        return Err(cx.err(
            g.span(),
            "`gift` only applies to on = \"gift\" or on = \"combo\"",
        ));
    }
    Ok(Some(match g.get_ref() {
        toml::Value::String(s) if !s.trim().is_empty() => GiftMatch::Name(s.trim().to_lowercase()),
        toml::Value::Integer(n) if *n > 0 => GiftMatch::Id(*n as u64),
        _ => {
            return Err(cx.err(
                g.span(),
                "`gift` is a gift name (\"Rose\") or a gift id (5655)",
            ));
        }
    }))
}

/// `who = ["moderator", …]`: the viewer roles a trigger fires for.
fn who(
    cx: &Ctx,
    raw: &Option<Spanned<Vec<Spanned<String>>>>,
) -> Result<Vec<crate::triggers::who::Role>, ConfigError> {
    use crate::triggers::who::{ROLE_NAMES, Role};
    let Some(list) = raw else {
        return Ok(Vec::new());
    };
    if list.get_ref().is_empty() {
        return Err(cx.err(
            list.span(),
            format!(
                "`who` lists no role; remove it to match everyone, or name some of: {}",
                ROLE_NAMES.join(", ")
            ),
        ));
    }
    list.get_ref()
        .iter()
        .map(|name| {
            Role::parse(name.get_ref()).ok_or_else(|| {
                cx.err(
                    name.span(),
                    format!(
                        "unknown role {:?} in `who`; use some of: {}",
                        name.get_ref(),
                        ROLE_NAMES.join(", ")
                    ),
                )
            })
        })
        .collect()
}

/// `pattern`, a regex over the text of comments, questions and pins.
fn pattern(
    cx: &Ctx,
    on: &str,
    pattern: &Option<Spanned<String>>,
) -> Result<Option<Regex>, ConfigError> {
    let Some(p) = pattern else { return Ok(None) };
    if !matches!(on, "comment" | "question" | "pin") {
        return Err(cx.err(
            p.span(),
            "`pattern` only applies to on = \"comment\", \"question\" or \"pin\"",
        ));
    }
    let regex = regex::RegexBuilder::new(p.get_ref())
        .size_limit(1 << 20)
        .build()
        .map_err(|e| cx.err(p.span(), format!("`pattern` is not a valid regex: {e}")))?;
    Ok(Some(regex))
}

/// `every_likes`, for likes only.
fn every_likes(
    cx: &Ctx,
    on: &str,
    every: &Option<Spanned<u64>>,
) -> Result<Option<u64>, ConfigError> {
    let Some(n) = every else { return Ok(None) };
    if on != "like" {
        return Err(cx.err(n.span(), "`every_likes` only applies to on = \"like\""));
    }
    if *n.get_ref() == 0 {
        return Err(cx.err(n.span(), "`every_likes` must be at least 1"));
    }
    Ok(Some(*n.get_ref()))
}

/// `repeat = "per_unit"` or `"once"` (the default).
fn per_unit(cx: &Ctx, on: &str, repeat: &Option<Spanned<String>>) -> Result<bool, ConfigError> {
    let Some(r) = repeat else { return Ok(false) };
    match r.get_ref().as_str() {
        "per_unit" if on == "combo" => Err(cx.err(
            r.span(),
            "repeat = \"per_unit\" does not fit on = \"combo\" (each combo update carries the running count); use on = \"gift\", which sees each streak once, when it ends",
        )),
        "per_unit" => Ok(true),
        "once" => Ok(false),
        other => Err(cx.err(
            r.span(),
            format!(
                "`repeat` is \"per_unit\" (a x5 gift runs the actions 5 times) or \"once\", not {other:?}"
            ),
        )),
    }
}

//! Whether a trigger matches an event (type, gift, counts, pattern, like thresholds), the
//! template context its texts are rendered with, and the per-viewer memory bound.

use std::collections::HashMap;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::safe;
use crate::config::{GiftMatch, Trigger};
use crate::events::{Event, EventKind};

/// Per-viewer memories kept per trigger before old entries are pruned.
const MAX_REMEMBERED_VIEWERS: usize = 50_000;

/// `Some(units)` when `trigger` matches `event`; units drive `repeat = "per_unit"`.
pub(super) fn matches(trigger: &Trigger, event: &Event, like: Option<(u64, u64)>) -> Option<u64> {
    if trigger.on != event.type_name() {
        return None;
    }
    if let Some(stream) = &trigger.stream
        && !stream.eq_ignore_ascii_case(&event.stream)
    {
        return None;
    }
    let (count, diamonds, gift) = match &event.kind {
        EventKind::Gift {
            gift,
            count,
            diamonds_total,
            ..
        } => (*count, *diamonds_total, Some(gift)),
        EventKind::Combo { gift, count, .. } => {
            (*count, gift.diamonds.saturating_mul(*count), Some(gift))
        }
        EventKind::Like { count, .. } => (*count, 0, None),
        _ => (1, 0, None),
    };
    if let Some(want) = &trigger.gift {
        let gift = gift?;
        let ok = match want {
            GiftMatch::Id(id) => gift.id == *id,
            GiftMatch::Name(name) => gift.name.trim().to_lowercase() == *name,
        };
        if !ok {
            return None;
        }
    }
    if !super::who::allows(&trigger.who, event.user.as_ref()) {
        return None;
    }
    if trigger.min_count.is_some_and(|m| count < m) {
        return None;
    }
    if trigger.min_diamonds.is_some_and(|m| diamonds < m) {
        return None;
    }
    if let Some(re) = &trigger.pattern {
        let text = match &event.kind {
            EventKind::Comment { text }
            | EventKind::Question { text }
            | EventKind::Pin { text } => text,
            _ => return None,
        };
        if !re.is_match(text) {
            return None;
        }
    }
    if let Some(n) = trigger.every_likes {
        let (prev, total) = like?;
        let crossed = (total / n).saturating_sub(prev / n);
        return (crossed > 0).then_some(crossed);
    }
    Some(count.max(1))
}

pub(super) fn remember(
    map: &mut HashMap<String, Instant>,
    key: &str,
    now: Instant,
    window: Option<std::time::Duration>,
) {
    if map.len() >= MAX_REMEMBERED_VIEWERS {
        match window {
            Some(w) => map.retain(|_, at| now.duration_since(*at) < w),
            None => {
                tracing::warn!(
                    "{MAX_REMEMBERED_VIEWERS} viewers remembered for follow_once_per = \"session\"; forgetting them"
                );
                map.clear();
            }
        }
    }
    map.insert(key.to_string(), now);
}

/// The template context: the event JSON, plus `name`, `trigger`, `unit`, `units`. With `safe`,
/// every string is made inert first (for RCON commands).
pub(super) fn context(
    event: &Event,
    trigger: &Trigger,
    units: u64,
    unit: u64,
    safe: bool,
) -> Value {
    let mut ctx = serde_json::to_value(event).unwrap_or_else(|_| json!({}));
    let name = if safe {
        safe::safe_username(event.user.as_ref())
    } else {
        event
            .user
            .as_ref()
            .map(|u| u.display_name().to_string())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "Someone".to_string())
    };
    if safe {
        safe::sanitise_json(&mut ctx);
        if let Some(user) = ctx.get_mut("user").and_then(Value::as_object_mut) {
            user.insert("nickname".into(), json!(name));
        }
    }
    if let Value::Object(map) = &mut ctx {
        map.insert("name".into(), json!(name));
        map.insert("trigger".into(), json!(trigger.name));
        map.insert("unit".into(), json!(unit));
        map.insert("units".into(), json!(units));
    }
    ctx
}

pub(super) fn render(
    registry: &handlebars::Handlebars<'static>,
    template: &str,
    ctx: &Value,
) -> Option<String> {
    // With the template limits (partial depth, stack), like theme pages.
    match crate::themes::limits::render(registry, template, ctx) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("template {template} failed: {e}");
            None
        }
    }
}

//! Triggers: what the streamer configured to happen when an event arrives, and the workers that
//! run the actions (Minecraft RCON in [`rcon`], webhooks in [`webhook`], Streamer.bot actions in
//! [`streamerbot`], OBS in [`crate::obs`]).
//!
//! # Hook-up
//! The engine is the hub's event hook: the pipeline task calls it synchronously for every
//! published event, in publish order, right after the event went out to overlays. That makes the
//! hook-up lossless (a broadcast receiver that lags drops events, and a dropped gift is a lost
//! alert or a missed Minecraft command) and keeps trigger state (cooldowns, like totals) in event
//! order. Matching is cheap (a few comparisons, at most one regex) and every action is a
//! non-blocking hand-off: alerts go onto their queue, RCON commands and webhook requests onto
//! their worker's bounded queue, so a slow game server never holds up the pipeline.
//!
//! # Rules
//! - An event fires every trigger that matches it; no match is ignored quietly.
//! - Gifts reach triggers once per gift (the normaliser turns a streak into one `gift` event when
//!   it ends, by `repeat_end` or timeout). `repeat = "per_unit"` runs the RCON commands and
//!   webhooks once per unit (x5 → 5 times, capped by `max_repeat`); the alert shows once.
//! - Every follow fires (a viewer following twice is intended); duplicate messages never reach
//!   here (the normaliser drops repeated `msg_id`s). `follow_once_per` opts in to once per
//!   viewer per session or per window.
//! - Text templates see the event JSON plus `name` (display name), `unit` and `units`. For RCON
//!   commands every string in that context is first made inert by [`safe::safe_text`].

pub mod rcon;
mod reload;
pub mod safe;
pub mod streamerbot;
pub mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::alerts::{AlertQueues, SavedAlerts};
use crate::config::{Config, GiftMatch, OncePer, Trigger};
use crate::events::{Event, EventKind};
use crate::hub::{EventHook, Hub};
use crate::persist::{ALERTS_FILE, DataDir, Saver};

use rcon::{RconHandle, RconWorkerConfig};
use webhook::{WebhookHandle, WebhookRequest};

/// Per-viewer memories kept per trigger before old entries are pruned.
const MAX_REMEMBERED_VIEWERS: usize = 50_000;

/// Actions (RCON commands, webhook requests) that may wait per worker, whatever the config
/// says; a full queue refuses new ones, logged.
pub const MAX_ACTION_BACKLOG: usize = 100_000;

#[derive(Default)]
struct TriggerState {
    last: Option<Instant>,
    per_user: HashMap<String, Instant>,
    /// Viewers that fired a `follow_once_per` trigger, and when.
    once: HashMap<String, Instant>,
}

/// Matches events against the configured triggers and hands out their actions.
pub struct TriggerEngine {
    config: Arc<Config>,
    states: Vec<TriggerState>,
    alerts: Arc<AlertQueues>,
    rcon: Option<RconHandle>,
    webhooks: Option<WebhookHandle>,
    streamerbot: Option<streamerbot::StreamerbotWorker>,
    obs: Option<crate::obs::ObsHandle>,
    /// Room like total seen so far, for `every_likes`.
    like_total: Option<u64>,
}

impl TriggerEngine {
    pub fn new(
        config: Arc<Config>,
        alerts: Arc<AlertQueues>,
        rcon: Option<RconHandle>,
        webhooks: Option<WebhookHandle>,
    ) -> TriggerEngine {
        TriggerEngine {
            states: config
                .triggers
                .iter()
                .map(|_| TriggerState::default())
                .collect(),
            config,
            alerts,
            rcon,
            webhooks,
            streamerbot: None,
            obs: None,
            like_total: None,
        }
    }

    /// Sends the triggers' Streamer.bot actions to `worker`.
    pub fn with_streamerbot(mut self, worker: Option<streamerbot::StreamerbotWorker>) -> Self {
        self.streamerbot = worker;
        self
    }

    /// Runs OBS actions through `obs` (without it they are logged and skipped).
    pub fn with_obs(mut self, obs: Option<crate::obs::ObsHandle>) -> TriggerEngine {
        self.obs = obs;
        self
    }

    /// Runs every trigger that matches `event`; returns how many fired.
    pub fn handle(&mut self, event: &Event, now: Instant) -> usize {
        let like = match event.kind {
            EventKind::Like { count, total } => {
                let prev = self
                    .like_total
                    .unwrap_or_else(|| total.saturating_sub(count));
                // Test events carry no room total: count them on top of what we have.
                let total = if total == 0 {
                    prev.saturating_add(count)
                } else {
                    total
                };
                self.like_total = Some(prev.max(total));
                Some((prev, total))
            }
            _ => None,
        };
        let config = self.config.clone();
        let mut fired = 0;
        for (i, trigger) in config.triggers.iter().enumerate() {
            let Some(units) = matches(trigger, event, like) else {
                continue;
            };
            let user_key = event
                .user
                .as_ref()
                .map(|u| {
                    if u.id.is_empty() {
                        u.unique_id.clone()
                    } else {
                        u.id.clone()
                    }
                })
                .filter(|k| !k.is_empty());
            let state = &mut self.states[i];
            if let (Some(once), Some(key)) = (trigger.once_per, &user_key)
                && let Some(at) = state.once.get(key)
            {
                match once {
                    OncePer::Session => continue,
                    OncePer::Window(w) if now.duration_since(*at) < w => continue,
                    OncePer::Window(_) => {}
                }
            }
            if let (Some(cd), Some(last)) = (trigger.cooldown, state.last)
                && now.duration_since(last) < cd
            {
                continue;
            }
            if let (Some(cd), Some(key)) = (trigger.user_cooldown, &user_key)
                && state
                    .per_user
                    .get(key)
                    .is_some_and(|at| now.duration_since(*at) < cd)
            {
                continue;
            }
            state.last = Some(now);
            if let Some(key) = &user_key {
                if trigger.user_cooldown.is_some() {
                    remember(&mut state.per_user, key, now, trigger.user_cooldown);
                }
                if let Some(once) = trigger.once_per {
                    let window = match once {
                        OncePer::Session => None,
                        OncePer::Window(w) => Some(w),
                    };
                    remember(&mut state.once, key, now, window);
                }
            }
            fired += 1;
            self.fire(trigger, event, units);
        }
        fired
    }

    fn fire(&self, trigger: &Trigger, event: &Event, units: u64) {
        let config = &self.config;
        if let Some(alert) = &trigger.alert {
            let ctx = context(event, trigger, units, 1, false);
            let mut vars = serde_json::Map::new();
            for (var, template) in &alert.vars {
                if let Some(text) = render(&config.text_templates, template, &ctx) {
                    vars.insert((*var).to_string(), json!(text));
                }
            }
            if let EventKind::Gift { gift, .. } | EventKind::Combo { gift, .. } = &event.kind
                && vars.get("image").is_none_or(|v| v == "")
            {
                vars.insert("image".into(), json!(gift.image_url));
            }
            self.alerts.enqueue(
                &alert.queue,
                &trigger.name,
                alert.duration_ms,
                event.clone(),
                Value::Object(vars),
            );
        }
        let repeats = if trigger.per_unit {
            if units > u64::from(trigger.max_repeat) {
                tracing::info!(
                    trigger = trigger.name,
                    units,
                    "actions capped at max_repeat = {}",
                    trigger.max_repeat
                );
            }
            units.clamp(1, u64::from(trigger.max_repeat))
        } else {
            1
        };
        if !trigger.rcon.is_empty() {
            match &self.rcon {
                Some(rcon) => {
                    for unit in 1..=repeats {
                        let ctx = context(event, trigger, units, unit, true);
                        for template in &trigger.rcon {
                            if let Some(cmd) = render(&config.text_templates, template, &ctx) {
                                let cmd = safe::one_line(&cmd);
                                if !cmd.is_empty() {
                                    // A refusal (full queue) is logged by the handle.
                                    let _ = rcon.send(cmd);
                                }
                            }
                        }
                    }
                }
                None => tracing::warn!(trigger = trigger.name, "no RCON worker runs"),
            }
        }
        if let Some(action) = &trigger.obs {
            // Once per firing, also with per_unit: a scene switch five times over is one switch.
            match &self.obs {
                Some(obs) => {
                    let mut ctx = context(event, trigger, units, 1, false);
                    crate::obs::plain_text_context(&mut ctx);
                    if let Some(cmd) = action.command(|t| render(&config.text_templates, t, &ctx)) {
                        obs.send(cmd, &trigger.name);
                    }
                }
                None => tracing::warn!(trigger = trigger.name, "no OBS worker runs"),
            }
        }
        if let (Some(hook), Some(worker)) = (&trigger.webhook, &self.webhooks) {
            for unit in 1..=repeats {
                let body = match &hook.body {
                    Some(template) => {
                        let ctx = context(event, trigger, units, unit, false);
                        match render(&config.json_templates, template, &ctx) {
                            Some(b) => b,
                            None => continue,
                        }
                    }
                    None => event.to_json(),
                };
                worker.send(WebhookRequest {
                    url: hook.url.clone(),
                    body,
                    content_type: hook.content_type.clone(),
                    trigger: trigger.name.clone(),
                });
            }
        }
        if let (Some(action), Some(worker)) = (&trigger.streamerbot, &self.streamerbot) {
            for unit in 1..=repeats {
                let ctx = context(event, trigger, units, unit, true);
                worker.run(&config.text_templates, action, event, &ctx, &trigger.name);
            }
        }
    }
}

/// `Some(units)` when `trigger` matches `event`; units drive `repeat = "per_unit"`.
fn matches(trigger: &Trigger, event: &Event, like: Option<(u64, u64)>) -> Option<u64> {
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

fn remember(
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
fn context(event: &Event, trigger: &Trigger, units: u64, unit: u64, safe: bool) -> Value {
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

fn render(
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

/// The running alert engine: queues, trigger matching, action workers and the data dir saver.
pub struct Engine {
    pub alerts: Arc<AlertQueues>,
    pub saver: Option<Arc<Saver>>,
    triggers: Mutex<TriggerEngine>,
}

impl EventHook for Engine {
    fn on_event(&self, event: &Arc<Event>) {
        self.triggers
            .lock()
            .expect("triggers lock")
            .handle(event, Instant::now());
        if let Some(saver) = &self.saver {
            saver.mark_dirty();
        }
    }
}

impl Engine {
    /// Saves now (at shutdown); a no-op without a data dir.
    pub fn save_now(&self) {
        if let Some(saver) = &self.saver {
            saver.save_now();
        }
    }
}

/// Builds the alert queues (restored from `data`), the action workers and the trigger engine,
/// and hooks them into `hub`. Must run inside a tokio runtime.
pub fn start(config: Arc<Config>, hub: &Arc<Hub>, data: Option<DataDir>) -> Arc<Engine> {
    let alerts = AlertQueues::new(&config.queues, hub);
    if let Some(saved) = data
        .as_ref()
        .and_then(|d| d.load::<SavedAlerts>(ALERTS_FILE))
    {
        alerts.restore(saved);
    }
    let (op_tx, op_rx) = mpsc::unbounded_channel();
    hub.set_op_sink(op_tx);
    tokio::spawn(alerts.clone().run(op_rx));
    let weak = Arc::downgrade(&alerts);
    hub.add_snapshot_part("queues", move || {
        weak.upgrade().map_or(Value::Null, |a| a.snapshot())
    });
    let saver = data.map(|dir| {
        let saver = Saver::new(dir, hub.stats().clone(), &alerts);
        let s = saver.clone();
        alerts.on_change(move || s.mark_dirty());
        tokio::spawn(saver.clone().run());
        saver
    });
    let rcon = config.rcon.as_ref().map(|r| {
        rcon::spawn_worker(RconWorkerConfig {
            queue_capacity: r.queue_capacity,
            min_interval: r.min_interval,
            timeout: r.timeout,
            ..RconWorkerConfig::new(r.addr.clone(), r.password.clone())
        })
    });
    let webhooks = config
        .triggers
        .iter()
        .any(|t| t.webhook.is_some())
        .then(|| webhook::spawn_worker(config.webhooks.clone()));
    let streamerbot = config
        .triggers
        .iter()
        .any(|t| t.streamerbot.is_some())
        .then(|| streamerbot::StreamerbotWorker::spawn(&config.streamerbot));
    let obs =
        config.triggers.iter().any(|t| t.obs.is_some()).then(|| {
            crate::obs::spawn_worker(crate::obs::ObsWorkerConfig::new(config.obs.clone()))
        });
    let triggers = TriggerEngine::new(config, alerts.clone(), rcon, webhooks)
        .with_streamerbot(streamerbot)
        .with_obs(obs);
    let engine = Arc::new(Engine {
        alerts,
        saver,
        triggers: Mutex::new(triggers),
    });
    hub.set_event_hook(engine.clone());
    engine
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::events::{Source, User};
    use crate::stats::Stats;
    use std::time::Duration;

    /// The engine, its queues, and the hub (held weakly by the queues, so kept alive here).
    fn engine(body: &str) -> (TriggerEngine, Arc<AlertQueues>, Arc<Hub>) {
        let config = Arc::new(Config::parse(body, "test.toml").unwrap());
        let hub = Hub::new(Arc::new(Stats::default()));
        let alerts = AlertQueues::new(&config.queues, &hub);
        (
            TriggerEngine::new(config, alerts.clone(), None, None),
            alerts,
            hub,
        )
    }

    fn event(kind: EventKind, user: &str) -> Event {
        Event::new(kind, "x", Source::Test).with_user(Some(User {
            id: user.into(),
            unique_id: format!("u{user}"),
            nickname: format!("N{user}"),
            avatar_url: None,
        }))
    }

    #[test]
    fn follow_once_per_window_fires_again_after_the_window() {
        let (mut e, _, _hub) = engine(
            "[[trigger]]\non = \"follow\"\nfollow_once_per = 60\nalert = { title = \"{{name}}\" }\n",
        );
        let t0 = Instant::now();
        assert_eq!(e.handle(&event(EventKind::Follow, "1"), t0), 1);
        assert_eq!(e.handle(&event(EventKind::Follow, "2"), t0), 1);
        let later = t0 + Duration::from_secs(59);
        assert_eq!(e.handle(&event(EventKind::Follow, "1"), later), 0);
        let after = t0 + Duration::from_secs(60);
        assert_eq!(e.handle(&event(EventKind::Follow, "1"), after), 1);
    }

    #[test]
    fn cooldowns_end_when_their_time_is_up() {
        let (mut e, _, _hub) = engine(
            "[[trigger]]\non = \"share\"\ncooldown_ms = 1000\nalert = { title = \"x\" }\n\
             [[trigger]]\non = \"follow\"\nuser_cooldown_ms = 1000\nalert = { title = \"x\" }\n",
        );
        let t0 = Instant::now();
        assert_eq!(e.handle(&event(EventKind::Share, "1"), t0), 1);
        let t1 = t0 + Duration::from_millis(999);
        assert_eq!(e.handle(&event(EventKind::Share, "2"), t1), 0, "any viewer");
        assert_eq!(
            e.handle(&event(EventKind::Share, "2"), t0 + Duration::from_secs(1)),
            1
        );
        assert_eq!(e.handle(&event(EventKind::Follow, "1"), t0), 1);
        assert_eq!(
            e.handle(&event(EventKind::Follow, "2"), t1),
            1,
            "other viewer"
        );
        assert_eq!(e.handle(&event(EventKind::Follow, "1"), t1), 0);
        assert_eq!(
            e.handle(&event(EventKind::Follow, "1"), t0 + Duration::from_secs(1)),
            1
        );
    }

    #[test]
    fn like_thresholds_count_crossings_also_without_a_room_total() {
        let (mut e, alerts, _hub) = engine(
            "[[trigger]]\non = \"like\"\nevery_likes = 10\nalert = { title = \"{{units}}\" }\n",
        );
        let now = Instant::now();
        let like = |count, total| event(EventKind::Like { count, total }, "1");
        assert_eq!(e.handle(&like(9, 0), now), 0);
        assert_eq!(e.handle(&like(1, 0), now), 1, "10 reached");
        assert_eq!(e.handle(&like(25, 0), now), 1, "35: crossed 20 and 30");
        assert_eq!(
            e.handle(&like(1, 30), now),
            0,
            "an older room total changes nothing"
        );
        assert_eq!(e.handle(&like(5, 40), now), 1);
        let titles: Vec<Value> = alerts.saved().queues["main"]
            .pending
            .iter()
            .map(|a| a.vars["title"].clone())
            .collect();
        assert_eq!(titles, [json!("1"), json!("2"), json!("1")]);
    }

    #[test]
    fn gift_alerts_get_the_gift_image_and_the_display_name() {
        let (mut e, alerts, _hub) = engine(
            "[[trigger]]\non = \"gift\"\nalert = { title = \"{{name}}\", subtitle = \"{{gift.name}} x{{count}}\" }\n",
        );
        let mut ev = event(
            EventKind::Gift {
                gift: crate::events::GiftInfo {
                    id: 1,
                    name: "Rose".into(),
                    diamonds: 1,
                    image_url: Some("/rose.svg".into()),
                    streakable: true,
                },
                count: 5,
                diamonds_total: 5,
                combo_id: None,
            },
            "1",
        );
        ev.user.as_mut().unwrap().nickname = String::new();
        assert_eq!(e.handle(&ev, Instant::now()), 1);
        let vars = alerts.saved().queues["main"].pending[0].vars.clone();
        assert_eq!(
            vars,
            json!({"title": "u1", "subtitle": "Rose x5", "image": "/rose.svg"})
        );
    }

    #[test]
    fn the_default_config_shows_follows_shares_and_gifts() {
        let (mut e, alerts, _hub) = engine(crate::config::DEFAULT_CONFIG);
        let now = Instant::now();
        let gift = |count| {
            event(
                EventKind::Gift {
                    gift: crate::events::GiftInfo {
                        id: 1,
                        name: "Rose".into(),
                        diamonds: 1,
                        image_url: None,
                        streakable: true,
                    },
                    count,
                    diamonds_total: count,
                    combo_id: None,
                },
                "1",
            )
        };
        for ev in [
            event(EventKind::Follow, "1"),
            event(EventKind::Share, "2"),
            gift(5),
            gift(1),
            event(EventKind::Join { member_count: 1 }, "3"),
        ] {
            e.handle(&ev, now);
        }
        let shown: Vec<(String, String)> = alerts.saved().queues["main"]
            .pending
            .iter()
            .map(|a| {
                (
                    a.vars["title"].as_str().unwrap().to_string(),
                    a.vars["subtitle"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let expected = [
            ("N1", "followed you!"),
            ("N2", "shared the LIVE!"),
            ("N1", "sent Rose x5"),
            ("N1", "sent Rose"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()));
        assert_eq!(shown, expected);
    }
}

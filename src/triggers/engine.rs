//! The trigger engine: per-trigger state (cooldowns, viewers seen, the like total) and the
//! firing of a matched trigger's actions: the alert onto its queue, RCON commands, webhook
//! requests, Streamer.bot and OBS actions onto their workers.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::matching::{context, matches, remember, render};
use super::webhook::WebhookRequest;
use super::{Actions, safe};
use crate::alerts::AlertQueues;
use crate::config::{Config, OncePer, Trigger};
use crate::events::{Event, EventKind};

#[derive(Default)]
pub(super) struct TriggerState {
    last: Option<Instant>,
    per_user: HashMap<String, Instant>,
    /// Viewers that fired a `follow_once_per` trigger, and when.
    once: HashMap<String, Instant>,
}

/// Matches events against the configured triggers and hands out their actions.
pub struct TriggerEngine {
    pub(super) config: Arc<Config>,
    pub(super) states: Vec<TriggerState>,
    alerts: Arc<AlertQueues>,
    pub(super) actions: Actions,
    /// Room like total seen so far, for `every_likes`.
    like_total: Option<u64>,
    /// The stats' session generation this engine's memories belong to.
    pub(super) session: u64,
}

impl TriggerEngine {
    /// An engine that puts alerts on `alerts` and runs the other actions through `actions`.
    pub fn new(config: Arc<Config>, alerts: Arc<AlertQueues>, actions: Actions) -> TriggerEngine {
        TriggerEngine {
            states: config
                .triggers
                .iter()
                .map(|_| TriggerState::default())
                .collect(),
            config,
            alerts,
            actions,
            like_total: None,
            session: 0,
        }
    }

    /// A new session (a new LIVE, a new room): `follow_once_per = "session"` forgets who fired,
    /// and `every_likes` counts the new room's like total from zero.
    pub fn new_session(&mut self, generation: u64) {
        self.session = generation;
        self.like_total = None;
        for (state, trigger) in self.states.iter_mut().zip(&self.config.triggers) {
            if trigger.once_per == Some(OncePer::Session) {
                state.once.clear();
            }
        }
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

    pub(super) fn fire(&self, trigger: &Trigger, event: &Event, units: u64) {
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
            match &self.actions.rcon {
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
            match &self.actions.obs {
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
        if let (Some(hook), Some(worker)) = (&trigger.webhook, &self.actions.webhooks) {
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
        if let (Some(action), Some(worker)) = (&trigger.streamerbot, &self.actions.streamerbot) {
            for unit in 1..=repeats {
                let ctx = context(event, trigger, units, unit, true);
                worker.run(&config.text_templates, action, event, &ctx, &trigger.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::events::{Source, User};
    use crate::hub::Hub;
    use std::time::Duration;

    /// The engine, its queues, and the hub its queues publish to.
    fn engine(body: &str) -> (TriggerEngine, Arc<AlertQueues>, Arc<Hub>) {
        let config = Arc::new(Config::parse(body, "test.toml").unwrap());
        let hub = Hub::new();
        let alerts = AlertQueues::new(&config.queues, hub.publisher());
        (
            TriggerEngine::new(config, alerts.clone(), Actions::default()),
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
            ..Default::default()
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
                    ..Default::default()
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
                        ..Default::default()
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

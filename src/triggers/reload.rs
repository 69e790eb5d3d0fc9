//! Config hot reload inside the trigger engine, and the dashboard's per-trigger test button.
//!
//! A reloaded config replaces the engine's one whole (triggers, templates, action settings),
//! under the same lock the event hook takes, so an event sees either the old config or the
//! new one, never a mix. Trigger state (cooldowns, who already fired a `follow_once_per`) is
//! kept for triggers whose name stays, so saving the file does not reset a running cooldown.
//! Action workers are started when a trigger first needs one and restarted when their
//! settings change; the OBS worker keeps the address it started with (a restart applies a new
//! one, as the log says), because the dashboard's OBS test and the worker must agree.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;
use crate::events::{Event, EventKind};

use super::engine::TriggerState;
use super::{Actions, Engine, streamerbot, uses, webhook};

/// Why a trigger test could not run.
#[derive(Debug, thiserror::Error)]
#[error("no trigger number {index}; the config has {count} (numbered from 0)")]
pub struct NoSuchTrigger {
    pub index: usize,
    pub count: usize,
}

impl Engine {
    /// The config the engine runs.
    pub fn config(&self) -> Arc<Config> {
        self.triggers.lock().expect("triggers lock").config.clone()
    }

    /// Switches to `config` (a hot reload). Must run inside a tokio runtime (it may start
    /// action workers).
    pub fn apply(&self, config: Arc<Config>) {
        let mut engine = self.triggers.lock().expect("triggers lock");
        let old = engine.config.clone();
        self.alerts.reconfigure(&config.queues);
        let mut kept: HashMap<String, TriggerState> = old
            .triggers
            .iter()
            .map(|t| t.name.clone())
            .zip(std::mem::take(&mut engine.states))
            .collect();
        engine.states = config
            .triggers
            .iter()
            .map(|t| kept.remove(&t.name).unwrap_or_default())
            .collect();
        let rcon_same = match (&old.rcon, &config.rcon) {
            (Some(a), Some(b)) => {
                a.addr == b.addr
                    && a.password == b.password
                    && a.min_interval == b.min_interval
                    && a.queue_capacity == b.queue_capacity
                    && a.timeout == b.timeout
            }
            (None, None) => true,
            _ => false,
        };
        if !rcon_same {
            engine.actions.rcon = Actions::rcon_worker(&config);
        }
        let needs = |f: fn(&crate::config::Trigger) -> bool| uses(&config, f);
        if !needs(|t| t.webhook.is_some()) {
            engine.actions.webhooks = None;
        } else if engine.actions.webhooks.is_none() || old.webhooks != config.webhooks {
            engine.actions.webhooks = Some(webhook::spawn_worker(config.webhooks.clone()));
        }
        if !needs(|t| t.streamerbot.is_some()) {
            engine.actions.streamerbot = None;
        } else if engine.actions.streamerbot.is_none() || old.streamerbot != config.streamerbot {
            engine.actions.streamerbot =
                Some(streamerbot::StreamerbotWorker::spawn(&config.streamerbot));
        }
        if old.obs != config.obs {
            tracing::warn!(
                "the [obs] settings changed; restart tikrelay to use them (OBS actions use the old ones until then)"
            );
        }
        if needs(|t| t.obs.is_some()) && engine.actions.obs.is_none() {
            // The worker keeps the address it started with (see above): the old `[obs]`.
            engine.actions.obs = Some(Actions::obs_worker(&old));
        }
        if old.compat_port != config.compat_port {
            tracing::warn!(
                "[compat] port changed; restart tikrelay to open the TikFinity-compatible socket there"
            );
        }
        engine.config = config;
    }

    /// Fires trigger `index`'s actions for `event` (the dashboard's test button), whatever its
    /// conditions and cooldowns say; other triggers do not see the event. Returns its name.
    pub fn fire_test(&self, index: usize, event: &Event) -> Result<String, NoSuchTrigger> {
        let engine = self.triggers.lock().expect("triggers lock");
        let config = engine.config.clone();
        let trigger = config.triggers.get(index).ok_or(NoSuchTrigger {
            index,
            count: config.triggers.len(),
        })?;
        let units = match &event.kind {
            EventKind::Gift { count, .. }
            | EventKind::Combo { count, .. }
            | EventKind::Like { count, .. } => (*count).max(1),
            _ => 1,
        };
        tracing::info!(trigger = trigger.name, "test fire from the dashboard");
        engine.fire(trigger, event, units);
        Ok(trigger.name.clone())
    }
}

//! Triggers: what the streamer configured to happen when an event arrives, and the workers that
//! run the actions (Minecraft RCON in [`rcon`], webhooks in [`webhook`], Streamer.bot actions in
//! [`streamerbot`], OBS in [`crate::obs`]).
//!
//! # Where events come from
//! The engine is the second consumer of every event (see [`crate::consumers`]): the pipeline
//! task hands it each event synchronously, in order, after stats and before the hub's fan-out to
//! overlays. That makes it lossless (a broadcast receiver that lags drops events, and a dropped
//! gift is a lost alert or a missed Minecraft command) and keeps trigger state (cooldowns, like
//! totals) in event order. Matching is cheap (a few comparisons, at most one regex) and every
//! action is a non-blocking hand-off: alerts go onto their queue, RCON commands and webhook
//! requests onto their worker's bounded queue, so a slow game server never holds up the
//! pipeline.
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
//!
//! # Files
//! [`engine`] holds the per-trigger state and fires actions, `matching` decides whether a
//! trigger matches an event and renders templates; this file holds the running [`Engine`] and
//! the action workers it is built with ([`Actions`]). The program is wired in `app`.

pub mod engine;
mod matching;
pub mod rcon;
mod reload;
pub mod safe;
pub mod streamerbot;
pub mod webhook;
pub mod who;

pub use engine::TriggerEngine;

use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use crate::alerts::AlertQueues;
use crate::config::Config;
use crate::events::Event;
use crate::persist::Saver;

use rcon::{RconHandle, RconWorkerConfig};
use webhook::WebhookHandle;

/// Actions (RCON commands, webhook requests) that may wait per worker, whatever the config
/// says; a full queue refuses new ones, logged.
pub const MAX_ACTION_BACKLOG: usize = 100_000;

/// The action workers triggers hand their RCON commands, webhook requests, Streamer.bot and
/// OBS actions to; a worker only runs when some trigger uses it.
#[derive(Default)]
pub struct Actions {
    pub rcon: Option<RconHandle>,
    pub webhooks: Option<WebhookHandle>,
    pub streamerbot: Option<streamerbot::StreamerbotWorker>,
    pub obs: Option<crate::obs::ObsHandle>,
}

impl Actions {
    /// Starts the workers `config`'s triggers need. Must run inside a tokio runtime.
    pub fn spawn(config: &Config) -> Actions {
        Actions {
            rcon: Actions::rcon_worker(config),
            webhooks: uses(config, |t| t.webhook.is_some())
                .then(|| webhook::spawn_worker(config.webhooks.clone())),
            streamerbot: uses(config, |t| t.streamerbot.is_some())
                .then(|| streamerbot::StreamerbotWorker::spawn(&config.streamerbot)),
            obs: uses(config, |t| t.obs.is_some()).then(|| Actions::obs_worker(config)),
        }
    }

    /// The RCON worker `[rcon]` asks for (a reload starts a new one when its settings change).
    pub(crate) fn rcon_worker(config: &Config) -> Option<RconHandle> {
        config.rcon.as_ref().map(|r| {
            rcon::spawn_worker(RconWorkerConfig {
                queue_capacity: r.queue_capacity,
                min_interval: r.min_interval,
                timeout: r.timeout,
                ..RconWorkerConfig::new(r.addr.clone(), r.password.clone())
            })
        })
    }

    /// The OBS worker for `[obs]`.
    pub(crate) fn obs_worker(config: &Config) -> crate::obs::ObsHandle {
        crate::obs::spawn_worker(crate::obs::ObsWorkerConfig::new(config.obs.clone()))
    }
}

/// Whether any trigger of `config` uses what `f` looks for (a worker runs only then).
pub(crate) fn uses(config: &Config, f: fn(&crate::config::Trigger) -> bool) -> bool {
    config.triggers.iter().any(f)
}

/// The running alert engine: queues, trigger matching and the data dir saver.
pub struct Engine {
    pub alerts: Arc<AlertQueues>,
    pub saver: Option<Arc<Saver>>,
    triggers: Mutex<TriggerEngine>,
    /// Where sessions begin ([`crate::sessions`]); the stats see each event first.
    stats: Arc<crate::stats::Stats>,
}

impl Engine {
    pub fn new(
        triggers: TriggerEngine,
        alerts: Arc<AlertQueues>,
        saver: Option<Arc<Saver>>,
        stats: Arc<crate::stats::Stats>,
    ) -> Engine {
        Engine {
            alerts,
            saver,
            triggers: Mutex::new(triggers),
            stats,
        }
    }

    /// Runs the triggers `event` matches (the pipeline's second consumer, after stats).
    pub fn handle(&self, event: &Event) -> usize {
        let mut triggers = self.triggers.lock().expect("triggers lock");
        // The stats saw the event first: a new room there is a new session here too.
        let generation = self.stats.session_generation();
        if generation != triggers.session {
            triggers.new_session(generation);
        }
        let fired = triggers.handle(event, Instant::now());
        drop(triggers);
        // Totals changed too (stats saw the event first).
        if let Some(saver) = &self.saver {
            saver.mark_dirty();
        }
        fired
    }

    /// Saves now (at shutdown); a no-op without a data dir.
    pub fn save_now(&self) {
        if let Some(saver) = &self.saver {
            saver.save_now();
        }
    }
}

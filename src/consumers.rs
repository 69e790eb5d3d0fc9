//! The consumers of every event, in their fixed order: stats, then triggers, then the hub.
//!
//! The pipeline hands each event it makes to [`Consumers::deliver`], which is the only way an
//! event reaches the rest of the program. The order is the contract: totals include an event
//! before a trigger or an overlay sees it (a goal alert reads the new total), and a trigger fires
//! whether or not any overlay is connected or keeping up; the hub's fan-out (websocket clients,
//! `/api/events`, recorders, the TikFinity-compatible socket) comes last. None of them calls back
//! up: parts that need to tell clients something hold a [`crate::hub::Publisher`].

use std::sync::Arc;

use crate::events::Event;
use crate::hub::Hub;
use crate::stats::Stats;
use crate::triggers::Engine;

/// Where the pipeline delivers events; cheap to build, owned by the pipeline task.
pub struct Consumers {
    stats: Arc<Stats>,
    triggers: Option<Arc<Engine>>,
    hub: Arc<Hub>,
}

impl Consumers {
    /// Stats and the hub; no triggers (`replay --no-server`, benchmarks).
    pub fn new(stats: Arc<Stats>, hub: Arc<Hub>) -> Consumers {
        Consumers {
            stats,
            triggers: None,
            hub,
        }
    }

    /// Adds the trigger engine, between stats and the hub.
    pub fn with_triggers(mut self, engine: Arc<Engine>) -> Consumers {
        self.triggers = Some(engine);
        self
    }

    /// Hands `event` to each consumer in turn.
    pub fn deliver(&self, event: Event) {
        self.stats.apply(&event);
        if let Some(triggers) = &self.triggers {
            triggers.handle(&event);
        }
        self.hub.publish(Arc::new(event));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::Value;

    use super::*;
    use crate::alerts::AlertQueues;
    use crate::config::Config;
    use crate::events::{EventKind, Source, User};
    use crate::hub::ClientFilter;
    use crate::triggers::{Actions, TriggerEngine};

    /// What the trigger saw each time it fired: follows counted, events published.
    type Seen = Arc<Mutex<Vec<(Value, usize)>>>;

    /// Real stats, trigger engine (one follow alert) and hub; `seen` gets, each time the
    /// trigger puts an alert on its queue, the follows counted so far and the events the hub
    /// has published so far.
    fn consumers() -> (Consumers, Arc<Hub>, Seen) {
        let config = Config::parse(
            "[[trigger]]\non = \"follow\"\nalert = { title = \"{{name}}\" }\n",
            "test.toml",
        )
        .unwrap();
        let config = Arc::new(config);
        let stats = Arc::new(Stats::default());
        let hub = Hub::new();
        let alerts = AlertQueues::new(&config.queues, hub.publisher());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, h, w) = (stats.clone(), hub.clone(), seen.clone());
        alerts.on_change(move || {
            let follows = s.snapshot()["totals"]["follows"].clone();
            w.lock().unwrap().push((follows, h.recent(10).len()));
        });
        let triggers = TriggerEngine::new(config, alerts.clone(), Actions::default());
        let engine = Arc::new(Engine::new(triggers, alerts, None, stats.clone()));
        let consumers = Consumers::new(stats, hub.clone()).with_triggers(engine);
        (consumers, hub, seen)
    }

    fn follow(n: u64) -> Event {
        Event::new(EventKind::Follow, format!("f{n}"), Source::Test).with_user(Some(User {
            id: n.to_string(),
            unique_id: format!("v{n}"),
            nickname: format!("V{n}"),
            avatar_url: None,
            ..Default::default()
        }))
    }

    #[test]
    fn stats_count_an_event_before_a_trigger_sees_it_and_the_hub_publishes_it_last() {
        let (consumers, hub, seen) = consumers();
        let mut client = hub.register(ClientFilter::default());
        consumers.deliver(follow(1));
        consumers.deliver(follow(2));
        // When each alert was queued, its follow was already counted and not yet published.
        assert_eq!(
            *seen.lock().unwrap(),
            [(serde_json::json!(1), 0), (serde_json::json!(2), 1)]
        );
        let mut types = Vec::new();
        while let Ok(out) = client.rx.try_recv() {
            types.push(out.type_name.to_string());
        }
        // The trigger's queue update goes out before the event it came from.
        assert_eq!(types, ["queue", "follow", "queue", "follow"]);
    }

    #[test]
    fn triggers_fire_with_no_client_and_with_a_client_too_slow_to_keep_up() {
        let (consumers, hub, seen) = consumers();
        consumers.deliver(follow(1));
        assert_eq!(seen.lock().unwrap().len(), 1, "no client connected");
        let stalled = hub.register(ClientFilter::default());
        for n in 2..(crate::hub::CLIENT_BUFFER as u64 + 10) {
            consumers.deliver(follow(n));
        }
        assert_eq!(hub.client_count(), 0, "the stalled client was cut off");
        assert!(stalled.kick.reason.lock().unwrap().is_some());
        assert_eq!(
            seen.lock().unwrap().len(),
            crate::hub::CLIENT_BUFFER + 9,
            "every follow fired its trigger"
        );
    }
}

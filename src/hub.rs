//! The hub: fans every event and relay message out to overlay clients and in-process consumers.
//!
//! Each event is serialised to JSON once, here, and the same text goes to every client. Every
//! websocket client has its own bounded buffer; publishing never waits for a client. A client
//! whose buffer is full has fallen too far behind: it is removed at once and its connection is
//! closed with a reason, so one stalled OBS source never slows the pipeline or the others.
//! In-process consumers (stats, triggers, recorders) subscribe to [`Hub::subscribe_events`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::events::{Event, FORMAT_VERSION};
use crate::stats::Stats;

/// Messages a client may have waiting before it counts as too slow.
pub const CLIENT_BUFFER: usize = 1024;
/// Events kept for `/api/events`.
pub const RECENT_EVENTS: usize = 500;
/// Bytes of JSON those events may take together; past this the oldest go first even before
/// there are [`RECENT_EVENTS`] (a `webcast` event can be large), so the buffer stays bounded.
pub const RECENT_EVENTS_BYTES: usize = 8 * 1024 * 1024;
/// Buffer of the in-process event channel; a consumer that lags this far loses events (logged).
const EVENT_CHANNEL: usize = 16_384;

/// The recent events of `/api/events`, bounded by count and by bytes.
#[derive(Default)]
struct Recent {
    /// Each event with the size of its JSON.
    events: VecDeque<(Arc<Event>, usize)>,
    bytes: usize,
    /// The byte bound was hit (logged once).
    over_bytes: bool,
}

impl Recent {
    fn push(&mut self, event: Arc<Event>, size: usize) {
        self.events.push_back((event, size));
        self.bytes += size;
        if self.events.len() > RECENT_EVENTS
            && let Some((_, size)) = self.events.pop_front()
        {
            self.bytes -= size;
        }
        while self.bytes > RECENT_EVENTS_BYTES && self.events.len() > 1 {
            if !self.over_bytes {
                self.over_bytes = true;
                tracing::info!(
                    "recent events take over {RECENT_EVENTS_BYTES} bytes; /api/events keeps fewer than {RECENT_EVENTS} of them (every event is still relayed)"
                );
            }
            if let Some((_, size)) = self.events.pop_front() {
                self.bytes -= size;
            }
        }
    }
}

/// Who receives a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every client (events are further narrowed by each client's type filter).
    All,
    /// Only clients that play this alert queue.
    QueuePlayers(Arc<str>),
    /// Clients that follow this stream (every client does unless it chose streams), narrowed
    /// by type filters like [`Audience::All`]: how events go out.
    Stream(Arc<str>),
}

/// One message on its way to websocket clients, already serialised.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub type_name: Arc<str>,
    /// Shared bytes: every client's frame points at the same text, no copy per client.
    pub json: Utf8Bytes,
    /// Events obey type filters; relay messages (state, reload, queue…) always pass.
    pub is_event: bool,
    pub audience: Audience,
}

impl Outbound {
    /// A relay message: `{"v":1,"type":…, …fields}`.
    pub fn relay(type_name: &str, fields: Value, audience: Audience) -> Outbound {
        let mut obj = serde_json::Map::new();
        obj.insert("v".into(), json!(FORMAT_VERSION));
        obj.insert("type".into(), json!(type_name));
        if let Value::Object(fields) = fields {
            obj.extend(fields);
        }
        Outbound {
            type_name: type_name.into(),
            json: Value::Object(obj).to_string().into(),
            is_event: false,
            audience,
        }
    }
}

/// What one client wants to receive; changed by its subscribe and play ops.
#[derive(Debug, Default, Clone)]
pub struct ClientFilter {
    /// `None`: every event type except `webcast`, which is only sent to pages that ask for it.
    pub types: Option<HashSet<String>>,
    /// Alert queues this client plays.
    pub queues: HashSet<String>,
    /// `None`: events of every stream; else only these streams' (`/ws?stream=a,b`).
    pub streams: Option<HashSet<String>>,
}

impl ClientFilter {
    pub fn wants(&self, out: &Outbound) -> bool {
        match &out.audience {
            Audience::QueuePlayers(q) => self.queues.contains(q.as_ref()),
            Audience::Stream(s)
                if self
                    .streams
                    .as_ref()
                    .is_some_and(|streams| !streams.contains(s.as_ref())) =>
            {
                false
            }
            Audience::All | Audience::Stream(_) if !out.is_event => true,
            Audience::All | Audience::Stream(_) => match &self.types {
                None => out.type_name.as_ref() != "webcast",
                Some(types) => types.contains(out.type_name.as_ref()),
            },
        }
    }
}

/// Why a client was cut off, read by its connection task.
#[derive(Debug, Default)]
pub struct Kick {
    pub notify: Notify,
    pub reason: Mutex<Option<String>>,
}

struct ClientSlot {
    tx: mpsc::Sender<Outbound>,
    filter: Arc<RwLock<ClientFilter>>,
    kick: Arc<Kick>,
}

/// What a websocket client asks of the alert engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    /// The client now plays this queue's alerts.
    Play { client: u64, queue: String },
    /// The client finished showing an alert.
    AlertDone { client: u64, alert_id: String },
    /// The client went away (it no longer plays anything).
    Left { client: u64 },
}

/// An in-process consumer that must see every event, in order (the trigger engine). Called
/// synchronously by [`Hub::publish`] after the event went out to clients, so it never lags and
/// never loses an event; it must not block.
pub trait EventHook: Send + Sync {
    fn on_event(&self, event: &Arc<Event>);
}

/// A named part of the snapshot computed by another module (e.g. `queues`).
type SnapshotPart = (&'static str, Arc<dyn Fn() -> Value + Send + Sync>);

/// A registered websocket client, as its connection task holds it.
pub struct ClientHandle {
    pub id: u64,
    pub rx: mpsc::Receiver<Outbound>,
    pub filter: Arc<RwLock<ClientFilter>>,
    pub kick: Arc<Kick>,
}

pub struct Hub {
    clients: Mutex<HashMap<u64, ClientSlot>>,
    next_client: AtomicU64,
    recent: Mutex<Recent>,
    events: broadcast::Sender<Arc<Event>>,
    stats: Arc<Stats>,
    version: &'static str,
    ops: Mutex<Option<mpsc::UnboundedSender<ClientOp>>>,
    hook: RwLock<Option<Arc<dyn EventHook>>>,
    parts: RwLock<Vec<SnapshotPart>>,
}

impl Hub {
    pub fn new(stats: Arc<Stats>) -> Arc<Hub> {
        Arc::new(Hub {
            clients: Mutex::new(HashMap::new()),
            next_client: AtomicU64::new(1),
            recent: Mutex::new(Recent::default()),
            events: broadcast::channel(EVENT_CHANNEL).0,
            stats,
            version: env!("CARGO_PKG_VERSION"),
            ops: Mutex::new(None),
            hook: RwLock::new(None),
            parts: RwLock::new(Vec::new()),
        })
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Delivers an event everywhere: totals, recent log, in-process consumers, clients.
    pub fn publish(&self, event: Event) {
        self.stats.apply(&event);
        let out = Outbound {
            type_name: event.type_name().into(),
            json: event.to_json().into(),
            is_event: true,
            audience: Audience::Stream(event.stream.as_str().into()),
        };
        let event = Arc::new(event);
        self.recent
            .lock()
            .expect("recent lock")
            .push(event.clone(), out.json.len());
        // No receiver is fine: nothing in-process listens in some modes.
        let _ = self.events.send(event.clone());
        self.send(out);
        let hook = self.hook.read().expect("hook lock").clone();
        if let Some(hook) = hook {
            hook.on_event(&event);
        }
    }

    /// Sets the consumer that sees every published event synchronously (see [`EventHook`]).
    pub fn set_event_hook(&self, hook: Arc<dyn EventHook>) {
        *self.hook.write().expect("hook lock") = Some(hook);
    }

    /// Adds a part to the snapshot of `/api/state` and `hello`, computed on each snapshot.
    pub fn add_snapshot_part(
        &self,
        name: &'static str,
        part: impl Fn() -> Value + Send + Sync + 'static,
    ) {
        self.parts
            .write()
            .expect("parts lock")
            .push((name, Arc::new(part)));
    }

    /// Sends a relay message (or a pre-built event) to the clients that want it.
    pub fn send(&self, out: Outbound) {
        let mut clients = self.clients.lock().expect("clients lock");
        let mut too_slow = Vec::new();
        for (id, slot) in clients.iter() {
            if !slot.filter.read().expect("filter lock").wants(&out) {
                continue;
            }
            match slot.tx.try_send(out.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => too_slow.push(*id),
                Err(mpsc::error::TrySendError::Closed(_)) => too_slow.push(*id),
            }
        }
        for id in too_slow {
            if let Some(slot) = clients.remove(&id) {
                if slot.tx.is_closed() {
                    continue;
                }
                let reason = format!(
                    "too slow: {CLIENT_BUFFER} messages waiting; reconnect to receive the current state"
                );
                tracing::warn!(client = id, "overlay client cut off: {reason}");
                *slot.kick.reason.lock().expect("kick lock") = Some(reason);
                slot.kick.notify.notify_one();
            }
        }
    }

    /// Registers a websocket client with its own bounded buffer.
    pub fn register(&self, filter: ClientFilter) -> ClientHandle {
        let id = self.next_client.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
        let filter = Arc::new(RwLock::new(filter));
        let kick = Arc::new(Kick::default());
        self.clients.lock().expect("clients lock").insert(
            id,
            ClientSlot {
                tx,
                filter: filter.clone(),
                kick: kick.clone(),
            },
        );
        ClientHandle {
            id,
            rx,
            filter,
            kick,
        }
    }

    pub fn unregister(&self, id: u64) {
        self.clients.lock().expect("clients lock").remove(&id);
        self.client_op(ClientOp::Left { client: id });
    }

    /// Where client ops go: the alert engine, when one runs.
    pub fn set_op_sink(&self, tx: mpsc::UnboundedSender<ClientOp>) {
        *self.ops.lock().expect("ops lock") = Some(tx);
    }

    /// Hands a client op to the alert engine; false when no engine listens.
    pub fn client_op(&self, op: ClientOp) -> bool {
        match &*self.ops.lock().expect("ops lock") {
            Some(tx) => tx.send(op).is_ok(),
            None => false,
        }
    }

    pub fn client_count(&self) -> usize {
        self.clients.lock().expect("clients lock").len()
    }

    /// Number of clients playing `queue`.
    pub fn players(&self, queue: &str) -> usize {
        self.clients
            .lock()
            .expect("clients lock")
            .values()
            .filter(|c| c.filter.read().expect("filter lock").queues.contains(queue))
            .count()
    }

    /// Events as they are published, for in-process consumers.
    pub fn subscribe_events(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// The last `limit` events, oldest first.
    pub fn recent(&self, limit: usize) -> Vec<Arc<Event>> {
        let recent = self.recent.lock().expect("recent lock");
        let skip = recent.events.len().saturating_sub(limit);
        recent
            .events
            .iter()
            .skip(skip)
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// The state snapshot of `/api/state` and `hello`.
    pub fn snapshot(&self) -> Value {
        let mut state = self.stats.snapshot();
        if let Value::Object(map) = &mut state {
            map.insert("clients".into(), json!(self.client_count()));
            let parts = self.parts.read().expect("parts lock").clone();
            for (name, part) in parts {
                map.insert(name.into(), part());
            }
        }
        state
    }

    /// The first message a client receives.
    pub fn hello(&self) -> Outbound {
        Outbound::relay(
            "hello",
            json!({"version": self.version, "state": self.snapshot()}),
            Audience::All,
        )
    }

    /// Pushes the parts of the snapshot that changed since the last call, as one `state`
    /// message. Called on a timer so a like storm becomes a few messages a second.
    pub fn push_state_changes(&self) {
        if let Some(changed) = self.stats.take_changes() {
            self.send(Outbound::relay("state", changed, Audience::All));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventKind, Source};

    fn event(kind: EventKind) -> Event {
        Event::new(kind, "1", Source::Test)
    }

    #[test]
    fn filters_narrow_events_but_not_relay_messages() {
        let all = ClientFilter::default();
        let gifts = ClientFilter {
            types: Some(["gift".to_string()].into()),
            queues: HashSet::new(),
            streams: None,
        };
        let follow = Outbound {
            type_name: "follow".into(),
            json: "{}".into(),
            is_event: true,
            audience: Audience::All,
        };
        let webcast = Outbound {
            type_name: "webcast".into(),
            ..follow.clone()
        };
        let state = Outbound::relay("state", json!({}), Audience::All);
        let alert = Outbound::relay("alert", json!({}), Audience::QueuePlayers("main".into()));
        assert!(all.wants(&follow));
        assert!(!all.wants(&webcast), "webcast only on request");
        assert!(!gifts.wants(&follow));
        assert!(gifts.wants(&state));
        assert!(!all.wants(&alert));
        let player = ClientFilter {
            queues: ["main".to_string()].into(),
            ..ClientFilter::default()
        };
        assert!(player.wants(&alert));
    }

    #[test]
    fn a_full_client_is_cut_off_and_the_others_keep_receiving() {
        let hub = Hub::new(Arc::new(Stats::default()));
        let slow = hub.register(ClientFilter::default());
        let mut fast = hub.register(ClientFilter::default());
        for _ in 0..CLIENT_BUFFER + 10 {
            hub.publish(event(EventKind::Follow));
            while fast.rx.try_recv().is_ok() {}
        }
        assert_eq!(hub.client_count(), 1);
        assert!(
            slow.kick
                .reason
                .lock()
                .unwrap()
                .as_deref()
                .unwrap()
                .contains("too slow")
        );
        hub.publish(event(EventKind::Share));
        assert!(fast.rx.try_recv().unwrap().json.contains("\"share\""));
    }
}

//! The hub: the last consumer of every event (see `consumers.rs`); it fans events and
//! relay messages out to websocket clients and to the in-process listeners that may lag
//! (recorders, the TikFinity-compatible socket), and keeps the recent events of `/api/events`.
//!
//! Each event is serialised to JSON once, here, and the same bytes go to every client and to
//! `/api/events`. Every websocket client has its own bounded buffer; publishing never waits for a
//! client. A client whose buffer is full has fallen too far behind: it is removed at once and its
//! connection is closed with a reason, so one stalled OBS source never slows the pipeline or the
//! others. The hub calls nothing above it: stats and triggers have seen an event before it gets
//! here, and parts that send relay messages (alert queues, theme reload) hold a [`Publisher`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::events::{Event, FORMAT_VERSION};

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
    /// Each event with its JSON, the bytes `/ws` sent.
    events: VecDeque<(Arc<Event>, Utf8Bytes)>,
    bytes: usize,
    /// The byte bound was hit (logged once).
    over_bytes: bool,
}

impl Recent {
    fn push(&mut self, event: Arc<Event>, json: Utf8Bytes) {
        self.bytes += json.len();
        self.events.push_back((event, json));
        if self.events.len() > RECENT_EVENTS
            && let Some((_, json)) = self.events.pop_front()
        {
            self.bytes -= json.len();
        }
        while self.bytes > RECENT_EVENTS_BYTES && self.events.len() > 1 {
            if !self.over_bytes {
                self.over_bytes = true;
                tracing::info!(
                    "recent events take over {RECENT_EVENTS_BYTES} bytes; /api/events keeps fewer than {RECENT_EVENTS} of them (every event is still relayed)"
                );
            }
            if let Some((_, json)) = self.events.pop_front() {
                self.bytes -= json.len();
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
}

/// The handle through which a part sends relay messages (alerts, queue states, `state`,
/// `reload`) to the clients; given to the part when it is built, so nothing reaches into the
/// hub for it.
#[derive(Clone)]
pub struct Publisher {
    hub: Arc<Hub>,
}

impl Publisher {
    /// Sends `out` to the clients that want it.
    pub fn send(&self, out: Outbound) {
        self.hub.send(out);
    }
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub {
            clients: Mutex::new(HashMap::new()),
            next_client: AtomicU64::new(1),
            recent: Mutex::new(Recent::default()),
            events: broadcast::channel(EVENT_CHANNEL).0,
        })
    }

    /// A handle for sending relay messages through this hub.
    pub fn publisher(self: &Arc<Self>) -> Publisher {
        Publisher { hub: self.clone() }
    }

    /// Fans an event out: the recent log, the in-process listeners, the websocket clients.
    pub fn publish(&self, event: Arc<Event>) {
        let out = Outbound {
            type_name: event.type_name().into(),
            json: event.to_json().into(),
            is_event: true,
            audience: Audience::Stream(event.stream.as_str().into()),
        };
        self.recent
            .lock()
            .expect("recent lock")
            .push(event.clone(), out.json.clone());
        // No receiver is fine: nothing in-process listens in some modes.
        let _ = self.events.send(event);
        self.send(out);
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
        self.recent_with_json(limit)
            .into_iter()
            .map(|(e, _)| e)
            .collect()
    }

    /// The last `limit` events with the JSON `/ws` sent for each, oldest first.
    pub fn recent_with_json(&self, limit: usize) -> Vec<(Arc<Event>, Utf8Bytes)> {
        let recent = self.recent.lock().expect("recent lock");
        let skip = recent.events.len().saturating_sub(limit);
        recent.events.iter().skip(skip).cloned().collect()
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
    fn a_stream_filter_narrows_events_but_not_relay_messages() {
        let of = |stream: &str, type_name: &str| Outbound {
            type_name: type_name.into(),
            json: "{}".into(),
            is_event: true,
            audience: Audience::Stream(stream.into()),
        };
        let alice = ClientFilter {
            streams: Some(["alice".to_string()].into()),
            ..ClientFilter::default()
        };
        let all = ClientFilter::default();
        assert!(alice.wants(&of("alice", "follow")));
        assert!(!alice.wants(&of("bob", "follow")));
        assert!(all.wants(&of("bob", "follow")));
        assert!(!all.wants(&of("bob", "webcast")), "type rules still apply");
        let gifts_of_alice = ClientFilter {
            types: Some(["gift".to_string()].into()),
            ..alice.clone()
        };
        assert!(!gifts_of_alice.wants(&of("alice", "follow")));
        assert!(gifts_of_alice.wants(&of("alice", "gift")));
        assert!(alice.wants(&Outbound::relay("state", json!({}), Audience::All)));
    }

    #[test]
    fn a_full_client_is_cut_off_and_the_others_keep_receiving() {
        let hub = Hub::new();
        let slow = hub.register(ClientFilter::default());
        let mut fast = hub.register(ClientFilter::default());
        for _ in 0..CLIENT_BUFFER + 10 {
            hub.publish(Arc::new(event(EventKind::Follow)));
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
        hub.publish(Arc::new(event(EventKind::Share)));
        assert!(fast.rx.try_recv().unwrap().json.contains("\"share\""));
    }
}

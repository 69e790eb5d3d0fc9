//! The state snapshot of `/api/state` and of the `hello` message, assembled here, where it is
//! served, from each part's own snapshot: the session totals (stats), the connected clients
//! (hub) and the alert queues. No part registers itself anywhere to appear in it.

use serde_json::{Value, json};

use super::Relay;
use crate::hub::{Audience, Outbound};

/// The snapshot: the totals' fields, plus `clients` and `queues`.
pub fn snapshot(relay: &Relay) -> Value {
    let mut state = relay.stats.snapshot();
    if let Value::Object(map) = &mut state {
        map.insert("clients".into(), json!(relay.hub.client_count()));
        map.insert("queues".into(), relay.alerts.snapshot());
    }
    state
}

/// The first message a client receives: the relay's version and the snapshot.
pub fn hello(relay: &Relay) -> Outbound {
    Outbound::relay(
        "hello",
        json!({"version": env!("CARGO_PKG_VERSION"), "state": snapshot(relay)}),
        Audience::All,
    )
}

//! What a (re)connection relays from the sign server's first fetch result.
//!
//! That result carries recent messages from before the socket opened. Relaying all of them
//! would replay old alerts on every reconnect; dropping all would lose what happened while the
//! socket was down. The rule:
//! - first connection: messages TikTok marks `is_history` (the comment backlog it sends to a new
//!   viewer) are dropped, and so is anything older than [`FIRST_CONNECT_WINDOW`] by TikTok's own
//!   clock (the result's `now`, so a wrong PC clock does not matter); the rest is relayed;
//! - reconnection: anything older than the time the socket was down (plus [`RECONNECT_SLACK`])
//!   is dropped; what remains either happened during the gap (relayed: nothing lost) or was
//!   already relayed (dropped by the normaliser's msg_id de-dup: nothing doubled).
//!
//! Messages whose time is unknown are kept and left to de-dup.

use std::time::Duration;

use prost::Message;

use crate::proto::{BaseProtoMessage, CommonMessageData, ProtoMessageFetchResult};

/// How old a message of the first fetch may be and still be relayed.
pub const FIRST_CONNECT_WINDOW: Duration = Duration::from_secs(60);
/// Added to the measured gap on reconnect: clocks and queues are not exact.
pub const RECONNECT_SLACK: Duration = Duration::from_secs(15);

/// Which connection of a session a fetch result opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    First,
    /// The socket was down for about this long.
    Reconnect {
        gap: Duration,
    },
}

/// Field 1 of any webcast message: enough to read its creation time.
#[derive(Clone, PartialEq, prost::Message)]
struct CommonOnly {
    #[prost(message, optional, tag = "1")]
    common: Option<CommonMessageData>,
}

fn created_ms(msg: &BaseProtoMessage) -> Option<i64> {
    CommonOnly::decode(msg.payload.as_ref())
        .ok()?
        .common
        .map(|c| c.create_time)
        .filter(|&t| t > 0)
}

/// Removes the backlog from `result` in place; returns how many messages were dropped.
pub fn drop_backlog(result: &mut ProtoMessageFetchResult, connection: Connection) -> usize {
    let before = result.messages.len();
    let (drop_history, window) = match connection {
        Connection::First => (true, FIRST_CONNECT_WINDOW),
        Connection::Reconnect { gap } => (false, gap + RECONNECT_SLACK),
    };
    let now = result.now;
    let oldest = (now > 0).then(|| now - window.as_millis() as i64);
    result.messages.retain(|m| {
        if drop_history && m.is_history {
            return false;
        }
        match (oldest, created_ms(m)) {
            (Some(oldest), Some(created)) => created >= oldest,
            _ => true,
        }
    });
    before - result.messages.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::WebcastChatMessage;
    use crate::tiktok::frame::base_message;

    fn chat(id: i64, created: i64, history: bool) -> BaseProtoMessage {
        let m = WebcastChatMessage {
            common: Some(CommonMessageData {
                msg_id: id,
                create_time: created,
                ..Default::default()
            }),
            content: "hi".into(),
            ..Default::default()
        };
        let mut b = base_message("WebcastChatMessage", id, &m);
        b.is_history = history;
        b
    }

    fn ids(r: &ProtoMessageFetchResult) -> Vec<i64> {
        r.messages.iter().map(|m| m.msg_id).collect()
    }

    #[test]
    fn first_connection_drops_history_and_old_messages() {
        let now = 1_800_000_000_000;
        let mut r = ProtoMessageFetchResult {
            messages: vec![
                chat(1, now - 5_000, true),
                chat(2, now - 120_000, false),
                chat(3, now - 5_000, false),
                chat(4, 0, false),
            ],
            now,
            ..Default::default()
        };
        assert_eq!(drop_backlog(&mut r, Connection::First), 2);
        assert_eq!(ids(&r), vec![3, 4]);
    }

    #[test]
    fn reconnection_keeps_the_gap_and_drops_what_is_older() {
        let now = 1_800_000_000_000;
        let mut r = ProtoMessageFetchResult {
            messages: vec![
                chat(1, now - 100_000, true),
                chat(2, now - 20_000, true),
                chat(3, now - 1_000, false),
            ],
            now,
            ..Default::default()
        };
        let gap = Duration::from_secs(10);
        assert_eq!(drop_backlog(&mut r, Connection::Reconnect { gap }), 1);
        assert_eq!(ids(&r), vec![2, 3]);
    }

    #[test]
    fn without_a_server_time_only_history_is_dropped() {
        let mut r = ProtoMessageFetchResult {
            messages: vec![chat(1, 5, false), chat(2, 5, true)],
            ..Default::default()
        };
        assert_eq!(drop_backlog(&mut r, Connection::First), 1);
        assert_eq!(ids(&r), vec![1]);
    }
}

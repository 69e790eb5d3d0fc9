//! The obs-websocket v5 wire format as OBS 28+ speaks it: the `{"op", "d"}` envelope, the op
//! codes, the challenge authentication and what the close codes mean to a streamer.
//!
//! Only what tikrelay sends and reads is modelled; everything else stays `serde_json::Value`,
//! so a newer OBS adding fields changes nothing here. Checked against the real obs-websocket
//! 5.1.0 (Debian's OBS 29), which differs from the current protocol docs in places (no UUIDs,
//! no `executionType: -1`), so nothing here relies on those.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The only RPC version there is so far.
pub const RPC_VERSION: u64 = 1;
/// Subprotocol for JSON text frames (also the server's default when none is offered).
pub const SUBPROTOCOL: &str = "obswebsocket.json";

pub const OP_HELLO: u64 = 0;
pub const OP_IDENTIFY: u64 = 1;
pub const OP_IDENTIFIED: u64 = 2;
pub const OP_REIDENTIFY: u64 = 3;
pub const OP_EVENT: u64 = 5;
pub const OP_REQUEST: u64 = 6;
pub const OP_REQUEST_RESPONSE: u64 = 7;
pub const OP_REQUEST_BATCH: u64 = 8;
pub const OP_REQUEST_BATCH_RESPONSE: u64 = 9;

/// Event subscription bits (the `eventIntent` of an event).
pub mod subscription {
    pub const GENERAL: u32 = 1;
    pub const SCENES: u32 = 1 << 2;
    pub const INPUTS: u32 = 1 << 3;
    pub const TRANSITIONS: u32 = 1 << 4;
    pub const SCENE_ITEMS: u32 = 1 << 7;
    /// Every non-high-volume category (what the server assumes when none is given).
    pub const ALL: u32 = 2047;
}

/// Close code for a wrong or missing password.
pub const CLOSE_AUTH_FAILED: u16 = 4009;

/// `authentication` for Identify: `base64(sha256(base64(sha256(password + salt)) + challenge))`,
/// standard base64 with padding, concatenating the base64 *text*.
pub fn auth_response(password: &str, salt: &str, challenge: &str) -> String {
    let secret = STANDARD.encode(Sha256::digest(format!("{password}{salt}").as_bytes()));
    STANDARD.encode(Sha256::digest(format!("{secret}{challenge}").as_bytes()))
}

/// Wraps `d` in the envelope.
pub fn message(op: u64, d: Value) -> String {
    json!({"op": op, "d": d}).to_string()
}

/// Splits a text frame into its op code and data; `None` if it is not an envelope.
pub fn parse(text: &str) -> Option<(u64, Value)> {
    let mut v: Value = serde_json::from_str(text).ok()?;
    let op = v.get("op")?.as_u64()?;
    let d = v.get_mut("d").map(Value::take).unwrap_or(Value::Null);
    Some((op, d))
}

/// What a close code means, in words a streamer can act on.
pub fn close_meaning(code: u16) -> &'static str {
    match code {
        4002 => "OBS could not read a message (DecodeError)",
        4003 => "a request had no requestId (MissingDataField)",
        4004 => "a request field had the wrong type or value (InvalidDataFieldType/Value)",
        4006 => "OBS did not know a message type (UnknownOpCode)",
        4007 => "a message came before identification (NotIdentified)",
        4008 => "the client identified twice (AlreadyIdentified)",
        CLOSE_AUTH_FAILED => "the password is wrong or missing (AuthenticationFailed)",
        4010 => "OBS does not support RPC version 1 (UnsupportedRpcVersion)",
        4011 => "OBS ended the session (SessionInvalidated)",
        4012 => "this OBS lacks a needed feature (UnsupportedFeature)",
        1000 | 1001 => {
            "OBS closed the connection (it is shutting down or the websocket server was turned off)"
        }
        _ => "OBS closed the connection",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_matches_the_protocol_documents_example() {
        // The worked example of the obs-websocket 5 protocol description.
        assert_eq!(
            auth_response(
                "supersecretpassword",
                "lM1GncleQOaCu9lT1yeUZhFYnqhsLLP1G5lAGo3ixaI=",
                "+IxH4CnCiqpX1rM9scsNynZzbOe4KhDeYcTNS3PDaeY="
            ),
            "1Ct943GAT+6YQUUX47Ia/ncufilbe6+oD6lY+5kaCu4="
        );
    }

    #[test]
    fn parse_splits_the_envelope_and_rejects_others() {
        let (op, d) = parse(r#"{"op":2,"d":{"negotiatedRpcVersion":1}}"#).unwrap();
        assert_eq!(op, OP_IDENTIFIED);
        assert_eq!(d["negotiatedRpcVersion"], 1);
        assert!(parse("[1,2]").is_none());
        assert!(parse(r#"{"op":"x"}"#).is_none());
        assert!(parse("not json").is_none());
    }
}

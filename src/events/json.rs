//! The event JSON writer: [`Event::to_json`](super::Event::to_json) on the relay's hot path.
//!
//! It writes the same bytes as the `Serialize` impl through serde_json (a test compares the two
//! for every kind and for hostile strings), but straight into one buffer: keys are literals
//! instead of escaped strings, and string escaping skips eight bytes at a time while none of them
//! needs an escape. serde_json's escaper looks up every byte one by one, which made JSON a fifth
//! of the pipeline's time. Webcast pass-through `data` (rare, any shape) still goes through
//! serde_json.

use super::{BattlePhase, EndReason, Event, EventKind, GiftInfo, User};

/// Writes `event` as its JSON object.
pub(crate) fn write_event(out: &mut Vec<u8>, e: &Event) {
    out.extend_from_slice(b"{\"v\":");
    uint(out, e.v as u64);
    out.extend_from_slice(b",\"type\":\"");
    // Type names are fixed snake_case ASCII: nothing to escape.
    out.extend_from_slice(e.kind.type_name().as_bytes());
    out.push(b'"');
    match &e.kind {
        EventKind::Connected { unique_id } => key_str(out, "unique_id", unique_id),
        EventKind::Disconnected {
            reason,
            will_reconnect,
        } => {
            key_str(out, "reason", reason);
            key(out, "will_reconnect");
            boolean(out, *will_reconnect);
        }
        EventKind::Comment { text } | EventKind::Question { text } | EventKind::Pin { text } => {
            key_str(out, "text", text)
        }
        EventKind::Emote { emote_ids } => {
            key(out, "emote_ids");
            out.push(b'[');
            for (i, id) in emote_ids.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, id);
            }
            out.push(b']');
        }
        EventKind::Follow
        | EventKind::Share
        | EventKind::LivePaused
        | EventKind::LiveResumed
        | EventKind::LiveEnded
        | EventKind::SuperFan => {}
        EventKind::Join { member_count } => key_uint(out, "member_count", *member_count),
        EventKind::Like { count, total } => {
            key_uint(out, "count", *count);
            key_uint(out, "total", *total);
        }
        EventKind::Viewers {
            viewers,
            total_viewers,
        } => {
            key_uint(out, "viewers", *viewers);
            key_uint(out, "total_viewers", *total_viewers);
        }
        EventKind::Gift {
            gift,
            count,
            diamonds_total,
            combo_id,
        } => {
            key(out, "gift");
            gift_info(out, gift);
            key_uint(out, "count", *count);
            key_uint(out, "diamonds_total", *diamonds_total);
            if let Some(c) = combo_id {
                key_str(out, "combo_id", c);
            }
        }
        EventKind::Combo {
            gift,
            combo_id,
            count,
            ended,
            end_reason,
        } => {
            key(out, "gift");
            gift_info(out, gift);
            key_str(out, "combo_id", combo_id);
            key_uint(out, "count", *count);
            key(out, "ended");
            boolean(out, *ended);
            if let Some(r) = end_reason {
                let r = match r {
                    EndReason::RepeatEnd => "repeat_end",
                    EndReason::Timeout => "timeout",
                };
                key_str(out, "end_reason", r);
            }
        }
        EventKind::Subscribe { months } => {
            key(out, "months");
            match months {
                Some(m) => uint(out, *m),
                None => out.extend_from_slice(b"null"),
            }
        }
        EventKind::Battle {
            phase,
            battle_id,
            teams,
        } => {
            let phase = match phase {
                BattlePhase::Start => "start",
                BattlePhase::Score => "score",
                BattlePhase::End => "end",
            };
            key_str(out, "phase", phase);
            key_str(out, "battle_id", battle_id);
            key(out, "teams");
            out.push(b'[');
            for (i, team) in teams.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"host\":");
                user(out, &team.host);
                key_uint(out, "score", team.score);
                out.push(b'}');
            }
            out.push(b']');
        }
        EventKind::Envelope { diamonds, people } => {
            key_uint(out, "diamonds", *diamonds);
            key_uint(out, "people", *people);
        }
        EventKind::Webcast { method, data } => {
            key_str(out, "method", method);
            key(out, "data");
            serde_json::to_writer(&mut *out, data).expect("a JSON value always serialises");
        }
        EventKind::Unknown { method } => key_str(out, "method", method),
    }
    key_str(out, "id", &e.id);
    key(out, "ts");
    int(out, e.ts);
    key_str(out, "source", e.source.as_str());
    key_str(out, "stream", &e.stream);
    if let Some(room) = &e.room_id {
        key_str(out, "room_id", room);
    }
    if let Some(u) = &e.user {
        key(out, "user");
        user(out, u);
    }
    out.push(b'}');
}

fn user(out: &mut Vec<u8>, u: &User) {
    out.extend_from_slice(b"{\"id\":");
    string(out, &u.id);
    key_str(out, "unique_id", &u.unique_id);
    key_str(out, "nickname", &u.nickname);
    key(out, "avatar_url");
    opt_string(out, u.avatar_url.as_deref());
    out.push(b'}');
}

fn gift_info(out: &mut Vec<u8>, g: &GiftInfo) {
    out.extend_from_slice(b"{\"id\":");
    uint(out, g.id);
    key_str(out, "name", &g.name);
    key_uint(out, "diamonds", g.diamonds);
    key(out, "image_url");
    opt_string(out, g.image_url.as_deref());
    key(out, "streakable");
    boolean(out, g.streakable);
    out.push(b'}');
}

/// `,"name":` — every key here follows an earlier field. Keys are plain ASCII literals.
fn key(out: &mut Vec<u8>, name: &str) {
    out.push(b',');
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn key_str(out: &mut Vec<u8>, name: &str, value: &str) {
    key(out, name);
    string(out, value);
}

fn key_uint(out: &mut Vec<u8>, name: &str, value: u64) {
    key(out, name);
    uint(out, value);
}

fn uint(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string, escaped exactly as serde_json does: `"` and `\`, the short forms `\b \f \n
/// \r \t`, other control characters as `\u00xx` (lowercase hex); everything else (DEL,
/// non-ASCII) as is.
fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0; // first byte not yet copied
    let mut i = 0;
    loop {
        // Viewer text is mostly plain: skip whole words that need nothing.
        while i + 8 <= bytes.len() {
            let word = u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
            if needs_escape(word) {
                break;
            }
            i += 8;
        }
        if i + 8 > bytes.len() {
            // Most strings are short, so the tail matters: test it padded with spaces (which
            // need no escape) before going byte by byte.
            let mut tail = [b' '; 8];
            tail[..bytes.len() - i].copy_from_slice(&bytes[i..]);
            if !needs_escape(u64::from_le_bytes(tail)) {
                break;
            }
        }
        let end = (i + 8).min(bytes.len());
        while i < end {
            let b = bytes[i];
            if b < 0x20 || b == b'"' || b == b'\\' {
                out.extend_from_slice(&bytes[start..i]);
                escape(out, b);
                start = i + 1;
            }
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether any byte of the word is a control character, `"` or `\`. Exact: the classic
/// "has a byte less than n" and "has a zero byte" tricks only misreport bytes above one that
/// really matches, and a match is all this asks.
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * b'"' as u64);
    let backslash = word ^ (ONES * b'\\' as u64);
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below_space | quote | backslash) & HIGH != 0
}

fn escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match b {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0c => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        _ => {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_string(s: &str) -> String {
        serde_json::to_string(s).unwrap()
    }

    #[test]
    fn strings_are_escaped_byte_for_byte_like_serde_json() {
        let mut samples: Vec<String> = vec![
            String::new(),
            "plain ascii text that is longer than a word".into(),
            "<script>alert('x')</script> \"quoted\" back\\slash".into(),
            "line one\nline two\r\n\ttab \u{8}\u{c}\u{0}\u{1f}\u{7f}".into(),
            "Zoe\u{0308} 🌙✨ 小龙 محمد \u{2028}\u{2029}".into(),
        ];
        // Every ASCII byte at every offset within a word, between multi-byte characters.
        for b in 0u8..0x80 {
            for pad in 0..9 {
                samples.push(format!(
                    "{}{}é{}",
                    "a".repeat(pad),
                    b as char,
                    "ü".repeat(pad)
                ));
            }
        }
        for s in &samples {
            let mut out = Vec::new();
            string(&mut out, s);
            assert_eq!(String::from_utf8(out).unwrap(), serde_string(s), "{s:?}");
        }
    }

    #[test]
    fn the_word_test_flags_exactly_the_bytes_that_need_escaping() {
        for b in 0u8..=255 {
            for at in 0..8 {
                let mut word = [b'a'; 8];
                word[at] = b;
                let want = b < 0x20 || b == b'"' || b == b'\\';
                assert_eq!(
                    needs_escape(u64::from_le_bytes(word)),
                    want,
                    "{b:#x} at {at}"
                );
            }
        }
        // High bytes next to each other do not fake a match.
        assert!(!needs_escape(u64::from_le_bytes([
            0xff, 0x80, 0xa2, 0xdc, 0x21, 0x23, 0x5b, 0x5d
        ])));
    }
}

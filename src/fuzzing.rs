//! Entry points for the fuzz targets (`fuzz/`), one function per target, so each target is a
//! one-liner and `tests/integration/fuzz_corpus.rs` replays the committed corpus through the
//! very same code without the fuzzer. Each takes arbitrary bytes, runs the path real input
//! takes through the relay, and panics only when that path misbehaves: a panic, a stack
//! overflow or a hang here is a bug in the relay, never an "invalid input".
//!
//! Besides "does not crash", two properties are checked where a second opinion is cheap: an
//! inflated gzip payload must equal what flate2's decoder makes of it, and every event the
//! normaliser publishes must be valid JSON that reads back as the same event.

use std::io::Read;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Config;
use crate::events::normalise::{Normaliser, descriptor_pool};
use crate::events::{Event, EventKind, Source};
use crate::pipeline::{self, Input};
use crate::proto::{BaseProtoMessage, ProtoMessageFetchResult};
use crate::themes::{probe, resolve_fields};
use crate::tiktok::frame;

/// Combo timeout of the fuzzed normaliser: short, so the time steps of an input reach it.
const COMBO_TIMEOUT: Duration = Duration::from_secs(2);
/// One unit of an input's time step.
const STEP: Duration = Duration::from_millis(250);

/// Target `push_frame`: bytes as a websocket binary message from TikTok, through the pipeline's
/// own decode path (push frame, gzip, fetch result, normaliser); the same bytes as a sign
/// server's fetch result body; and gzip inflation checked against flate2.
pub fn push_frame(data: &[u8]) {
    let mut normaliser = Normaliser::new(Source::Tiktok, COMBO_TIMEOUT);
    let mut out = Vec::new();
    let now = Instant::now();
    pipeline::process(
        &mut normaliser,
        Input::PushFrame(data.to_vec()),
        now,
        &mut out,
    );
    pipeline::process(
        &mut normaliser,
        Input::FetchResult(frame::decode_fetch_result(data.to_vec()).map(Box::new)),
        now,
        &mut out,
    );
    normaliser.expire(now + Duration::from_secs(3600), &mut out);
    check_events(&out);
    if let Ok(f) = frame::decode_push_frame(data) {
        check_gunzip(&f.payload);
    }
    check_gunzip(data);
}

/// `frame::gunzip` must agree with flate2's decoder: same bytes when both inflate, and no
/// refusal of a gzip member flate2 reads whole (within the size limit).
fn check_gunzip(bytes: &[u8]) {
    let ours = frame::gunzip(bytes);
    let mut theirs = Vec::new();
    let reference = flate2::read::GzDecoder::new(bytes)
        .take(frame::MAX_INFLATED_BYTES as u64 + 1)
        .read_to_end(&mut theirs);
    match (ours, reference) {
        (Ok(ours), Ok(_)) => assert!(ours == theirs, "gunzip and flate2 inflate differently"),
        (Err(e), Ok(_)) if theirs.len() <= frame::MAX_INFLATED_BYTES => {
            panic!("gunzip refuses a gzip member flate2 reads: {e}")
        }
        _ => {}
    }
}

/// Every method name the schema knows (`WebcastChatMessage`, …, and nested types), sorted.
pub fn schema_methods() -> &'static [String] {
    static METHODS: OnceLock<Vec<String>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let mut names: Vec<String> = descriptor_pool()
            .all_messages()
            .map(|m| m.name().to_string())
            .collect();
        names.sort();
        names
    })
}

/// Encodes messages in the `normalise` target's input format (the seed corpus is built
/// with it): per message `[method index u8][time step u8][payload length u16 LE][payload]`.
/// An index past [`schema_methods`] names a method the schema does not know.
pub fn normalise_input(messages: &[(&str, u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (method, step, payload) in messages {
        let index = schema_methods()
            .iter()
            .position(|m| m == method)
            .unwrap_or(255);
        out.push(index as u8);
        out.push(*step);
        let len = payload.len().min(u16::MAX as usize);
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&payload[..len]);
    }
    out
}

/// Target `normalise`: a sequence of messages of any schema method (or an unknown one) with
/// arbitrary payloads, through one normaliser as the pipeline drives it: messages with time
/// step 0 share a fetch result, a non-zero step advances tokio time by step × 250 ms and ends
/// the combos due first, so gift combos open, grow, repeat and time out.
pub fn normalise(data: &[u8]) {
    let methods = schema_methods();
    let mut normaliser = Normaliser::new(Source::Tiktok, COMBO_TIMEOUT);
    let mut now = Instant::now();
    let mut out = Vec::new();
    let mut batch = ProtoMessageFetchResult::default();
    let mut rest = data;
    let mut index = 0i64;
    while let [selector, step, l0, l1, tail @ ..] = rest {
        let len = (u16::from_le_bytes([*l0, *l1]) as usize).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        if *step > 0 {
            normaliser.fetch_result(&std::mem::take(&mut batch), now, &mut out);
            now += STEP * u32::from(*step);
            normaliser.expire(now, &mut out);
        }
        let method = match methods.get(*selector as usize) {
            Some(m) => m.clone(),
            None => format!("WebcastFuzz{selector}Message"),
        };
        index += 1;
        batch.messages.push(BaseProtoMessage {
            method,
            payload: bytes::Bytes::copy_from_slice(payload),
            msg_id: index,
            ..Default::default()
        });
    }
    normaliser.fetch_result(&batch, now, &mut out);
    normaliser.expire(now + Duration::from_secs(3600), &mut out);
    let stats = normaliser.stats();
    assert_eq!(stats.messages, index as u64, "every message is counted");
    check_events(&out);
}

/// Every event must be valid JSON that reads back as the same event (pass-through `webcast`
/// data may hold floats, which need not read back bit for bit).
fn check_events(events: &[Event]) {
    for event in events {
        let json = event.to_json();
        let back: Event = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("event JSON does not read back ({e}): {json}"));
        if !matches!(event.kind, EventKind::Webcast { .. }) {
            assert_eq!(&back, event, "event JSON reads back differently: {json}");
        }
    }
}

/// Target `config`: text as a config file, through parsing and validation (queues, triggers,
/// their templates, actions); an error must render as its message.
pub fn config(data: &[u8]) {
    // `config::load` reads the file as UTF-8: other bytes are an I/O error before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, "fuzz.toml") {
        Ok(config) => {
            let _ = format!("{config:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Target `theme_json`: text as a theme's `theme.json`, through parsing and field validation,
/// then the fields resolved with their defaults as a page without query parameters gets them.
pub fn theme_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (manifest, problems) = probe::manifest(text);
    for p in problems {
        let _ = p.to_string();
    }
    if let Some(m) = manifest {
        let (fields, _) = resolve_fields(&m.fields, &Default::default());
        assert_eq!(fields.as_object().map(|f| f.len()), Some(m.fields.len()));
    }
}

/// Target `template`: text as a theme's page template, compiled and rendered with the default
/// page context as theme loading and hot reload do.
pub fn template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for p in probe::page_template(text) {
        let _ = p.to_string();
    }
}

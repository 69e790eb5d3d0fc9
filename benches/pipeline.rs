//! Throughput of the relay's hot path on one core: push frame → gunzip → protobuf decode →
//! normalise (de-dup, combos) → JSON, with the synthetic demo stream as input.
//!
//! `cargo bench --bench pipeline` prints messages/s for three shapes of input:
//! - one message per gzip frame (what the demo source sends; the worst case, gzip per message),
//! - 20 messages per gzip frame (what a busy TikTok stream sends),
//! - the same, published through the hub (stats, recent events, fan-out) as `replay --max`.
//!
//! With `TIKRELAY_BENCH_RECORD=FILE` it also writes the 20-per-frame stream as a TIKREC1
//! recording, to measure the whole binary with `tikrelay replay FILE --max --no-server`.
//! `TIKRELAY_BENCH_MESSAGES` sets the stream length (default 400000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use tikrelay::consumers::Consumers;
use tikrelay::events::Source;
use tikrelay::events::normalise::Normaliser;
use tikrelay::hub::Hub;
use tikrelay::pipeline::{self, Input};
use tikrelay::proto::ProtoMessageFetchResult;
use tikrelay::recorder::{MAGIC, RecordKind, encode_record};
use tikrelay::sources::demo::DemoStream;
use tikrelay::stats::Stats;
use tikrelay::tiktok::frame;

const BATCH: usize = 20;

fn frames(messages: usize, per_frame: usize) -> Vec<Vec<u8>> {
    let mut demo = DemoStream::new(7);
    let mut out = Vec::with_capacity(messages / per_frame + 1);
    let mut seq = 0;
    while seq * per_frame < messages {
        seq += 1;
        let result = ProtoMessageFetchResult {
            messages: (0..per_frame).map(|_| demo.next_message()).collect(),
            cursor: format!("c{seq}"),
            internal_ext: format!("ie{seq}"),
            ..Default::default()
        };
        out.push(frame::msg_frame(seq as i64, seq as i64, &result, true).encode_to_vec());
    }
    out
}

struct Run {
    messages: u64,
    events: u64,
    json_bytes: u64,
    elapsed: Duration,
}

fn run(frames: Vec<Vec<u8>>, hub: Option<&Consumers>) -> Run {
    let mut normaliser = Normaliser::new(Source::Replay, Duration::from_secs(10));
    let mut out = Vec::with_capacity(64);
    let (mut events, mut json_bytes) = (0u64, 0u64);
    let start = Instant::now();
    for f in frames {
        let now = tokio::time::Instant::now();
        pipeline::process(&mut normaliser, Input::PushFrame(f), now, &mut out);
        events += out.len() as u64;
        for e in out.drain(..) {
            match hub {
                Some(consumers) => consumers.deliver(e),
                None => json_bytes += e.to_json().len() as u64,
            }
        }
    }
    Run {
        messages: normaliser.stats().messages,
        events,
        json_bytes,
        elapsed: start.elapsed(),
    }
}

fn report(name: &str, r: &Run) {
    let secs = r.elapsed.as_secs_f64();
    println!(
        "{name:<44} {:>9} messages {:>9} events in {secs:>6.3} s: {:>10.0} messages/s {:>10.0} events/s{}",
        r.messages,
        r.events,
        r.messages as f64 / secs,
        r.events as f64 / secs,
        if r.json_bytes > 0 {
            format!(" ({} B JSON/event)", r.json_bytes / r.events.max(1))
        } else {
            String::new()
        }
    );
}

/// Where the time goes: frame decode alone, then with the normaliser, then with JSON.
fn phases(frames: &[Vec<u8>]) {
    let time = |f: &mut dyn FnMut(&[u8])| {
        let start = Instant::now();
        for bytes in frames {
            f(bytes);
        }
        start.elapsed()
    };
    let mut messages = 0usize;
    let decode = time(&mut |b| {
        let (_, result) = frame::decode_msg_frame(b).unwrap();
        messages += result.messages.len();
    });
    let mut normaliser = Normaliser::new(Source::Replay, Duration::from_secs(10));
    let mut out = Vec::new();
    let normalise = time(&mut |b| {
        let (_, result) = frame::decode_msg_frame(b).unwrap();
        let _ = normaliser.fetch_result(&result, tokio::time::Instant::now(), &mut out);
        out.clear();
    });
    let mut normaliser = Normaliser::new(Source::Replay, Duration::from_secs(10));
    let json = time(&mut |b| {
        let (_, result) = frame::decode_msg_frame(b).unwrap();
        let _ = normaliser.fetch_result(&result, tokio::time::Instant::now(), &mut out);
        for e in out.drain(..) {
            std::hint::black_box(e.to_json());
        }
    });
    let per = |d: Duration| d.as_nanos() as f64 / messages as f64;
    println!(
        "per message: frame decode {:.0} ns, + normalise {:.0} ns, + JSON {:.0} ns",
        per(decode),
        per(normalise) - per(decode),
        per(json) - per(normalise)
    );
}

/// The event JSON two ways over the same demo events: `Event::to_json` (the fast writer for the
/// frequent kinds, serde_json for the rest) and serde_json on the derived `Serialize`. Both
/// write the same bytes (a unit test checks every kind); this says whether the fast writer is
/// worth keeping.
fn json_writers(frames: &[Vec<u8>]) {
    let mut normaliser = Normaliser::new(Source::Replay, Duration::from_secs(10));
    let mut events = Vec::new();
    for bytes in frames {
        let (_, result) = frame::decode_msg_frame(bytes).unwrap();
        let _ = normaliser.fetch_result(&result, tokio::time::Instant::now(), &mut events);
    }
    let time = |f: &dyn Fn(&tikrelay::events::Event) -> usize| {
        let start = Instant::now();
        let mut bytes = 0;
        for e in &events {
            bytes += std::hint::black_box(f(e));
        }
        (
            start.elapsed().as_nanos() as f64 / events.len() as f64,
            bytes,
        )
    };
    // Interleaved rounds, best of each: the machine is shared, and a busy moment should not
    // land on one writer only.
    let (mut fast, mut serde) = (f64::MAX, f64::MAX);
    for _ in 0..7 {
        let (f, fast_bytes) = time(&|e| e.to_json().len());
        let (s, serde_bytes) = time(&|e| serde_json::to_string(e).unwrap().len());
        assert_eq!(
            fast_bytes, serde_bytes,
            "the two writers wrote different JSON"
        );
        fast = fast.min(f);
        serde = serde.min(s);
    }
    println!(
        "JSON per event ({} events, best of 7 interleaved rounds): fast writer {fast:.0} ns, serde_json {serde:.0} ns ({:.2}x)",
        events.len(),
        serde / fast
    );
}

fn main() {
    let messages: usize = std::env::var("TIKRELAY_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400_000);
    println!("decode + normalise + JSON on one core, {messages} demo messages");

    if let Ok(what) = std::env::var("TIKRELAY_BENCH_PROFILE") {
        // For a profiler: the timed loop many times over, little setup. `normalise` profiles
        // the normaliser alone on decoded results, `single` the whole hot path with one message
        // per frame, anything else the whole hot path with BATCH per frame.
        let batched = frames(messages, if what == "single" { 1 } else { BATCH });
        if what == "normalise" {
            let results: Vec<_> = batched
                .iter()
                .map(|b| frame::decode_msg_frame(b).unwrap().1)
                .collect();
            for _ in 0..10 {
                let mut normaliser = Normaliser::new(Source::Replay, Duration::from_secs(10));
                let mut out = Vec::new();
                for r in &results {
                    let _ = normaliser.fetch_result(r, tokio::time::Instant::now(), &mut out);
                    out.clear();
                }
            }
        } else {
            for _ in 0..10 {
                report("profile pass", &run(batched.clone(), None));
            }
        }
        return;
    }
    let single = frames(messages, 1);
    report("1 message per gzip frame", &run(single, None));

    let batched = frames(messages, BATCH);
    if let Ok(path) = std::env::var("TIKRELAY_BENCH_RECORD") {
        let mut file = MAGIC.to_vec();
        for (i, f) in batched.iter().enumerate() {
            file.extend(encode_record(i as u64, RecordKind::PushFrame, f));
        }
        std::fs::write(&path, file).expect("write the recording");
        println!("wrote {path} ({} frames)", batched.len());
    }
    report(
        &format!("{BATCH} messages per gzip frame"),
        &run(batched.clone(), None),
    );

    phases(&batched);
    json_writers(&batched);

    let consumers = Consumers::new(Arc::new(Stats::default()), Hub::new());
    report(
        &format!("{BATCH} per frame, published through the hub"),
        &run(batched, Some(&consumers)),
    );
}

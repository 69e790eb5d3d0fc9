//! `tikrelay replay`: the three file formats through the pipeline, `--loop`, and the
//! benchmark line of `--max --no-server` from the real binary.

use std::path::Path;
use std::time::Duration;

use prost::Message as _;
use serde_json::Value;
use tikrelay::cli::ReplayArgs;
use tikrelay::recorder::{MAGIC, RecordKind, encode_record};
use tikrelay::sources::demo::DemoStream;

use crate::support::{binary_command, common_args};

fn args(file: &Path, out: &Path, repeat: bool) -> ReplayArgs {
    ReplayArgs {
        file: file.to_path_buf(),
        speed: 1.0,
        max: true,
        repeat,
        jsonl: Some(out.to_path_buf()),
        no_server: true,
    }
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn replay(file: &Path, out: &Path) -> Vec<Value> {
    tikrelay::app::replay(
        &common_args(&[]),
        args(file, out, false),
        std::future::pending(),
    )
    .await
    .unwrap();
    read_jsonl(out)
}

#[tokio::test]
async fn bare_frames_and_their_jsonl_replay_to_the_same_events() {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("frames.bin");
    let mut demo = DemoStream::new(3);
    let mut bytes = Vec::new();
    for _ in 0..300 {
        let frame = demo.next_frame();
        bytes.extend((frame.len() as u32).to_be_bytes());
        bytes.extend(frame);
    }
    std::fs::write(&bare, bytes).unwrap();
    let first = replay(&bare, &dir.path().join("a.jsonl")).await;
    assert!(first.len() >= 300, "{} events", first.len());
    assert!(first.iter().all(|e| e["source"] == "replay"));
    let types: std::collections::BTreeSet<&str> =
        first.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for ty in ["comment", "like", "join", "follow", "gift", "combo"] {
        assert!(types.contains(ty), "{ty} in {types:?}");
    }
    assert!(
        first.iter().all(|e| e["stream"] == "frames"),
        "the file's stem"
    );
    // The JSONL of that replay replays to the same events, in the stream of its own stem.
    let second = replay(&dir.path().join("a.jsonl"), &dir.path().join("b.jsonl")).await;
    assert!(second.iter().all(|e| e["stream"] == "a"));
    let unstreamed = |events: Vec<serde_json::Value>| {
        events
            .into_iter()
            .map(|mut e| {
                e.as_object_mut().unwrap().remove("stream");
                e
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(unstreamed(first), unstreamed(second));
}

#[tokio::test]
async fn loop_starts_over_and_relays_the_messages_again() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("two.tikrec");
    let mut demo = DemoStream::new(5);
    let mut bytes = MAGIC.to_vec();
    for i in 0..2u64 {
        // Comments only, so every message is exactly one event.
        let msg = loop {
            let m = demo.next_message();
            if m.method == "WebcastChatMessage" {
                break m;
            }
        };
        let result = tikrelay::proto::ProtoMessageFetchResult {
            messages: vec![msg],
            ..Default::default()
        };
        let frame = tikrelay::tiktok::frame::msg_frame(i as i64, i as i64, &result, i == 0);
        bytes.extend(encode_record(
            i * 1000,
            RecordKind::PushFrame,
            &frame.encode_to_vec(),
        ));
    }
    std::fs::write(&rec, bytes).unwrap();
    let out = dir.path().join("loop.jsonl");
    let stop = tokio::time::sleep(Duration::from_millis(300));
    tikrelay::app::replay(&common_args(&[]), args(&rec, &out, true), stop)
        .await
        .unwrap();
    let events = read_jsonl(&out);
    assert!(events.len() >= 6, "several passes: {} events", events.len());
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_ne!(ids[0], ids[1]);
    for pair in ids.chunks_exact(2) {
        assert_eq!(pair, &ids[..2], "every pass relays the same two messages");
    }
}

#[test]
fn the_binary_prints_throughput_and_refuses_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.bin");
    let mut demo = DemoStream::new(9);
    let mut bytes = Vec::new();
    for _ in 0..200 {
        let frame = demo.next_frame();
        bytes.extend((frame.len() as u32).to_be_bytes());
        bytes.extend(frame);
    }
    std::fs::write(&file, bytes).unwrap();
    let out = binary_command()
        .args([
            "replay",
            file.to_str().unwrap(),
            "--max",
            "--no-server",
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("replayed 200 messages"), "{stdout}");
    assert!(
        stdout.contains("messages/s") && stdout.contains("events/s"),
        "{stdout}"
    );

    let out = binary_command()
        .args(["replay", "/nonexistent/x.tikrec", "--no-server"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
}

/// `n` push frames of one comment each (every message is exactly one event).
pub(crate) fn comment_frames(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut demo = DemoStream::new(seed);
    (0..n)
        .map(|i| {
            let msg = loop {
                let m = demo.next_message();
                if m.method == "WebcastChatMessage" {
                    break m;
                }
            };
            let result = tikrelay::proto::ProtoMessageFetchResult {
                messages: vec![msg],
                ..Default::default()
            };
            tikrelay::tiktok::frame::msg_frame(i as i64, i as i64, &result, false).encode_to_vec()
        })
        .collect()
}

fn run_binary(args: &[&str]) -> (Option<i32>, String, String) {
    let out = binary_command().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn absurd_speeds_are_refused_with_exit_2_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("r.tikrec");
    let mut bytes = MAGIC.to_vec();
    for (i, frame) in comment_frames(21, 2).iter().enumerate() {
        bytes.extend(encode_record(i as u64 * 1000, RecordKind::PushFrame, frame));
    }
    std::fs::write(&rec, bytes).unwrap();
    for speed in ["1e-30", "0", "-2", "NaN", "inf", "1e300"] {
        let (code, _, stderr) = run_binary(&[
            "replay",
            rec.to_str().unwrap(),
            "--no-server",
            &format!("--speed={speed}"),
        ]);
        assert_eq!(code, Some(2), "--speed {speed}: {stderr}");
        assert!(
            stderr.contains("--speed") && stderr.contains("from 0.01 to 10000"),
            "--speed {speed}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A valid speed still plays both frames.
    let (code, stdout, stderr) = run_binary(&[
        "replay",
        rec.to_str().unwrap(),
        "--no-server",
        "--speed",
        "1000",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("replayed 2 messages"), "{stdout}");
}

/// Times far apart (and one at the very end of the u64 range) neither panic nor hang: each
/// wait is capped, logged, and every record is still played, in order. On paused tokio time,
/// so the test measures virtual time, never the wall clock.
#[tokio::test(start_paused = true)]
async fn huge_time_gaps_are_capped_and_every_record_plays() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("gaps.tikrec");
    let frames = comment_frames(22, 4);
    let times = [0u64, 1_000_000_000_000, 1_000_000_000_500, u64::MAX];
    let mut bytes = MAGIC.to_vec();
    for (frame, at) in frames.iter().zip(times) {
        bytes.extend(encode_record(at, RecordKind::PushFrame, frame));
    }
    std::fs::write(&rec, bytes).unwrap();
    let out = dir.path().join("gaps.jsonl");
    let mut replay_args = args(&rec, &out, false);
    replay_args.max = false;
    let started = tokio::time::Instant::now();
    tikrelay::app::replay(&common_args(&[]), replay_args, std::future::pending())
        .await
        .unwrap();
    let waited = started.elapsed();
    let max_gap = tikrelay::sources::replay::MAX_GAP;
    assert!(
        waited >= max_gap * 2 && waited < max_gap * 3,
        "two gaps capped at {max_gap:?} each, the short one kept: waited {waited:?}"
    );
    let events = read_jsonl(&out);
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(events.iter().all(|e| e["type"] == "comment"));
}

#[test]
fn bad_jsonl_lines_are_skipped_and_counted_and_the_rest_plays() {
    let dir = tempfile::tempdir().unwrap();
    // Real event lines, from a replay of real frames.
    let bare = dir.path().join("frames.bin");
    let mut bytes = Vec::new();
    for frame in comment_frames(23, 3) {
        bytes.extend((frame.len() as u32).to_be_bytes());
        bytes.extend(frame);
    }
    std::fs::write(&bare, bytes).unwrap();
    let good = dir.path().join("good.jsonl");
    let (code, _, stderr) = run_binary(&[
        "replay",
        bare.to_str().unwrap(),
        "--max",
        "--no-server",
        "--jsonl",
        good.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<String> = std::fs::read_to_string(&good)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 3);
    // Line 2 is not UTF-8, line 4 not JSON; both sit between good lines.
    let mut mixed = Vec::new();
    mixed.extend(lines[0].as_bytes());
    mixed.push(b'\n');
    let bad_offset = mixed.len();
    mixed.extend(b"{\"type\":\"comment\",\"text\":\"\xff\xfe\xc3\"}\n");
    mixed.extend(lines[1].as_bytes());
    mixed.extend(b"\n{not json\n\n");
    mixed.extend(lines[2].as_bytes());
    mixed.push(b'\n');
    let file = dir.path().join("mixed.jsonl");
    std::fs::write(&file, mixed).unwrap();
    let out = dir.path().join("out.jsonl");
    let (code, stdout, stderr) = run_binary(&[
        "replay",
        file.to_str().unwrap(),
        "--max",
        "--no-server",
        "--jsonl",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "the replay goes on: {stderr}");
    assert!(
        stderr.contains(&format!(
            "line 2 (byte offset {bad_offset}): not UTF-8 text"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("line 4 ("), "{stderr}");
    assert!(stdout.contains("(0 duplicates, 2 undecodable)"), "{stdout}");
    let ids = |events: Vec<Value>| -> Vec<String> {
        events
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(read_jsonl(&out)),
        ids(read_jsonl(&good)),
        "every good event, in order"
    );
}

#[test]
fn frames_that_do_not_decode_are_counted_and_errors_name_byte_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let frames = comment_frames(24, 2);
    let bare = dir.path().join("frames.bin");
    let mut bytes = Vec::new();
    for frame in [&frames[0], &vec![0xffu8; 40], &frames[1]] {
        bytes.extend((frame.len() as u32).to_be_bytes());
        bytes.extend(frame);
    }
    std::fs::write(&bare, bytes).unwrap();
    let (code, stdout, stderr) =
        run_binary(&["replay", bare.to_str().unwrap(), "--max", "--no-server"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("replayed 2 messages (0 duplicates, 1 undecodable) into 2 events"),
        "{stdout}"
    );

    // A damaged record names where it is in the file.
    let rec = dir.path().join("bad.tikrec");
    let mut bytes = MAGIC.to_vec();
    bytes.extend(encode_record(0, RecordKind::PushFrame, &frames[0]));
    let offset = bytes.len();
    let mut bad = encode_record(1, RecordKind::PushFrame, &frames[1]);
    bad[8] = 7;
    bytes.extend(bad);
    std::fs::write(&rec, bytes).unwrap();
    let (code, _, stderr) = run_binary(&["replay", rec.to_str().unwrap(), "--max", "--no-server"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the record at byte offset {offset} (record 1) has kind 7"
        )),
        "{stderr}"
    );
}

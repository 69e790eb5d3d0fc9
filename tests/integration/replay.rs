//! `tikrelay replay`: the three file formats through the pipeline, `--loop`, and the
//! benchmark line of `--max --no-server` from the real binary.

use std::path::Path;
use std::time::Duration;

use prost::Message as _;
use serde_json::Value;
use tikrelay::cli::ReplayArgs;
use tikrelay::recorder::{MAGIC, RecordKind, encode_record};
use tikrelay::sources::demo::DemoStream;

use crate::support::{binary, common_args};

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
    // The JSONL of that replay replays to the same events.
    let second = replay(&dir.path().join("a.jsonl"), &dir.path().join("b.jsonl")).await;
    assert_eq!(first, second);
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
    let out = std::process::Command::new(binary())
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

    let out = std::process::Command::new(binary())
        .args(["replay", "/nonexistent/x.tikrec", "--no-server"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
}

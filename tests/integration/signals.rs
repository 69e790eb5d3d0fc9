//! Stopping the real binary with SIGTERM or SIGHUP saves what Ctrl-C saves: alerts queued a
//! moment before the signal (well inside the saver's one-second debounce) and the totals are
//! there after a restart, in order, and the restarted relay serves them.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{RelayProcess, get_json, pending_alert_ids, post_test_event};

async fn stop_with_and_restart(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let args = ["demo", "--rate", "0", "--port", "0", "--data-dir", data];
    let mut first = RelayProcess::start(&args);
    let base = first.url("");
    for i in 0..4 {
        let user = json!({"id": format!("s{i}"), "unique_id": format!("sig{i}"), "nickname": format!("Sig {i}")});
        assert_eq!(
            post_test_event(&base, json!({"type": "follow", "user": user})).await,
            200
        );
    }
    // Accepted means queued: wait until the four alerts are pending, then stop at once.
    let mut before = Vec::new();
    for _ in 0..200 {
        let (ids, _) = pending_alert_ids(&base, "main").await;
        if ids.len() == 4 {
            before = ids;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(before.len(), 4, "four follows wait for a player");
    assert_eq!(
        first.signal(signal),
        Some(0),
        "SIG{signal} ends the relay cleanly; stderr:\n{}",
        first.stderr.lock().unwrap()
    );
    assert!(
        first
            .stderr
            .lock()
            .unwrap()
            .contains(&format!("SIG{signal}: shutting down")),
        "the log says why it stopped"
    );

    let second = RelayProcess::start(&args);
    let (after, q) = pending_alert_ids(&second.url(""), "main").await;
    assert_eq!(after, before, "the same pending alerts, in order: {q}");
    let state: Value = get_json(second.url("/api/state")).await;
    assert_eq!(state["totals"]["follows"], 4, "{state}");
    // Still serving, and still accepting.
    assert_eq!(
        post_test_event(&second.url(""), json!({"type": "share"})).await,
        200
    );
    let health = crate::support::http()
        .get(second.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert!(health.status().is_success());
}

#[tokio::test]
async fn sigterm_saves_fresh_alerts_like_ctrl_c() {
    stop_with_and_restart("TERM").await;
}

#[tokio::test]
async fn sighup_saves_fresh_alerts_like_ctrl_c() {
    stop_with_and_restart("HUP").await;
}

#[tokio::test]
async fn sigterm_flushes_the_event_recording() {
    let dir = tempfile::tempdir().unwrap();
    // 200 frames at the bare-stream pace of 10 a second: the replay is still running when the
    // signal comes.
    let bare = dir.path().join("frames.bin");
    let mut bytes = Vec::new();
    for frame in crate::replay::comment_frames(31, 200) {
        bytes.extend((frame.len() as u32).to_be_bytes());
        bytes.extend(frame);
    }
    std::fs::write(&bare, bytes).unwrap();
    let out = dir.path().join("events.jsonl");
    let mut relay = RelayProcess::start(&[
        "replay",
        bare.to_str().unwrap(),
        "--port",
        "0",
        "--jsonl",
        out.to_str().unwrap(),
    ]);
    let mut relayed = 0;
    for _ in 0..400 {
        let state: Value = get_json(relay.url("/api/state")).await;
        relayed = state["totals"]["comments"].as_u64().unwrap_or(0);
        if relayed >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(relayed >= 5, "the replay runs");
    assert_eq!(relay.signal("TERM"), Some(0));
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("whole JSON lines"))
        .collect();
    assert!(
        lines.len() as u64 >= relayed,
        "every relayed event is in the recording: {} of {relayed}",
        lines.len()
    );
    assert!(lines.len() < 200, "stopped early");
}

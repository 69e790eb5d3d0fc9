//! Memory and input limits: leaderboards bounded in memory with an exact top, totals that
//! saturate instead of wrapping, recent events bounded in bytes, a hard cap on pending alerts
//! and action backlogs, and a config file that cannot hang or flood `check`. Each test also
//! checks that the relay keeps serving and that what it accepted is still there.

use std::time::Duration;

use serde_json::{Value, json};
use tikrelay::events::{Event, EventKind, Source, User};
use tikrelay::pipeline::Input;
use tikrelay::stats::{LEADERBOARD_SIZE, MAX_LEADERBOARD_ENTRIES};

use crate::support::{InProcess, WAIT, binary_command, get_json, post_test_event};

fn like(i: u64, user: &str, count: u64) -> Input {
    let mut e = Event::new(
        EventKind::Like { count, total: 0 },
        format!("like-{i}"),
        Source::Test,
    );
    e.user = Some(User {
        id: user.to_string(),
        unique_id: user.to_string(),
        nickname: user.to_string(),
        ..Default::default()
    });
    Input::Event(Box::new(e))
}

/// Polls `/api/state` until `done` holds; returns the state.
async fn state_when(relay: &InProcess, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let state = get_json(relay.url("/api/state")).await;
        if done(&state) || tokio::time::Instant::now() > deadline {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn assert_still_serving(relay: &InProcess) {
    let follows = |s: &Value| s["totals"]["follows"].as_u64().unwrap_or(0);
    let before = follows(&get_json(relay.url("/api/state")).await);
    assert_eq!(
        post_test_event(&relay.url(""), json!({"type": "follow"})).await,
        200
    );
    let state = state_when(relay, |s| follows(s) == before + 1).await;
    assert_eq!(
        follows(&state),
        before + 1,
        "the relay still relays: {state}"
    );
}

#[tokio::test]
async fn a_hundred_thousand_likers_stay_bounded_and_the_shown_top_is_exact() {
    let relay = InProcess::start(&[]).await;
    const LIKERS: u64 = 100_000;
    let mut expected_total = 0u64;
    let mut top = [0u64; LEADERBOARD_SIZE];
    for i in 0..LIKERS {
        // The top viewers like in ten rounds spread over the flood.
        if i % (LIKERS / 10) == 0 {
            for (t, score) in top.iter_mut().enumerate() {
                let count = 10_000 + t as u64 * 100;
                *score += count;
                expected_total += count;
                relay
                    .input
                    .send(like(i * 100 + t as u64, &format!("top{t}"), count))
                    .await
                    .unwrap();
            }
        }
        let count = 1 + i % 3;
        expected_total += count;
        relay
            .input
            .send(like(LIKERS * 1000 + i, &format!("viewer{i}"), count))
            .await
            .unwrap();
    }
    let state = state_when(&relay, |s| s["totals"]["likes"] == expected_total).await;
    assert_eq!(
        state["totals"]["likes"], expected_total,
        "every like counted"
    );
    let held = relay.hub.stats().session_state().likers.len();
    assert!(
        held <= MAX_LEADERBOARD_ENTRIES,
        "{held} likers held in memory, over {MAX_LEADERBOARD_ENTRIES}"
    );
    let shown: Vec<(String, u64)> = state["top_likers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["user"]["id"].as_str().unwrap().to_string(),
                e["score"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut want: Vec<(String, u64)> = top
        .iter()
        .enumerate()
        .map(|(t, s)| (format!("top{t}"), *s))
        .collect();
    want.reverse();
    assert_eq!(shown, want, "the shown top, with exact scores");
    assert_still_serving(&relay).await;
}

#[tokio::test]
async fn absurd_counts_saturate_the_totals_instead_of_wrapping() {
    let relay = InProcess::start(&[]).await;
    let base = relay.url("");
    let huge = u64::MAX - 1;
    let user = json!({"id": "rich", "unique_id": "rich", "nickname": "Rich"});
    for _ in 0..2 {
        assert_eq!(
            post_test_event(
                &base,
                json!({"type": "like", "count": huge, "total": 0, "user": user})
            )
            .await,
            200
        );
        assert_eq!(
            post_test_event(
                &base,
                json!({"type": "gift", "count": 1, "diamonds_total": huge, "user": user,
                       "gift": {"id": 1, "name": "Universe", "diamonds": huge, "image_url": null}})
            )
            .await,
            200
        );
    }
    let state = state_when(&relay, |s| s["totals"]["gifts"] == 2).await;
    assert_eq!(state["totals"]["likes"], u64::MAX, "{state}");
    assert_eq!(state["totals"]["diamonds"], u64::MAX, "{state}");
    assert_eq!(state["top_likers"][0]["score"], u64::MAX, "{state}");
    assert_eq!(state["top_gifters"][0]["score"], u64::MAX, "{state}");
    assert_still_serving(&relay).await;
}

#[tokio::test]
async fn recent_events_are_bounded_in_bytes() {
    let relay = InProcess::start(&[]).await;
    let text = "x".repeat(60_000);
    for i in 0..200 {
        assert_eq!(
            post_test_event(
                &relay.url(""),
                json!({"type": "comment", "text": text, "id": format!("big-{i}")})
            )
            .await,
            200
        );
    }
    let state = state_when(&relay, |s| s["totals"]["comments"] == 200).await;
    assert_eq!(state["totals"]["comments"], 200, "every comment relayed");
    let events = get_json(relay.url("/api/events?limit=500")).await;
    let events = events
        .as_array()
        .or_else(|| events["events"].as_array())
        .unwrap()
        .clone();
    let bytes: usize = events.iter().map(|e| e.to_string().len()).sum();
    assert!(
        bytes <= tikrelay::hub::RECENT_EVENTS_BYTES,
        "{} events of {bytes} bytes kept",
        events.len()
    );
    assert!(events.len() > 100, "{} kept", events.len());
    assert_eq!(
        events.last().unwrap()["id"],
        "big-199",
        "the newest is kept"
    );
    assert_still_serving(&relay).await;
}

#[tokio::test]
async fn pending_alerts_have_a_hard_cap_whatever_the_settings() {
    use std::collections::BTreeMap;
    use tikrelay::alerts::{AlertQueues, MAX_PENDING};
    use tikrelay::config::QueueConfig;
    let hub = tikrelay::hub::Hub::new(Default::default());
    let mut queues = BTreeMap::new();
    queues.insert(
        "main".to_string(),
        QueueConfig {
            default_duration_ms: 1000,
            max_pending: usize::MAX,
        },
    );
    let alerts = AlertQueues::new(&queues, &hub);
    let event = Event::new(EventKind::Follow, "f", Source::Test);
    // Fill the queue past the cap in one go (a saved file), then add through the front door.
    let first = alerts
        .enqueue("main", "t", None, event.clone(), json!({}))
        .unwrap();
    let mut saved = alerts.saved();
    let one = saved.queues["main"].pending[0].clone();
    let pending = &mut saved.queues.get_mut("main").unwrap().pending;
    pending.clear();
    for i in 0..MAX_PENDING + 3 {
        let mut a = one.clone();
        a.alert_id = format!("{first}-{i}");
        pending.push(a);
    }
    let fresh = AlertQueues::new(&queues, &hub);
    fresh.restore(saved);
    let last = fresh
        .enqueue("main", "t", None, event.clone(), json!({}))
        .unwrap();
    let saved = fresh.saved();
    let pending = &saved.queues["main"].pending;
    assert_eq!(pending.len(), MAX_PENDING);
    assert_eq!(pending.last().unwrap().alert_id, last, "the newest is kept");
}

#[test]
fn action_backlogs_are_capped_whatever_the_config_says() {
    let text = "[rcon]\naddr = \"127.0.0.1:25575\"\npassword = \"p\"\nqueue_capacity = 1000000000000\n\n[webhooks]\nqueue_capacity = 1000000000000\n";
    let config = tikrelay::config::Config::parse(text, "t.toml").unwrap();
    let max = tikrelay::triggers::MAX_ACTION_BACKLOG;
    assert_eq!(config.rcon.unwrap().queue_capacity, max);
    assert_eq!(config.webhooks.queue_capacity, max);
}

/// Runs the binary; fails the test if it does not end within [`WAIT`].
fn run_bounded(args: &[&str]) -> (Option<i32>, String) {
    let mut child = binary_command()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tikrelay {args:?} did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_config_that_is_a_device_a_pipe_or_huge_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let big = dir.path().join("big.toml");
    let mut text = String::from("# padding\n");
    while text.len() <= tikrelay::config::MAX_CONFIG_BYTES as usize {
        text.push_str("# a comment line that makes the file large, as a mistake would\n");
    }
    std::fs::write(&big, text).unwrap();
    for (path, says) in [
        ("/dev/zero", "not a regular file"),
        (fifo.to_str().unwrap(), "not a regular file"),
        (dir.path().to_str().unwrap(), "is a folder"),
        (big.to_str().unwrap(), "is larger than 1048576 bytes"),
    ] {
        for cmd in [
            &["check", "--config", path][..],
            &["--port", "0", "--config", path, "demo"],
        ] {
            let (code, err) = run_bounded(cmd);
            assert_eq!(code, Some(2), "{cmd:?}: {err}");
            assert!(err.contains(says), "{cmd:?}: {err}");
        }
    }
}

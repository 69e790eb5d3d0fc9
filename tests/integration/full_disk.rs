//! A full data dir, for real: the relay runs in its own mount namespace on a 512 KiB tmpfs
//! (`unshare -m`, as root; CI runs as root), and the test fills that filesystem through
//! `/proc/PID/root`. Saving fails once, is logged once with what to do, leaves no temp file,
//! and the pending alerts stay served from memory; when space is freed the relay saves them by
//! itself (logged once) and goes on serving.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support::{RelayProcess, WAIT, binary, pending_alert_ids, post_test_event};

/// Whether this machine lets the test make a mount namespace and mount a tmpfs; when not, the
/// test is skipped with a visible note (and fails under CI, which runs as root).
fn can_mount() -> bool {
    let ok = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs -o size=64k t /mnt"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let in_ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
        assert!(
            !in_ci,
            "the full-disk test needs root (unshare -m and mount -t tmpfs) in CI"
        );
        let _ = writeln!(
            std::io::stderr(),
            "\n********\nSKIPPED: full-disk test: cannot mount a tmpfs in a mount namespace here (run as root)\n********\n"
        );
    }
    ok
}

/// Writes zeros into `path` until the filesystem is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 4096];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "ENOSPC, got {e}");
                return;
            }
        }
    }
}

/// Waits until the relay's stderr satisfies `done`.
async fn log_until(relay: &RelayProcess, what: &str, done: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(&relay.stderr.lock().unwrap()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waiting for {what}; stderr:\n{}",
            relay.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn follow(base: &str, i: usize) {
    let user = json!({"id": format!("d{i}"), "unique_id": format!("disk{i}"), "nickname": format!("Disk {i}")});
    assert_eq!(
        post_test_event(base, json!({"type": "follow", "user": user})).await,
        200
    );
}

async fn wait_pending(base: &str, n: usize) -> Vec<String> {
    for _ in 0..400 {
        let (ids, _) = pending_alert_ids(base, "main").await;
        if ids.len() == n {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{n} alerts never became pending");
}

#[tokio::test]
async fn a_full_data_dir_is_logged_once_leaves_no_temp_files_and_loses_nothing() {
    if !can_mount() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let data_arg = data.to_str().unwrap();
    let mut command = Command::new("unshare");
    command
        .args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            // exec: the relay keeps this process id, so /proc/PID/root shows its tmpfs.
            "mount -t tmpfs -o size=512k tikrelay-full \"$0\" && exec \"$@\"",
            data_arg,
            binary(),
            "demo",
            "--rate",
            "0",
            "--port",
            "0",
            "--data-dir",
            data_arg,
        ])
        .env("RUST_LOG", "info,tikrelay::persist=debug");
    let mut relay = RelayProcess::start_command(command);
    let base = relay.url("");
    // The relay's view of its data dir: the tmpfs, not the empty folder the test made.
    let seen: PathBuf = format!("/proc/{}/root{}", relay.child.id(), data.display()).into();
    let demo = seen.join("demo");
    assert!(demo.is_dir(), "the relay made its demo folder on the tmpfs");
    assert!(
        !data.join("demo").exists(),
        "the tmpfs is private to the relay"
    );

    fill(&seen.join("filler"));
    for i in 0..3 {
        follow(&base, i).await;
    }
    wait_pending(&base, 3).await;
    log_until(&relay, "the save error", |e| e.contains("cannot save")).await;
    // More changes while the disk stays full: more failed saves, no more error lines.
    let retries = |e: &str| e.matches("still fails").count();
    let before = retries(&relay.stderr.lock().unwrap());
    for i in 3..6 {
        follow(&base, i).await;
    }
    let accepted = wait_pending(&base, 6).await;
    log_until(&relay, "another failed save", |e| retries(e) > before).await;
    {
        let log = relay.stderr.lock().unwrap();
        assert_eq!(log.matches("cannot save").count(), 1, "logged once:\n{log}");
        assert!(log.contains("free disk space"), "says what to do:\n{log}");
    }
    let temp: Vec<String> = std::fs::read_dir(&demo)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(temp.is_empty(), "temp files left behind: {temp:?}");

    // Room again: saved without any new change, logged once.
    std::fs::remove_file(seen.join("filler")).unwrap();
    log_until(&relay, "saving works again", |e| e.contains("works again")).await;
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(demo.join("alerts.json")).unwrap()).unwrap();
    let saved_ids: Vec<&str> = saved["queues"]["main"]["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap())
        .collect();
    assert_eq!(saved_ids, accepted, "every accepted alert saved, in order");
    let session: serde_json::Value =
        serde_json::from_slice(&std::fs::read(demo.join("session.json")).unwrap()).unwrap();
    assert_eq!(session["totals"]["follows"], 6);

    // Still serving and accepting.
    follow(&base, 6).await;
    wait_pending(&base, 7).await;
    assert_eq!(relay.signal("TERM"), Some(0));
}

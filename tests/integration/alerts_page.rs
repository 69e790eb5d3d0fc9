//! The default alerts page in a real headless Chromium: a follow appears with the viewer's
//! nickname, animated, and hostile nicknames stay text.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::support::browser::{Browser, require_browser};
use crate::support::{InProcess, post_test_event};

const WAIT: Duration = Duration::from_secs(15);

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_page_animates_a_follow_and_keeps_names_as_text() {
    let Some(chromium) = require_browser() else {
        return;
    };
    let relay = InProcess::start(&[]).await;
    let browser = Browser::launch(&chromium).await;
    // A text field in the URL (one OBS source's setting) wins over the config's subtitle.
    let page = browser
        .new_page(&relay.url("/overlays/default/alerts?follow_text=joined%20the%20club"))
        .await;
    page.wait_for("window.TikRelay && window.TikRelay.connected", WAIT)
        .await;
    let title = page.title().await;

    let hostile = "<img src=x onerror=\"document.title='pwned'\">";
    let follow = json!({"type": "follow", "user": {"id": "42", "unique_id": "h", "nickname": hostile, "avatar_url": null}});
    assert_eq!(post_test_event(&relay.url(""), follow).await, 200);

    page.wait_for(
        "(() => { const a = document.getElementById('alert'); return a && !a.hidden && a.classList.contains('enter'); })()",
        WAIT,
    )
    .await;
    let name = page
        .eval("document.querySelector('.alert-name').textContent")
        .await;
    assert_eq!(name, hostile, "the nickname is shown as literal text");
    let action = page
        .eval("document.querySelector('.alert-action').textContent")
        .await;
    assert_eq!(action, "joined the club");
    let images = page
        .eval("document.querySelectorAll('img[src=\"x\"]').length")
        .await;
    assert_eq!(images, 0, "no element was made from the nickname");
    let animation = page
        .eval("getComputedStyle(document.getElementById('alert')).animationName")
        .await;
    assert_eq!(animation, "alert-in");
    page.screenshot(&screenshot_dir().join("alerts-follow.png"))
        .await;
    assert_eq!(page.title().await, title, "no script ran from the nickname");
    assert!(
        page.console_errors().is_empty(),
        "{:#?}",
        page.console_errors()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_lists_played_alerts_and_replays_them_on_the_playing_page() {
    let Some(chromium) = require_browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tikrelay.toml");
    std::fs::write(
        &config,
        r#"
[queues.main]
default_duration_ms = 1000

[[trigger]]
on = "follow"
alert = { queue = "main", title = "{{name}}", subtitle = "followed!", duration_ms = 1000 }
"#,
    )
    .unwrap();
    let relay = InProcess::start(&["--config", config.to_str().unwrap()]).await;
    let browser = Browser::launch(&chromium).await;
    let player = browser
        .new_page(&relay.url("/overlays/default/alerts"))
        .await;
    player
        .wait_for("window.TikRelay && window.TikRelay.connected", WAIT)
        .await;
    let dashboard = browser.new_page(&relay.url("/")).await;
    dashboard
        .wait_for("window.TikRelay && window.TikRelay.connected", WAIT)
        .await;

    let follow = json!({"type": "follow", "user": {"id": "7", "unique_id": "replay_me", "nickname": "Replay Me", "avatar_url": null}});
    assert_eq!(post_test_event(&relay.url(""), follow).await, 200);
    let first_id = player
        .wait_for(
            "(() => { const a = document.getElementById('alert'); return !a.hidden && a.dataset.alertId; })()",
            WAIT,
        )
        .await;
    // Once played, the alert is in the dashboard's history with a replay button.
    dashboard
        .wait_for(
            "[...document.querySelectorAll('#history li')].some(li => li.textContent.includes('Replay Me') && li.querySelector('button'))",
            WAIT,
        )
        .await;
    player
        .wait_for("document.getElementById('alert').hidden", WAIT)
        .await;
    dashboard
        .eval("[...document.querySelectorAll('#history li')].find(li => li.textContent.includes('Replay Me')).querySelector('button').click()")
        .await;
    let replayed_id = player
        .wait_for(
            &format!(
                "(() => {{ const a = document.getElementById('alert'); return !a.hidden && a.dataset.alertId !== {first_id} && a.dataset.alertId; }})()"
            ),
            WAIT,
        )
        .await;
    assert_ne!(replayed_id, first_id, "a replay is a new alert");
    let name = player
        .eval("document.querySelector('.alert-name').textContent")
        .await;
    assert_eq!(name, "Replay Me");

    // Pause and resume from the dashboard.
    dashboard
        .eval("[...document.querySelectorAll('#queues button')].find(b => b.textContent === 'Pause').click()")
        .await;
    dashboard
        .wait_for(
            "document.getElementById('queues').textContent.includes('paused')",
            WAIT,
        )
        .await;
    dashboard
        .wait_for("[...document.querySelectorAll('#queues button')].some(b => b.textContent === 'Resume')", WAIT)
        .await;
    dashboard
        .eval("[...document.querySelectorAll('#queues button')].find(b => b.textContent === 'Resume').click()")
        .await;
    dashboard
        .wait_for(
            "document.getElementById('queues').textContent.includes('running')",
            WAIT,
        )
        .await;
    assert!(
        dashboard.console_errors().is_empty(),
        "{:#?}",
        dashboard.console_errors()
    );
    assert!(
        player.console_errors().is_empty(),
        "{:#?}",
        player.console_errors()
    );
}

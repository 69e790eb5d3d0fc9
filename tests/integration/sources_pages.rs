//! Issue 9's streams and sources in a real browser: overlay pages that follow one stream with
//! `?stream=` in their URL (events and that stream's totals), and the dashboard's sources
//! panel starting, refusing and stopping sources.

use serde_json::json;

use crate::support::browser::{Browser, require_browser};
use crate::support::{InProcess, WAIT, get_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlay_pages_follow_the_stream_in_their_url() {
    let Some(chromium) = require_browser() else {
        return;
    };
    let relay = InProcess::start(&[]).await;
    let base = relay.url("");
    let browser = Browser::launch(&chromium).await;
    let chat = browser
        .new_page(&relay.url("/overlays/default/chat?stream=alpha"))
        .await;
    let board = browser
        .new_page(&relay.url("/overlays/default/topgifters?stream=beta"))
        .await;
    for page in [&chat, &board] {
        page.wait_for("window.TikRelay && window.TikRelay.connected", WAIT)
            .await;
    }
    let user = |id: &str, name: &str| json!({"id": id, "unique_id": name, "nickname": name, "avatar_url": null});
    let gift = json!({"id": 11046, "name": "Galaxy", "diamonds": 1000, "streakable": false});
    for event in [
        json!({"type": "comment", "stream": "beta", "user": user("1", "Bea"), "text": "from beta"}),
        json!({"type": "comment", "stream": "alpha", "user": user("2", "Al"), "text": "from alpha"}),
        json!({"type": "gift", "stream": "alpha", "user": user("2", "Al"), "count": 3, "gift": gift}),
        json!({"type": "gift", "stream": "beta", "user": user("1", "Bea"), "count": 1, "gift": gift}),
        json!({"type": "comment", "stream": "alpha", "user": user("2", "Al"), "text": "alpha again"}),
    ] {
        assert_eq!(crate::support::post_test_event(&base, event).await, 200);
    }
    chat.wait_for(
        "[...document.querySelectorAll('.chat-text')].some(e => e.textContent === 'alpha again')",
        WAIT,
    )
    .await;
    let texts = chat
        .eval("[...document.querySelectorAll('.chat-text')].map(e => e.textContent)")
        .await;
    assert_eq!(texts, json!(["from alpha", "alpha again"]));
    board
        .wait_for("document.querySelectorAll('.top-row').length === 1", WAIT)
        .await;
    let rows = board
        .eval("[...document.querySelectorAll('.top-row')].map(r => r.querySelector('.name').textContent + ' ' + r.querySelector('.top-score').textContent)")
        .await;
    assert_eq!(
        rows,
        json!(["Bea 1,000 💎"]),
        "beta's board, not the combined one"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_lists_sources_starts_a_demo_and_stops_it() {
    let Some(chromium) = require_browser() else {
        return;
    };
    let relay = InProcess::start(&[]).await;
    let base = relay.url("");
    let browser = Browser::launch(&chromium).await;
    let page = browser.new_page(&relay.url("/")).await;
    page.wait_for("!!document.getElementById('source-demo')", WAIT)
        .await;
    page.eval(
        "(() => { const f = document.getElementById('source-demo');
                  f.elements.stream.value = 'panel<b>';
                  f.requestSubmit(); })()",
    )
    .await;
    // A bad name is refused with the relay's message, and nothing starts.
    page.wait_for(
        "document.getElementById('sources-status').textContent.includes('not a stream name')",
        WAIT,
    )
    .await;
    assert_eq!(
        get_json(format!("{base}/api/sources")).await["sources"],
        json!([])
    );
    page.eval(
        "(() => { const f = document.getElementById('source-demo');
                  f.elements.stream.value = 'panel';
                  f.requestSubmit(); })()",
    )
    .await;
    page.wait_for(
        "[...document.querySelectorAll('#sources-list li')].some(li => li.textContent.includes('stream panel') && li.querySelector('.pill').textContent === 'live')",
        WAIT,
    )
    .await;
    let listed = get_json(format!("{base}/api/sources")).await;
    assert_eq!(listed["sources"][0]["stream"], "panel");
    page.eval("document.querySelector('#sources-list li button.stop').click()")
        .await;
    page.wait_for(
        "document.querySelector('#sources-list li .pill')?.textContent === 'ended'",
        WAIT,
    )
    .await;
    let listed = get_json(format!("{base}/api/sources")).await;
    assert_eq!(listed["sources"][0]["state"], "ended");
    assert_eq!(listed["sources"][0]["reason"], "stopped");
    // The refused name's 400 is the only error the page saw.
    let errors: Vec<String> = page
        .console_errors()
        .into_iter()
        .filter(|e| !e.contains("status of 400"))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    browser.close().await;
}

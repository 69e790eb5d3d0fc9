//! OBS actions against the real OBS Studio (Debian's 29 with obs-websocket 5.1) under Xvfb:
//! a follow switches the scene and back, overlapping switches, a timed show and hide of a
//! source, a hostile nickname into a text source, a wrong password, request batches,
//! re-identification and the dashboard's test route. Each test starts its own OBS (see
//! `support::obs`); without OBS installed they skip, or fail under `CI`.

use std::time::Instant;

use serde_json::{Value, json};
use tikrelay::obs::protocol::subscription;
use tikrelay::obs::{ObsClient, ObsError};

use crate::support::obs::{Obs, next_event, require_obs};
use crate::support::{InProcess, http};

/// A relay whose config is `obs.config_table()` plus `triggers`.
async fn relay(obs: &Obs, triggers: &str) -> (InProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tikrelay.toml");
    std::fs::write(&path, format!("{}\n{triggers}", obs.config_table())).unwrap();
    let relay = InProcess::start(&["--config", path.to_str().unwrap()]).await;
    (relay, dir)
}

async fn post_event(relay: &InProcess, event: Value) {
    let r = http()
        .post(relay.url("/api/test"))
        .json(&event)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
}

async fn program(client: &mut ObsClient) -> String {
    client
        .request("GetCurrentProgramScene", Value::Null)
        .await
        .unwrap()["currentProgramSceneName"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn scene_change(
    events: &mut tokio::sync::broadcast::Receiver<tikrelay::obs::ObsEvent>,
) -> String {
    next_event(events, "CurrentProgramSceneChanged").await["sceneName"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_follow_switches_the_scene_and_back_after_for_ms() {
    let Some((bin, xvfb)) = require_obs() else {
        return;
    };
    let obs = Obs::start(&bin, &xvfb).await;
    let mut c = obs.client(subscription::ALL).await;
    obs.set_up_scenes(&mut c, &["Main", "Boss fight"]).await;
    let (relay, _dir) = relay(
        &obs,
        "[[trigger]]\non = \"follow\"\nobs = { scene = \"Boss fight\", for_ms = 1500 }\n",
    )
    .await;
    let mut events = c.events();
    let t0 = Instant::now();
    post_event(
        &relay,
        json!({"type": "follow", "user": {"nickname": "Ana"}}),
    )
    .await;
    assert_eq!(scene_change(&mut events).await, "Boss fight");
    let to_switch = t0.elapsed();
    assert_eq!(scene_change(&mut events).await, "Main", "{}", obs.log());
    let to_return = t0.elapsed();
    assert_eq!(program(&mut c).await, "Main");
    eprintln!(
        "measured: follow posted -> OBS scene switched in {to_switch:?}; back to Main after {to_return:?} (for_ms = 1500)"
    );
}

#[tokio::test]
async fn overlapping_timed_switches_return_in_order_to_the_scene_before_the_first() {
    let Some((bin, xvfb)) = require_obs() else {
        return;
    };
    let obs = Obs::start(&bin, &xvfb).await;
    let mut c = obs.client(subscription::ALL).await;
    obs.set_up_scenes(&mut c, &["Main", "Boss fight", "Party"])
        .await;
    let (relay, _dir) = relay(
        &obs,
        "[[trigger]]\non = \"follow\"\nobs = { scene = \"Boss fight\", for_ms = 4000 }\n\
         [[trigger]]\non = \"share\"\nobs = { scene = \"Party\", for_ms = 800 }\n",
    )
    .await;
    let mut events = c.events();
    post_event(&relay, json!({"type": "follow"})).await;
    assert_eq!(scene_change(&mut events).await, "Boss fight");
    let t0 = Instant::now();
    post_event(&relay, json!({"type": "share"})).await;
    let mut seen = vec![scene_change(&mut events).await];
    eprintln!(
        "measured: share posted -> OBS scene switched in {:?}",
        t0.elapsed()
    );
    for _ in 0..2 {
        seen.push(scene_change(&mut events).await);
    }
    assert_eq!(
        seen,
        ["Party", "Boss fight", "Main"],
        "the shorter switch gives the longer one back, then the scene from before"
    );
    assert_eq!(program(&mut c).await, "Main");
}

#[tokio::test]
async fn a_timed_show_shows_the_source_and_hides_it_again() {
    let Some((bin, xvfb)) = require_obs() else {
        return;
    };
    let obs = Obs::start(&bin, &xvfb).await;
    let mut c = obs.client(subscription::ALL).await;
    obs.set_up_scenes(&mut c, &["Main"]).await;
    let item = obs.add_text(&mut c, "Main", "Confetti", "🎉", false).await;
    let (relay, _dir) = relay(
        &obs,
        "[[trigger]]\non = \"share\"\nobs = { source = \"Confetti\", scene = \"Main\", show_ms = 800 }\n",
    )
    .await;
    let mut events = c.events();
    post_event(&relay, json!({"type": "share"})).await;
    let mut states = Vec::new();
    while states.len() < 2 {
        let ev = next_event(&mut events, "SceneItemEnableStateChanged").await;
        assert_eq!(ev["sceneName"], "Main");
        assert_eq!(ev["sceneItemId"], item);
        let enabled = ev["sceneItemEnabled"].as_bool().unwrap();
        // Under load OBS may deliver add_text's own "hidden" change after this subscription
        // began; a hide before the show is that, not the relay's.
        if states.is_empty() && !enabled {
            continue;
        }
        states.push(enabled);
    }
    assert_eq!(states, [true, false]);
    let now = c
        .request(
            "GetSceneItemEnabled",
            json!({"sceneName": "Main", "sceneItemId": item}),
        )
        .await
        .unwrap();
    assert_eq!(now["sceneItemEnabled"], false);
}

#[tokio::test]
async fn a_hostile_nickname_reaches_a_text_source_as_plain_text() {
    let Some((bin, xvfb)) = require_obs() else {
        return;
    };
    let obs = Obs::start(&bin, &xvfb).await;
    let mut c = obs.client(subscription::ALL).await;
    obs.set_up_scenes(&mut c, &["Main"]).await;
    obs.add_text(&mut c, "Main", "Last follower", "nobody yet", true)
        .await;
    let (relay, _dir) = relay(
        &obs,
        "[[trigger]]\non = \"follow\"\nobs = { text_source = \"Last follower\", text = \"{{user.nickname}}\" }\n",
    )
    .await;
    let hostile =
        "<b>Bob</b> {{trigger}} & \"q\" 'x' <script>alert(1)</script>\n🙂 \u{202e}evil\u{7}";
    post_event(
        &relay,
        json!({"type": "follow", "user": {"nickname": hostile}}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + crate::support::WAIT;
    let text = loop {
        let settings = c
            .request("GetInputSettings", json!({"inputName": "Last follower"}))
            .await
            .unwrap();
        let text = settings["inputSettings"]["text"]
            .as_str()
            .unwrap()
            .to_string();
        if text != "nobody yet" {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the text never changed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    // Exactly the characters, markup and braces included (not escaped, not evaluated); only
    // the control characters (the newline, the bell) are gone.
    assert_eq!(
        text,
        "<b>Bob</b> {{trigger}} & \"q\" 'x' <script>alert(1)</script>🙂 \u{202e}evil"
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_what_to_do() {
    let Some((bin, xvfb)) = require_obs() else {
        return;
    };
    let obs = Obs::start(&bin, &xvfb).await;
    let err = ObsClient::connect(&obs.settings(Some("not-the-password")), 0)
        .await
        .unwrap_err();
    assert!(matches!(err, ObsError::AuthFailed), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("4009")
            && msg.contains("TIKRELAY_OBS_PASSWORD")
            && msg.contains("WebSocket Server Settings"),
        "{msg}"
    );
    let err = ObsClient::connect(&obs.settings(None), 0)
        .await
        .unwrap_err();
    assert!(matches!(err, ObsError::PasswordNeeded), "{err:?}");

    // The dashboard's test route says the same, and reports the version when all is right.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        format!("[obs]\nport = {}\npassword = \"wrong\"\n", obs.port),
    )
    .unwrap();
    let bad = InProcess::start(&["--config", path.to_str().unwrap()]).await;
    let r = http().post(bad.url("/api/obs/test")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["ok"], false);
    assert!(
        body["error"].as_str().unwrap().contains("password"),
        "{body}"
    );
    assert!(
        !body.to_string().contains("wrong\""),
        "the password is never shown: {body}"
    );

    let (good, _dir) = relay(&obs, "").await;
    let r = http().post(good.url("/api/obs/test")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["ok"], true, "{body}");
    assert!(
        body["websocket_version"]
            .as_str()
            .unwrap()
            .starts_with("5."),
        "{body}"
    );
    assert!(body["obs_version"].as_str().is_some(), "{body}");
    let r = http()
        .post(good.url("/api/obs/test"))
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "other origins may not probe OBS");
}

#[tokio::test]
async fn batches_run_in_order_and_reidentify_changes_the_subscriptions() {
    let Some((bin, xvfb)) = require_obs() else {
        return;
    };
    let obs = Obs::start(&bin, &xvfb).await;
    let mut setup = obs.client(subscription::ALL).await;
    obs.set_up_scenes(&mut setup, &["Main", "Boss fight"]).await;

    let mut c = obs.client(0).await;
    let batch = [
        tikrelay::obs::client::BatchRequest::new("GetCurrentProgramScene", Value::Null),
        tikrelay::obs::client::BatchRequest::new(
            "SetCurrentProgramScene",
            json!({"sceneName": "No such scene"}),
        ),
        tikrelay::obs::client::BatchRequest::new("GetVersion", Value::Null),
    ];
    let results = c.batch(&batch, false).await.unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[0].as_ref().unwrap()["currentProgramSceneName"],
        "Main"
    );
    match &results[1] {
        Err(ObsError::Request {
            code, request_type, ..
        }) => {
            assert_eq!(
                (*code, request_type.as_str()),
                (600, "SetCurrentProgramScene")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(results[2].as_ref().unwrap()["obsWebSocketVersion"].is_string());
    let halted = c.batch(&batch, true).await.unwrap();
    assert_eq!(halted.len(), 2, "haltOnFailure stops after the failure");

    // Identified with no subscriptions, this client only hears scene changes after Reidentify.
    c.reidentify(subscription::SCENES).await.unwrap();
    let mut events = c.events();
    c.request("SetCurrentProgramScene", json!({"sceneName": "Boss fight"}))
        .await
        .unwrap();
    assert_eq!(scene_change(&mut events).await, "Boss fight");
}

#[tokio::test]
async fn the_dashboard_button_reports_the_obs_version() {
    let Some((bin, xvfb)) = require_obs() else {
        return;
    };
    let Some(chromium) = crate::support::browser::require_browser() else {
        return;
    };
    let obs = Obs::start(&bin, &xvfb).await;
    let (relay, _dir) = relay(&obs, "").await;
    let browser = crate::support::browser::Browser::launch(&chromium).await;
    let page = browser.new_page(&relay.url("/")).await;
    page.wait_for(
        "document.getElementById('obs-test') !== null",
        crate::support::WAIT,
    )
    .await;
    page.eval("document.getElementById('obs-test').click()")
        .await;
    page.wait_for(
        "document.getElementById('obs-status').textContent.startsWith('Connected to OBS')",
        crate::support::WAIT,
    )
    .await;
    let status = page
        .eval("document.getElementById('obs-status').textContent")
        .await;
    assert!(
        status.as_str().unwrap().contains("obs-websocket 5."),
        "{status}"
    );
    assert!(
        page.console_errors().is_empty(),
        "{:?}",
        page.console_errors()
    );
}

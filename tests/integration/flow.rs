//! The one-way flow seen from outside: one event, written once, reaches every output as the
//! same bytes (the websocket, `/api/events`, an event recording and a webhook body).

use serde_json::{Value, json};

use tikrelay::recorder::EventRecorder;

use crate::support::hooks::hook_server;
use crate::support::{InProcess, WAIT, WsClient, http, post_test_event};

#[tokio::test]
async fn the_same_event_is_the_same_bytes_on_ws_api_events_a_recording_and_a_webhook() {
    let hook = hook_server(0).await;
    // One webhook trigger per event type sent below; the raw body is the event's JSON.
    let types = ["follow", "gift", "comment", "envelope", "subscribe"];
    let mut toml = String::new();
    for ty in types {
        toml.push_str(&format!(
            "[[trigger]]\nname = \"{ty}\"\non = \"{ty}\"\nwebhook = {{ url = \"{}\" }}\n\n",
            hook.url
        ));
    }
    let config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(config.path(), toml).unwrap();
    let relay = InProcess::start(&["--config", config.path().to_str().unwrap()]).await;
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("events.jsonl");
    // The recorder `--record-events` starts, on the same hub.
    let recorder = EventRecorder::start(&recording, relay.hub.subscribe_events()).unwrap();
    let mut ws = WsClient::connect(&relay.ws_url("/ws")).await;
    let hello: Value = serde_json::from_str(&ws.next_text().await).unwrap();
    assert_eq!(hello["type"], "hello");

    // Hostile text (quotes, backslashes, control characters, line separators, markup, emoji),
    // kinds the fast writer writes (follow, gift, comment) and kinds serde writes (envelope,
    // subscribe).
    let nasty = "Zoë \"<b>\" \\ \n\t\u{0}\u{1f}\u{7f} \u{2028}\u{2029} </script> 🌙✨";
    let viewer = json!({"id": "7", "unique_id": "v\"7", "nickname": nasty, "avatar_url": null});
    let sent = [
        json!({"type": "follow", "user": viewer}),
        json!({"type": "gift", "count": 3, "user": viewer,
               "gift": {"id": 1, "name": nasty, "diamonds": 2, "image_url": null, "streakable": true}}),
        json!({"type": "comment", "text": nasty, "user": viewer}),
        json!({"type": "envelope", "diamonds": 9, "people": 4, "user": viewer}),
        json!({"type": "subscribe", "months": 2, "user": viewer}),
    ];
    for event in &sent {
        assert_eq!(post_test_event(&relay.url(""), event.clone()).await, 200);
    }

    // /ws: the events' frames as they arrived (relay messages such as `state` skipped).
    let mut frames = Vec::new();
    while frames.len() < sent.len() {
        let text = ws.next_text().await;
        let msg: Value = serde_json::from_str(&text).unwrap();
        if types.contains(&msg["type"].as_str().unwrap_or_default()) {
            frames.push(text);
        }
    }
    let got: Vec<&str> = frames
        .iter()
        .map(|f| {
            let v: Value = serde_json::from_str(f).unwrap();
            types.iter().find(|t| v["type"] == **t).copied().unwrap()
        })
        .collect();
    assert_eq!(got, types, "in the order sent");
    assert!(frames[2].contains(r#"\u0000\u001f"#), "{}", frames[2]);

    // /api/events: the same bytes, as one array.
    let body = http()
        .get(relay.url("/api/events"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, format!("[{}]", frames.join(",")));

    // The recording: one line per event, the same bytes.
    recorder.finish().await;
    let lines = std::fs::read_to_string(&recording).unwrap();
    assert_eq!(lines.lines().collect::<Vec<_>>(), frames);

    // Webhook bodies: the same bytes, one request per trigger.
    let deadline = tokio::time::Instant::now() + WAIT;
    while hook.bodies.lock().unwrap().len() < types.len() {
        assert!(tokio::time::Instant::now() < deadline, "webhooks missing");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut bodies = hook.bodies.lock().unwrap().clone();
    bodies.sort_by_key(|(trigger, _)| types.iter().position(|t| t == trigger));
    let bodies: Vec<String> = bodies.into_iter().map(|(_, body)| body).collect();
    assert_eq!(bodies, frames);
}

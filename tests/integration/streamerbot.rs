//! Streamer.bot actions against a local HTTP server (real TCP) that answers as Streamer.bot's
//! HTTP server does: `POST /DoAction`, 204. The first answer is a 503, so the test also shows the
//! worker retrying; the arguments carry a hostile nickname, which arrives inert.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{InProcess, WAIT, post_test_event};

/// What the fake Streamer.bot received: (path, content type, body).
type Received = Arc<Mutex<Vec<(String, String, Value)>>>;

async fn fake_streamerbot(fail_first: usize) -> (std::net::SocketAddr, Received) {
    use warp::Filter;
    let got: Received = Arc::default();
    let g = got.clone();
    let route = warp::post()
        .and(warp::path::full())
        .and(warp::header::<String>("content-type"))
        .and(warp::body::bytes())
        .map(
            move |path: warp::path::FullPath, ct: String, body: bytes::Bytes| {
                let mut got = g.lock().unwrap();
                let body: Value = serde_json::from_slice(&body).expect("DoAction body is JSON");
                got.push((path.as_str().to_string(), ct, body));
                let status = if got.len() <= fail_first {
                    warp::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    warp::http::StatusCode::NO_CONTENT
                };
                warp::reply::with_status("", status)
            },
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (addr, got)
}

#[tokio::test]
async fn a_gift_runs_a_streamerbot_action_with_the_events_fields_made_safe() {
    let (addr, got) = fake_streamerbot(1).await;
    let config = format!(
        r#"
[streamerbot]
host = "{host}"
port = {port}
retry_backoff_ms = 10

[[trigger]]
name = "boss"
on = "gift"
gift = "Rose"
streamerbot = {{ action = "Boss fight", args = {{ user = "{{{{user.nickname}}}}", line = "{{{{name}}}} sent {{{{gift.name}}}} x{{{{count}}}}" }} }}
"#,
        host = addr.ip(),
        port = addr.port()
    );
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(file.path(), config).unwrap();
    let relay = InProcess::start(&["--config", file.path().to_str().unwrap()]).await;
    let hostile = "Eve\"}; /kill @a §4\n%user%";
    let gift = json!({"type": "gift", "count": 5,
        "user": {"id": "77", "unique_id": "eve", "nickname": hostile},
        "gift": {"id": 5655, "name": "Rose", "diamonds": 1, "streakable": true}});
    assert_eq!(post_test_event(&relay.url(""), gift).await, 200);
    let deadline = tokio::time::Instant::now() + WAIT;
    while got.lock().unwrap().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "DoAction never retried"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "one failure (503), one retry");
    assert_eq!(got[0].2, got[1].2, "the retry sends the same request");
    let (path, content_type, body) = &got[1];
    assert_eq!(path, "/DoAction");
    assert_eq!(content_type, "application/json");
    assert_eq!(body["action"], json!({"name": "Boss fight"}));
    let args = body["args"].as_object().unwrap();
    let safe = "Eve kill a 4 user";
    assert_eq!(args["user"], safe, "configured arg, made safe");
    assert_eq!(args["line"], format!("{safe} sent Rose x5"));
    for (k, v) in [
        ("tikrelayEvent", json!("gift")),
        ("userName", json!("eve")),
        ("userId", json!("77")),
        ("giftName", json!("Rose")),
        ("giftId", json!(5655)),
        ("count", json!(5)),
        ("diamonds", json!(5)),
        ("trigger", json!("boss")),
    ] {
        assert_eq!(args[k], v, "arg {k}");
    }
    for v in args.values().filter_map(Value::as_str) {
        assert!(
            !v.contains(['"', '}', '/', '@', '§', '\n', ';', '%']),
            "inert: {v:?}"
        );
    }
}

#[test]
fn a_streamerbot_trigger_without_an_action_is_refused_with_line_and_column() {
    let err = tikrelay::config::Config::parse(
        "[[trigger]]\non = \"follow\"\nstreamerbot = { args = { a = \"b\" } }\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("t.toml:3:15:"), "{err}");
    assert!(err.contains("action"), "{err}");
}

#[test]
fn the_readme_streamerbot_example_is_valid() {
    let config = crate::support::readme_config("### Streamer.bot actions");
    assert_eq!(config.streamerbot.url, "http://127.0.0.1:7474/DoAction");
    let action = config.triggers[0].streamerbot.as_ref().unwrap();
    assert_eq!(action.name.as_deref(), Some("Boss fight"));
    assert_eq!(action.args.len(), 2);
}

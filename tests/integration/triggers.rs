//! Triggers end to end: events (test events and real webcast frames) go through the pipeline,
//! the configured actions run on the test RCON server over TCP or on a local HTTP server, and
//! the tests read what those servers received. Every RCON test ends with a marker command: the
//! worker runs commands in order, so once the marker arrived everything before it has too, and
//! "nothing else ran" can be asserted without waiting on a clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message as _;
use serde_json::{Value, json};

use tikrelay::pipeline::Input;
use tikrelay::proto;
use tikrelay::tiktok::frame;

use crate::support::rcon_server::{ServerOptions, TestServer};
use crate::support::{InProcess, RelayProcess, WAIT, binary_command, post_test_event};

const MARKER: &str = "say marker";

/// Writes `body` (after an `[rcon]` table for `server`) to a temp config file.
fn config_file(server: Option<&TestServer>, body: &str) -> tempfile::NamedTempFile {
    let mut text = String::new();
    if let Some(s) = server {
        text.push_str(&format!(
            "[rcon]\naddr = \"{}\"\npassword = \"pw\"\nmin_interval_ms = 0\n\n",
            s.addr()
        ));
    }
    text.push_str(body);
    text.push_str("\n[[trigger]]\nname = \"marker\"\non = \"live_ended\"\n");
    if server.is_some() {
        text.push_str(&format!("rcon = [\"{MARKER}\"]\n"));
    } else {
        text.push_str("alert = { title = \"end\" }\n");
    }
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

async fn relay_with(config: &tempfile::NamedTempFile, extra: &[&str]) -> InProcess {
    let mut args = vec!["--config", config.path().to_str().unwrap()];
    args.extend_from_slice(extra);
    InProcess::start(&args).await
}

/// Sends the marker event and returns every command the server ran before the marker.
async fn commands_until_marker(relay: &InProcess, server: &TestServer) -> Vec<String> {
    assert_eq!(
        post_test_event(&relay.url(""), json!({"type": "live_ended"})).await,
        200
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let log = server.log();
        if let Some(i) = log.iter().position(|c| c == MARKER) {
            assert_eq!(i + 1, log.len(), "nothing after the marker: {log:?}");
            return log[..i].to_vec();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "marker never arrived; got {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn user(id: &str, nickname: &str) -> Value {
    json!({"id": id, "unique_id": format!("u{id}"), "nickname": nickname, "avatar_url": null})
}

fn gift(id: u64, name: &str, diamonds: u64, count: u64) -> Value {
    json!({"type": "gift", "user": user("1", "Gifter"), "count": count,
           "gift": {"id": id, "name": name, "diamonds": diamonds, "image_url": null, "streakable": false}})
}

#[tokio::test]
async fn each_condition_matches_what_it_should_and_nothing_else() {
    let server = TestServer::start("pw", ServerOptions::default()).await;
    let config = config_file(
        Some(&server),
        r#"
[[trigger]]
name = "by-name"
on = "gift"
gift = "rose"
rcon = ["say by-name {{gift.name}} x{{count}}"]

[[trigger]]
name = "by-id"
on = "gift"
gift = 8913
rcon = ["say by-id {{gift.id}}"]

[[trigger]]
name = "big"
on = "gift"
min_diamonds = 100
rcon = ["say big {{diamonds_total}}"]

[[trigger]]
name = "many"
on = "gift"
min_count = 10
rcon = ["say many {{count}}"]

[[trigger]]
name = "jump"
on = "comment"
pattern = "^!jump( |$)"
rcon = ["say jump {{name}}"]

[[trigger]]
name = "likes"
on = "like"
every_likes = 100
repeat = "per_unit"
rcon = ["say likes {{unit}}/{{units}}"]

[[trigger]]
name = "share"
on = "share"
rcon = ["say share {{name}}"]
"#,
    );
    let relay = relay_with(&config, &[]).await;
    let base = relay.url("");
    let events = [
        gift(5655, "Rose", 1, 1),
        gift(8913, "Lion", 500, 1),
        gift(5655, "Rose", 1, 12),
        gift(1, "Heart", 1, 2),
        json!({"type": "comment", "text": "!jump now", "user": user("2", "Jumper")}),
        json!({"type": "comment", "text": "no !jump", "user": user("2", "Jumper")}),
        json!({"type": "comment", "text": "!jumping", "user": user("2", "Jumper")}),
        json!({"type": "like", "count": 50, "total": 50, "user": user("3", "Liker")}),
        json!({"type": "like", "count": 70, "total": 120, "user": user("3", "Liker")}),
        json!({"type": "like", "count": 230, "total": 350, "user": user("3", "Liker")}),
        json!({"type": "follow", "user": user("4", "Follower")}),
        json!({"type": "share", "user": user("4", "Sharer")}),
    ];
    for e in events {
        assert_eq!(post_test_event(&base, e).await, 200);
    }
    assert_eq!(
        commands_until_marker(&relay, &server).await,
        [
            "say by-name Rose x1",
            "say by-id 8913",
            "say big 500",
            "say by-name Rose x12",
            "say many 12",
            "say jump Jumper",
            "say likes 1/1",
            "say likes 1/2",
            "say likes 2/2",
            "say share Sharer",
        ]
    );
}

/// A real gift frame, as TikTok sends it.
fn gift_frame(seq: i64, msg_id: i64, group_id: i64, count: i32, end: bool) -> Input {
    let common = proto::CommonMessageData {
        method: "WebcastGiftMessage".into(),
        msg_id,
        room_id: 7,
        create_time: tikrelay::events::now_ms(),
        ..Default::default()
    };
    let m = proto::WebcastGiftMessage {
        common: Some(common),
        gift_id: 5655,
        repeat_count: count,
        repeat_end: end as i32,
        group_id,
        user: Some(proto::User {
            id: 6_800_000_000_000_000_001,
            nickname: "Rosa".into(),
            display_id: "rosa".into(),
            ..Default::default()
        }),
        gift: Some(proto::Gift {
            id: 5655,
            name: "Rose".into(),
            diamond_count: 1,
            r#type: 1,
            combo: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    fetch_frame(seq, frame::base_message("WebcastGiftMessage", msg_id, &m))
}

fn fetch_frame(seq: i64, message: proto::BaseProtoMessage) -> Input {
    let result = proto::ProtoMessageFetchResult {
        messages: vec![message],
        ..Default::default()
    };
    Input::PushFrame(frame::msg_frame(seq, seq, &result, true).encode_to_vec())
}

fn follow_frame(seq: i64, msg_id: i64, user_id: i64) -> Input {
    let common = proto::CommonMessageData {
        method: "WebcastSocialMessage".into(),
        msg_id,
        room_id: 7,
        display_text: Some(proto::Text {
            key: "pm_main_follow_message_viewer_2".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let m = proto::WebcastSocialMessage {
        common: Some(common),
        user: Some(proto::User {
            id: user_id,
            nickname: format!("Fan {user_id}"),
            display_id: format!("fan{user_id}"),
            ..Default::default()
        }),
        action: 1,
        ..Default::default()
    };
    fetch_frame(seq, frame::base_message("WebcastSocialMessage", msg_id, &m))
}

#[tokio::test]
async fn a_x5_combo_runs_exactly_five_actions_per_unit() {
    let server = TestServer::start("pw", ServerOptions::default()).await;
    let config = config_file(
        Some(&server),
        r#"
[[trigger]]
on = "gift"
gift = "Rose"
repeat = "per_unit"
rcon = ["say {{unit}}/{{units}} from {{name}}"]
alert = { title = "{{name}} sent {{count}}" }
"#,
    );
    // A short combo timeout so the third streak ends by timeout quickly.
    let relay = relay_with(&config, &["--combo-timeout", "0.3"]).await;
    let mut seq = 0;
    let send = |input: Input| {
        let tx = relay.input.clone();
        async move { tx.send(input).await.unwrap() }
    };
    // Streak 1: counts 1..5, then repeat_end twice (once re-delivered with the same msg_id,
    // once as a separate message).
    for c in 1..=5 {
        seq += 1;
        send(gift_frame(seq, 1000 + c as i64, 1, c, false)).await;
    }
    seq += 1;
    send(gift_frame(seq, 1010, 1, 5, true)).await;
    seq += 1;
    send(gift_frame(seq, 1010, 1, 5, true)).await;
    seq += 1;
    send(gift_frame(seq, 1011, 1, 5, true)).await;
    // Streak 2: counts out of order and repeated, ends with repeat_end.
    for (i, c) in [1, 3, 2, 3, 5, 4].into_iter().enumerate() {
        seq += 1;
        send(gift_frame(seq, 2000 + i as i64, 2, c, false)).await;
    }
    seq += 1;
    send(gift_frame(seq, 2010, 2, 5, true)).await;
    // Streak 3: never ends; the combo timeout ends it.
    for c in 1..=5 {
        seq += 1;
        send(gift_frame(seq, 3000 + c as i64, 3, c, false)).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.log().len() < 15 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", server.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A late repeat_end for the timed-out streak is ignored.
    seq += 1;
    send(gift_frame(seq, 3010, 3, 5, true)).await;
    let one: Vec<String> = (1..=5).map(|u| format!("say {u}/5 from Rosa")).collect();
    let expected: Vec<String> = one.iter().chain(&one).chain(&one).cloned().collect();
    assert_eq!(commands_until_marker(&relay, &server).await, expected);
    let state = relay.engine.alerts.snapshot();
    assert_eq!(state["main"]["pending"], 3, "one alert per gift: {state}");
}

#[tokio::test]
async fn cooldowns_per_trigger_and_per_viewer() {
    let server = TestServer::start("pw", ServerOptions::default()).await;
    let config = config_file(
        Some(&server),
        r#"
[[trigger]]
name = "global"
on = "comment"
pattern = "^!a"
cooldown_ms = 600000
rcon = ["say a {{name}}"]

[[trigger]]
name = "viewer"
on = "comment"
pattern = "^!b"
user_cooldown_ms = 600000
rcon = ["say b {{name}}"]
"#,
    );
    let relay = relay_with(&config, &[]).await;
    let base = relay.url("");
    for (who, text) in [
        (("1", "Ann"), "!a"),
        (("2", "Bob"), "!a"),
        (("1", "Ann"), "!a"),
        (("1", "Ann"), "!b"),
        (("2", "Bob"), "!b"),
        (("1", "Ann"), "!b"),
        (("2", "Bob"), "!b"),
    ] {
        let e = json!({"type": "comment", "text": text, "user": user(who.0, who.1)});
        assert_eq!(post_test_event(&base, e).await, 200);
    }
    assert_eq!(
        commands_until_marker(&relay, &server).await,
        ["say a Ann", "say b Ann", "say b Bob"]
    );
}

#[tokio::test]
async fn every_follow_fires_duplicates_never_and_once_per_session_on_request() {
    let server = TestServer::start("pw", ServerOptions::default()).await;
    let config = config_file(
        Some(&server),
        r#"
[[trigger]]
name = "every"
on = "follow"
rcon = ["say every {{name}}"]

[[trigger]]
name = "once"
on = "follow"
follow_once_per = "session"
rcon = ["say once {{name}}"]
"#,
    );
    let relay = relay_with(&config, &[]).await;
    // Fan 1 follows twice quickly (two messages); the second message is then delivered again
    // with the same msg_id (e.g. across a reconnect); Fan 2 follows once.
    for (seq, msg_id, user) in [(1, 500, 1), (2, 501, 1), (3, 501, 1), (4, 502, 2)] {
        relay
            .input
            .send(follow_frame(seq, msg_id, user))
            .await
            .unwrap();
    }
    assert_eq!(
        commands_until_marker(&relay, &server).await,
        [
            "say every Fan 1",
            "say once Fan 1",
            "say every Fan 1",
            "say every Fan 2",
            "say once Fan 2",
        ]
    );
}

#[tokio::test]
async fn hostile_nicknames_stay_inert_in_rcon_commands() {
    let server = TestServer::start("pw", ServerOptions::default()).await;
    let config = config_file(
        Some(&server),
        r#"
[[trigger]]
on = "follow"
rcon = [
  "say {{name}} followed",
  'tellraw @a {"text":"{{user.nickname}} followed"}',
  "summon zombie ~ ~ ~ {CustomName:'\"{{name}}\"'}",
]
"#,
    );
    let relay = relay_with(&config, &[]).await;
    let hostile = [
        "\"}]} \n/op Mallory",
        "\",\"clickEvent\":{\"action\":\"run_command\",\"value\":\"/op Mallory\"},\"text\":\"",
        "'\"}]};kill @e[type=player]",
        "§4§l@a\\u0022",
        "Robert'); DROP TABLE players;--",
        "\u{202E}evil\u{200B}\r\ngive @s diamond 64",
        "",
        "x".repeat(500).as_str(),
    ]
    .map(String::from);
    for (i, nick) in hostile.iter().enumerate() {
        let u = json!({"id": format!("{i}"), "unique_id": format!("fan_{i}"), "nickname": nick});
        assert_eq!(
            post_test_event(&relay.url(""), json!({"type": "follow", "user": u})).await,
            200
        );
    }
    let commands = commands_until_marker(&relay, &server).await;
    assert_eq!(commands.len(), hostile.len() * 3, "{commands:#?}");
    for (i, three) in commands.chunks(3).enumerate() {
        let [say, tellraw, summon] = three else {
            unreachable!()
        };
        // What the name became, read back from the `say` command.
        let name = say
            .strip_prefix("say ")
            .and_then(|s| s.strip_suffix(" followed"))
            .unwrap_or_else(|| panic!("say command changed shape: {say:?}"));
        assert!(!name.is_empty());
        assert!(name.chars().count() <= 32, "{name:?}");
        assert!(
            !name.contains(|c: char| "\"'\\{}[]@§/;:,=~^$\n\r".contains(c) || c.is_control()),
            "syntax character left in {name:?}"
        );
        if hostile[i].is_empty() {
            assert_eq!(name, format!("fan_{i}"), "empty nickname: the handle");
        }
        assert_eq!(
            tellraw,
            &format!("tellraw @a {{\"text\":\"{name} followed\"}}")
        );
        let json: Value = serde_json::from_str(tellraw.strip_prefix("tellraw @a ").unwrap())
            .expect("the tellraw component is still valid JSON");
        assert_eq!(json.as_object().unwrap().len(), 1, "one key only: {json}");
        assert_eq!(
            summon,
            &format!("summon zombie ~ ~ ~ {{CustomName:'\"{name}\"'}}")
        );
    }
}

#[tokio::test]
async fn the_binary_runs_rcon_commands_in_order_once_per_unit() {
    let server = TestServer::start("pw", ServerOptions::default()).await;
    let config = config_file(
        Some(&server),
        r#"
[[trigger]]
on = "gift"
repeat = "per_unit"
max_repeat = 3
rcon = ["give @p minecraft:diamond {{unit}}", "say thanks {{name}}"]
"#,
    );
    let relay = RelayProcess::start(&[
        "demo",
        "--rate",
        "0",
        "--port",
        "0",
        "--config",
        config.path().to_str().unwrap(),
    ]);
    let base = relay.url("");
    assert_eq!(post_test_event(&base, gift(1, "Heart", 1, 2)).await, 200);
    assert_eq!(post_test_event(&base, gift(1, "Heart", 1, 50)).await, 200);
    assert_eq!(
        post_test_event(&base, json!({"type": "live_ended"})).await,
        200
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while !server.log().iter().any(|c| c == MARKER) {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", server.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let expected = [
        "give @p minecraft:diamond 1",
        "say thanks Gifter",
        "give @p minecraft:diamond 2",
        "say thanks Gifter",
        // x50 capped at max_repeat = 3
        "give @p minecraft:diamond 1",
        "say thanks Gifter",
        "give @p minecraft:diamond 2",
        "say thanks Gifter",
        "give @p minecraft:diamond 3",
        "say thanks Gifter",
        MARKER,
    ];
    assert_eq!(server.log(), expected);
    assert_eq!(server.state.connections.load(Ordering::SeqCst), 1);
    assert!(
        !relay.stderr.lock().unwrap().contains("\"pw\""),
        "the password is never logged"
    );
}

/// A local HTTP endpoint that answers 500 to its first `fail` requests, then 200.
struct HookServer {
    url: String,
    bodies: Arc<Mutex<Vec<(String, String)>>>,
    hits: Arc<AtomicUsize>,
}

async fn hook_server(fail: usize) -> HookServer {
    use warp::Filter;
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicUsize::new(0));
    let (b, h) = (bodies.clone(), hits.clone());
    let route = warp::post()
        .and(warp::header::<String>("x-tikrelay-trigger"))
        .and(warp::body::bytes())
        .map(move |trigger: String, body: bytes::Bytes| {
            let n = h.fetch_add(1, Ordering::SeqCst);
            b.lock()
                .unwrap()
                .push((trigger, String::from_utf8_lossy(&body).into_owned()));
            let status = if n < fail {
                warp::http::StatusCode::INTERNAL_SERVER_ERROR
            } else {
                warp::http::StatusCode::OK
            };
            warp::reply::with_status("ok", status)
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    HookServer { url, bodies, hits }
}

#[tokio::test]
async fn webhooks_retry_until_the_endpoint_recovers_and_bodies_stay_valid_json() {
    let hook = hook_server(2).await;
    let config = config_file(
        None,
        &format!(
            r#"
[webhooks]
retry_backoff_ms = 10
max_attempts = 5

[[trigger]]
name = "raw"
on = "follow"
webhook = {{ url = "{url}" }}

[[trigger]]
name = "templated"
on = "follow"
webhook = {{ url = "{url}", body = '{{"who":"{{{{name}}}}","text":"{{{{user.nickname}}}} followed"}}' }}
"#,
            url = hook.url
        ),
    );
    let relay = relay_with(&config, &[]).await;
    let nick = "Eve\",\"admin\":true,\"x\":\"\n";
    let e = json!({"type": "follow", "user": user("5", nick)});
    assert_eq!(post_test_event(&relay.url(""), e).await, 200);
    let deadline = tokio::time::Instant::now() + WAIT;
    while hook.bodies.lock().unwrap().len() < 4 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bodies = hook.bodies.lock().unwrap().clone();
    // Two failures, the successful retry of the first request, then the second request.
    assert_eq!(hook.hits.load(Ordering::SeqCst), 4);
    let triggers: Vec<&str> = bodies.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(triggers, ["raw", "raw", "raw", "templated"]);
    let event: Value = serde_json::from_str(&bodies[2].1).unwrap();
    assert_eq!(event["type"], "follow");
    assert_eq!(event["user"]["nickname"], nick);
    let templated: Value = serde_json::from_str(&bodies[3].1).expect("valid JSON");
    assert_eq!(templated.as_object().unwrap().len(), 2, "{templated}");
    assert_eq!(templated["who"], nick);
}

#[test]
fn check_validates_a_config_and_names_line_and_column() {
    let good = config_file(
        None,
        "[[trigger]]\non = \"follow\"\nalert = { title = \"hi\" }\n",
    );
    let out = binary_command()
        .args(["check", "--config", good.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("config ok"));

    let out = binary_command().args(["check"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "the built-in default is valid: {out:?}"
    );

    let bad = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(
        bad.path(),
        "[queues.main]\nmax_pending = 10\n\n[[trigger]]\non = \"gift\"\nmin_count = \"five\"\n",
    )
    .unwrap();
    for args in [vec!["check"], vec!["demo", "--port", "0"]] {
        let out = binary_command()
            .args(&args)
            .args(["--config", bad.path().to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let at = format!("{}:6:13", bad.path().display());
        assert!(err.contains(&at), "{args:?}: expected {at} in {err}");
        assert!(err.contains("five"), "{err}");
    }

    let missing = binary_command()
        .args(["check", "--config", "/nonexistent/tikrelay.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/tikrelay.toml"));
}

#[test]
fn the_readme_example_config_is_valid() {
    let config = crate::support::readme_config("### A complete example");
    assert_eq!(config.triggers.len(), 7);
    assert!(config.queues.contains_key("big"));
}

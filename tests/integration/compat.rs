//! The TikFinity-compatible socket end to end: real webcast messages go through the pipeline and
//! come out of `--compat-port` as the frames the README's tables document, field by field;
//! gift streaks come as TikFinity sends them; a widget written the TikFinity way (in headless
//! Chromium, served from another origin) counts each gift once and shows the avatar; and the real
//! binary prints the socket's URL and serves it.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;
use serde_json::{Value, json};

use tikrelay::pipeline::Input;
use tikrelay::proto;
use tikrelay::tiktok::frame;

use crate::support::browser::{Browser, require_browser};
use crate::support::webcast::{self, user_id};
use crate::support::{InProcess, RelayProcess, WAIT, WsClient, post_test_event, raw_get_status};

fn push(seq: i64, message: proto::BaseProtoMessage) -> Input {
    let result = proto::ProtoMessageFetchResult {
        messages: vec![message],
        ..Default::default()
    };
    Input::PushFrame(frame::msg_frame(seq, seq, &result, true).encode_to_vec())
}

async fn send_all(relay: &InProcess, messages: Vec<proto::BaseProtoMessage>) {
    for (i, m) in messages.into_iter().enumerate() {
        relay.input.send(push(i as i64 + 1, m)).await.unwrap();
    }
}

async fn compat_client(relay: &InProcess, path: &str) -> WsClient {
    let addr = relay.compat_addr.expect("compat socket open");
    WsClient::connect(&format!("ws://{addr}{path}")).await
}

/// Frames until (and including) the first `until` frame.
async fn frames_until(ws: &mut WsClient, until: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let f = ws.next_json().await;
        assert_eq!(
            f.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["data".to_string(), "event".to_string()]),
            "every frame is {{event, data}}: {f}"
        );
        let done = f["event"] == until;
        out.push(f);
        if done {
            return out;
        }
    }
}

/// The README's compat tables: per event, (is a user event, its own fields); and every field
/// the field table documents.
struct Documented {
    events: BTreeMap<String, (bool, BTreeSet<String>)>,
    fields: BTreeSet<String>,
    user_fields: BTreeSet<String>,
}

fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn documented() -> Documented {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## TikFinity widgets: the compatible socket")
        .nth(1)
        .expect("README has the compat section");
    let section = section.split("\n## ").next().unwrap();
    let events_table = section.split("### Events").nth(1).unwrap();
    let events_table = events_table.split("### Fields").next().unwrap();
    let mut events = BTreeMap::new();
    for line in events_table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = ticked(cells[1]).remove(0);
        let user = cells[3].starts_with("yes");
        events.insert(name, (user, ticked(cells[4]).into_iter().collect()));
    }
    let fields_table = section.split("### Fields").nth(1).unwrap();
    let mut fields = BTreeSet::new();
    let mut user_fields = BTreeSet::new();
    for line in fields_table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let field = ticked(cells[1]).remove(0);
        if cells[2] == "user events" {
            user_fields.insert(field.clone());
        }
        fields.insert(field);
    }
    Documented {
        events,
        fields,
        user_fields,
    }
}

/// Checks a frame's keys against the README: exactly the event's fields, plus the user fields
/// for user events; and every field has a row in the field table.
fn check_documented(doc: &Documented, frame: &Value) {
    let name = frame["event"].as_str().unwrap();
    let (user, fields) = doc
        .events
        .get(name)
        .unwrap_or_else(|| panic!("event {name} is not in the README's table"));
    let mut expected = fields.clone();
    if *user {
        expected.extend(doc.user_fields.iter().cloned());
    }
    let got: BTreeSet<String> = frame["data"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(got, expected, "fields of {name}: {frame}");
    for field in &got {
        assert!(
            doc.fields.contains(field),
            "field {field} of {name} has no row in the README's field table"
        );
    }
}

fn user_check(data: &Value, n: i64) {
    assert_eq!(data["userId"], user_id(n));
    assert_eq!(data["uniqueId"], format!("viewer{n}"));
    assert_eq!(data["nickname"], format!("Viewer <{n}>"));
    assert_eq!(
        data["profilePictureUrl"],
        format!("https://p16.example/avatar{n}.webp")
    );
    assert_eq!(data["isModerator"], false);
    assert_eq!(data["isNewGifter"], false);
    assert_eq!(data["topGifterRank"], Value::Null);
    assert_eq!(data["gifterLevel"], 0);
    assert_eq!(data["teamMemberLevel"], 0);
    assert_eq!(data["userBadges"], json!([]));
}

fn live_intro(id: i64) -> proto::BaseProtoMessage {
    frame::base_message(
        "WebcastLiveIntroMessage",
        id,
        &proto::WebcastLiveIntroMessage {
            common: webcast::common(id, ""),
            id: 4242,
            content: "Boss fights at 9!".into(),
            user: webcast::user(50),
        },
    )
}

#[tokio::test]
async fn every_event_type_comes_out_as_the_readme_maps_it() {
    let doc = documented();
    let relay = InProcess::start(&["--compat-port", "0"]).await;
    let mut ws = compat_client(&relay, "/").await;
    send_all(
        &relay,
        vec![
            webcast::chat(101, 1, "hello <b>"),
            webcast::emote(102, 2, "e77"),
            webcast::social(103, 3, "pm_main_follow_message_viewer_2"),
            webcast::social(104, 4, "pm_mt_guidance_share"),
            webcast::join(105, 5, 10),
            webcast::like(106, 6, 15, 1500),
            webcast::gift(107, 7, (8913, 30, false), (0, 1, true)),
            webcast::viewers(108, 321, 999),
            webcast::subscribe(109, 8, 3),
            webcast::battle_start(110, 555, &[(11, "HostA"), (12, "HostB")]),
            webcast::battle_score(111, 555, &[(11, 40), (12, 25)], false),
            webcast::battle_score(112, 555, &[(11, 90), (12, 25)], true),
            webcast::envelope(113, 500, 20),
            webcast::question(114, 9, "when is the next stream?"),
            live_intro(115),
            webcast::control(116, 3),
        ],
    )
    .await;
    let frames = frames_until(&mut ws, "streamEnd").await;
    let names: Vec<&str> = frames
        .iter()
        .map(|f| f["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "chat",
            "emote",
            "social",
            "follow",
            "social",
            "share",
            "member",
            "like",
            "gift",
            "roomUser",
            "subscribe",
            "linkMicBattle",
            "linkMicArmies",
            "linkMicArmies",
            "envelope",
            "questionNew",
            "liveIntro",
            "streamEnd"
        ]
    );
    for f in &frames {
        check_documented(&doc, f);
    }
    let by_id = |id: &str| -> Vec<&Value> {
        frames
            .iter()
            .map(|f| &f["data"])
            .filter(|d| d["msgId"] == id)
            .collect()
    };
    let chat = by_id("101")[0];
    user_check(chat, 1);
    assert_eq!(
        (&chat["comment"], &chat["emotes"], &chat["followRole"]),
        (&json!("hello <b>"), &json!([]), &json!(0))
    );
    assert!(chat["createTime"].as_str().unwrap().parse::<i64>().unwrap() > 0);
    let emote = by_id("102")[0];
    assert_eq!(emote["emoteId"], "e77");
    assert_eq!(
        emote["emotes"],
        json!([{"emoteId": "e77", "emoteImageUrl": null}])
    );
    let follow = by_id("103");
    assert_eq!(follow.len(), 2, "social, then follow");
    user_check(follow[1], 3);
    assert_eq!(follow[1]["followRole"], 1);
    assert!(
        follow[0]["displayType"]
            .as_str()
            .unwrap()
            .contains("follow")
    );
    let share = by_id("104");
    assert!(share[1]["displayType"].as_str().unwrap().contains("share"));
    assert_eq!(by_id("105")[0]["actionId"], 1);
    let like = by_id("106")[0];
    assert_eq!(
        (&like["likeCount"], &like["totalLikeCount"]),
        (&json!(15), &json!(1500))
    );
    let gift = by_id("107")[0];
    user_check(gift, 7);
    assert_eq!(
        (
            &gift["giftId"],
            &gift["giftName"],
            &gift["giftType"],
            &gift["diamondCount"],
            &gift["repeatCount"],
            &gift["repeatEnd"],
            &gift["groupId"],
            &gift["describe"],
        ),
        (
            &json!(8913),
            &json!("Gift8913"),
            &json!(2),
            &json!(30),
            &json!(1),
            &json!(true),
            &json!("0"),
            &json!("sent Gift8913"),
        )
    );
    assert_eq!(
        gift["gift"],
        json!({"gift_id": 8913, "repeat_count": 1, "repeat_end": 1, "gift_type": 2})
    );
    let room = by_id("108")[0];
    assert_eq!(room["viewerCount"], 321);
    assert_eq!(room["topViewers"][0]["coinCount"], 30, "the gifter above");
    assert_eq!(room["topViewers"][0]["user"]["uniqueId"], "viewer7");
    let sub = by_id("109")[0];
    assert_eq!(
        (&sub["subMonth"], &sub["isSubscriber"]),
        (&json!(3), &json!(true))
    );
    let battle = by_id("110")[0];
    let hosts: Vec<&Value> = battle["battleUsers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| &u["nickname"])
        .collect();
    assert_eq!(hosts.len(), 2);
    let score = by_id("111")[0];
    assert_eq!(score["battleStatus"], 1);
    let end = by_id("112")[0];
    assert_eq!(end["battleStatus"], 2);
    let points: BTreeMap<String, i64> = end["battleArmies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["hostUserId"].as_str().unwrap().to_string(),
                a["points"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        points,
        BTreeMap::from([("11".into(), 90), ("12".into(), 25)])
    );
    let chest = by_id("113")[0];
    assert_eq!(
        (&chest["coins"], &chest["canOpen"]),
        (&json!(500), &json!(20))
    );
    assert_eq!(chest["nickname"], "Chest Giver");
    let q = by_id("114")[0];
    user_check(q, 9);
    assert_eq!(q["questionText"], "when is the next stream?");
    let intro = by_id("115")[0];
    assert_eq!(
        (&intro["id"], &intro["description"], &intro["uniqueId"]),
        (
            &json!("4242"),
            &json!("Boss fights at 9!"),
            &json!("viewer50")
        )
    );
    assert_eq!(frames.last().unwrap()["data"], json!({"action": 3}));
    // The connection events, as the live client sends them.
    for ty in ["connected", "disconnected"] {
        let e = json!({"type": ty, "room_id": "7777"});
        assert_eq!(post_test_event(&relay.url(""), e).await, 200);
        let f = ws.next_json().await;
        assert_eq!(f["event"], ty);
        check_documented(&doc, &f);
    }
}

#[tokio::test]
async fn a_streak_of_five_roses_is_four_open_frames_and_one_end_and_a_timeout_still_ends() {
    let relay = InProcess::start(&["--compat-port", "0", "--combo-timeout", "0.3"]).await;
    // Any path works, as on TikFinity's socket.
    let mut ws = compat_client(&relay, "/some/widget/path").await;
    let rose = (5655, 1, true);
    let mut messages: Vec<_> = (1..=5)
        .map(|n| webcast::gift(200 + n as i64, 1, rose, (77, n, n == 5)))
        .collect();
    // A second streak whose end message never comes: the combo timeout ends it.
    messages.extend((1..=3).map(|n| webcast::gift(300 + n as i64, 2, rose, (88, n, false))));
    send_all(&relay, messages).await;
    let mut gifts = Vec::new();
    while gifts.len() < 9 {
        let f = ws.next_json().await;
        assert_eq!(f["event"], "gift", "only gift frames: {f}");
        gifts.push(f["data"].clone());
    }
    let first: Vec<(u64, bool)> = gifts
        .iter()
        .filter(|g| g["groupId"] == "77")
        .map(|g| {
            (
                g["repeatCount"].as_u64().unwrap(),
                g["repeatEnd"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        first,
        [(1, false), (2, false), (3, false), (4, false), (5, true)]
    );
    let second: Vec<(u64, bool)> = gifts
        .iter()
        .filter(|g| g["groupId"] == "88")
        .map(|g| {
            (
                g["repeatCount"].as_u64().unwrap(),
                g["repeatEnd"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(second, [(1, false), (2, false), (3, false), (3, true)]);
    assert!(gifts.iter().all(|g| g["giftType"] == 1));
    // The relay's own final `gift` events are not sent again: the next frame is the marker.
    send_all(&relay, vec![webcast::control(600, 3)]).await;
    assert_eq!(ws.next_json().await["event"], "streamEnd");
}

/// A widget written the way TikFinity widgets are: it connects to the socket, skips running
/// streaks, adds `diamondCount * repeatCount`, and shows the sender's `profilePictureUrl`.
const WIDGET: &str = r#"<!doctype html><meta charset="utf-8"><body>
<img id="avatar"><div id="coins">0</div><script>
window.coins = 0; window.gifts = 0; window.frames = 0;
const ws = new WebSocket(new URLSearchParams(location.search).get("ws"));
ws.onopen = () => { window.open_ = true; };
ws.onmessage = (msg) => {
  const { event, data } = JSON.parse(msg.data);
  window.frames++;
  if (event !== "gift") return;
  if (data.giftType === 1 && !data.repeatEnd) return;
  window.gifts++;
  window.coins += data.diamondCount * data.repeatCount;
  document.getElementById("coins").textContent = window.coins;
  document.getElementById("avatar").src = data.profilePictureUrl;
};
</script>"#;

#[tokio::test]
async fn a_tikfinity_style_widget_counts_each_gift_once_and_loads_the_avatar() {
    let Some(chromium) = require_browser() else {
        return;
    };
    let relay = InProcess::start(&["--compat-port", "0", "--combo-timeout", "0.3"]).await;
    // The widget is served from another origin, as TikFinity widgets are.
    use warp::Filter;
    let page = warp::path::end().map(|| warp::reply::html(WIDGET));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(page).incoming(listener).run());
    let browser = Browser::launch(&chromium).await;
    let ws_url = format!("ws://{}/", relay.compat_addr.unwrap());
    let tab = browser
        .new_page(&format!("http://{page_addr}/?ws={ws_url}"))
        .await;
    tab.wait_for("window.open_ === true", WAIT).await;
    // A x5 Rose streak (1 diamond each), a x3 streak ended by the timeout, and a single
    // 30-diamond gift from a viewer whose avatar the relay serves itself.
    let rose = (5655, 1, true);
    let mut messages: Vec<_> = (1..=5)
        .map(|n| webcast::gift(400 + n as i64, 1, rose, (7, n, n == 5)))
        .collect();
    messages.extend((1..=3).map(|n| webcast::gift(500 + n as i64, 2, rose, (8, n, false))));
    send_all(&relay, messages).await;
    let single = json!({"type": "gift", "count": 1,
        "user": {"id": "31", "unique_id": "demo", "nickname": "Demo",
                 "avatar_url": "/overlays/default/images/avatar-1.svg"},
        "gift": {"id": 1, "name": "Cap", "diamonds": 30, "streakable": false}});
    tab.wait_for("window.gifts === 2", WAIT).await;
    assert_eq!(post_test_event(&relay.url(""), single).await, 200);
    tab.wait_for("window.gifts === 3", WAIT).await;
    assert_eq!(tab.eval("window.coins").await, json!(5 + 3 + 30));
    assert_eq!(
        tab.eval("window.frames").await,
        json!(10),
        "9 streak frames + 1"
    );
    let src = tab.eval("document.getElementById('avatar').src").await;
    assert_eq!(
        src,
        json!(format!(
            "http://{}/overlays/default/images/avatar-1.svg",
            relay.addr
        ))
    );
    tab.wait_for(
        "document.getElementById('avatar').complete && document.getElementById('avatar').naturalWidth > 0",
        WAIT,
    )
    .await;
    browser.close().await;
}

#[tokio::test]
async fn the_binary_prints_the_compat_url_and_serves_the_demo_stream() {
    let relay = RelayProcess::start(&["demo", "--port", "0", "--compat-port", "0", "--rate", "40"]);
    let line = relay
        .stdout_lines
        .iter()
        .find(|l| l.starts_with("TikFinity-compatible socket"))
        .unwrap_or_else(|| panic!("no compat line in {:?}", relay.stdout_lines));
    assert_eq!(
        relay.stdout_lines[1],
        format!("dashboard: {}", relay.url("/"))
    );
    assert_eq!(
        relay.stdout_lines[2], *line,
        "right after the dashboard line"
    );
    let url = line.rsplit(' ').next().unwrap();
    let addr: std::net::SocketAddr = url
        .strip_prefix("ws://")
        .and_then(|u| u.strip_suffix('/'))
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(addr.port(), 0);
    assert_eq!(
        raw_get_status(addr, "/").await,
        426,
        "plain HTTP gets a hint"
    );
    let mut ws = WsClient::connect(url).await;
    // The demo's gifts, with its relay-served avatars and gift images made absolute.
    let origin = relay.url("/");
    let gift = loop {
        let f = ws.next_json().await;
        if f["event"] == "gift" {
            break f["data"].clone();
        }
    };
    for field in ["profilePictureUrl", "giftPictureUrl"] {
        let src = gift[field].as_str().unwrap();
        assert!(src.starts_with(&origin), "{field}: {src}");
        let status = crate::support::http()
            .get(src)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{src} loads");
    }
    let follow =
        json!({"type": "follow", "user": {"id": "9", "unique_id": "ana", "nickname": "Ana"}});
    assert_eq!(post_test_event(&relay.url(""), follow).await, 200);
    loop {
        let f = ws.next_json().await;
        if f["event"] == "follow" && f["data"]["uniqueId"] == "ana" {
            assert_eq!(f["data"]["nickname"], "Ana");
            break;
        }
    }
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = crate::support::binary_command()
        .args(["demo", "--port", "0", "--compat-port", &port])
        .env("TIKRELAY_DATA_DIR", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TikFinity") && err.contains("--compat-port"),
        "{err}"
    );
}

#[tokio::test]
async fn a_handshake_naming_another_host_is_refused_and_the_socket_goes_on() {
    let relay = InProcess::start(&["--compat-port", "0"]).await;
    let addr = relay.compat_addr.expect("compat socket open");
    let handshake = |host: &str| {
        format!(
            "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://rebind.example\r\n\r\n"
        )
    };
    // A DNS-rebinding page: its own host name, resolved to 127.0.0.1.
    let (status, text) =
        crate::support::raw_http(addr, &handshake(&format!("rebind.example:{}", addr.port())))
            .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("is not this relay"), "{text}");
    // Widgets served from anywhere still connect to ws://127.0.0.1:PORT/ and get events.
    let mut ws = compat_client(&relay, "/").await;
    let follow = json!({"type": "follow", "user": {"nickname": "Ana"}});
    assert_eq!(post_test_event(&relay.url(""), follow).await, 200);
    let frames = frames_until(&mut ws, "follow").await;
    assert!(frames.iter().any(|f| f["event"] == "follow"), "{frames:?}");
}

//! The TikFinity mapping, kind by kind.

use super::*;
use crate::events::{BattleTeam, EndReason, Source};

fn mapper() -> Mapper {
    Mapper::new("http://127.0.0.1:8642/")
}

fn ana() -> User {
    User {
        id: "7001".into(),
        unique_id: "ana".into(),
        nickname: "Ana".into(),
        avatar_url: Some("/overlays/default/images/avatar-1.svg".into()),
        ..Default::default()
    }
}

fn frames(kind: EventKind, user: Option<User>) -> Vec<Frame> {
    let mut e = Event::new(kind, "42", Source::Tiktok).with_user(user);
    e.ts = 1_700_000_000_000;
    mapper().frames(&e, || json!([]))
}

#[test]
fn image_urls_become_absolute() {
    let m = mapper();
    assert_eq!(m.absolute("/a.png"), "http://127.0.0.1:8642/a.png");
    assert_eq!(m.absolute("a.png"), "http://127.0.0.1:8642/a.png");
    assert_eq!(m.absolute("//cdn/x.webp"), "https://cdn/x.webp");
    assert_eq!(m.absolute("https://cdn/x.webp"), "https://cdn/x.webp");
}

#[test]
fn user_events_carry_the_connector_defaults_for_roles() {
    let f = frames(EventKind::Comment { text: "hi".into() }, Some(ana()));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].event, "chat");
    assert_eq!(
        f[0].data,
        json!({
            "userId": "7001", "uniqueId": "ana", "nickname": "Ana",
            "profilePictureUrl": "http://127.0.0.1:8642/overlays/default/images/avatar-1.svg",
            "followRole": 0, "userBadges": [], "isModerator": false, "isNewGifter": false,
            "isSubscriber": false, "topGifterRank": null, "gifterLevel": 0,
            "teamMemberLevel": 0, "comment": "hi", "emotes": [],
            "msgId": "42", "createTime": "1700000000000",
        })
    );
}

#[test]
fn follow_and_share_come_as_social_then_their_own_event() {
    let f = frames(EventKind::Follow, Some(ana()));
    let names: Vec<&str> = f.iter().map(|f| f.event).collect();
    assert_eq!(names, ["social", "follow"]);
    assert_eq!(f[1].data["followRole"], 1);
    assert!(
        f[1].data["displayType"]
            .as_str()
            .unwrap()
            .contains("follow")
    );
    let f = frames(EventKind::Share, Some(ana()));
    assert_eq!(f[1].event, "share");
    assert!(f[0].data["displayType"].as_str().unwrap().contains("share"));
}

#[test]
fn streak_messages_are_gifts_and_the_final_gift_is_not_sent_twice() {
    let rose = GiftInfo {
        id: 5655,
        name: "Rose".into(),
        diamonds: 1,
        image_url: Some("/overlays/default/images/gifts/rose.svg".into()),
        streakable: true,
        ..Default::default()
    };
    let combo = |count, ended| EventKind::Combo {
        gift: rose.clone(),
        combo_id: "7001-5655-99".into(),
        count,
        ended,
        end_reason: ended.then_some(EndReason::Timeout),
    };
    let f = frames(combo(3, false), Some(ana()));
    assert_eq!(f[0].event, "gift");
    let d = &f[0].data;
    assert_eq!(
        (
            &d["giftId"],
            &d["repeatCount"],
            &d["repeatEnd"],
            &d["giftType"],
            &d["groupId"]
        ),
        (
            &json!(5655),
            &json!(3),
            &json!(false),
            &json!(1),
            &json!("99")
        )
    );
    assert_eq!(
        d["giftPictureUrl"],
        "http://127.0.0.1:8642/overlays/default/images/gifts/rose.svg"
    );
    assert_eq!(
        frames(combo(5, true), Some(ana()))[0].data["repeatEnd"],
        true
    );
    let final_gift = EventKind::Gift {
        gift: rose.clone(),
        count: 5,
        diamonds_total: 5,
        combo_id: Some("7001-5655-99".into()),
    };
    assert!(frames(final_gift, Some(ana())).is_empty());
    let single = EventKind::Gift {
        gift: GiftInfo {
            streakable: false,
            ..rose
        },
        count: 1,
        diamonds_total: 1,
        combo_id: None,
    };
    let f = frames(single, Some(ana()));
    assert_eq!(
        (&f[0].data["giftType"], &f[0].data["repeatEnd"]),
        (&json!(2), &json!(true))
    );
}

#[test]
fn group_ids_come_from_combo_ids() {
    assert_eq!(group_id("7001-5655-99"), "99");
    assert_eq!(group_id("7001-5655-99~2"), "99");
    assert_eq!(group_id("odd"), "0");
}

#[test]
fn roles_the_user_carries_win_over_the_defaults() {
    // What a `user` with roles serialises to, once the relay carries them.
    let raw = json!({"id": "1", "is_moderator": true, "follow_role": 2,
        "gifter_level": 12, "top_gifter_rank": 1, "team_level": 3, "is_subscriber": true});
    let f = role_fields(&raw, Some(&EventKind::Follow));
    assert_eq!(
        Value::Object(f),
        json!({"followRole": 2, "userBadges": [], "isModerator": true, "isNewGifter": false,
            "isSubscriber": true, "topGifterRank": 1, "gifterLevel": 12, "teamMemberLevel": 3})
    );
    let f = role_fields(
        &json!({"id": "1"}),
        Some(&EventKind::Subscribe { months: None }),
    );
    assert_eq!(
        (&f["followRole"], &f["isSubscriber"]),
        (&json!(0), &json!(true))
    );
}

#[test]
fn battles_viewers_and_webcast_messages_map_to_their_connector_events() {
    let host = ana();
    let f = frames(
        EventKind::Battle {
            phase: BattlePhase::End,
            battle_id: "9".into(),
            teams: vec![BattleTeam { host, score: 30 }],
            card: None,
            task: None,
        },
        None,
    );
    assert_eq!(f[0].event, "linkMicArmies");
    assert_eq!(f[0].data["battleStatus"], 2);
    assert_eq!(f[0].data["battleArmies"][0]["points"], 30);
    let mut e = Event::new(
        EventKind::Viewers {
            viewers: 12,
            total_viewers: 40,
            top_viewers: vec![],
        },
        "v",
        Source::Tiktok,
    );
    e.ts = 1;
    let f = mapper().frames(&e, || json!([{"user": ana(), "score": 500}]));
    assert_eq!(f[0].data["viewerCount"], 12);
    assert_eq!(f[0].data["topViewers"][0]["coinCount"], 500);
    assert_eq!(f[0].data["topViewers"][0]["user"]["uniqueId"], "ana");
    assert_eq!(f[0].data["topViewers"][0]["user"]["followRole"], 0);
    let intro = EventKind::Webcast {
        method: "WebcastLiveIntroMessage".into(),
        data: json!({"id": "5", "content": "Welcome!", "user": {"id": "3", "display_id": "host", "nickname": "Host"}}),
    };
    let f = frames(intro, None);
    assert_eq!(f[0].event, "liveIntro");
    assert_eq!(f[0].data["description"], "Welcome!");
    assert_eq!(f[0].data["uniqueId"], "host");
    assert!(frames(EventKind::LivePaused, None).is_empty());
}

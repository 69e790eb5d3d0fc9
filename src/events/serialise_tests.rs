//! Every declared kind's JSON: the fast writer against serde's derive, samples, read-back.

use super::*;

#[test]
fn every_declared_type_has_a_sample_of_that_type() {
    for name in EVENT_TYPES {
        let kind = EventKind::sample(name)
            .unwrap_or_else(|| panic!("{name}: every field of a kind needs a default"));
        assert_eq!(kind.type_name(), *name);
        let json = serde_json::to_value(&kind).unwrap();
        assert_eq!(json["type"], *name, "serde writes the declared name");
    }
    assert_eq!(EventKind::sample("nope"), None);
    assert!(EventKind::viewer_type("gift") && !EventKind::viewer_type("viewers"));
}

#[test]
fn the_fast_writer_writes_serdes_bytes_for_every_kind() {
    let gift = GiftInfo {
        id: 5655,
        name: "Rose \"<b>\"".into(),
        diamonds: 1,
        image_url: None,
        streakable: true,
        ..Default::default()
    };
    let host = User {
        id: "1".into(),
        unique_id: "h".into(),
        nickname: "H".into(),
        avatar_url: Some("u".into()),
        ..Default::default()
    };
    let kinds = vec![
        EventKind::Connected {
            unique_id: "x".into(),
        },
        EventKind::Disconnected {
            reason: "r\n".into(),
            will_reconnect: true,
        },
        EventKind::Comment {
            text: "hi 👋 \u{0}".into(),
        },
        EventKind::Emote {
            emote_ids: vec!["1".into(), "2".into()],
        },
        EventKind::Follow,
        EventKind::Share,
        EventKind::Join { member_count: 3 },
        EventKind::Like { count: 2, total: 9 },
        EventKind::Viewers {
            viewers: 1,
            total_viewers: 2,
            top_viewers: vec![TopViewer {
                rank: 1,
                score: 30,
                user: host.clone(),
            }],
        },
        EventKind::Gift {
            gift: gift.clone(),
            count: 3,
            diamonds_total: 3,
            combo_id: Some("c".into()),
        },
        EventKind::Gift {
            gift: gift.clone(),
            count: 1,
            diamonds_total: 1,
            combo_id: None,
        },
        EventKind::Combo {
            gift: gift.clone(),
            combo_id: "c".into(),
            count: 2,
            ended: false,
            end_reason: None,
        },
        EventKind::Combo {
            gift: gift.clone(),
            combo_id: "c".into(),
            count: 2,
            ended: true,
            end_reason: Some(EndReason::Timeout),
        },
        EventKind::LivePaused,
        EventKind::LiveResumed,
        EventKind::LiveEnded,
        EventKind::SuperFan,
        EventKind::Subscribe { months: Some(3) },
        EventKind::Subscribe { months: None },
        EventKind::Battle {
            phase: BattlePhase::Score,
            battle_id: "5".into(),
            teams: vec![BattleTeam {
                host: host.clone(),
                score: 7,
            }],
            card: None,
            task: None,
        },
        EventKind::Battle {
            phase: BattlePhase::ItemCard,
            battle_id: "5".into(),
            teams: vec![],
            card: Some(BattleCard {
                kind: "smoke".into(),
                host_id: Some("1".into()),
                text: "x \"y\"".into(),
            }),
            task: None,
        },
        EventKind::Battle {
            phase: BattlePhase::Task,
            battle_id: "5".into(),
            teams: vec![],
            card: None,
            task: Some(BattleTask {
                stage: "progress".into(),
                progress: Some(3),
                result: None,
            }),
        },
        EventKind::Envelope {
            diamonds: 5,
            people: 6,
            super_fan_box: true,
        },
        EventKind::Question { text: "q".into() },
        EventKind::Pin { text: "p".into() },
        EventKind::Webcast {
            method: "WebcastRoomMessage".into(),
            data: serde_json::json!({"a": [1, {"b": "c"}]}),
        },
        EventKind::Unknown { method: "M".into() },
        EventKind::SuperFanJoin,
        EventKind::Goal {
            goal_id: "g".into(),
            description: "d\n".into(),
            sub_goals: vec![SubGoal {
                kind: "gift".into(),
                progress: 1,
                target: 2,
                gift: Some(gift.clone()),
            }],
            contribution: Some(4),
        },
        EventKind::Goal {
            goal_id: "g".into(),
            description: String::new(),
            sub_goals: vec![],
            contribution: None,
        },
        EventKind::Poll {
            phase: PollPhase::Update,
            poll_id: "p".into(),
            title: "t".into(),
            options: vec![PollOption {
                text: "a".into(),
                votes: 3,
            }],
        },
        EventKind::Rank {
            kind: "update".into(),
            list: "hourly".into(),
            rank: Some(3),
            text: "t".into(),
        },
        EventKind::Rank {
            kind: "reward".into(),
            list: "hourly".into(),
            rank: None,
            text: String::new(),
        },
        EventKind::System {
            method: "WebcastRoomMessage".into(),
            key: "k".into(),
            text: "Welcome".into(),
        },
        EventKind::CommentDeleted {
            message_ids: vec!["1".into()],
            user_ids: vec![],
        },
    ];
    // Every declared kind (at its defaults) and the richer samples above, so a kind the
    // list above misses, or a field the fast writer misses, still fails here.
    let kinds = EVENT_TYPES
        .iter()
        .filter_map(|name| EventKind::sample(name))
        .chain(kinds);
    for (i, kind) in kinds.enumerate() {
        let mut e = Event::new(kind, format!("id{i}"), Source::Tiktok);
        e.stream = "ali\"ce".into();
        for _with_room_and_user in [false, true] {
            assert_eq!(e.to_json(), serde_json::to_string(&e).unwrap());
            let back: Event = serde_json::from_str(&e.to_json()).unwrap();
            assert_eq!(back, e);
            e.room_id = Some("77".into());
            e.user = Some(host.clone());
        }
    }
}

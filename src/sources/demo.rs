//! The demo source: a synthetic TikTok LIVE stream made of real webcast protobuf, so the demo
//! exercises the same decode path as a live stream.
//!
//! It builds gzip-compressed push frames as TikTok sends them, with a believable mix: joins,
//! comments (some that look like HTML, some multi-line), like bursts, follows, shares, drifting
//! viewer counts, single gifts, gift combos that end with `repeat_end`, and now and then a combo
//! whose end never comes so the timeout path shows. Viewers have emoji, CJK, Arabic,
//! combining-character and empty nicknames. The same seed gives the same stream.

use std::time::Duration;

use prost::Message;

use super::rng::Rng;
use crate::events::{Event, EventKind, Source};
use crate::pipeline::{Feed, Input};
use crate::proto;
use crate::tiktok::frame;

/// The room id the demo claims to be.
pub const DEMO_ROOM_ID: i64 = 7_300_000_000_000_000_001;
/// The handle the demo claims to be.
pub const DEMO_UNIQUE_ID: &str = "tikrelay_demo";

/// Demo viewers: (nickname, handle). Names are chosen to break naive overlays.
const VIEWERS: &[(&str, &str)] = &[
    ("Luna 🌙✨", "luna.moon"),
    ("小龙", "xiaolong88"),
    ("محمد الأحمد", "mohammed_ahmad"),
    ("Zoe\u{0308} Ame\u{0301}lie", "zoe_amelie"),
    ("", "no_nickname_user"),
    ("<img src=x onerror=alert(1)>", "html_tester"),
    ("Kai 🎮", "kai.plays"),
    ("さくら", "sakura_jp"),
    ("O'Brien \"The Quote\"", "obrien"),
    (
        "Maximiliano de la Cruz Hernández-Villalobos III",
        "maxi_long_name",
    ),
    ("👑👑👑", "emoji_only"),
    ("Ana", "ana.b"),
];

const COMMENTS: &[&str] = &[
    "hello from Brazil 🇧🇷",
    "this stream is fire 🔥🔥🔥",
    "<b>is this bold?</b>",
    "<script>alert('x')</script>",
    "line one\nline two",
    "你好！",
    "مرحبا بالجميع",
    "can you say hi to my mom",
    "!jump",
    "{{user.nickname}} is not a template",
    "first time here 👋",
    "GG",
];

/// (id, name, diamonds, streakable, image file)
const GIFTS: &[(i64, &str, i32, bool, &str)] = &[
    (5655, "Rose", 1, true, "rose.svg"),
    (5269, "TikTok", 1, true, "tiktok.svg"),
    (5487, "Finger Heart", 5, true, "heart.svg"),
    (5879, "Doughnut", 30, true, "doughnut.svg"),
    (11046, "Galaxy", 1000, false, "galaxy.svg"),
    (6369, "Lion", 29999, false, "lion.svg"),
];

#[derive(Debug)]
struct DemoCombo {
    viewer: usize,
    gift: usize,
    group_id: i64,
    count: i32,
    target: i32,
    /// This combo never sends `repeat_end`, so the relay must end it by timeout.
    endless: bool,
}

/// Generates the demo stream one message at a time.
#[derive(Debug)]
pub struct DemoStream {
    rng: Rng,
    next_msg_id: i64,
    seq: i64,
    viewers: i64,
    total_viewers: i64,
    likes: i64,
    combos: Vec<DemoCombo>,
}

impl DemoStream {
    pub fn new(seed: u64) -> DemoStream {
        let mut rng = Rng::new(seed);
        let viewers = 80 + rng.below(60) as i64;
        DemoStream {
            next_msg_id: 7_400_000_000_000_000_000 + (rng.below(1_000_000) as i64) * 1000,
            rng,
            seq: 0,
            viewers,
            total_viewers: viewers * 3,
            likes: 0,
            combos: Vec::new(),
        }
    }

    /// The next push frame's bytes, gzip-compressed as TikTok sends them.
    pub fn next_frame(&mut self) -> Vec<u8> {
        let msg = self.next_message();
        self.seq += 1;
        let result = proto::ProtoMessageFetchResult {
            messages: vec![msg],
            cursor: format!("demo-cursor-{}", self.seq),
            internal_ext: format!("demo-ext-{}", self.seq),
            now: crate::events::now_ms(),
            ..Default::default()
        };
        frame::msg_frame(self.seq, self.seq, &result, true).encode_to_vec()
    }

    /// The next webcast message.
    pub fn next_message(&mut self) -> proto::BaseProtoMessage {
        // Open combos advance first, so streaks look like streaks.
        if !self.combos.is_empty() && self.rng.chance(45) {
            let i = self.rng.below(self.combos.len() as u64) as usize;
            return self.advance_combo(i);
        }
        match self.rng.below(100) {
            0..=24 => self.comment(),
            25..=41 => self.like(),
            42..=55 => self.join(),
            56..=63 => self.social("pm_main_follow_message_viewer_2"),
            64..=67 => self.social("pm_mt_guidance_share"),
            68..=75 => self.viewers_update(),
            76..=78 => self.single_gift(),
            79..=81 => self.emote(),
            _ => self.start_combo(),
        }
    }

    fn msg_id(&mut self) -> i64 {
        self.next_msg_id += 1 + self.rng.below(7) as i64;
        self.next_msg_id
    }

    fn common(&mut self, method: &str, key: &str) -> proto::CommonMessageData {
        proto::CommonMessageData {
            method: method.into(),
            msg_id: self.msg_id(),
            room_id: DEMO_ROOM_ID,
            create_time: crate::events::now_ms(),
            display_text: (!key.is_empty()).then(|| proto::Text {
                key: key.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn user(&self, i: usize) -> proto::User {
        let (nickname, handle) = VIEWERS[i % VIEWERS.len()];
        proto::User {
            id: 6_800_000_000_000_000_000 + i as i64 * 7919,
            nickname: nickname.into(),
            display_id: handle.into(),
            avatar_thumb: Some(proto::ImageModel {
                url_list: vec![format!("/overlays/default/images/avatar-{}.svg", i % 6 + 1)],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn random_user(&mut self) -> proto::User {
        let i = self.rng.below(VIEWERS.len() as u64) as usize;
        self.user(i)
    }

    fn wrap(
        method: &str,
        common: &proto::CommonMessageData,
        msg: &impl Message,
    ) -> proto::BaseProtoMessage {
        frame::base_message(method, common.msg_id, msg)
    }

    fn comment(&mut self) -> proto::BaseProtoMessage {
        let text = COMMENTS[self.rng.below(COMMENTS.len() as u64) as usize];
        let common = self.common("WebcastChatMessage", "");
        let m = proto::WebcastChatMessage {
            common: Some(common.clone()),
            user: Some(self.random_user()),
            content: text.into(),
            ..Default::default()
        };
        Self::wrap("WebcastChatMessage", &common, &m)
    }

    fn emote(&mut self) -> proto::BaseProtoMessage {
        let common = self.common("WebcastEmoteChatMessage", "");
        let m = proto::WebcastEmoteChatMessage {
            common: Some(common.clone()),
            user: Some(self.random_user()),
            emote_list: vec![proto::EmoteModel {
                emote_id: format!("{}", 7_000_000 + self.rng.below(20)),
                ..Default::default()
            }],
            ..Default::default()
        };
        Self::wrap("WebcastEmoteChatMessage", &common, &m)
    }

    fn like(&mut self) -> proto::BaseProtoMessage {
        // Likes come in bursts: one viewer tapping fast.
        let burst = if self.rng.chance(20) { 50 } else { 10 };
        let count = 1 + self.rng.below(burst) as i32;
        self.likes += count as i64;
        let common = self.common("WebcastLikeMessage", "pm_mt_msg_viewer");
        let m = proto::WebcastLikeMessage {
            common: Some(common.clone()),
            count,
            total: self.likes,
            user: Some(self.random_user()),
            ..Default::default()
        };
        Self::wrap("WebcastLikeMessage", &common, &m)
    }

    fn join(&mut self) -> proto::BaseProtoMessage {
        self.viewers += 1;
        self.total_viewers += 1;
        let common = self.common("WebcastMemberMessage", "live_room_enter_toast");
        let m = proto::WebcastMemberMessage {
            common: Some(common.clone()),
            user: Some(self.random_user()),
            member_count: self.viewers as i32,
            action: 1,
            ..Default::default()
        };
        Self::wrap("WebcastMemberMessage", &common, &m)
    }

    fn social(&mut self, key: &str) -> proto::BaseProtoMessage {
        let common = self.common("WebcastSocialMessage", key);
        let m = proto::WebcastSocialMessage {
            common: Some(common.clone()),
            user: Some(self.random_user()),
            action: if key.contains("follow") { 1 } else { 3 },
            ..Default::default()
        };
        Self::wrap("WebcastSocialMessage", &common, &m)
    }

    fn viewers_update(&mut self) -> proto::BaseProtoMessage {
        let drift = self.rng.below(21) as i64 - 10;
        self.viewers = (self.viewers + drift).max(1);
        self.total_viewers = self.total_viewers.max(self.viewers) + drift.max(0);
        let common = self.common("WebcastRoomUserSeqMessage", "");
        let m = proto::WebcastRoomUserSeqMessage {
            common: Some(common.clone()),
            total: self.viewers,
            total_user: self.total_viewers,
            ..Default::default()
        };
        Self::wrap("WebcastRoomUserSeqMessage", &common, &m)
    }

    fn gift_message(
        &mut self,
        viewer: usize,
        gift: usize,
        group_id: i64,
        count: i32,
        end: bool,
    ) -> proto::BaseProtoMessage {
        let (id, name, diamonds, streakable, image) = GIFTS[gift];
        let common = self.common("WebcastGiftMessage", "");
        let m = proto::WebcastGiftMessage {
            common: Some(common.clone()),
            gift_id: id,
            repeat_count: count,
            repeat_end: end as i32,
            group_id,
            user: Some(self.user(viewer)),
            gift: Some(proto::Gift {
                id,
                name: name.into(),
                diamond_count: diamonds,
                r#type: if streakable { 1 } else { 2 },
                combo: streakable,
                image: Some(proto::ImageModel {
                    url_list: vec![format!("/overlays/default/images/gifts/{image}")],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        Self::wrap("WebcastGiftMessage", &common, &m)
    }

    fn single_gift(&mut self) -> proto::BaseProtoMessage {
        let viewer = self.rng.below(VIEWERS.len() as u64) as usize;
        let gift = 4 + self.rng.below(2) as usize;
        let group = self.msg_id();
        self.gift_message(viewer, gift, group, 1, false)
    }

    fn start_combo(&mut self) -> proto::BaseProtoMessage {
        let viewer = self.rng.below(VIEWERS.len() as u64) as usize;
        let gift = self.rng.below(4) as usize;
        let group_id = self.msg_id();
        let size = if self.rng.chance(25) { 40 } else { 8 };
        let combo = DemoCombo {
            viewer,
            gift,
            group_id,
            count: 1,
            target: 1 + self.rng.below(size) as i32,
            endless: self.rng.chance(10),
        };
        let msg = self.gift_message(viewer, gift, group_id, 1, false);
        self.combos.push(combo);
        msg
    }

    fn advance_combo(&mut self, i: usize) -> proto::BaseProtoMessage {
        let c = &mut self.combos[i];
        let (viewer, gift, group) = (c.viewer, c.gift, c.group_id);
        if c.count >= c.target {
            let (count, endless) = (c.count, c.endless);
            self.combos.swap_remove(i);
            if endless {
                // The end is lost on purpose: emit something else and let the timeout work.
                return self.comment();
            }
            return self.gift_message(viewer, gift, group, count, true);
        }
        c.count += 1 + (c.target > 20) as i32 * self.rng.below(3) as i32;
        let count = c.count.min(c.target);
        c.count = count;
        self.gift_message(viewer, gift, group, count, false)
    }
}

/// Options of the demo source.
#[derive(Debug, Clone, Copy)]
pub struct DemoOptions {
    /// Messages per second; 0 sends none (only test events then).
    pub rate: f64,
    pub seed: u64,
}

/// Runs the demo until the pipeline goes away.
pub async fn run(options: DemoOptions, tx: Feed) {
    let mut connected = Event::new(
        EventKind::Connected {
            unique_id: DEMO_UNIQUE_ID.into(),
        },
        crate::events::local_id("connected"),
        Source::Demo,
    );
    connected.room_id = Some(DEMO_ROOM_ID.to_string());
    let _ = tx.send(Input::Room(Some(DEMO_ROOM_ID.to_string()))).await;
    if tx.send(Input::Event(Box::new(connected))).await.is_err() || options.rate <= 0.0 {
        return;
    }
    let mut stream = DemoStream::new(options.seed);
    // Above 1000/s one tick carries several frames, because timers tick at most every ms.
    let per_tick = (options.rate / 1000.0).ceil().max(1.0);
    let period = Duration::from_secs_f64(per_tick / options.rate);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for _ in 0..per_tick as usize {
            if tx
                .send(Input::PushFrame(stream.next_frame()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

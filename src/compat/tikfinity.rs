//! The TikFinity frame format: turns one relay [`Event`] into the `{"event", "data"}` frames
//! TikFinity's local socket sends, which carry tiktok-live-connector's v1 event names and its
//! flat camelCase fields.
//!
//! The mapping is a pure function of the event (plus the session's top gifters for
//! `roomUser.topViewers`), so every rule is unit-tested here and documented field by field in the
//! README. Where tikrelay does not carry a field the connector sends, the value is the one the
//! connector itself produces when TikTok leaves it out (empty badge list, `false`, `0`, `null`),
//! except where the event itself says more (a `follow` viewer follows, a `subscribe` viewer
//! subscribes). Role fields a future `user` carries (`follow_role`, `is_moderator`, …) are passed
//! through as soon as they are there.
//!
//! Gifts follow TikFinity: every message of a streak is a `gift` with `repeatEnd: false` and the
//! running `repeatCount`, its end (TikTok's last message, or the combo timeout) one more `gift`
//! with `repeatEnd: true`. The relay's final `gift` event of a streak is therefore not sent again,
//! so widgets that skip `giftType === 1 && !repeatEnd` count each gift once.

use serde_json::{Map, Value, json};

use crate::events::{BattlePhase, Event, EventKind, GiftInfo, User};

/// TikTok's gift type of streakable gifts (the only type that repeats).
pub const GIFT_TYPE_STREAK: u64 = 1;
/// What non-streakable gifts are sent as; tikrelay only knows whether a gift streaks.
pub const GIFT_TYPE_SINGLE: u64 = 2;
/// Entries of `roomUser.topViewers`, as TikTok's web ranking shows.
pub const TOP_VIEWERS: usize = 3;

/// Builds frames; `base` (e.g. `http://127.0.0.1:8642`) makes relay-served image paths absolute.
#[derive(Debug, Clone)]
pub struct Mapper {
    base: String,
}

/// One frame: the connector's event name and its flat data.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub event: &'static str,
    pub data: Value,
}

impl Frame {
    /// The JSON text sent: `{"event": NAME, "data": {…}}`.
    pub fn to_json(&self) -> String {
        json!({"event": self.event, "data": self.data}).to_string()
    }
}

impl Mapper {
    pub fn new(base: impl Into<String>) -> Mapper {
        Mapper {
            base: base.into().trim_end_matches('/').to_string(),
        }
    }

    /// An image URL a page served from anywhere can load: relay paths get the relay's origin,
    /// protocol-relative URLs get https.
    pub fn absolute(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") || url.starts_with("data:") {
            url.to_string()
        } else if let Some(rest) = url.strip_prefix("//") {
            format!("https://{rest}")
        } else if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            format!("{}/{url}", self.base)
        }
    }

    /// The frames for one event; empty when TikFinity has no name for it. `top_gifters` is the
    /// session leaderboard (the `top_gifters` part of the snapshot), read only for `viewers`.
    pub fn frames(&self, event: &Event, top_gifters: impl FnOnce() -> Value) -> Vec<Frame> {
        let user = event.user.as_ref();
        let kind = &event.kind;
        let frame = |name: &'static str, fields: Value| Frame {
            event: name,
            data: self.message(event, user, fields),
        };
        match kind {
            EventKind::Comment { text } => {
                vec![frame("chat", json!({"comment": text, "emotes": []}))]
            }
            EventKind::Emote { emote_ids } => {
                let emotes: Vec<Value> = emote_ids
                    .iter()
                    .map(|id| json!({"emoteId": id, "emoteImageUrl": null}))
                    .collect();
                vec![frame(
                    "emote",
                    json!({
                        "emoteId": emote_ids.first(),
                        "emoteImageUrl": null,
                        "emotes": emotes,
                    }),
                )]
            }
            EventKind::Follow => {
                let social = social_fields(
                    "pm_main_follow_message_viewer_2",
                    "{0:user} followed the LIVE creator",
                );
                vec![frame("social", social.clone()), frame("follow", social)]
            }
            EventKind::Share => {
                let social = social_fields("pm_mt_guidance_share", "{0:user} shared the LIVE");
                vec![frame("social", social.clone()), frame("share", social)]
            }
            EventKind::Join { .. } => vec![frame(
                "member",
                json!({
                    "actionId": 1,
                    "displayType": "live_room_enter_toast",
                    "label": "{0:user} joined",
                }),
            )],
            EventKind::Like { count, total } => vec![frame(
                "like",
                json!({
                    "likeCount": count,
                    "totalLikeCount": total,
                    "displayType": "pm_mt_msg_viewer",
                    "label": "{0:user} liked the LIVE",
                }),
            )],
            EventKind::Viewers { viewers, .. } => {
                let top = self.top_viewers(&top_gifters());
                vec![Frame {
                    event: "roomUser",
                    data: self.message(
                        event,
                        None,
                        json!({"viewerCount": viewers, "topViewers": top}),
                    ),
                }]
            }
            // One frame per streak message; the end comes as the ended combo.
            EventKind::Combo {
                gift,
                combo_id,
                count,
                ended,
                ..
            } => vec![frame(
                "gift",
                self.gift_fields(gift, *count, *ended, Some(combo_id)),
            )],
            // A streak's final gift was already sent as its ended combo.
            EventKind::Gift {
                combo_id: Some(_), ..
            } => Vec::new(),
            EventKind::Gift {
                gift,
                count,
                combo_id: None,
                ..
            } => vec![frame("gift", self.gift_fields(gift, *count, true, None))],
            EventKind::Subscribe { months } => {
                vec![frame("subscribe", json!({"subMonth": months.unwrap_or(0)}))]
            }
            EventKind::Battle { phase, teams, .. } => match phase {
                BattlePhase::Start => {
                    let users: Vec<Value> = teams
                        .iter()
                        .map(|t| Value::Object(self.user_fields(Some(&t.host), None)))
                        .collect();
                    vec![Frame {
                        event: "linkMicBattle",
                        data: self.message(event, None, json!({"battleUsers": users})),
                    }]
                }
                BattlePhase::Score | BattlePhase::End => {
                    let armies: Vec<Value> = teams
                        .iter()
                        .map(|t| {
                            json!({"hostUserId": t.host.id, "points": t.score, "participants": []})
                        })
                        .collect();
                    let status = if *phase == BattlePhase::End { 2 } else { 1 };
                    vec![Frame {
                        event: "linkMicArmies",
                        data: self.message(
                            event,
                            None,
                            json!({"battleArmies": armies, "battleStatus": status}),
                        ),
                    }]
                }
                // TikFinity has no frame for battle item cards and tasks.
                BattlePhase::ItemCard | BattlePhase::Task => Vec::new(),
            },
            EventKind::Envelope {
                diamonds, people, ..
            } => vec![frame(
                "envelope",
                json!({"coins": diamonds, "canOpen": people}),
            )],
            EventKind::Question { text } => {
                vec![frame("questionNew", json!({"questionText": text}))]
            }
            EventKind::LiveEnded => vec![Frame {
                event: "streamEnd",
                data: json!({"action": 3}),
            }],
            EventKind::Connected { .. } => vec![Frame {
                event: "connected",
                data: json!({"isConnected": true, "roomId": event.room_id}),
            }],
            EventKind::Disconnected { .. } => vec![Frame {
                event: "disconnected",
                data: json!({}),
            }],
            EventKind::Webcast { method, data } => self.webcast(event, method, data),
            EventKind::LivePaused
            | EventKind::LiveResumed
            | EventKind::SuperFan
            | EventKind::Pin { .. }
            | EventKind::Unknown { .. } => Vec::new(),
            // Issue 10's kinds: the connector had no frame for them while they were `webcast`
            // (or `unknown`) either.
            EventKind::SuperFanJoin
            | EventKind::Goal { .. }
            | EventKind::Poll { .. }
            | EventKind::Rank { .. }
            | EventKind::System { .. }
            | EventKind::CommentDeleted { .. } => Vec::new(),
        }
    }

    /// Messages the relay passes through raw whose connector event has a name.
    fn webcast(&self, event: &Event, method: &str, data: &Value) -> Vec<Frame> {
        let user = data.get("user").and_then(user_from_proto_json);
        let display = |field: &str| {
            data.pointer(&format!("/common/display_text/{field}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (name, fields) = match method {
            "WebcastLiveIntroMessage" => (
                "liveIntro",
                json!({
                    "id": data.get("id").cloned().unwrap_or(json!("0")),
                    "description": data.get("content").and_then(Value::as_str).unwrap_or_default(),
                }),
            ),
            "WebcastSocialMessage" => (
                "social",
                json!({"displayType": display("key"), "label": display("default_pattern")}),
            ),
            "WebcastMemberMessage" => (
                "member",
                json!({
                    "actionId": data.get("action").and_then(Value::as_i64).unwrap_or(0),
                    "displayType": display("key"),
                    "label": display("default_pattern"),
                }),
            ),
            _ => return Vec::new(),
        };
        vec![Frame {
            event: name,
            data: self.message_with_user(event, user.as_ref(), fields),
        }]
    }

    /// The data of a message event: the user's fields (for user events), the event's own
    /// fields, then `msgId` and `createTime`.
    fn message(&self, event: &Event, user: Option<&User>, fields: Value) -> Value {
        let mut map = if user_event(&event.kind) {
            self.user_fields(user, Some(&event.kind))
        } else {
            Map::new()
        };
        append(&mut map, fields);
        common_fields(&mut map, event);
        Value::Object(map)
    }

    fn message_with_user(&self, event: &Event, user: Option<&User>, fields: Value) -> Value {
        let mut map = match user {
            Some(u) => self.user_fields(Some(u), Some(&event.kind)),
            None => Map::new(),
        };
        append(&mut map, fields);
        common_fields(&mut map, event);
        Value::Object(map)
    }

    /// The connector's user attributes. Roles come from the user when the relay has them, else
    /// the connector's values for a user TikTok sent without badges. `kind` is the event the
    /// user acted in (`None` for listed users such as top viewers).
    pub fn user_fields(&self, user: Option<&User>, kind: Option<&EventKind>) -> Map<String, Value> {
        let empty = User::default();
        let u = user.unwrap_or(&empty);
        let mut m = Map::new();
        m.insert("userId".into(), json!(u.id));
        m.insert("uniqueId".into(), json!(u.unique_id));
        m.insert("nickname".into(), json!(u.nickname));
        m.insert(
            "profilePictureUrl".into(),
            json!(u.avatar_url.as_deref().map(|url| self.absolute(url))),
        );
        // Read through JSON so role fields added to `User` later are picked up by name.
        let raw = serde_json::to_value(u).unwrap_or(Value::Null);
        m.extend(role_fields(&raw, kind));
        m
    }

    fn gift_fields(
        &self,
        gift: &GiftInfo,
        count: u64,
        repeat_end: bool,
        combo_id: Option<&str>,
    ) -> Value {
        let gift_type = if gift.streakable {
            GIFT_TYPE_STREAK
        } else {
            GIFT_TYPE_SINGLE
        };
        json!({
            "giftId": gift.id,
            "giftName": gift.name,
            "giftType": gift_type,
            "diamondCount": gift.diamonds,
            "repeatCount": count,
            "repeatEnd": repeat_end,
            "groupId": combo_id.map_or_else(|| "0".to_string(), group_id),
            "giftPictureUrl": gift.image_url.as_deref().map(|u| self.absolute(u)),
            "describe": format!("sent {}", gift.name),
            // The connector's older nested form, still read by some widgets.
            "gift": {
                "gift_id": gift.id,
                "repeat_count": count,
                "repeat_end": u8::from(repeat_end),
                "gift_type": gift_type,
            },
        })
    }

    /// `roomUser.topViewers` from the session's top gifters (`coinCount` = diamonds sent).
    fn top_viewers(&self, top_gifters: &Value) -> Vec<Value> {
        let Some(entries) = top_gifters.as_array() else {
            return Vec::new();
        };
        entries
            .iter()
            .take(TOP_VIEWERS)
            .filter_map(|e| {
                let user: User = serde_json::from_value(e.get("user")?.clone()).ok()?;
                let coins = e.get("score").and_then(Value::as_u64).unwrap_or(0);
                Some(json!({
                    "user": Value::Object(self.user_fields(Some(&user), None)),
                    "coinCount": coins,
                }))
            })
            .collect()
    }
}

/// The role fields of a user (its JSON form): the relay's value where it has one, else what
/// the connector sends for a user without badges, except where the event tells more.
pub fn role_fields(user: &Value, kind: Option<&EventKind>) -> Map<String, Value> {
    let role = |name: &str| user.get(name).filter(|v| !v.is_null()).cloned();
    let follow_default = u8::from(matches!(kind, Some(EventKind::Follow)));
    let subscriber_default = matches!(kind, Some(EventKind::Subscribe { .. }));
    let mut m = Map::new();
    let mut put = |key: &str, value: Value| {
        m.insert(key.to_string(), value);
    };
    put(
        "followRole",
        role("follow_role").unwrap_or(json!(follow_default)),
    );
    put("userBadges", role("badges").unwrap_or_else(|| json!([])));
    put("isModerator", role("is_moderator").unwrap_or(json!(false)));
    put("isNewGifter", role("is_new_gifter").unwrap_or(json!(false)));
    put(
        "isSubscriber",
        role("is_subscriber").unwrap_or(json!(subscriber_default)),
    );
    put(
        "topGifterRank",
        role("top_gifter_rank").unwrap_or(Value::Null),
    );
    put("gifterLevel", role("gifter_level").unwrap_or(json!(0)));
    put("teamMemberLevel", role("team_level").unwrap_or(json!(0)));
    m
}

/// Kinds whose connector event carries the sending viewer's attributes.
fn user_event(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Comment { .. }
            | EventKind::Emote { .. }
            | EventKind::Follow
            | EventKind::Share
            | EventKind::Join { .. }
            | EventKind::Like { .. }
            | EventKind::Gift { .. }
            | EventKind::Combo { .. }
            | EventKind::Subscribe { .. }
            | EventKind::Envelope { .. }
            | EventKind::Question { .. }
    )
}

fn social_fields(display_type: &str, label: &str) -> Value {
    json!({"displayType": display_type, "label": label})
}

fn append(map: &mut Map<String, Value>, fields: Value) {
    if let Value::Object(fields) = fields {
        map.extend(fields);
    }
}

fn common_fields(map: &mut Map<String, Value>, event: &Event) {
    map.insert("msgId".into(), json!(event.id));
    map.insert("createTime".into(), json!(event.ts.to_string()));
}

/// TikTok's streak group id, the last part of the relay's combo id (`USER-GIFT-GROUP`, with
/// `~N` for a streak that went on after a timeout).
fn group_id(combo_id: &str) -> String {
    let last = combo_id.rsplit('-').next().unwrap_or_default();
    let group = last.split('~').next().unwrap_or_default();
    if group.parse::<i64>().is_ok() {
        group.to_string()
    } else {
        "0".to_string()
    }
}

/// A user from a raw webcast message's JSON (snake_case proto fields).
fn user_from_proto_json(u: &Value) -> Option<User> {
    let text = |k: &str| u.get(k).and_then(Value::as_str).unwrap_or_default();
    let id = [text("id_str"), text("id")]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    let avatar = ["avatar_thumb", "avatar_medium", "avatar_large"]
        .iter()
        .find_map(|k| {
            u.pointer(&format!("/{k}/url_list/0"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        });
    let user = User {
        id: id.to_string(),
        unique_id: text("display_id").to_string(),
        nickname: text("nickname").to_string(),
        avatar_url: avatar.map(str::to_string),
        ..Default::default()
    };
    (!user.id.is_empty() || !user.unique_id.is_empty() || !user.nickname.is_empty()).then_some(user)
}

#[cfg(test)]
mod tests;

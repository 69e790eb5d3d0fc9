//! Who a viewer is to the host: moderator, subscriber, follower, gifter and team levels, top
//! gifter rank, new gifter. Read from the proto `User` TikTok attaches to a message.
//!
//! TikTok shows most roles as badges next to the name (`badge_list`, each with a
//! `badge_scene`); subscription and following also have fields of their own. A role is only
//! stated where what it is read from was sent: a user with no badges at all has no
//! `is_moderator` (not `false`), because TikTok leaves badges out of some messages. Levels and
//! ranks of 0 are proto3's "not sent" and stay absent too. The numbers are those the reference
//! clients use (protocol.md section 2.2: scene 1 admin, 4 subscriber, 6 rank list, 7 new
//! subscriber, 8 gifter level, 10 fans team; top gifter ranks from the badge image's
//! `ranklist_top_gifter_N` name, new gifters from `live_ng_` badges).

use super::User;
use crate::proto;

const SCENE_ADMIN: i32 = 1;
const SCENE_SUBSCRIBER: i32 = 4;
const SCENE_NEW_SUBSCRIBER: i32 = 7;
const SCENE_USER_GRADE: i32 = 8;
const SCENE_FANS: i32 = 10;

/// The roles of one proto user, ready to be put on the event's [`User`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles {
    pub is_moderator: Option<bool>,
    pub is_subscriber: Option<bool>,
    pub follow_role: Option<u8>,
    pub gifter_level: Option<u32>,
    pub team_level: Option<u32>,
    pub top_gifter_rank: Option<u32>,
    pub is_new_gifter: Option<bool>,
}

impl Roles {
    /// Reads the roles `u` carries.
    pub fn of(u: &proto::User) -> Roles {
        let badges = &u.badge_list;
        let known = !badges.is_empty();
        let has_scene = |scenes: &[i32]| badges.iter().any(|b| scenes.contains(&b.badge_scene));
        let any_text = |needle: &str| {
            badges
                .iter()
                .any(|b| badge_texts(b).any(|t| contains_ignore_case(t, needle)))
        };

        let moderator = has_scene(&[SCENE_ADMIN]) || any_text("moderator");
        let subscriber_badge = has_scene(&[SCENE_SUBSCRIBER, SCENE_NEW_SUBSCRIBER]);
        let is_subscriber = match &u.subscribe_info {
            Some(info) => Some(info.is_subscribe || subscriber_badge),
            None if known => Some(subscriber_badge),
            None => None,
        };
        let follow_role = u
            .follow_info
            .as_ref()
            .and_then(|f| u8::try_from(f.follow_status).ok())
            .filter(|s| *s <= 2);
        let gifter_level = badge_level(badges, SCENE_USER_GRADE)
            .or_else(|| u.pay_grade.as_ref().and_then(|g| positive(g.level as i64)));
        let team_level = badge_level(badges, SCENE_FANS).or_else(|| {
            u.fans_club
                .as_ref()
                .and_then(|c| c.data.as_ref())
                .and_then(|d| positive(d.level as i64))
        });
        let top_gifter_rank = badges
            .iter()
            .find_map(|b| badge_texts(b).find_map(|t| number_after(t, "ranklist_top_gifter_")));
        Roles {
            is_moderator: known.then_some(moderator),
            is_subscriber,
            follow_role,
            gifter_level,
            team_level,
            top_gifter_rank,
            is_new_gifter: known.then(|| any_text("live_ng_")),
        }
    }

    /// Puts the roles on `user`.
    pub fn apply(self, user: &mut User) {
        user.is_moderator = self.is_moderator;
        user.is_subscriber = self.is_subscriber;
        user.follow_role = self.follow_role;
        user.gifter_level = self.gifter_level;
        user.team_level = self.team_level;
        user.top_gifter_rank = self.top_gifter_rank;
        user.is_new_gifter = self.is_new_gifter;
    }
}

/// Every text of a badge that names what it is: its text key and pattern, its string, and the
/// URLs of its images (TikTok names badge images after the role, e.g. `…/sub_…png`).
fn badge_texts(b: &proto::BadgeStruct) -> impl Iterator<Item = &str> {
    let text = b
        .text
        .iter()
        .flat_map(|t| [t.key.as_str(), t.default_pattern.as_str()]);
    let string = b.str.iter().map(|s| s.str.as_str());
    let combine = b.combine.iter().map(|c| c.str.as_str());
    let images = b
        .image
        .iter()
        .filter_map(|i| i.image.as_ref())
        .chain(b.combine.iter().filter_map(|c| c.icon.as_ref()))
        .flat_map(|i| i.url_list.iter().map(String::as_str));
    text.chain(string)
        .chain(combine)
        .chain(images)
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
}

/// `needle` (lowercase ASCII) in `text`, ignoring ASCII case, without allocating.
fn contains_ignore_case(text: &str, needle: &str) -> bool {
    text.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The level of the first badge of `scene` that states one (`log_extra.level`, decimal).
fn badge_level(badges: &[proto::BadgeStruct], scene: i32) -> Option<u32> {
    badges
        .iter()
        .filter(|b| b.badge_scene == scene)
        .find_map(|b| b.log_extra.as_ref()?.level.trim().parse::<u32>().ok())
        .filter(|l| *l > 0)
}

fn positive(n: i64) -> Option<u32> {
    u32::try_from(n).ok().filter(|n| *n > 0)
}

/// The decimal number right after `prefix` in `text` (`…/ranklist_top_gifter_2.png` → 2).
fn number_after(text: &str, prefix: &str) -> Option<u32> {
    let at = text.find(prefix)? + prefix.len();
    let digits: &str = &text[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, EventKind, Source};

    fn badge(scene: i32) -> proto::BadgeStruct {
        proto::BadgeStruct {
            badge_scene: scene,
            ..Default::default()
        }
    }

    fn image_badge(scene: i32, url: &str) -> proto::BadgeStruct {
        proto::BadgeStruct {
            badge_scene: scene,
            image: Some(proto::BadgeImage {
                image: Some(proto::ImageModel {
                    url_list: vec![url.into()],
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }

    fn level_badge(scene: i32, level: &str) -> proto::BadgeStruct {
        proto::BadgeStruct {
            badge_scene: scene,
            log_extra: Some(proto::BadgeLogExtra {
                level: level.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_user_without_badges_or_role_fields_has_no_roles() {
        assert_eq!(Roles::of(&proto::User::default()), Roles::default());
    }

    #[test]
    fn badges_give_each_role() {
        let u = proto::User {
            badge_list: vec![
                badge(SCENE_ADMIN),
                image_badge(
                    6,
                    "https://p16-webcast.tiktokcdn.com/webcast-va/ranklist_top_gifter_2.png~tplv-obj.image",
                ),
                level_badge(SCENE_USER_GRADE, "23"),
                level_badge(SCENE_FANS, "7"),
                image_badge(
                    5,
                    "https://p16-webcast.tiktokcdn.com/webcast-va/live_ng_badge.png",
                ),
            ],
            follow_info: Some(proto::FollowInfo {
                follow_status: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            Roles::of(&u),
            Roles {
                is_moderator: Some(true),
                is_subscriber: Some(false),
                follow_role: Some(2),
                gifter_level: Some(23),
                team_level: Some(7),
                top_gifter_rank: Some(2),
                is_new_gifter: Some(true),
            }
        );
    }

    #[test]
    fn badges_without_a_role_say_no_and_levels_stay_absent() {
        let u = proto::User {
            badge_list: vec![level_badge(SCENE_USER_GRADE, "0"), badge(3)],
            ..Default::default()
        };
        assert_eq!(
            Roles::of(&u),
            Roles {
                is_moderator: Some(false),
                is_subscriber: Some(false),
                is_new_gifter: Some(false),
                ..Roles::default()
            }
        );
    }

    #[test]
    fn moderator_text_badges_subscriber_fields_and_fallback_levels() {
        let u = proto::User {
            badge_list: vec![proto::BadgeStruct {
                text: Some(proto::BadgeText {
                    key: "live_moderator_badge".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            subscribe_info: Some(proto::SubscribeInfo { is_subscribe: true }),
            pay_grade: Some(proto::UserHonor {
                level: 12,
                ..Default::default()
            }),
            fans_club: Some(proto::FansClubMember {
                data: Some(proto::FansClubData {
                    level: 3,
                    ..Default::default()
                }),
            }),
            follow_info: Some(proto::FollowInfo {
                follow_status: 9,
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = Roles::of(&u);
        assert_eq!(r.is_moderator, Some(true));
        assert_eq!(r.is_subscriber, Some(true));
        assert_eq!(r.gifter_level, Some(12));
        assert_eq!(r.team_level, Some(3));
        // A follow status outside 0..=2 is not a known role: absent, not guessed.
        assert_eq!(r.follow_role, None);
        // A subscriber badge alone says subscriber.
        let sub = proto::User {
            badge_list: vec![badge(SCENE_NEW_SUBSCRIBER)],
            ..Default::default()
        };
        assert_eq!(Roles::of(&sub).is_subscriber, Some(true));
    }

    #[test]
    fn roles_serialise_only_when_known_and_the_fast_writer_agrees() {
        let mut user = User {
            id: "1".into(),
            nickname: "Mod \"<b>\"".into(),
            avatar_url: Some("https://p16-sign.tiktokcdn.com/a.webp".into()),
            avatar: Some("/media/abc?src=x".into()),
            ..User::default()
        };
        Roles {
            is_moderator: Some(true),
            is_subscriber: Some(false),
            follow_role: Some(1),
            gifter_level: Some(30),
            team_level: None,
            top_gifter_rank: Some(1),
            is_new_gifter: None,
        }
        .apply(&mut user);
        let e = Event::new(
            EventKind::Comment { text: "hi".into() },
            "1",
            Source::Tiktok,
        )
        .with_user(Some(user));
        let json = e.to_json();
        assert_eq!(json, serde_json::to_string(&e).unwrap());
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let u = &v["user"];
        assert_eq!(u["is_moderator"], true);
        assert_eq!(u["is_subscriber"], false);
        assert_eq!(u["follow_role"], 1);
        assert_eq!(u["gifter_level"], 30);
        assert_eq!(u["top_gifter_rank"], 1);
        assert_eq!(u["avatar"], "/media/abc?src=x");
        assert!(u.get("team_level").is_none());
        assert!(u.get("is_new_gifter").is_none());
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
        // A user without roles writes none of the keys.
        let plain = Event::new(EventKind::Follow, "2", Source::Tiktok).with_user(Some(User {
            id: "2".into(),
            ..User::default()
        }));
        assert_eq!(plain.to_json(), serde_json::to_string(&plain).unwrap());
        assert!(!plain.to_json().contains("is_moderator"));
    }
}

//! A trigger's `who` condition: fire only for viewers with one of the listed roles.
//!
//! `who = ["moderator", "subscriber", "follower", "top_gifter"]` matches a viewer who holds
//! any of them, read from the event's `user` ([`crate::events::roles`]). A role TikTok did not
//! send counts as not held, so an event without a user, or a viewer whose roles are unknown,
//! never matches a `who` trigger.

use crate::events::User;

/// A role `who` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Moderator,
    Subscriber,
    /// Follows the host (friends included).
    Follower,
    /// Has a top-gifter rank in the room.
    TopGifter,
}

/// The names `who` accepts, in the order the README lists them.
pub const ROLE_NAMES: &[&str] = &["moderator", "subscriber", "follower", "top_gifter"];

impl Role {
    /// The role a `who` entry names (trimmed, any case).
    pub fn parse(name: &str) -> Option<Role> {
        match name.trim().to_ascii_lowercase().as_str() {
            "moderator" => Some(Role::Moderator),
            "subscriber" => Some(Role::Subscriber),
            "follower" => Some(Role::Follower),
            "top_gifter" => Some(Role::TopGifter),
            _ => None,
        }
    }

    fn held_by(self, u: &User) -> bool {
        match self {
            Role::Moderator => u.is_moderator == Some(true),
            Role::Subscriber => u.is_subscriber == Some(true),
            Role::Follower => u.follow_role.is_some_and(|r| r >= 1),
            Role::TopGifter => u.top_gifter_rank.is_some(),
        }
    }
}

/// Whether a trigger with `who` (empty: anyone) fires for `user`.
pub fn allows(who: &[Role], user: Option<&User>) -> bool {
    who.is_empty() || user.is_some_and(|u| who.iter().any(|r| r.held_by(u)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_matches_any_listed_role_and_never_an_unknown_one() {
        let moderator = User {
            is_moderator: Some(true),
            ..User::default()
        };
        let follower = User {
            follow_role: Some(1),
            is_moderator: Some(false),
            ..User::default()
        };
        let stranger = User {
            follow_role: Some(0),
            ..User::default()
        };
        let unknown = User::default();
        let top = User {
            top_gifter_rank: Some(3),
            ..User::default()
        };
        assert!(allows(&[], None));
        assert!(allows(&[], Some(&unknown)));
        assert!(allows(&[Role::Moderator], Some(&moderator)));
        assert!(!allows(&[Role::Moderator], Some(&follower)));
        assert!(!allows(&[Role::Moderator], Some(&unknown)));
        assert!(!allows(&[Role::Moderator], None));
        assert!(allows(&[Role::Moderator, Role::Follower], Some(&follower)));
        assert!(!allows(&[Role::Follower], Some(&stranger)));
        assert!(allows(&[Role::TopGifter], Some(&top)));
        assert!(!allows(&[Role::Subscriber], Some(&top)));
        for name in ROLE_NAMES {
            assert!(Role::parse(name).is_some(), "{name}");
        }
        assert_eq!(Role::parse(" Top_Gifter "), Some(Role::TopGifter));
        assert_eq!(Role::parse("admin"), None);
    }
}

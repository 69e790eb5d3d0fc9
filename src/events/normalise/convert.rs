//! Proto parts in their event form: users, images, gifts, ids, and TikTok's display-text
//! templates rendered to plain text.

use crate::events::{GiftInfo, User};
use crate::proto;

/// The display-text key of a message's common header, lower-cased ("" when there is none).
pub(super) fn display_key(common: Option<&proto::CommonMessageData>) -> String {
    common
        .and_then(|c| c.display_text.as_ref())
        .map(|t| t.key.to_ascii_lowercase())
        .unwrap_or_default()
}

/// A proto user as overlays see it. A message without a user (or with an all-empty one) has
/// no `user` field.
pub fn user(u: Option<proto::User>) -> Option<User> {
    let u = u?;
    let roles = crate::events::roles::Roles::of(&u);
    let id = if !u.id_str.is_empty() {
        u.id_str
    } else if u.id != 0 {
        int_text(u.id)
    } else {
        String::new()
    };
    if id.is_empty() && u.display_id.is_empty() && u.nickname.is_empty() {
        return None;
    }
    let avatar_url = take_image_url(u.avatar_thumb)
        .or_else(|| take_image_url(u.avatar_medium))
        .or_else(|| take_image_url(u.avatar_large));
    let mut user = User {
        id,
        unique_id: u.display_id,
        nickname: u.nickname,
        avatar_url,
        ..User::default()
    };
    roles.apply(&mut user);
    Some(user)
}

/// A user known only by the separate id, handle and avatar fields some messages carry instead
/// of a `User` (goal contributors); `None` when all are empty.
pub(super) fn user_from_parts(
    id: i64,
    id_str: String,
    unique_id: String,
    avatar: Option<proto::ImageModel>,
) -> Option<User> {
    let id = if !id_str.is_empty() {
        id_str
    } else if id != 0 {
        int_text(id)
    } else {
        String::new()
    };
    if id.is_empty() && unique_id.is_empty() {
        return None;
    }
    Some(User {
        id,
        unique_id,
        nickname: String::new(),
        avatar_url: take_image_url(avatar),
        ..Default::default()
    })
}

pub(super) fn image_url(image: Option<&proto::ImageModel>) -> Option<String> {
    image?.url_list.iter().find(|u| !u.is_empty()).cloned()
}

/// Like [`image_url`], but moves the URL out of a message that is dropped afterwards.
pub(super) fn take_image_url(image: Option<proto::ImageModel>) -> Option<String> {
    image?.url_list.into_iter().find(|u| !u.is_empty())
}

/// Decimal text of a 64-bit id; itoa, because `to_string` goes through the formatting
/// machinery and this runs for most messages.
pub(super) fn int_text(n: i64) -> String {
    itoa::Buffer::new().format(n).to_owned()
}

/// A count TikTok sends signed; negative values (never meaningful) become 0.
pub(super) fn count(n: i64) -> u64 {
    n.max(0) as u64
}

pub(super) fn gift_info(gift: Option<proto::Gift>, gift_id: i64) -> GiftInfo {
    let Some(g) = gift else {
        return GiftInfo {
            id: count(gift_id),
            ..GiftInfo::default()
        };
    };
    let id = if g.id != 0 { g.id } else { gift_id };
    GiftInfo {
        id: count(id),
        diamonds: count(g.diamond_count.into()),
        streakable: g.r#type == 1,
        image_url: take_image_url(g.image).or_else(|| take_image_url(g.icon)),
        name: g.name,
        ..Default::default()
    }
}

/// The text TikTok shows for a display-text template: `default_pattern` with each `{N}` or
/// `{N:kind}` placeholder replaced by piece N (a string, a user's name, a gift's name, a nested
/// pattern). A placeholder without its piece is dropped rather than shown raw.
pub(super) fn render_text(text: &proto::Text) -> String {
    render_pattern(&text.default_pattern, &text.pieces)
}

fn render_pattern(pattern: &str, pieces: &[proto::TextPiece]) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inside = &after[..close];
        let index = inside.split(':').next().unwrap_or("");
        match index.parse::<usize>() {
            Ok(i) => {
                if let Some(piece) = pieces.get(i) {
                    out.push_str(&piece_text(piece));
                }
            }
            // Not a placeholder: keep the text as it was.
            Err(_) => out.push_str(&rest[open..open + close + 2]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

fn piece_text(piece: &proto::TextPiece) -> String {
    if !piece.string_value.is_empty() {
        return piece.string_value.clone();
    }
    if let Some(u) = piece.user_value.as_ref().and_then(|v| v.user.as_ref()) {
        return if u.nickname.trim().is_empty() {
            u.display_id.clone()
        } else {
            u.nickname.clone()
        };
    }
    if let Some(g) = &piece.gift_value {
        return g
            .name_ref
            .as_ref()
            .map(|r| render_pattern(&r.default_pattern, &[]))
            .unwrap_or_default();
    }
    if let Some(r) = &piece.pattern_ref_value {
        return render_pattern(&r.default_pattern, &[]);
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string_piece(s: &str) -> proto::TextPiece {
        proto::TextPiece {
            string_value: s.into(),
            ..Default::default()
        }
    }

    #[test]
    fn templates_are_rendered_with_their_pieces() {
        let user_piece = proto::TextPiece {
            user_value: Some(proto::TextPieceUser {
                user: Some(proto::User {
                    nickname: "Ana".into(),
                    ..Default::default()
                }),
                with_colon: false,
            }),
            ..Default::default()
        };
        let gift_piece = proto::TextPiece {
            gift_value: Some(proto::TextPieceGift {
                gift_id: 5655,
                name_ref: Some(proto::TextPiecePatternRef {
                    key: "gift_name".into(),
                    default_pattern: "Rose".into(),
                }),
            }),
            ..Default::default()
        };
        let text = proto::Text {
            key: "k".into(),
            default_pattern: "{0:user} sent {1:gift} x{2:string}, {3} {x} {".into(),
            pieces: vec![user_piece, gift_piece, string_piece("5")],
            ..Default::default()
        };
        assert_eq!(render_text(&text), "Ana sent Rose x5,  {x} {");
    }

    #[test]
    fn a_user_piece_without_a_nickname_shows_the_handle() {
        let piece = proto::TextPiece {
            user_value: Some(proto::TextPieceUser {
                user: Some(proto::User {
                    display_id: "ana.b".into(),
                    ..Default::default()
                }),
                with_colon: true,
            }),
            ..Default::default()
        };
        assert_eq!(render_pattern("hi {0:user}", &[piece]), "hi ana.b");
    }
}

//! Rules for what viewers do: comments, emotes, follows and shares, likes, joins,
//! subscriptions, super fans, questions, pinned comments, and comments removed by moderation.

use super::convert::{display_key, int_text, user};
use super::{MessageError, Normaliser, Out};
use crate::events::EventKind;
use crate::proto;

/// The barrage display key TikTok shows when a viewer *becomes* a super fan
/// ("{0:user} became a Super Fan"), compared lower-cased. Observed on live streams by users of
/// TikTokLive; the reference libraries fold it into their generic `ttlive_superfan` match.
pub(crate) const SUPER_FAN_BECAME_KEY: &str = "ttlive_superfan_commentnotif_someonebecamesuperfan";
/// The barrage display key for an existing super fan entering the LIVE, compared lower-cased
/// (TikTokLive's `SuperFanJoinEvent` and TikTok-Live-Connector's `superFanJoin` test for it).
pub(crate) const SUPER_FAN_JOINED_KEY: &str = "ttlive_superfan_commentnotif_superfanjoined";

impl Normaliser {
    pub(super) fn chat(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastChatMessage);
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            out.push(env.event(EventKind::Comment { text: m.content }, user(m.user)));
        }
        Ok(())
    }

    pub(super) fn emote(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastEmoteChatMessage);
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let emote_ids = m.emote_list.into_iter().map(|e| e.emote_id).collect();
            out.push(env.event(EventKind::Emote { emote_ids }, user(m.user)));
        }
        Ok(())
    }

    pub(super) fn social(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastSocialMessage);
        let key = display_key(m.common.as_ref());
        let kind = if key.contains("follow") {
            EventKind::Follow
        } else if key.contains("share") {
            EventKind::Share
        } else {
            return self.pass_through(msg, m.common.as_ref(), out);
        };
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            out.push(env.event(kind, user(m.user)));
        }
        Ok(())
    }

    pub(super) fn like(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastLikeMessage);
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let kind = EventKind::Like {
                count: m.count.max(0) as u64,
                total: m.total.max(0) as u64,
            };
            out.push(env.event(kind, user(m.user)));
        }
        Ok(())
    }

    pub(super) fn member(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastMemberMessage);
        // Action 1 is "joined" in every published schema; other values disagree
        // between schema versions, so they pass through undecided.
        if m.action > 1 {
            return self.pass_through(msg, m.common.as_ref(), out);
        }
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let kind = EventKind::Join {
                member_count: m.member_count.max(0) as u64,
            };
            out.push(env.event(kind, user(m.user)));
        }
        Ok(())
    }

    pub(super) fn subscribe(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastSubNotifyMessage);
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let months = (m.sub_month > 0).then_some(m.sub_month as u64);
            out.push(env.event(EventKind::Subscribe { months }, user(m.user)));
        }
        Ok(())
    }

    /// Barrages are TikTok's banners; two of their display keys are super fan events, every
    /// other banner passes through.
    pub(super) fn barrage(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastBarrageMessage);
        let texts = [m.content.as_ref(), m.common_barrage_content.as_ref()];
        let has_key = |want: &str| {
            texts
                .iter()
                .flatten()
                .any(|t| t.key.eq_ignore_ascii_case(want))
        };
        let kind = if has_key(SUPER_FAN_JOINED_KEY) {
            EventKind::SuperFanJoin
        } else if has_key(SUPER_FAN_BECAME_KEY) {
            EventKind::SuperFan
        } else {
            return self.pass_through(msg, m.common.as_ref(), out);
        };
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            // The banner's viewer is often only in its text's pieces.
            let viewer = user(m.user.clone()).or_else(|| {
                texts
                    .iter()
                    .flatten()
                    .flat_map(|t| &t.pieces)
                    .find_map(|p| user(p.user_value.as_ref().and_then(|v| v.user.clone())))
            });
            out.push(env.event(kind, viewer));
        }
        Ok(())
    }

    pub(super) fn question(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastQuestionNewMessage);
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let q = m.data.unwrap_or_default();
            out.push(env.event(EventKind::Question { text: q.content }, user(q.user)));
        }
        Ok(())
    }

    pub(super) fn pin(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastRoomPinMessage);
        // 2 unpins; a pinned gift or like (no chat message) has no text to show.
        if m.action == 2 || m.chat_message.is_none() {
            return self.pass_through(msg, m.common.as_ref(), out);
        }
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let chat = m.chat_message.unwrap_or_default();
            let kind = EventKind::Pin { text: chat.content };
            out.push(env.event(kind, user(chat.user)));
        }
        Ok(())
    }

    /// Comments a moderator or TikTok removed: their ids are the `msg_id`s, so the `id`s, of
    /// the `comment` events already sent.
    pub(super) fn im_delete(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastImDeleteMessage);
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let kind = EventKind::CommentDeleted {
                message_ids: m.delete_msg_ids.iter().map(|&id| int_text(id)).collect(),
                user_ids: m.delete_user_ids.iter().map(|&id| int_text(id)).collect(),
            };
            out.push(env.event(kind, None));
        }
        Ok(())
    }
}

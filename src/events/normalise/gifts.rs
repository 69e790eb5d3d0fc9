//! Rules for gifts (through the combo tracker) and treasure chests, Super Fan Boxes included.

use tokio::time::Instant;

use super::convert::{display_key, gift_info, image_url, user};
use super::{MessageError, Normaliser};
use crate::events::combo::GiftMessage;
use crate::events::{Event, EventKind, User};
use crate::proto;

/// `MessageRedEnvelopInfo.business_type` of a Super Fan Box (enum `SUPER_FAN_BOX`).
const SUPER_FAN_BOX_BUSINESS_TYPE: i32 = 19;

impl Normaliser {
    pub(super) fn gift(
        &mut self,
        msg: &proto::BaseProtoMessage,
        now: Instant,
        out: &mut Vec<Event>,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastGiftMessage);
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let gift = gift_info(m.gift, m.gift_id);
            let gift_msg = GiftMessage {
                id: env.id,
                ts: env.ts,
                source: self.source,
                room_id: env.room_id,
                user: user(m.user),
                gift,
                group_id: m.group_id,
                repeat_count: m.repeat_count.max(0) as u64,
                repeat_end: m.repeat_end == 1,
            };
            self.combos.observe(gift_msg, now, out);
        }
        Ok(())
    }

    /// A treasure chest (`WebcastEnvelopeMessage`). The same message carries Super Fan Boxes,
    /// told apart by business type 19 or a `ttlive_superfanbox` display key, as both reference
    /// clients do.
    pub(super) fn treasure_chest(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: &mut Vec<Event>,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastEnvelopeMessage);
        // display 2 hides a chest that was already announced.
        if m.display == 2 {
            return self.pass_through(msg, m.common.as_ref(), out);
        }
        let super_fan_box = display_key(m.common.as_ref()).contains("ttlive_superfanbox")
            || m.envelope_info.as_ref().map(|i| i.business_type)
                == Some(SUPER_FAN_BOX_BUSINESS_TYPE);
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let info = m.envelope_info.unwrap_or_default();
            let sender =
                (!info.send_user_id.is_empty() || !info.send_user_name.is_empty()).then(|| User {
                    id: info.send_user_id.clone(),
                    unique_id: String::new(),
                    nickname: info.send_user_name.clone(),
                    avatar_url: image_url(info.send_user_avatar.as_ref()),
                    ..Default::default()
                });
            let kind = EventKind::Envelope {
                diamonds: info.diamond_count.max(0) as u64,
                people: info.people_count.max(0) as u64,
                super_fan_box,
            };
            out.push(env.event(kind, sender));
        }
        Ok(())
    }
}

//! Rules for the room as a whole: viewer counts and the viewer ranking, stream state, the
//! room's notices and welcome text, ranking changes, LIVE goals and polls.

use super::convert::{count, gift_info, int_text, render_text, user, user_from_parts};
use super::{Envelope, MessageError, Normaliser, Out};
use crate::events::{EventKind, PollOption, PollPhase, SubGoal, TopViewer, User};
use crate::proto;

impl Normaliser {
    pub(super) fn viewers(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastRoomUserSeqMessage);
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let mut top_viewers: Vec<TopViewer> = m
                .ranks
                .into_iter()
                .filter_map(|c| {
                    Some(TopViewer {
                        rank: count(c.rank),
                        score: count(c.score),
                        user: user(c.user)?,
                    })
                })
                .collect();
            // TikTok sends them in order; sorting keeps that promise when it does not.
            top_viewers.sort_by_key(|t| t.rank);
            let kind = EventKind::Viewers {
                viewers: count(m.total),
                total_viewers: count(m.total_user),
                top_viewers,
            };
            out.push(env.event(kind, None));
        }
        Ok(())
    }

    pub(super) fn control(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastControlMessage);
        let kind = match m.action {
            1 => EventKind::LivePaused,
            2 => EventKind::LiveResumed,
            3 | 4 => EventKind::LiveEnded,
            _ => return self.pass_through(msg, m.common.as_ref(), out),
        };
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            out.push(env.event(kind, None));
        }
        Ok(())
    }

    /// The room's welcome and notice text (`WebcastRoomMessage`, also sent as `RoomMessage`).
    pub(super) fn room_message(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastRoomMessage);
        self.system(msg, m.common.as_ref(), None, m.content, out)
    }

    pub(super) fn system_text(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastSystemMessage);
        self.system(msg, m.common.as_ref(), None, m.message, out)
    }

    pub(super) fn notice(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastNoticeMessage);
        let template = m.notice_content.as_ref().or(m.display_text.as_ref());
        self.system(msg, m.common.as_ref(), template, m.content.clone(), out)
    }

    pub(super) fn marquee(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastMarqueeAnnouncementMessage);
        let text = m
            .message_entity
            .iter()
            .filter_map(|e| e.notify.as_ref())
            .map(|n| n.content.trim())
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        self.system(msg, m.common.as_ref(), None, text, out)
    }

    /// A `system` event. Its text is, in order of preference: the message's own template
    /// (`template`), the common header's display text, or the plain `fallback`.
    fn system(
        &mut self,
        msg: &proto::BaseProtoMessage,
        common: Option<&proto::CommonMessageData>,
        template: Option<&proto::Text>,
        fallback: String,
        out: Out,
    ) -> Result<(), MessageError> {
        let header = common.and_then(|c| c.display_text.as_ref());
        let (key, text) = [template, header]
            .into_iter()
            .flatten()
            .map(|t| (t.key.clone(), render_text(t)))
            .find(|(_, text)| !text.trim().is_empty())
            .unwrap_or((String::new(), fallback));
        let method = super::canonical_method(&msg.method).into_owned();
        if let Some(env) = self.envelope(msg, common) {
            let kind = EventKind::System { method, key, text };
            out.push(env.event(kind, None));
        }
        Ok(())
    }

    /// One `rank` event per ranking in the message.
    pub(super) fn rank_update(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastRankUpdateMessage);
        if m.updates.is_empty() {
            return self.pass_through(msg, m.common.as_ref(), out);
        }
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let events = m.updates.into_iter().map(|u| {
                let kind = EventKind::Rank {
                    kind: "update".into(),
                    list: rank_list(u.rank_type),
                    rank: (u.own_rank > 0).then_some(u.own_rank as u64),
                    text: u
                        .default_content
                        .as_ref()
                        .map(render_text)
                        .unwrap_or_default(),
                };
                (kind, None)
            });
            push_numbered(env, events, out);
        }
        Ok(())
    }

    pub(super) fn rank_text(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastRankTextMessage);
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let text = [&m.content, &m.self_get_badge_msg, &m.other_get_badge_msg]
                .into_iter()
                .flatten()
                .map(render_text)
                .find(|t| !t.trim().is_empty())
                .unwrap_or_default();
            let kind = EventKind::Rank {
                kind: "text".into(),
                list: rank_list(m.rank_type),
                rank: (m.owner_idx_after_update > 0).then_some(m.owner_idx_after_update as u64),
                text,
            };
            out.push(env.event(kind, None));
        }
        Ok(())
    }

    /// The hourly ranking's winners: one `rank` event per winner, the winner as `user`.
    pub(super) fn hourly_rank_reward(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastHourlyRankRewardMessage);
        if m.winners.is_empty() {
            return self.pass_through(msg, m.common.as_ref(), out);
        }
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let events = m.winners.into_iter().map(|w| {
                let notify = w.notify.unwrap_or_default();
                let winner = user(notify.user).or_else(|| {
                    (w.user_id != 0).then(|| User {
                        id: int_text(w.user_id),
                        ..User::default()
                    })
                });
                let kind = EventKind::Rank {
                    kind: "reward".into(),
                    list: "hourly".into(),
                    rank: None,
                    text: notify.content,
                };
                (kind, winner)
            });
            push_numbered(env, events, out);
        }
        Ok(())
    }

    pub(super) fn goal(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastGoalUpdateMessage);
        let Some(goal) = m.goal else {
            return self.pass_through(msg, m.common.as_ref(), out);
        };
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let goal_id = if !goal.id_str.is_empty() {
                goal.id_str
            } else {
                int_text(goal.id)
            };
            let sub_goals = goal.sub_goals.into_iter().map(sub_goal).collect();
            let contribution = [m.contribute_count, m.contribute_score]
                .into_iter()
                .find(|&c| c > 0)
                .map(|c| c as u64);
            let contributor = user_from_parts(
                m.contributor_id,
                m.contributor_id_str,
                m.contributor_display_id,
                m.contributor_avatar,
            );
            let kind = EventKind::Goal {
                goal_id,
                description: goal.description,
                sub_goals,
                contribution: contributor.as_ref().and(contribution),
            };
            out.push(env.event(kind, contributor));
        }
        Ok(())
    }

    /// Polls: the phase is the content the message carries (start, vote update or end).
    pub(super) fn poll(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastPollMessage);
        let basic = m.poll_basic_info.unwrap_or_default();
        let (phase, options, title, operator) = if let Some(c) = m.start_content {
            (PollPhase::Start, c.option_list, c.title, c.operator)
        } else if let Some(c) = m.end_content {
            (PollPhase::End, c.option_list, String::new(), c.operator)
        } else if let Some(c) = m.update_votes_content {
            (PollPhase::Update, c.option_list, String::new(), c.operator)
        } else {
            return self.pass_through(msg, m.common.as_ref(), out);
        };
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let mut options = options;
            options.sort_by_key(|o| o.option_idx);
            let kind = EventKind::Poll {
                phase,
                poll_id: if m.poll_id != 0 {
                    int_text(m.poll_id)
                } else {
                    basic.poll_id_str
                },
                title: if title.is_empty() { basic.title } else { title },
                options: options
                    .into_iter()
                    .map(|o| PollOption {
                        text: o.display_content,
                        votes: count(o.votes),
                    })
                    .collect(),
            };
            out.push(env.event(kind, user(operator)));
        }
        Ok(())
    }
}

/// Several events from one message: the first keeps the message's id, the next ones get
/// `-1`, `-2`, ... appended so every event id stays unique.
fn push_numbered(env: Envelope, events: impl Iterator<Item = (EventKind, Option<User>)>, out: Out) {
    for (i, (kind, who)) in events.enumerate() {
        let mut e = env.clone();
        if i > 0 {
            e.id = format!("{}-{i}", env.id);
        }
        out.push(e.event(kind, who));
    }
}

fn sub_goal(g: proto::LiveStreamSubGoal) -> SubGoal {
    // Sub-goal types: 1 gift, 2 subscription (TikTokLiveSharp's `SubGoalType`).
    let kind = match g.r#type {
        1 => "gift",
        2 => "subscription",
        _ if g.gift.is_some() => "gift",
        _ => "other",
    };
    let gift = g.gift.map(|gg| {
        let mut info = gift_info(None, g.id);
        info.name = gg.name;
        info.diamonds = count(gg.diamond_count);
        info.image_url = super::convert::take_image_url(gg.icon);
        // Same meaning as `Gift.type`: 1 is a streakable gift.
        info.streakable = gg.r#type == 1;
        info
    });
    SubGoal {
        kind: kind.into(),
        progress: count(g.progress),
        target: count(g.target),
        gift,
    }
}

/// The name of a ranking list (`ProfitRankType` in the v3 schema).
fn rank_list(rank_type: i32) -> String {
    let name = match rank_type {
        0 => "hourly",
        1 => "weekly",
        2 => "hourly_star",
        3 => "weekly_rising_activity",
        4 => "weekly_rising",
        5 => "weekly_rookie",
        6 => "ecommerce_weekly",
        7 => "ecommerce_daily",
        8 => "daily",
        9 => "first_gift",
        10 => "game",
        11 => "daily_game",
        12 => "hall_of_fame",
        13 => "league",
        14 => "daily_rookie",
        15 => "team",
        16 => "class",
        n => return format!("rank_type_{n}"),
    };
    name.into()
}

//! Rules for link-mic battles: start and end, score updates, and the battle's item cards
//! (power-ups) and tasks, all as `battle` events told apart by `phase`.

use super::convert::{count, image_url, int_text, render_text};
use super::{MessageError, Normaliser, Out};
use crate::events::{BattleCard, BattlePhase, BattleTask, BattleTeam, EventKind, User};
use crate::proto;

impl Normaliser {
    pub(super) fn battle(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastLinkMicBattle);
        let phase = match m.action {
            // 5 finish, 6 cut short.
            5 | 6 => BattlePhase::End,
            _ if !m.battle_result.is_empty() => BattlePhase::End,
            // 4 open; 0 when TikTok leaves the action out.
            0 | 4 => BattlePhase::Start,
            // Invite, reject, cancel, accept: negotiation, not yet a battle.
            _ => return self.pass_through(msg, m.common.as_ref(), out),
        };
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let kind = teams_kind(phase, m.battle_id, battle_teams(&m));
            out.push(env.event(kind, None));
        }
        Ok(())
    }

    pub(super) fn armies(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastLinkMicArmies);
        let phase = if m.trigger_reason == 2 {
            BattlePhase::End
        } else {
            BattlePhase::Score
        };
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let teams = m
                .armies
                .iter()
                .map(|(host_id, armies)| BattleTeam {
                    host: User {
                        id: host_id.to_string(),
                        ..User::default()
                    },
                    score: armies.hostscore.max(0) as u64,
                })
                .collect();
            out.push(env.event(teams_kind(phase, m.battle_id, teams), None));
        }
        Ok(())
    }

    /// A battle task (`task_message_type`: 0 start, 1 progress, 2 settle, 3 reward settle).
    pub(super) fn battle_task(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastLinkmicBattleTaskMessage);
        let task = match m.task_message_type {
            0 => BattleTask {
                stage: "start".into(),
                ..BattleTask::default()
            },
            1 => BattleTask {
                stage: "progress".into(),
                progress: m.task_update.as_ref().map(|u| count(u.progress)),
                result: None,
            },
            2 => BattleTask {
                stage: "settle".into(),
                progress: None,
                result: m.task_settle.as_ref().map(|s| {
                    match s.result {
                        0 => "succeeded",
                        1 => "failed",
                        2 => "both_succeeded",
                        _ => "other",
                    }
                    .into()
                }),
            },
            3 => BattleTask {
                stage: "reward".into(),
                ..BattleTask::default()
            },
            _ => return self.pass_through(msg, m.common.as_ref(), out),
        };
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let kind = EventKind::Battle {
                phase: BattlePhase::Task,
                battle_id: int_text(m.battle_id),
                teams: Vec::new(),
                card: None,
                task: Some(task),
            };
            out.push(env.event(kind, None));
        }
        Ok(())
    }

    /// An item card used or awarded in a battle (`msg_type` names the card, the message
    /// carries that card's part).
    pub(super) fn battle_item_card(
        &mut self,
        msg: &proto::BaseProtoMessage,
        out: Out,
    ) -> Result<(), MessageError> {
        let m = decode!(msg, proto::WebcastLinkMicBattleItemCard);
        // (kind, host id, display text) of the part that is present.
        let used = |kind: &str, anchor: i64, text: Option<&proto::Text>| {
            (
                kind.to_string(),
                (anchor != 0).then(|| int_text(anchor)),
                text.map(render_text).unwrap_or_default(),
            )
        };
        let (kind, host_id, text) = match m.msg_type {
            1 => ("obtain_guide".to_string(), None, String::new()),
            2 => m.use_critical_strike_card.as_ref().map_or_else(
                || used("critical_strike", 0, None),
                |c| used("critical_strike", c.anchor_id, c.display_content.as_ref()),
            ),
            3 => m.use_smoke_card.as_ref().map_or_else(
                || used("smoke", 0, None),
                |c| used("smoke", c.anchor_id, c.display_content.as_ref()),
            ),
            4 => m.award_card_notice.as_ref().map_or_else(
                || used("award", 0, None),
                |c| used("award", 0, c.display_content.as_ref()),
            ),
            5 => m.use_extra_time_card.as_ref().map_or_else(
                || used("extra_time", 0, None),
                |c| used("extra_time", c.anchor_id, c.display_content.as_ref()),
            ),
            6 => m.use_special_effect_card.as_ref().map_or_else(
                || used("special_effect", 0, None),
                |c| used("special_effect", c.anchor_id, c.display_content.as_ref()),
            ),
            7 => m.use_potion_card.as_ref().map_or_else(
                || used("potion", 0, None),
                |c| used("potion", c.anchor_id, c.display_content.as_ref()),
            ),
            8 => m.use_wave_card.as_ref().map_or_else(
                || used("wave", 0, None),
                |c| used("wave", c.anchor_id, c.display_content.as_ref()),
            ),
            9 => m.special_effect_notice.as_ref().map_or_else(
                || used("special_effect_notice", 0, None),
                |c| used("special_effect_notice", c.to_anchor_id, None),
            ),
            10 => m.use_top2_card.as_ref().map_or_else(
                || used("top_2", 0, None),
                |c| used("top_2", c.anchor_id, c.display_content.as_ref()),
            ),
            11 => m.use_top3_card.as_ref().map_or_else(
                || used("top_3", 0, None),
                |c| used("top_3", c.anchor_id, c.display_content.as_ref()),
            ),
            12 => m.use_vault_glove_card.as_ref().map_or_else(
                || used("vault_glove", 0, None),
                |c| used("vault_glove", c.anchor_id, c.display_content.as_ref()),
            ),
            _ => used("other", 0, None),
        };
        if let Some(env) = self.envelope(msg, m.common.as_ref()) {
            let kind = EventKind::Battle {
                phase: BattlePhase::ItemCard,
                battle_id: int_text(m.battle_id),
                teams: Vec::new(),
                card: Some(BattleCard {
                    kind,
                    host_id,
                    text,
                }),
                task: None,
            };
            out.push(env.event(kind, None));
        }
        Ok(())
    }
}

/// A start, score or end: the teams and their scores, no card or task.
fn teams_kind(phase: BattlePhase, battle_id: i64, teams: Vec<BattleTeam>) -> EventKind {
    EventKind::Battle {
        phase,
        battle_id: int_text(battle_id),
        teams,
        card: None,
        task: None,
    }
}

fn battle_teams(m: &proto::WebcastLinkMicBattle) -> Vec<BattleTeam> {
    let mut teams: Vec<BattleTeam> = m
        .anchors_info
        .iter()
        .map(|w| {
            let info = w.value.as_ref().and_then(|v| v.user.as_ref());
            let host = User {
                id: w.key.to_string(),
                unique_id: info.map(|i| i.display_id.clone()).unwrap_or_default(),
                nickname: info.map(|i| i.nick_name.clone()).unwrap_or_default(),
                avatar_url: info.and_then(|i| image_url(i.avatar_thumb.as_ref())),
                ..Default::default()
            };
            let score = m
                .battle_result
                .get(&w.key)
                .map(|r| r.score)
                .or_else(|| {
                    m.armies
                        .iter()
                        .find(|a| a.key == w.key)
                        .and_then(|a| a.value.as_ref())
                        .map(|a| a.hostscore)
                })
                .map(|s| s.max(0) as u64)
                .unwrap_or(0);
            BattleTeam { host, score }
        })
        .collect();
    if teams.is_empty() {
        teams = m
            .battle_result
            .iter()
            .map(|(id, r)| BattleTeam {
                host: User {
                    id: id.to_string(),
                    ..User::default()
                },
                score: r.score.max(0) as u64,
            })
            .collect();
    }
    teams
}

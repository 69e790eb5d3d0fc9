//! Gift streaks ("combos"): turns TikTok's repeated gift messages into `combo` progress events
//! and exactly one final `gift` per streak.
//!
//! TikTok repeats a streakable gift's message with a growing cumulative `repeat_count`, then
//! sends it once more with `repeat_end = 1`. That last message is sometimes lost, so a combo
//! with no message for the timeout is ended by the clock. Time is tokio time, so tests run
//! with paused time. A key that has ended remembers its final count: repeats and a late
//! `repeat_end` add nothing, and a message with a higher count (the streak went on after a
//! timeout) opens a follow-up combo that counts only the new units, so every unit reaches
//! totals and triggers once.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::{EndReason, Event, EventKind, GiftInfo, Source, User, now_ms};

/// How long an open combo waits for its next message before it ends by timeout.
pub const DEFAULT_COMBO_TIMEOUT: Duration = Duration::from_secs(10);

/// How many ended combos are remembered to ignore their late messages.
const CLOSED_CAPACITY: usize = 4096;

/// A decoded gift message, reduced to what the combo rules need.
#[derive(Debug, Clone)]
pub struct GiftMessage {
    /// Event id (TikTok msg_id).
    pub id: String,
    pub ts: i64,
    pub source: Source,
    pub room_id: Option<String>,
    pub user: Option<User>,
    pub gift: GiftInfo,
    pub group_id: i64,
    /// Cumulative count within the streak.
    pub repeat_count: u64,
    pub repeat_end: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ComboKey {
    user_id: String,
    gift_id: u64,
    group_id: i64,
}

impl ComboKey {
    fn name(&self) -> String {
        format!("{}-{}-{}", self.user_id, self.gift_id, self.group_id)
    }
}

#[derive(Debug)]
struct OpenCombo {
    combo_id: String,
    gift: GiftInfo,
    user: Option<User>,
    room_id: Option<String>,
    source: Source,
    /// TikTok's cumulative count at the last message.
    cumulative: u64,
    /// Units already reported by earlier combos of the same key (after a timeout).
    base: u64,
    deadline: Instant,
}

impl OpenCombo {
    fn count(&self) -> u64 {
        self.cumulative - self.base
    }
}

#[derive(Debug)]
struct ClosedCombo {
    /// Cumulative count already reported as gifts.
    reported: u64,
    /// How many combos this key has had; names follow-up combos.
    generation: u32,
}

/// Tracks open streaks and emits `combo` and `gift` events.
#[derive(Debug)]
pub struct ComboTracker {
    timeout: Duration,
    open: HashMap<ComboKey, OpenCombo>,
    closed: HashMap<ComboKey, ClosedCombo>,
    closed_order: VecDeque<ComboKey>,
    /// Deadlines in time order, so finding the due combos does not scan every open one (a
    /// replay at full speed can hold thousands). An entry is pushed when a combo opens, not at
    /// every later message: the entry then says "not before", and when it comes up with the
    /// combo's deadline moved on it is pushed again with the new one. So the heap holds about
    /// one entry per open combo instead of one per gift message (a full-speed replay piled up
    /// hundreds of thousands). Entries of combos that ended are skipped.
    deadlines: BinaryHeap<Reverse<(Instant, ComboKey)>>,
}

impl Default for ComboTracker {
    fn default() -> Self {
        ComboTracker::new(DEFAULT_COMBO_TIMEOUT)
    }
}

impl ComboTracker {
    pub fn new(timeout: Duration) -> ComboTracker {
        ComboTracker {
            timeout,
            open: HashMap::new(),
            closed: HashMap::new(),
            closed_order: VecDeque::new(),
            deadlines: BinaryHeap::new(),
        }
    }

    /// Number of combos still waiting for their end.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// When the next open combo times out, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        // An entry may be earlier than the combo's real deadline: the caller then wakes,
        // `expire` pushes it again with the real one, and the caller asks again.
        self.deadlines.peek().map(|Reverse((d, _))| *d)
    }

    /// Applies one gift message.
    pub fn observe(&mut self, msg: GiftMessage, now: Instant, out: &mut Vec<Event>) {
        if !msg.gift.streakable {
            let count = msg.repeat_count.max(1);
            out.push(gift_event(
                msg.id,
                msg.ts,
                msg.source,
                msg.room_id,
                msg.user,
                msg.gift,
                count,
                None,
            ));
            return;
        }
        let key = ComboKey {
            user_id: msg.user.as_ref().map(|u| u.id.clone()).unwrap_or_default(),
            gift_id: msg.gift.id,
            group_id: msg.group_id,
        };
        let deadline = now + self.timeout;
        if let Some(open) = self.open.get_mut(&key) {
            let grew = msg.repeat_count > open.cumulative;
            if !grew && !msg.repeat_end {
                return; // a repeat or an older message
            }
            open.cumulative = open.cumulative.max(msg.repeat_count);
            open.deadline = deadline;
            // Within a streak the message repeats what the combo holds, so its own copies can
            // go into the event instead of clones of the combo's (each a few allocations).
            let spare_user = match msg.user {
                Some(u) if open.user.as_ref() == Some(&u) => Some(u),
                Some(u) => {
                    open.user = Some(u);
                    None
                }
                None => None,
            };
            let spare = Spare {
                user: spare_user,
                gift: (msg.gift == open.gift).then_some(msg.gift),
                room_id: (msg.room_id == open.room_id).then_some(msg.room_id),
            };
            if msg.repeat_end {
                let open = self.open.remove(&key).expect("present");
                self.finish(key, open, EndReason::RepeatEnd, msg.id, msg.ts, spare, out);
            } else {
                out.push(combo_event(open, msg.id, msg.ts, false, None, spare));
            }
            return;
        }
        let (base, combo_id) = match self.closed.get(&key) {
            Some(closed) if msg.repeat_count <= closed.reported => return, // late or repeated
            Some(closed) => (
                closed.reported,
                format!("{}~{}", key.name(), closed.generation + 1),
            ),
            None => (0, key.name()),
        };
        let open = OpenCombo {
            combo_id,
            gift: msg.gift,
            user: msg.user,
            room_id: msg.room_id,
            source: msg.source,
            cumulative: msg.repeat_count.max(base + 1),
            base,
            deadline,
        };
        if msg.repeat_end {
            self.finish(
                key,
                open,
                EndReason::RepeatEnd,
                msg.id,
                msg.ts,
                Spare::NONE,
                out,
            );
        } else {
            out.push(combo_event(&open, msg.id, msg.ts, false, None, Spare::NONE));
            self.deadlines.push(Reverse((deadline, key.clone())));
            self.open.insert(key, open);
        }
    }

    /// Ends every combo whose deadline has passed.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Event>) {
        while let Some(Reverse((due, _))) = self.deadlines.peek() {
            if *due > now {
                break;
            }
            let Reverse((due, key)) = self.deadlines.pop().expect("peeked");
            match self.open.get(&key) {
                None => continue, // the combo ended
                Some(c) if c.deadline > due => {
                    // The combo moved on: wait for its new deadline.
                    self.deadlines.push(Reverse((c.deadline, key)));
                    continue;
                }
                Some(_) => {}
            }
            let open = self.open.remove(&key).expect("present");
            let id = format!("{}:timeout", open.combo_id);
            self.finish(
                key,
                open,
                EndReason::Timeout,
                id,
                now_ms(),
                Spare::NONE,
                out,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        key: ComboKey,
        open: OpenCombo,
        reason: EndReason,
        id: String,
        ts: i64,
        spare: Spare,
        out: &mut Vec<Event>,
    ) {
        out.push(combo_event(&open, id, ts, true, Some(reason), spare));
        let generation = self.closed.get(&key).map_or(1, |c| c.generation + 1);
        if !self.closed.contains_key(&key) {
            self.closed_order.push_back(key.clone());
        }
        self.closed.insert(
            key,
            ClosedCombo {
                reported: open.cumulative,
                generation,
            },
        );
        while self.closed_order.len() > CLOSED_CAPACITY {
            if let Some(old) = self.closed_order.pop_front() {
                self.closed.remove(&old);
            }
        }
        let gift_id = format!("{}:gift", open.combo_id);
        let count = open.count();
        out.push(gift_event(
            gift_id,
            ts,
            open.source,
            open.room_id,
            open.user,
            open.gift,
            count,
            Some(open.combo_id),
        ));
    }
}

/// Copies of an open combo's gift, user and room that a message brought along and that are
/// equal to the combo's: the combo event takes them instead of cloning.
struct Spare {
    gift: Option<GiftInfo>,
    user: Option<User>,
    room_id: Option<Option<String>>,
}

impl Spare {
    const NONE: Spare = Spare {
        gift: None,
        user: None,
        room_id: None,
    };
}

fn combo_event(
    open: &OpenCombo,
    id: String,
    ts: i64,
    ended: bool,
    end_reason: Option<EndReason>,
    spare: Spare,
) -> Event {
    Event {
        v: super::FORMAT_VERSION,
        kind: EventKind::Combo {
            gift: spare.gift.unwrap_or_else(|| open.gift.clone()),
            combo_id: open.combo_id.clone(),
            count: open.count(),
            ended,
            end_reason,
        },
        id,
        ts,
        source: open.source,
        stream: String::new(),
        room_id: spare.room_id.unwrap_or_else(|| open.room_id.clone()),
        user: spare.user.or_else(|| open.user.clone()),
    }
}

#[allow(clippy::too_many_arguments)]
fn gift_event(
    id: String,
    ts: i64,
    source: Source,
    room_id: Option<String>,
    user: Option<User>,
    gift: GiftInfo,
    count: u64,
    combo_id: Option<String>,
) -> Event {
    let diamonds_total = gift.diamonds.saturating_mul(count);
    Event {
        v: super::FORMAT_VERSION,
        kind: EventKind::Gift {
            gift,
            count,
            diamonds_total,
            combo_id,
        },
        id,
        ts,
        source,
        stream: String::new(),
        room_id,
        user,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, user: &str, group: i64, count: u64, end: bool) -> GiftMessage {
        GiftMessage {
            id: id.into(),
            ts: 1,
            source: Source::Test,
            room_id: None,
            user: Some(User {
                id: user.into(),
                ..User::default()
            }),
            gift: GiftInfo {
                id: 5655,
                name: "Rose".into(),
                diamonds: 1,
                image_url: None,
                streakable: true,
            },
            group_id: group,
            repeat_count: count,
            repeat_end: end,
        }
    }

    fn kinds(out: &[Event]) -> Vec<String> {
        out.iter()
            .map(|e| match &e.kind {
                EventKind::Combo {
                    count,
                    ended,
                    end_reason,
                    ..
                } => format!("combo {count} {ended} {end_reason:?}"),
                EventKind::Gift { count, .. } => format!("gift {count}"),
                other => other.type_name().to_string(),
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn combos_end_by_timeout_in_deadline_order_and_a_busy_one_stays_open() {
        let timeout = Duration::from_secs(10);
        let mut t = ComboTracker::new(timeout);
        let mut out = Vec::new();
        let start = Instant::now();
        t.observe(msg("1", "a", 1, 1, false), start, &mut out);
        t.observe(
            msg("2", "b", 2, 1, false),
            start + Duration::from_secs(1),
            &mut out,
        );
        // "a" keeps going, so its first deadline is stale.
        t.observe(
            msg("3", "a", 1, 2, false),
            start + Duration::from_secs(5),
            &mut out,
        );
        assert_eq!(t.next_deadline(), Some(start + timeout));
        out.clear();
        t.expire(start + timeout, &mut out);
        assert!(out.is_empty(), "a stale deadline ends nothing");
        assert_eq!(t.next_deadline(), Some(start + Duration::from_secs(11)));
        t.expire(start + Duration::from_secs(12), &mut out);
        assert_eq!(
            kinds(&out),
            ["combo 1 true Some(Timeout)", "gift 1"],
            "b ends first"
        );
        assert_eq!(t.next_deadline(), Some(start + Duration::from_secs(15)));
        out.clear();
        t.expire(start + Duration::from_secs(15), &mut out);
        assert_eq!(kinds(&out), ["combo 2 true Some(Timeout)", "gift 2"]);
        assert_eq!(t.open_count(), 0);
        out.clear();
        // A repeat_end after the timeout adds nothing.
        t.observe(
            msg("4", "a", 1, 2, true),
            start + Duration::from_secs(21),
            &mut out,
        );
        assert!(out.is_empty());
        t.expire(start + Duration::from_secs(60), &mut out);
        assert!(out.is_empty());
        assert_eq!(t.next_deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn streak_events_carry_the_latest_user_and_the_first_gift() {
        let mut t = ComboTracker::new(Duration::from_secs(10));
        let mut out = Vec::new();
        let now = Instant::now();
        t.observe(msg("1", "a", 1, 1, false), now, &mut out);
        let mut renamed = msg("2", "a", 1, 2, false);
        renamed.user.as_mut().unwrap().nickname = "new name".into();
        t.observe(renamed, now, &mut out);
        t.observe(msg("3", "a", 1, 3, true), now, &mut out);
        let nicknames: Vec<_> = out
            .iter()
            .map(|e| e.user.as_ref().map(|u| u.nickname.as_str()))
            .collect();
        assert_eq!(
            nicknames,
            [Some(""), Some("new name"), Some(""), Some("")],
            "combo 1..3 then the final gift"
        );
        assert!(out.iter().all(|e| match &e.kind {
            EventKind::Combo { gift, .. } | EventKind::Gift { gift, .. } => gift.name == "Rose",
            _ => false,
        }));
    }

    #[tokio::test(start_paused = true)]
    async fn thousands_of_open_combos_expire_without_scanning_each_time() {
        let mut t = ComboTracker::new(Duration::from_secs(10));
        let mut out = Vec::new();
        let start = Instant::now();
        for i in 0..5000 {
            t.observe(
                msg(&i.to_string(), &i.to_string(), i, 1, false),
                start,
                &mut out,
            );
        }
        out.clear();
        t.expire(start + Duration::from_secs(10), &mut out);
        assert_eq!(out.len(), 10_000, "one combo end and one gift each");
        assert_eq!(t.open_count(), 0);
    }
}

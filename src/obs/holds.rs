//! The rules for timed OBS actions that overlap, kept apart from the socket so they can be
//! tested at any instant. The worker asks OBS what it shows, tells [`Holds`] what it did, and
//! does what [`Holds`] answers when a time runs out.
//!
//! # Scenes (`for_ms`)
//! Every timed switch is remembered with its end. On program is always the **latest timed
//! switch whose time is still running**; when a switch's time ends, the latest one still
//! running comes back, and when none is left, the scene that was live **before the first** of
//! them returns. So two overlapping switches to "Boss fight" return once, to the scene before
//! the first, when the later one ends; "Boss fight" for 10 s and "Party" for 2 s in between
//! show Boss fight, Party, Boss fight again until its 10 s are up, then the scene from before.
//! A switch without `for_ms` is permanent: it ends every running hold (nothing switches back).
//! If someone else changed the scene meanwhile (the streamer clicked another one), tikrelay
//! leaves it alone: the holds are forgotten and nothing switches back.
//!
//! # Sources (`show_ms`)
//! Per scene item: the first timed show remembers whether the item was visible before; further
//! shows while it is held only extend the time to the latest end. When the time is up the item
//! goes back to how it was before the first show (hidden, normally). A show without `show_ms`
//! is permanent and ends the hold.

use std::collections::HashMap;

use tokio::time::Instant;

/// A scene item: `(scene, source)`.
pub type ItemKey = (String, String);

#[derive(Debug, Clone, PartialEq, Eq)]
struct SceneHold {
    /// On program before the first timed switch.
    original: String,
    /// What tikrelay last put on program.
    shown: String,
    /// Running timed switches, oldest first.
    running: Vec<(String, Instant)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemHold {
    pub item_id: i64,
    pub was_enabled: bool,
    pub until: Instant,
}

/// What the worker must remember between actions.
#[derive(Debug, Default, Clone)]
pub struct Holds {
    scene: Option<SceneHold>,
    items: HashMap<ItemKey, ItemHold>,
}

impl Holds {
    /// A timed switch to `scene` until `until` has just been made; `before` was on program
    /// right before it.
    pub fn scene_timed(&mut self, before: &str, scene: &str, until: Instant) {
        match &mut self.scene {
            Some(h) if h.shown == before => {}
            _ => {
                if self.scene.is_some() {
                    tracing::info!(
                        "OBS shows {before:?}, not the scene tikrelay switched to: the earlier timed switch will not switch back"
                    );
                }
                self.scene = Some(SceneHold {
                    original: before.to_string(),
                    shown: before.to_string(),
                    running: Vec::new(),
                });
            }
        }
        let h = self.scene.as_mut().expect("set above");
        h.running.push((scene.to_string(), until));
        h.shown = scene.to_string();
    }

    /// A permanent switch was made: nothing switches back any more.
    pub fn scene_permanent(&mut self) {
        self.scene = None;
    }

    /// Time is up for some switch and OBS shows `current`: the scene to switch to, if any.
    pub fn scene_due(&mut self, now: Instant, current: &str) -> Option<String> {
        let h = self.scene.as_mut()?;
        h.running.retain(|(_, until)| *until > now);
        if h.shown != current {
            tracing::info!(
                "OBS shows {current:?}, not {:?} as tikrelay left it: someone switched scenes, so tikrelay does not switch back",
                h.shown
            );
            self.scene = None;
            return None;
        }
        let target = match h.running.last() {
            Some((scene, _)) => scene.clone(),
            None => h.original.clone(),
        };
        if h.running.is_empty() {
            self.scene = None;
        } else {
            h.shown = target.clone();
        }
        (target != current).then_some(target)
    }

    /// The hold of an item, if a timed show of it is running.
    pub fn item(&self, key: &ItemKey) -> Option<&ItemHold> {
        self.items.get(key)
    }

    /// A timed show of an item was made; `was_enabled` is its state before (ignored when a
    /// hold already runs: the first show's state is what comes back).
    pub fn item_timed(&mut self, key: ItemKey, item_id: i64, was_enabled: bool, until: Instant) {
        let hold = self.items.entry(key).or_insert(ItemHold {
            item_id,
            was_enabled,
            until,
        });
        hold.item_id = item_id;
        hold.until = hold.until.max(until);
    }

    /// A permanent show was made: the item stays.
    pub fn item_permanent(&mut self, key: &ItemKey) {
        self.items.remove(key);
    }

    /// Items whose time is up, with the state to put back.
    pub fn items_due(&mut self, now: Instant) -> Vec<(ItemKey, ItemHold)> {
        let due: Vec<ItemKey> = self
            .items
            .iter()
            .filter(|(_, h)| h.until <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out: Vec<(ItemKey, ItemHold)> = due
            .into_iter()
            .filter_map(|k| self.items.remove(&k).map(|h| (k, h)))
            .collect();
        out.sort_by_key(|(_, h)| h.until);
        out
    }

    /// Whether a scene switch's time is up.
    pub fn scene_is_due(&self, now: Instant) -> bool {
        self.scene
            .as_ref()
            .is_some_and(|h| h.running.iter().any(|(_, until)| *until <= now))
    }

    /// The next instant something must switch back.
    pub fn next_deadline(&self) -> Option<Instant> {
        let scenes = self
            .scene
            .iter()
            .flat_map(|h| h.running.iter().map(|(_, until)| *until));
        let items = self.items.values().map(|h| h.until);
        scenes.chain(items).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn overlapping_switches_to_one_scene_return_once_to_the_scene_before_the_first() {
        let t0 = Instant::now();
        let mut h = Holds::default();
        h.scene_timed("Main", "Boss", at(t0, 10_000));
        h.scene_timed("Boss", "Boss", at(t0, 13_000));
        assert_eq!(h.next_deadline(), Some(at(t0, 10_000)));
        assert_eq!(h.scene_due(at(t0, 10_000), "Boss"), None, "still held");
        assert_eq!(h.next_deadline(), Some(at(t0, 13_000)));
        assert_eq!(h.scene_due(at(t0, 13_000), "Boss"), Some("Main".into()));
        assert_eq!(h.next_deadline(), None);
    }

    #[test]
    fn a_shorter_switch_inside_a_longer_one_gives_the_longer_one_back() {
        let t0 = Instant::now();
        let mut h = Holds::default();
        h.scene_timed("Main", "Boss", at(t0, 10_000));
        h.scene_timed("Boss", "Party", at(t0, 5_000));
        assert_eq!(h.scene_due(at(t0, 5_000), "Party"), Some("Boss".into()));
        assert_eq!(h.scene_due(at(t0, 10_000), "Boss"), Some("Main".into()));
        assert_eq!(h.next_deadline(), None);
    }

    #[test]
    fn a_later_longer_switch_keeps_the_screen_until_it_ends() {
        let t0 = Instant::now();
        let mut h = Holds::default();
        h.scene_timed("Main", "Boss", at(t0, 4_000));
        h.scene_timed("Boss", "Party", at(t0, 9_000));
        assert_eq!(h.scene_due(at(t0, 4_000), "Party"), None);
        assert_eq!(h.scene_due(at(t0, 9_000), "Party"), Some("Main".into()));
    }

    #[test]
    fn a_manual_switch_or_a_permanent_one_cancels_the_return() {
        let t0 = Instant::now();
        let mut h = Holds::default();
        h.scene_timed("Main", "Boss", at(t0, 1_000));
        assert_eq!(
            h.scene_due(at(t0, 1_000), "BRB"),
            None,
            "streamer took over"
        );
        assert_eq!(h.next_deadline(), None);

        h.scene_timed("Main", "Boss", at(t0, 1_000));
        h.scene_permanent();
        assert_eq!(h.next_deadline(), None);

        // A timed switch after a manual change starts from what is live now.
        h.scene_timed("Main", "Boss", at(t0, 1_000));
        h.scene_timed("Intro", "Party", at(t0, 2_000));
        assert_eq!(h.scene_due(at(t0, 2_000), "Party"), Some("Intro".into()));
    }

    #[test]
    fn item_shows_extend_to_the_latest_end_and_restore_the_first_state() {
        let t0 = Instant::now();
        let mut h = Holds::default();
        let key = ("Main".to_string(), "Confetti".to_string());
        h.item_timed(key.clone(), 7, false, at(t0, 5_000));
        h.item_timed(key.clone(), 7, true, at(t0, 3_000));
        assert!(h.items_due(at(t0, 4_999)).is_empty());
        let due = h.items_due(at(t0, 5_000));
        assert_eq!(due.len(), 1);
        assert!(!due[0].1.was_enabled, "hidden before the first show");
        h.item_timed(key.clone(), 7, false, at(t0, 9_000));
        h.item_permanent(&key);
        assert_eq!(h.next_deadline(), None);
    }
}

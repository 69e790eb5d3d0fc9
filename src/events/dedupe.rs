//! Remembers recently seen TikTok message ids, so a message delivered twice (the sign fetch and
//! the socket overlap, a reconnect re-sends) becomes one event. Memory is bounded: the oldest
//! ids are forgotten first.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// Message ids are already well spread 64-bit numbers: one multiply mixes them enough, and
/// costs a fraction of the default SipHash on the per-message path.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i64(&mut self, n: i64) {
        self.0 = (n as u64 ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// How many ids are remembered. A busy stream sends a few hundred messages a second; overlap
/// after a reconnect spans seconds, so this covers minutes.
pub const DEFAULT_CAPACITY: usize = 65_536;

#[derive(Debug)]
pub struct Dedupe {
    seen: HashSet<i64, BuildHasherDefault<IdHasher>>,
    order: VecDeque<i64>,
    capacity: usize,
}

impl Default for Dedupe {
    fn default() -> Self {
        Dedupe::with_capacity(DEFAULT_CAPACITY)
    }
}

impl Dedupe {
    pub fn with_capacity(capacity: usize) -> Dedupe {
        let capacity = capacity.max(1);
        Dedupe {
            seen: HashSet::with_capacity_and_hasher(capacity.min(4096), Default::default()),
            order: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
        }
    }

    /// True the first time `id` is seen. Id 0 means "no id" and is never a duplicate.
    pub fn first_time(&mut self, id: i64) -> bool {
        if id == 0 {
            return true;
        }
        if !self.seen.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        true
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_dropped_and_memory_is_bounded() {
        let mut d = Dedupe::with_capacity(3);
        assert!(d.first_time(1));
        assert!(!d.first_time(1));
        assert!(d.first_time(0));
        assert!(d.first_time(0));
        for id in 2..=4 {
            assert!(d.first_time(id));
        }
        assert_eq!(d.len(), 3);
        // 1 was evicted, so it counts as new again; 4 is still remembered.
        assert!(d.first_time(1));
        assert!(!d.first_time(4));
    }
}

//! A hierarchical timing wheel in the style of tokio's timer wheel and tokio-util's
//! `DelayQueue`, except that it never reads a clock: every call that moves time
//! takes `now` (unix ms) as an argument.
//!
//! # Layout
//! * Entries live in a slab (`Vec`) owned by the wheel and are named by a [`Key`]:
//!   a `u32` index plus a generation, so a key that has fired or been cancelled is
//!   recognised as stale even after its slot is reused.
//! * Time is counted in *ticks* of `tick_ms` (the wheel's resolution). Ticks are
//!   `u64` offsets from the tick the wheel was created in.
//! * [`LEVELS`] levels of 64 slots; level `L` slot `s` covers `64^L` ticks. A slot
//!   is an intrusive doubly-linked list threaded through the slab by `u32` indices,
//!   so insert, cancel and reset are O(1); each level keeps a `u64` occupancy
//!   bitmap, so the next non-empty slot is found with one `trailing_zeros`.
//! * 11 levels × 6 bits cover every `u64` tick offset, so every `i64` deadline has
//!   a slot at any resolution: there is no overflow list and no re-examination. An
//!   entry cascades down at most once per level on its way to firing.
//! * Entries whose deadline has already passed when they are (re)armed go to a FIFO
//!   *ready* list that the next [`Wheel::advance`] drains first.
//!
//! # Firing rule
//! A deadline `d` is rounded *up* to the tick boundary at or after it; the entry
//! fires at the first `advance(now)` with `now` at or past that boundary. So nothing
//! fires early (`d <= now` for every fired entry), and with a 1 ms tick nothing
//! fires late; with a coarser tick an entry fires at most `tick_ms - 1` ms after its
//! deadline. Time never moves backwards: a `now` earlier than one already given to
//! `advance` is treated as that later one.
//!
//! # Bounded work (I7)
//! One `advance` emits at most `limit` entries and cascades at most `limit` entries
//! between levels; what it leaves is picked up by the next call, in order.
//! [`Wheel::needs_advance`] (equivalently `next_deadline() <= now`) says whether a
//! further call at the same `now` has work.

use std::fmt;

/// Bits of tick per level.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// Levels: `ceil(64 / 6)`, enough for every `u64` tick offset.
pub(crate) const LEVELS: usize = 64_usize.div_ceil(SLOT_BITS as usize);
/// "No entry" in a link field.
const NIL: u32 = u32::MAX;
/// Wheel slot lists are numbered `level * 64 + slot`; the ready list follows them.
const READY: u16 = (LEVELS * SLOTS) as u16;
const LISTS: usize = READY as usize + 1;
/// The `list` of a slab entry that is on the free list.
const FREE: u16 = u16::MAX;

/// The handle of an armed entry. Stale once the entry fires or is cancelled: every
/// operation given a stale key does nothing and returns `None` / `false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    index: u32,
    generation: u32,
}

impl Key {
    /// The slab index (unique among armed entries; reused after the entry is gone).
    pub fn index(self) -> u32 {
        self.index
    }
}

/// An entry moved out of the wheel by [`Wheel::advance`]. Its key is already stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expired<V> {
    pub key: Key,
    pub deadline_ms: i64,
    pub value: V,
}

/// One slab slot: 32 bytes for `V = u32`.
struct Entry<V> {
    deadline_ms: i64,
    /// `None` only while the slot is on the free list.
    value: Option<V>,
    prev: u32,
    /// Next in the slot list, or next free slot.
    next: u32,
    generation: u32,
    /// `level * 64 + slot`, [`READY`] or [`FREE`].
    list: u16,
}

/// List heads and occupancy bitmaps; boxed so moving a `Wheel` stays cheap.
struct Lists {
    heads: [u32; LISTS],
    occupied: [u64; LEVELS],
    ready_tail: u32,
}

/// A hierarchical timing wheel of values `V` with deadlines in unix milliseconds.
pub struct Wheel<V> {
    slab: Vec<Entry<V>>,
    lists: Box<Lists>,
    free_head: u32,
    len: usize,
    tick_ms: i64,
    /// The absolute tick (`floor(ms / tick_ms)`) that is tick offset 0.
    origin_tick: i64,
    /// Ticks since `origin_tick` processed so far: every entry due at or before this
    /// tick is on the ready list or in the slot being cascaded.
    elapsed: u64,
    /// The latest tick `advance` was asked to reach (`>= elapsed`; above it while a
    /// `limit` holds the wheel back).
    horizon: u64,
}

impl<V> fmt::Debug for Wheel<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wheel")
            .field("len", &self.len)
            .field("tick_ms", &self.tick_ms)
            .field("elapsed_ms", &self.tick_to_ms(self.elapsed))
            .field("slab_capacity", &self.slab.capacity())
            .finish_non_exhaustive()
    }
}

/// The level an entry due at tick `when` belongs to, seen from tick `elapsed`
/// (`when > elapsed`): the 6-bit group of the highest bit in which they differ.
#[inline]
fn level_for(elapsed: u64, when: u64) -> usize {
    let masked = (elapsed ^ when) | SLOT_MASK;
    let significant = 63 - masked.leading_zeros();
    (significant / SLOT_BITS) as usize
}

#[inline]
fn slot_for(when: u64, level: usize) -> usize {
    ((when >> (level as u32 * SLOT_BITS)) & SLOT_MASK) as usize
}

/// The first tick of the level-`level` block (64 slots) that contains `elapsed`.
#[inline]
fn block_base(elapsed: u64, level: usize) -> u64 {
    let bits = (level as u32 + 1) * SLOT_BITS;
    if bits >= 64 { 0 } else { (elapsed >> bits) << bits }
}

impl<V> Wheel<V> {
    #[cfg(any(test, feature = "testing"))]
    /// Bytes of one slab entry: the wheel's per-entry cost beyond `V`'s own heap.
    pub const ENTRY_BYTES: usize = size_of::<Entry<V>>();

    /// An empty wheel whose time starts at `now_ms`, with a resolution of `tick_ms`.
    ///
    /// # Panics
    /// If `tick_ms` is 0 or above `i64::MAX`.
    pub fn new(now_ms: i64, tick_ms: u64) -> Wheel<V> {
        Wheel::with_capacity(now_ms, tick_ms, 0)
    }

    /// [`Wheel::new`] with room for `capacity` entries before the slab reallocates.
    ///
    /// # Panics
    /// If `tick_ms` is 0 or above `i64::MAX`.
    pub fn with_capacity(now_ms: i64, tick_ms: u64, capacity: usize) -> Wheel<V> {
        assert!(tick_ms >= 1 && tick_ms <= i64::MAX as u64, "wheel tick must be 1..=i64::MAX ms, got {tick_ms}");
        let tick_ms = tick_ms as i64;
        Wheel {
            slab: Vec::with_capacity(capacity),
            lists: Box::new(Lists { heads: [NIL; LISTS], occupied: [0; LEVELS], ready_tail: NIL }),
            free_head: NIL,
            len: 0,
            tick_ms,
            origin_tick: now_ms.div_euclid(tick_ms),
            elapsed: 0,
            horizon: 0,
        }
    }

    /// The resolution, in ms.
    pub(crate) fn tick_ms(&self) -> u64 {
        self.tick_ms as u64
    }

    #[cfg(any(test, feature = "testing"))]
    /// Armed entries (including ones due but not yet emitted).
    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(any(test, feature = "testing"))]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[cfg(any(test, feature = "testing"))]
    /// Heap bytes the wheel holds: the slab (by capacity) and the list heads. Not
    /// counted: heap owned by the values themselves.
    pub fn heap_bytes(&self) -> usize {
        self.slab.capacity() * Self::ENTRY_BYTES + size_of::<Lists>()
    }

    /// Arms `value` to fire at `deadline_ms`. O(1). A deadline already passed fires
    /// on the next [`Wheel::advance`].
    ///
    /// # Panics
    /// If `u32::MAX - 1` entries are already armed.
    pub fn insert(&mut self, deadline_ms: i64, value: V) -> Key {
        let index = self.alloc(deadline_ms, value);
        let when = self.deadline_tick(deadline_ms);
        self.link(index, when);
        self.len += 1;
        Key { index, generation: self.slab[index as usize].generation }
    }

    /// Disarms `key`, returning its value; `None` for a stale key. O(1).
    pub fn cancel(&mut self, key: Key) -> Option<V> {
        let index = self.lookup(key)?;
        self.unlink(index);
        Some(self.release(index).1)
    }

    /// Moves `key` to a new deadline (a renewal; earlier or later). O(1). `false`
    /// for a stale key. An entry that is due but not yet emitted can be reset too.
    pub fn reset(&mut self, key: Key, deadline_ms: i64) -> bool {
        let Some(index) = self.lookup(key) else { return false };
        self.unlink(index);
        self.slab[index as usize].deadline_ms = deadline_ms;
        let when = self.deadline_tick(deadline_ms);
        self.link(index, when);
        true
    }

    #[cfg(any(test, feature = "testing"))]
    /// The deadline `key` was armed with; `None` for a stale key.
    pub fn deadline(&self, key: Key) -> Option<i64> {
        self.lookup(key).map(|i| self.slab[i as usize].deadline_ms)
    }

    /// The entry armed at slab index `index`, with its current key; `None` if the
    /// slot is free.
    pub(crate) fn at_index(&self, index: u32) -> Option<(Key, &V)> {
        let e = self.slab.get(index as usize)?;
        let value = e.value.as_ref().filter(|_| e.list != FREE)?;
        Some((Key { index, generation: e.generation }, value))
    }

    #[cfg(any(test, feature = "testing"))]
    /// The value armed under `key`; `None` for a stale key.
    pub fn get(&self, key: Key) -> Option<&V> {
        self.lookup(key).and_then(|i| self.slab[i as usize].value.as_ref())
    }

    #[cfg(any(test, feature = "testing"))]
    pub fn get_mut(&mut self, key: Key) -> Option<&mut V> {
        self.lookup(key).and_then(|i| self.slab[i as usize].value.as_mut())
    }

    #[cfg(any(test, feature = "testing"))]
    pub fn contains(&self, key: Key) -> bool {
        self.lookup(key).is_some()
    }

    #[cfg(any(test, feature = "testing"))]
    /// When to call [`Wheel::advance`] next: `None` if the wheel is empty, otherwise
    /// an instant no later than the first instant at which any entry can fire (its
    /// deadline rounded up to the tick; for a 1 ms tick, no later than the earliest
    /// deadline). It is the start of the next non-empty slot, so for an entry on a
    /// high level it is the time it cascades, not the time it fires: sleep until it,
    /// advance, ask again. At or before the latest `now` seen if something is due
    /// already.
    pub fn next_deadline(&self) -> Option<i64> {
        if self.lists.heads[READY as usize] != NIL {
            return Some(self.tick_to_ms(self.elapsed));
        }
        self.next_expiration().map(|(_, start)| self.tick_to_ms(start))
    }

    /// Whether `advance(now_ms, ..)` would do work: something is due at `now_ms` and
    /// not yet emitted, or a cascade due by then is unfinished (a previous call hit
    /// its `limit`). Same as `next_deadline() <= now_ms`, except that an entry whose
    /// deadline rounds up past `i64::MAX` never fires (`next_deadline` saturates).
    pub fn needs_advance(&self, now_ms: i64) -> bool {
        if self.lists.heads[READY as usize] != NIL {
            return true;
        }
        let target = self.now_tick(now_ms);
        self.next_expiration().is_some_and(|(_, start)| start <= target)
    }

    /// Moves time to `now_ms` and appends entries due by then to `out`, in deadline
    /// order by tick (entries armed with an already-passed deadline come first).
    /// Emits at most `limit` entries and cascades at most `limit` entries; a later
    /// call continues where this one stopped (see [`Wheel::needs_advance`]). Returns
    /// the number of entries appended.
    pub fn advance(&mut self, now_ms: i64, out: &mut Vec<Expired<V>>, limit: usize) -> usize {
        let target = self.now_tick(now_ms);
        self.horizon = target;
        let mut fired = 0;
        let mut moved = 0;
        loop {
            let ready = self.lists.heads[READY as usize];
            if ready == NIL {
                break;
            }
            if fired == limit {
                return fired;
            }
            self.emit(ready, out);
            fired += 1;
        }
        loop {
            let Some((list, start)) = self.next_expiration().filter(|&(_, start)| start <= target) else {
                self.elapsed = target;
                return fired;
            };
            // `start >= elapsed`: slots are processed in time order, so this never moves time back.
            self.elapsed = start;
            loop {
                let index = self.lists.heads[list];
                if index == NIL {
                    break;
                }
                let when = self.deadline_tick(self.slab[index as usize].deadline_ms);
                if when <= self.elapsed {
                    if fired == limit {
                        return fired;
                    }
                    self.emit(index, out);
                    fired += 1;
                } else {
                    if moved == limit {
                        return fired;
                    }
                    // Lands on a lower level: `when` shares this slot's bits with `elapsed`.
                    self.unlink(index);
                    self.link(index, when);
                    moved += 1;
                }
            }
        }
    }

    /// Checks every structural invariant; panics with a description on violation.
    #[cfg(any(test, feature = "testing"))]
    pub fn check_invariants(&self) {
        assert!(self.horizon >= self.elapsed, "horizon {} before elapsed {}", self.horizon, self.elapsed);
        let mut armed = 0;
        let mut in_progress = 0;
        for list in 0..LISTS {
            let mut prev = NIL;
            let mut index = self.lists.heads[list];
            let (start, end) = if list == READY as usize {
                (0, self.elapsed)
            } else {
                let (level, slot) = (list / SLOTS, list % SLOTS);
                let shift = level as u32 * SLOT_BITS;
                let occupied = self.lists.occupied[level] & (1 << slot) != 0;
                assert_eq!(occupied, index != NIL, "occupancy bit of level {level} slot {slot}");
                let start = block_base(self.elapsed, level) + ((slot as u64) << shift);
                let span = if shift >= 64 { u64::MAX } else { (1u64 << shift) - 1 };
                (start, start.saturating_add(span))
            };
            if list != READY as usize && index != NIL {
                assert!(start >= self.elapsed, "list {list} starts at tick {start} before elapsed {}", self.elapsed);
                in_progress += usize::from(start == self.elapsed);
            }
            while index != NIL {
                let e = &self.slab[index as usize];
                assert_eq!(e.list as usize, list, "entry {index} list");
                assert_eq!(e.prev, prev, "entry {index} prev link");
                assert!(e.value.is_some(), "armed entry {index} has no value");
                let when = self.deadline_tick(e.deadline_ms);
                assert!(when >= start && when <= end, "entry {index} tick {when} outside list {list} [{start}, {end}]");
                armed += 1;
                prev = index;
                index = e.next;
            }
            if list == READY as usize {
                assert_eq!(self.lists.ready_tail, prev, "ready tail");
            }
        }
        assert!(in_progress <= 1, "{in_progress} slots start at elapsed");
        assert_eq!(armed, self.len, "armed entries vs len");
        let mut free = 0;
        let mut index = self.free_head;
        while index != NIL {
            let e = &self.slab[index as usize];
            assert_eq!(e.list, FREE, "free entry {index} list");
            assert!(e.value.is_none(), "free entry {index} holds a value");
            free += 1;
            index = e.next;
        }
        assert_eq!(armed + free, self.slab.len(), "armed + free vs slab");
    }

    fn lookup(&self, key: Key) -> Option<u32> {
        let e = self.slab.get(key.index as usize)?;
        (e.generation == key.generation && e.list != FREE).then_some(key.index)
    }

    /// The tick offset at which `deadline_ms` fires: rounded up to a tick boundary.
    #[inline]
    fn deadline_tick(&self, deadline_ms: i64) -> u64 {
        let t = self.tick_ms;
        let abs = if t == 1 {
            deadline_ms
        } else {
            // No overflow: t >= 2 here, so the quotient is at most i64::MAX / 2.
            deadline_ms.div_euclid(t) + i64::from(deadline_ms.rem_euclid(t) != 0)
        };
        self.offset(abs)
    }

    /// The tick offset `now_ms` falls in, never before the latest one seen.
    #[inline]
    fn now_tick(&self, now_ms: i64) -> u64 {
        self.offset(now_ms.div_euclid(self.tick_ms)).max(self.horizon)
    }

    /// Absolute tick → offset from `origin_tick`, clamped at 0 (the difference of two
    /// `i64` is at most `u64::MAX`).
    #[inline]
    fn offset(&self, abs_tick: i64) -> u64 {
        let d = i128::from(abs_tick) - i128::from(self.origin_tick);
        if d <= 0 { 0 } else { d as u64 }
    }

    fn tick_to_ms(&self, tick: u64) -> i64 {
        let ms = (i128::from(self.origin_tick) + i128::from(tick)).saturating_mul(i128::from(self.tick_ms));
        ms.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// The earliest non-empty slot: `(list, start tick)`. Every non-empty slot starts
    /// after `elapsed`, except a slot whose cascade a `limit` interrupted, which
    /// starts exactly at `elapsed`; starts never tie.
    fn next_expiration(&self) -> Option<(usize, u64)> {
        let mut best: Option<(usize, u64)> = None;
        for level in 0..LEVELS {
            let occupied = self.lists.occupied[level];
            if occupied == 0 {
                continue;
            }
            let shift = level as u32 * SLOT_BITS;
            let current = (self.elapsed >> shift) & SLOT_MASK;
            // Slots before `current` in this block are empty (they were processed).
            let slot = (occupied & (u64::MAX << current)).trailing_zeros() as usize;
            debug_assert!(slot < SLOTS, "level {level} has slots behind elapsed");
            let start = block_base(self.elapsed, level) + ((slot as u64) << shift);
            if best.is_none_or(|(_, s)| start < s) {
                best = Some((level * SLOTS + slot, start));
            }
        }
        best
    }

    fn alloc(&mut self, deadline_ms: i64, value: V) -> u32 {
        if self.free_head != NIL {
            let index = self.free_head;
            let e = &mut self.slab[index as usize];
            self.free_head = e.next;
            e.deadline_ms = deadline_ms;
            e.value = Some(value);
            index
        } else {
            let index = self.slab.len();
            assert!(index < NIL as usize, "timing wheel full ({index} entries)");
            self.slab.push(Entry { deadline_ms, value: Some(value), prev: NIL, next: NIL, generation: 0, list: FREE });
            index as u32
        }
    }

    /// Puts an unlinked entry on the list for tick `when`.
    #[inline]
    fn link(&mut self, index: u32, when: u64) {
        if when <= self.elapsed {
            let tail = self.lists.ready_tail;
            let e = &mut self.slab[index as usize];
            e.list = READY;
            e.prev = tail;
            e.next = NIL;
            if tail == NIL {
                self.lists.heads[READY as usize] = index;
            } else {
                self.slab[tail as usize].next = index;
            }
            self.lists.ready_tail = index;
        } else {
            let level = level_for(self.elapsed, when);
            let slot = slot_for(when, level);
            let list = level * SLOTS + slot;
            let head = self.lists.heads[list];
            let e = &mut self.slab[index as usize];
            e.list = list as u16;
            e.prev = NIL;
            e.next = head;
            if head != NIL {
                self.slab[head as usize].prev = index;
            }
            self.lists.heads[list] = index;
            self.lists.occupied[level] |= 1 << slot;
        }
    }

    /// Takes an armed entry off its list (it keeps its `list` until relinked or freed).
    #[inline]
    fn unlink(&mut self, index: u32) {
        let e = &self.slab[index as usize];
        let (prev, next, list) = (e.prev, e.next, e.list);
        if prev == NIL {
            self.lists.heads[list as usize] = next;
        } else {
            self.slab[prev as usize].next = next;
        }
        if next != NIL {
            self.slab[next as usize].prev = prev;
        } else if list == READY {
            self.lists.ready_tail = prev;
        } else if prev == NIL {
            let (level, slot) = (list as usize / SLOTS, list as usize % SLOTS);
            self.lists.occupied[level] &= !(1 << slot);
        }
    }

    /// Returns an unlinked entry's slot to the free list; its key goes stale.
    fn release(&mut self, index: u32) -> (i64, V) {
        let e = &mut self.slab[index as usize];
        e.generation = e.generation.wrapping_add(1);
        e.list = FREE;
        e.prev = NIL;
        e.next = self.free_head;
        self.free_head = index;
        self.len -= 1;
        let value = e.value.take().expect("armed entry holds a value");
        (e.deadline_ms, value)
    }

    fn emit(&mut self, index: u32, out: &mut Vec<Expired<V>>) {
        let generation = self.slab[index as usize].generation;
        self.unlink(index);
        let (deadline_ms, value) = self.release(index);
        out.push(Expired { key: Key { index, generation }, deadline_ms, value });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drains everything due at `now` in batches of `limit`.
    fn drain(w: &mut Wheel<u32>, now: i64, limit: usize) -> Vec<Expired<u32>> {
        let mut out = Vec::new();
        let mut calls = 0;
        loop {
            let n = w.advance(now, &mut out, limit);
            assert!(n <= limit);
            w.check_invariants();
            if !w.needs_advance(now) {
                return out;
            }
            calls += 1;
            assert!(calls < 10_000_000, "advance makes no progress");
        }
    }

    #[test]
    fn entry_is_32_bytes_for_u32() {
        assert_eq!(Wheel::<u32>::ENTRY_BYTES, 32);
        assert_eq!(LEVELS, 11);
        assert_eq!(READY as usize, 704);
    }

    #[test]
    fn level_and_slot() {
        assert_eq!(level_for(0, 1), 0);
        assert_eq!(level_for(0, 63), 0);
        assert_eq!(level_for(0, 64), 1);
        assert_eq!(level_for(0, 4095), 1);
        assert_eq!(level_for(0, 4096), 2);
        assert_eq!(level_for(0, 262_144), 3);
        assert_eq!(level_for(63, 64), 1);
        assert_eq!(level_for(64, 127), 0);
        assert_eq!(level_for(0, u64::MAX), 10);
        assert_eq!(slot_for(u64::MAX, 10), 15);
        assert_eq!(block_base(u64::MAX, 10), 0);
        assert_eq!(block_base(130, 0), 128);
        assert_eq!(block_base(130, 1), 0);
    }

    #[test]
    fn rounding_up_to_the_tick() {
        let mut w = Wheel::new(0, 1000);
        let a = w.insert(1500, 1);
        let b = w.insert(2000, 2);
        assert_eq!(w.next_deadline(), Some(2000));
        assert!(drain(&mut w, 1999, usize::MAX).is_empty());
        let fired: Vec<_> = drain(&mut w, 2000, usize::MAX).into_iter().map(|e| e.key).collect();
        assert_eq!(fired.len(), 2);
        assert!(fired.contains(&a) && fired.contains(&b));
        // Negative times round the same way.
        let mut w = Wheel::new(-10_000, 1000);
        w.insert(-8_500, 3);
        assert!(drain(&mut w, -8_001, usize::MAX).is_empty());
        assert_eq!(drain(&mut w, -8_000, usize::MAX).len(), 1);
    }

    #[test]
    fn interrupted_cascade_resumes_in_order() {
        let mut w = Wheel::new(0, 1);
        // 200 entries in one level-2 slot spread over 64 level-1 slots and ticks.
        for i in 0..200u32 {
            w.insert(4096 + i64::from(i) * 3, i);
        }
        w.check_invariants();
        let all = drain(&mut w, 10_000, 1);
        assert_eq!(all.len(), 200);
        assert!(all.windows(2).all(|p| p[0].deadline_ms <= p[1].deadline_ms));
        assert!(w.is_empty());
    }

    #[test]
    fn free_slots_are_reused() {
        let mut w = Wheel::new(0, 1);
        let a = w.insert(10, 1);
        assert_eq!(w.cancel(a), Some(1));
        let b = w.insert(20, 2);
        assert_eq!(a.index(), b.index());
        assert_ne!(a, b);
        assert_eq!(w.cancel(a), None);
        assert_eq!(w.deadline(b), Some(20));
        w.check_invariants();
    }
}

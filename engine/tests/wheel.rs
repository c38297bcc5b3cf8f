//! The timing wheel against its contract: nothing fires early, nothing fires late,
//! order by deadline, cascades across every level, cancel/reset, stale keys, bounded
//! work per call; and a proptest against a `BTreeMap` model.

use std::collections::{BTreeMap, HashMap};

use lessor_engine::expiry::{Expired, Key, Wheel};
use proptest::prelude::*;

const YEAR_MS: i64 = 365 * 24 * 3600 * 1000;

/// Calls `advance(now, limit)` until the wheel has no more work at `now`.
fn drain<V>(w: &mut Wheel<V>, now: i64, limit: usize) -> Vec<Expired<V>> {
    let mut out = Vec::new();
    for _ in 0..10_000_000 {
        let before = out.len();
        let n = w.advance(now, &mut out, limit);
        assert_eq!(n, out.len() - before);
        assert!(n <= limit, "{n} entries emitted with limit {limit}");
        if !w.needs_advance(now) {
            return out;
        }
    }
    panic!("advance makes no progress at {now}");
}

/// A deterministic shuffle source.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn fires_in_deadline_order() {
    let now = 1_700_000_000_000;
    let mut w = Wheel::new(now, 1);
    let mut seed = 7;
    let mut deadlines: Vec<i64> = (0..5000).map(|_| now + (splitmix(&mut seed) % 300_000) as i64).collect();
    for (i, &d) in deadlines.iter().enumerate() {
        w.insert(d, i as u32);
    }
    let fired = drain(&mut w, now + 300_000, usize::MAX);
    let got: Vec<i64> = fired.iter().map(|e| e.deadline_ms).collect();
    deadlines.sort_unstable();
    assert_eq!(got, deadlines);
    assert!(w.is_empty());
    w.check_invariants();
}

#[test]
fn never_early_never_late_under_stepping_time() {
    for tick in [1u64, 10, 1000] {
        let start = 1_000_000_007;
        let mut w = Wheel::new(start, tick);
        let mut seed = tick;
        let mut live = 0;
        for i in 0..3000u32 {
            let d = start + (splitmix(&mut seed) % 2_000_000) as i64;
            w.insert(d, i);
            live += 1;
        }
        let mut now = start;
        while live > 0 {
            now += (splitmix(&mut seed) % 5000) as i64;
            for e in drain(&mut w, now, usize::MAX) {
                assert!(e.deadline_ms <= now, "fired early: deadline {} at {now}", e.deadline_ms);
                live -= 1;
            }
            // Nothing still armed is due: its deadline rounded up to the tick is after now.
            let boundary = now.div_euclid(tick as i64) * tick as i64;
            if let Some(nd) = w.next_deadline() {
                assert!(nd > now, "next deadline {nd} not after {now} after a full advance");
            }
            assert!(!w.needs_advance(now));
            w.check_invariants();
            let mut survivors = Vec::new();
            w.advance(boundary, &mut survivors, usize::MAX);
            assert!(survivors.is_empty());
        }
    }
}

#[test]
fn single_call_without_limit_leaves_nothing_due() {
    let mut w = Wheel::new(0, 1);
    let mut seed = 3;
    let keys: Vec<(Key, i64)> = (0..2000)
        .map(|i| {
            let d = (splitmix(&mut seed) % 1_000_000) as i64;
            (w.insert(d, i), d)
        })
        .collect();
    let mut out = Vec::new();
    w.advance(500_000, &mut out, usize::MAX);
    assert!(out.iter().all(|e| e.deadline_ms <= 500_000));
    for (k, d) in keys {
        assert_eq!(w.contains(k), d > 500_000, "deadline {d}");
    }
    assert!(!w.needs_advance(500_000));
}

#[test]
fn cascades_across_every_level() {
    // Deadlines in ticks (1 ms tick) from `now`, including past the 6-level range.
    let spans: [i64; 16] = [
        1,
        63,
        64,
        65,
        4095,
        4096,
        4097,
        262_143,
        262_144,
        262_145,
        64i64.pow(4),
        64i64.pow(5) + 17,
        64i64.pow(6) - 1,
        64i64.pow(6) + 1,
        3 * YEAR_MS,
        500 * YEAR_MS,
    ];
    let now = 1_700_000_123_456;
    for &span in &spans {
        let mut w = Wheel::new(now, 1);
        let k = w.insert(now + span, span as u32);
        // Filler that must not disturb anything.
        w.insert(now + span + 1, 0);
        assert!(drain(&mut w, now + span - 1, usize::MAX).is_empty(), "span {span} fired early");
        assert!(w.contains(k));
        let fired = drain(&mut w, now + span, usize::MAX);
        assert_eq!(fired.len(), 1, "span {span}");
        assert_eq!(fired[0].key, k);
        assert_eq!(fired[0].deadline_ms, now + span);
        w.check_invariants();

        // Sleeping from next_deadline to next_deadline reaches it in a few wakeups
        // (one per level it cascades through), each no later than the deadline.
        let mut w = Wheel::new(now, 1);
        let k = w.insert(now + span, 1);
        let mut wakeups = 0;
        loop {
            let nd = w.next_deadline().expect("armed");
            assert!(nd <= now + span, "span {span}: wakeup {nd} after the deadline");
            let fired = drain(&mut w, nd, usize::MAX);
            wakeups += 1;
            if !fired.is_empty() {
                assert_eq!(fired[0].key, k);
                assert_eq!(nd, now + span);
                break;
            }
        }
        assert!(wakeups <= 11, "span {span}: {wakeups} wakeups");
        assert_eq!(w.next_deadline(), None);
    }
}

#[test]
fn one_second_ticks_cover_centuries() {
    let now = 1_700_000_000_000;
    let mut w = Wheel::new(now, 1000);
    let century = w.insert(now + 100 * YEAR_MS, 1);
    let month = w.insert(now + 30 * 24 * 3600 * 1000 + 1, 2);
    assert!(drain(&mut w, now + 30 * 24 * 3600 * 1000, usize::MAX).is_empty());
    // Rounded up to the next second.
    let fired = drain(&mut w, now + 30 * 24 * 3600 * 1000 + 1000, usize::MAX);
    assert_eq!(fired.iter().map(|e| e.key).collect::<Vec<_>>(), vec![month]);
    assert!(drain(&mut w, now + 100 * YEAR_MS - 1, usize::MAX).is_empty());
    assert_eq!(drain(&mut w, now + 100 * YEAR_MS, usize::MAX)[0].key, century);
}

#[test]
fn past_deadlines_fire_on_the_next_advance() {
    let now = 50_000;
    let mut w = Wheel::new(now, 1000);
    let mut out = Vec::new();
    w.advance(now, &mut out, usize::MAX);
    let a = w.insert(now - 10_000, 1);
    let b = w.insert(i64::MIN, 2);
    let c = w.insert(now, 3);
    assert_eq!(w.next_deadline(), Some(now));
    assert!(w.needs_advance(now));
    // Same `now`, and even an earlier `now` (time never moves back): all three fire, in insert order.
    assert_eq!(w.advance(now - 5000, &mut out, usize::MAX), 3);
    assert_eq!(out.iter().map(|e| e.key).collect::<Vec<_>>(), vec![a, b, c]);
    assert!(w.is_empty());
}

#[test]
fn extreme_deadlines_and_times() {
    let mut w = Wheel::new(i64::MIN, 1);
    let lo = w.insert(i64::MIN, 1);
    let hi = w.insert(i64::MAX, 2);
    let mid = w.insert(0, 3);
    assert_eq!(drain(&mut w, i64::MIN, usize::MAX).iter().map(|e| e.key).collect::<Vec<_>>(), vec![lo]);
    assert_eq!(drain(&mut w, -1, usize::MAX).len(), 0);
    assert_eq!(drain(&mut w, 0, usize::MAX)[0].key, mid);
    assert_eq!(drain(&mut w, i64::MAX - 1, usize::MAX).len(), 0);
    assert_eq!(drain(&mut w, i64::MAX, usize::MAX)[0].key, hi);
    w.check_invariants();

    let mut w = Wheel::new(i64::MAX - 5, 1000);
    let k = w.insert(i64::MAX - 5, 1);
    w.insert(i64::MIN, 2);
    assert_eq!(drain(&mut w, i64::MAX, usize::MAX).len(), 1);
    w.check_invariants();
    assert!(w.contains(k), "rounded up past i64::MAX: never due");
}

#[test]
fn cancel_and_reset() {
    let mut w = Wheel::new(0, 1);
    let a = w.insert(100, 1);
    let b = w.insert(200, 2);
    let c = w.insert(300, 3);
    assert_eq!(w.len(), 3);
    assert_eq!(w.cancel(b), Some(2));
    assert_eq!(w.len(), 2);
    assert_eq!(w.deadline(b), None);
    // Renew a later, bring c earlier.
    assert!(w.reset(a, 10_000));
    assert!(w.reset(c, 50));
    assert_eq!(w.deadline(a), Some(10_000));
    assert_eq!(w.get(c), Some(&3));
    *w.get_mut(c).unwrap() = 30;
    w.check_invariants();
    let fired = drain(&mut w, 9_999, usize::MAX);
    assert_eq!(fired, vec![Expired { key: c, deadline_ms: 50, value: 30 }]);
    assert!(w.contains(a));
    // Reset into the past: fires on the next advance, at the same now.
    assert!(w.reset(a, 5));
    assert_eq!(drain(&mut w, 9_999, usize::MAX)[0].key, a);
    assert!(w.is_empty());
    assert_eq!(w.next_deadline(), None);

    // Reset an entry that is due but not yet emitted (a limit stopped the advance).
    let mut w = Wheel::new(0, 1);
    let x = w.insert(10, 1);
    let y = w.insert(10, 2);
    let mut out = Vec::new();
    assert_eq!(w.advance(20, &mut out, 1), 1);
    let left = if out[0].key == x { y } else { x };
    assert!(w.reset(left, 1000));
    w.check_invariants();
    assert!(drain(&mut w, 20, usize::MAX).is_empty());
    assert_eq!(drain(&mut w, 1000, usize::MAX)[0].key, left);
}

#[test]
fn stale_keys_are_harmless() {
    let mut w = Wheel::new(0, 1);
    let a = w.insert(10, 1);
    assert_eq!(w.cancel(a), Some(1));
    assert_eq!(w.cancel(a), None);
    assert!(!w.reset(a, 20));
    let b = w.insert(10, 2); // reuses a's slot
    assert_eq!(b.index(), a.index());
    assert_eq!(w.cancel(a), None);
    assert_eq!(w.get(a), None);
    assert_eq!(w.deadline(b), Some(10));
    let fired = drain(&mut w, 10, usize::MAX);
    assert_eq!(fired[0].key, b);
    assert_eq!(w.cancel(b), None, "a fired key is stale");
    assert!(!w.contains(b));
    // A key from another wheel, out of range here.
    let mut big = Wheel::new(0, 1);
    let far = (0..100).map(|i| big.insert(i, i as u32)).last().unwrap();
    assert_eq!(w.cancel(far), None);
    assert_eq!(w.deadline(far), None);
    w.check_invariants();
}

#[test]
fn limit_bounds_every_call() {
    let mut w = Wheel::new(0, 1);
    for i in 0..100u32 {
        w.insert(i64::from(i % 10) + 1, i);
    }
    // Past-due entries on the ready list too.
    let mut out = Vec::new();
    w.advance(5, &mut out, 0);
    assert!(out.is_empty());
    for i in 0..5u32 {
        w.insert(-1, 1000 + i);
    }
    let mut calls = 0;
    let mut out = Vec::new();
    loop {
        let n = w.advance(100, &mut out, 7);
        assert!(n <= 7);
        calls += 1;
        w.check_invariants();
        if !w.needs_advance(100) {
            break;
        }
    }
    assert_eq!(out.len(), 105);
    assert!(calls >= 15);
    // The ready entries first, then by deadline.
    assert!(out[..5].iter().all(|e| e.value >= 1000));
    assert!(out[5..].windows(2).all(|p| p[0].deadline_ms <= p[1].deadline_ms));
    assert!(w.is_empty());
}

#[test]
fn limited_cascades_of_a_large_slot() {
    // 10,000 entries all in one level-3 slot; limit 16 bounds both emits and cascades.
    let mut w = Wheel::new(0, 1);
    for i in 0..10_000u32 {
        w.insert(262_144 + i64::from(i) * 7, i);
    }
    let all = drain(&mut w, 262_144 + 70_000, 16);
    assert_eq!(all.len(), 10_000);
    assert!(all.windows(2).all(|p| p[0].deadline_ms <= p[1].deadline_ms));
}

#[test]
fn memory_per_armed_entry() {
    const { assert!(Wheel::<u32>::ENTRY_BYTES <= 64) };
    let now = 1_700_000_000_000;
    let mut w = Wheel::new(now, 1000);
    let mut seed = 11;
    for i in 0..1_000_000u32 {
        w.insert(now + (splitmix(&mut seed) % (30 * 24 * 3600 * 1000)) as i64, i);
    }
    let per_entry = w.heap_bytes() as f64 / w.len() as f64;
    assert!(per_entry <= 64.0, "{per_entry} bytes per entry");
}

// ---- model-based ----

#[derive(Clone, Debug)]
enum Deadline {
    Near(i64),
    Far(i64),
    Abs(i64),
}

#[derive(Clone, Debug)]
enum Jump {
    Small(i64),
    Medium(i64),
    Huge(i64),
    Back(i64),
    ToMax,
}

#[derive(Clone, Debug)]
enum Op {
    Insert(Deadline),
    Cancel(usize),
    Reset(usize, Deadline),
    Stale(usize),
    Advance(Jump, usize),
}

fn deadline_strategy() -> impl Strategy<Value = Deadline> {
    prop_oneof![
        6 => (-2_000i64..20_000).prop_map(Deadline::Near),
        2 => (0i64..1 << 50).prop_map(Deadline::Far),
        1 => prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(i64::MAX - 1), Just(0), any::<i64>()].prop_map(Deadline::Abs),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let jump = prop_oneof![
        6 => (0i64..200).prop_map(Jump::Small),
        3 => (0i64..300_000).prop_map(Jump::Medium),
        1 => (0i64..1 << 48).prop_map(Jump::Huge),
        1 => (0i64..5_000).prop_map(Jump::Back),
        1 => Just(Jump::ToMax),
    ];
    let limit = prop_oneof![Just(usize::MAX), 0usize..4, 1usize..64];
    prop_oneof![
        8 => deadline_strategy().prop_map(Op::Insert),
        2 => any::<usize>().prop_map(Op::Cancel),
        2 => (any::<usize>(), deadline_strategy()).prop_map(|(i, d)| Op::Reset(i, d)),
        1 => any::<usize>().prop_map(Op::Stale),
        4 => (jump, limit).prop_map(|(j, l)| Op::Advance(j, l)),
    ]
}

/// The reference: deadline-ordered entries, and the firing rule written out.
struct Model {
    tick: i128,
    /// The latest `now` seen (time never moves back).
    now_max: i64,
    by_deadline: BTreeMap<(i64, u32), Key>,
    by_key: HashMap<Key, (i64, u32)>,
    live: Vec<Key>,
    dead: Vec<Key>,
}

impl Model {
    fn tick_of(&self, deadline: i64) -> i128 {
        // ceil(deadline / tick)
        -((-i128::from(deadline)).div_euclid(self.tick))
    }
    fn now_tick(&self) -> i128 {
        i128::from(self.now_max).div_euclid(self.tick)
    }
    fn is_due(&self, deadline: i64) -> bool {
        self.tick_of(deadline) <= self.now_tick()
    }
    fn resolve(&self, now: i64, d: &Deadline) -> i64 {
        match *d {
            Deadline::Near(x) | Deadline::Far(x) => now.saturating_add(x),
            Deadline::Abs(x) => x,
        }
    }
    fn remove(&mut self, key: Key) -> (i64, u32) {
        let (d, v) = self.by_key.remove(&key).unwrap();
        self.by_deadline.remove(&(d, v));
        let pos = self.live.iter().position(|&k| k == key).unwrap();
        self.live.swap_remove(pos);
        self.dead.push(key);
        (d, v)
    }
    fn insert(&mut self, key: Key, d: i64, v: u32) {
        self.by_key.insert(key, (d, v));
        self.by_deadline.insert((d, v), key);
        self.live.push(key);
    }
}

fn run_model(start: i64, tick: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut w: Wheel<u32> = Wheel::new(start, tick);
    let mut m = Model {
        tick: i128::from(tick),
        now_max: start,
        by_deadline: BTreeMap::new(),
        by_key: HashMap::new(),
        live: Vec::new(),
        dead: Vec::new(),
    };
    let mut now = start;
    let mut next_value = 0u32;
    for op in ops {
        match op {
            Op::Insert(d) => {
                let d = m.resolve(now, &d);
                let k = w.insert(d, next_value);
                prop_assert!(!m.by_key.contains_key(&k), "key reused while live");
                m.insert(k, d, next_value);
                next_value += 1;
            }
            Op::Cancel(i) if !m.live.is_empty() => {
                let k = m.live[i % m.live.len()];
                let (_, v) = m.remove(k);
                prop_assert_eq!(w.cancel(k), Some(v));
            }
            Op::Reset(i, d) if !m.live.is_empty() => {
                let k = m.live[i % m.live.len()];
                let d = m.resolve(now, &d);
                prop_assert!(w.reset(k, d));
                let (old, v) = m.by_key[&k];
                m.by_deadline.remove(&(old, v));
                m.by_deadline.insert((d, v), k);
                m.by_key.insert(k, (d, v));
            }
            Op::Stale(i) if !m.dead.is_empty() => {
                let k = m.dead[i % m.dead.len()];
                prop_assert_eq!(w.cancel(k), None);
                prop_assert!(!w.reset(k, now));
                prop_assert_eq!(w.deadline(k), None);
            }
            Op::Advance(jump, limit) => {
                now = match jump {
                    Jump::Small(x) | Jump::Medium(x) | Jump::Huge(x) => now.saturating_add(x),
                    Jump::Back(x) => now.saturating_sub(x),
                    Jump::ToMax => i64::MAX,
                };
                let floor_before = m.now_tick();
                m.now_max = m.now_max.max(now);
                let mut out = Vec::new();
                let mut calls = 0u64;
                loop {
                    let before = out.len();
                    let n = w.advance(now, &mut out, limit);
                    prop_assert!(n <= limit && n == out.len() - before);
                    calls += 1;
                    w.check_invariants();
                    if !w.needs_advance(now) || limit == 0 {
                        break;
                    }
                    prop_assert!(calls < 1_000_000, "no progress");
                }
                if limit == usize::MAX {
                    prop_assert_eq!(calls, 1, "an unlimited advance finishes in one call");
                }
                let mut last = i128::MIN;
                for e in &out {
                    // Never early, and exactly the model's entry.
                    prop_assert!(m.is_due(e.deadline_ms), "fired early: {} at {}", e.deadline_ms, m.now_max);
                    prop_assert_eq!(m.by_key.get(&e.key), Some(&(e.deadline_ms, e.value)));
                    m.remove(e.key);
                    // In order of tick, entries already due before this advance first.
                    let t = m.tick_of(e.deadline_ms).max(floor_before);
                    prop_assert!(t >= last, "out of order");
                    last = t;
                }
                if limit != 0 {
                    // Never late: nothing due remains.
                    let remaining_due = m.by_deadline.keys().next().is_some_and(|&(d, _)| m.is_due(d));
                    prop_assert!(!remaining_due, "an entry due at {} was not fired", m.now_max);
                }
            }
            _ => {}
        }
        w.check_invariants();
        prop_assert_eq!(w.len(), m.by_key.len());
        for (&k, &(d, v)) in &m.by_key {
            prop_assert_eq!(w.deadline(k), Some(d));
            prop_assert_eq!(w.get(k), Some(&v));
        }
        match (w.next_deadline(), m.by_deadline.keys().next()) {
            (None, None) => {}
            (Some(nd), Some(&(d, _))) => {
                // No later than the first instant the earliest entry can fire.
                let fire_at = (m.tick_of(d) * m.tick).min(i128::from(i64::MAX));
                let now_floor = m.now_tick() * m.tick;
                prop_assert!(i128::from(nd) <= fire_at.max(now_floor), "next_deadline {} after {}", nd, fire_at);
                if nd < i64::MAX {
                    prop_assert_eq!(w.needs_advance(m.now_max), nd <= m.now_max);
                }
            }
            (nd, first) => prop_assert!(false, "next_deadline {:?} vs model {:?}", nd, first),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn matches_the_model(
        start in prop_oneof![Just(0i64), -1_000_000_000i64..2_000_000_000_000, Just(i64::MIN), Just(i64::MAX - 100_000)],
        tick in prop_oneof![Just(1u64), Just(7), Just(1000)],
        ops in proptest::collection::vec(op_strategy(), 1..300),
    ) {
        run_model(start, tick, ops)?;
    }
}

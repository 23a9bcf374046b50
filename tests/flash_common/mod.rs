//! Shared model and workload for the flash storage tests.
#![allow(dead_code)]

use sensor_spool::storage::mock_flash::{MockFlash, Tear};
use sensor_spool::storage::{
    LogEntry, NorFlashStorage, RecordKind, Run, RunInfo, RunMeta, SensorKey, Storage,
    run_encoded_len,
};

/// Staging buffer used by the tests (small, so frames span several programs too).
pub const BUF: usize = 256;

pub type Flash<const W: usize, const E: usize> = MockFlash<W, E>;
pub type Store<const W: usize, const E: usize> = NorFlashStorage<MockFlash<W, E>, BUF>;

/// Workload size: full in optimized builds (scripts/test.sh runs these tests
/// with `--release`); long workloads (>= 1000 operations) shrink to a tenth in
/// unoptimized ones, still wrapping the flash. `SPOOL_SWEEP_SCALE=k` multiplies
/// it (scripts/torture.sh: the long run).
pub fn scale(n: usize) -> usize {
    let k = std::env::var("SPOOL_SWEEP_SCALE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    if cfg!(debug_assertions) && n >= 1000 {
        n / 10 * k
    } else {
        n * k
    }
}

/// Deterministic RNG (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const fn mix(a: u32, b: u32) -> u32 {
    let mut x = a.wrapping_mul(0x9E37_79B9) ^ b.wrapping_mul(0x85EB_CA6B);
    x ^= x >> 15;
    x = x.wrapping_mul(0xC2B2_AE35);
    x ^ (x >> 13)
}

/// Serial-number "a is before b".
pub fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Model of one sensor.
#[derive(Clone, Debug)]
pub struct SensorModel {
    pub key: SensorKey,
    pub kind: RecordKind,
    pub start: u32,
    /// Next sequence number to flush (everything before was flushed and committed).
    pub flushed_end: u32,
    /// Records before this were reported evicted.
    pub evicted_end: u32,
    /// Committed acknowledgement mark.
    pub ack: Option<u32>,
}

impl SensorModel {
    pub fn record(&self, seq: u32) -> Vec<u8> {
        let v = mix(self.key.id ^ ((self.key.source as u32) << 24), seq);
        match self.kind {
            RecordKind::Tsd => v.to_le_bytes().to_vec(),
            RecordKind::Evt => {
                let mut b = (seq ^ 0x5A5A_0000).to_le_bytes().to_vec();
                b.extend_from_slice(&v.to_le_bytes());
                b
            }
        }
    }
    pub fn meta(&self, first: u32) -> RunMeta {
        match self.kind {
            RecordKind::Tsd => RunMeta {
                // Linear in the sequence number, so a run split anywhere keeps it.
                base_time: 1_700_000_000_000 + first as u64 * 1000,
                interval: 1000,
            },
            RecordKind::Evt => RunMeta::default(),
        }
    }
}

/// Eviction callback updating the model (asserts oldest-first order).
pub fn evict(sensors: &mut [SensorModel]) -> impl FnMut(RunInfo) + '_ {
    move |ev: RunInfo| {
        let s = sensors
            .iter_mut()
            .find(|s| s.key == ev.key)
            .expect("evicted run of an unknown sensor");
        // Oldest first, no gap. A run may be reported again: an eviction that
        // had not reached flash when power was cut (the new sector header
        // that records it was not programmed) left its records in the log.
        assert!(
            !before(s.evicted_end, ev.first_seq),
            "eviction is not oldest-first: run {ev:?}, evicted up to {:#x}",
            s.evicted_end
        );
        if before(s.evicted_end, ev.end_seq()) {
            s.evicted_end = ev.end_seq();
        }
    }
}

/// An operation in flight when power is cut.
#[derive(Clone, Debug)]
pub enum Op {
    Append(Vec<(usize, u32, u16)>),
    Ack(usize, u32),
}

/// Workload + model.
#[derive(Clone, Debug)]
pub struct Model {
    pub sensors: Vec<SensorModel>,
    pub rng: Rng,
    pub max_count: u16,
    pub max_body: usize,
    pub ack_percent: u64,
}

/// What a check observed (used to resolve an in-flight operation).
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub acks: Vec<Option<u32>>,
    pub inflight_present: bool,
    /// Per sensor: delivered in-flight records (a prefix of the batch order).
    pub inflight_end: Vec<u32>,
    pub records: u64,
}

impl Model {
    pub fn new(seed: u64, max_body: usize) -> Self {
        let keys = [
            (
                SensorKey { source: 1, id: 10 },
                RecordKind::Evt,
                0xFFFF_FF80u32,
            ),
            (SensorKey { source: 1, id: 11 }, RecordKind::Tsd, 5),
            (
                SensorKey {
                    source: 2,
                    id: 0xDEAD_BEEF,
                },
                RecordKind::Evt,
                0x7FFF_FFF0,
            ),
        ];
        let sensors = keys
            .iter()
            .map(|&(key, kind, start)| SensorModel {
                key,
                kind,
                start,
                flushed_end: start,
                evicted_end: start,
                ack: None,
            })
            .collect();
        // Up to three runs per batch must fit.
        let per_run = max_body / 3;
        let max_count = ((per_run.saturating_sub(24)) / 8).clamp(1, 400) as u16;
        Self {
            sensors,
            rng: Rng(seed | 1),
            max_count,
            max_body,
            ack_percent: 20,
        }
    }

    /// Picks the next operation.
    pub fn next_op(&mut self) -> Op {
        if self.rng.below(100) < self.ack_percent {
            let i = self.rng.below(self.sensors.len() as u64) as usize;
            let s = &self.sensors[i];
            let base = s.ack.unwrap_or(s.start);
            let avail = s.flushed_end.wrapping_sub(base);
            if avail > 0 {
                let upto = base.wrapping_add(1 + self.rng.below(avail as u64) as u32);
                return Op::Ack(i, upto);
            }
        }
        let nruns = 1 + self.rng.below(3) as usize;
        let mut runs = Vec::new();
        let mut body = 0;
        let first = self.rng.below(3) as usize;
        for j in 0..nruns {
            let i = (first + j) % self.sensors.len();
            let s = &self.sensors[i];
            let mut count = 1 + self.rng.below(self.max_count as u64) as u16;
            while count > 1 && body + run_encoded_len(s.kind, count as usize) > self.max_body {
                count /= 2;
            }
            if body + run_encoded_len(s.kind, count as usize) > self.max_body {
                break;
            }
            body += run_encoded_len(s.kind, count as usize);
            runs.push((i, s.flushed_end, count));
        }
        Op::Append(runs)
    }

    /// Applies `op` to the store; evictions update the model as reported.
    pub fn apply<const W: usize, const E: usize>(
        &mut self,
        st: &mut Store<W, E>,
        op: &Op,
    ) -> Result<(), sensor_spool::storage::StorageError> {
        match op {
            Op::Append(runs) => {
                let bufs: Vec<Vec<u8>> = runs
                    .iter()
                    .map(|&(i, first, count)| {
                        (0..count as u32)
                            .flat_map(|k| self.sensors[i].record(first.wrapping_add(k)))
                            .collect()
                    })
                    .collect();
                let rs: Vec<Run<'_>> = runs
                    .iter()
                    .zip(&bufs)
                    .map(|(&(i, first, count), b)| Run {
                        info: RunInfo {
                            key: self.sensors[i].key,
                            kind: self.sensors[i].kind,
                            first_seq: first,
                            count,
                            meta: self.sensors[i].meta(first),
                        },
                        records: b,
                    })
                    .collect();
                st.append(&rs[..], evict(&mut self.sensors))?;
                for &(i, _, count) in runs {
                    let s = &mut self.sensors[i];
                    s.flushed_end = s.flushed_end.wrapping_add(count as u32);
                }
            }
            &Op::Ack(i, upto) => {
                let key = self.sensors[i].key;
                st.ack(key, upto, evict(&mut self.sensors))?;
                self.sensors[i].ack = Some(upto);
            }
        }
        Ok(())
    }

    /// Updates the model after a remount from what was observed on flash.
    pub fn resolve(&mut self, inflight: Option<&Op>, obs: &Observed) {
        match inflight {
            Some(Op::Append(_)) => {
                for (s, &e) in self.sensors.iter_mut().zip(&obs.inflight_end) {
                    s.flushed_end = e;
                }
            }
            Some(&Op::Ack(i, _)) => self.sensors[i].ack = obs.acks[i],
            _ => {}
        }
        for (s, a) in self.sensors.iter_mut().zip(&obs.acks) {
            if let Some(a) = *a {
                s.ack = Some(a);
            }
        }
    }

    /// Mounts `image` and checks it against the model, `inflight` being the
    /// operation during which power was cut (if any).
    pub fn check<const W: usize, const E: usize>(
        &self,
        image: &[u8],
        inflight: Option<&Op>,
    ) -> Observed {
        let flash = Flash::<W, E>::from_image(image, 99);
        let mut st = Store::<W, E>::new(flash).unwrap();
        st.mount().unwrap();
        let mount_read = st.flash().stats().bytes_read as usize;
        assert!(
            mount_read <= st.mount_read_bound(),
            "mount read {mount_read} > bound {}",
            st.mount_read_bound()
        );
        let mut acks: Vec<Option<u32>> = vec![None; self.sensors.len()];
        let mut runs: Vec<Vec<RunInfo>> = vec![Vec::new(); self.sensors.len()];
        st.recover(|e| match e {
            LogEntry::Ack { key, upto } => {
                let i = self.idx(key);
                acks[i] = Some(upto);
            }
            LogEntry::Run(r) => {
                let i = self.idx(r.key);
                runs[i].push(r);
            }
            LogEntry::Reserve { .. } => {}
        })
        .unwrap();
        let mut obs = Observed {
            acks: acks.clone(),
            ..Observed::default()
        };
        let mut inflight_seen = 0u64;
        let mut inflight_total = 0u64;
        let mut sets: Vec<std::collections::HashSet<u32>> = Vec::new();
        for (i, s) in self.sensors.iter().enumerate() {
            let (inflight_end, inflight_ack) = match inflight {
                Some(Op::Append(rs)) => {
                    let mut end = s.flushed_end;
                    for &(j, first, count) in rs {
                        if j == i {
                            assert_eq!(first, s.flushed_end);
                            end = first.wrapping_add(count as u32);
                            inflight_total += count as u64;
                        }
                    }
                    (end, None)
                }
                Some(&Op::Ack(j, upto)) if j == i => (s.flushed_end, Some(upto)),
                _ => (s.flushed_end, None),
            };
            // Acknowledgement marks: never invented, never lost while they matter.
            let rec_ack = acks[i];
            if let Some(a) = rec_ack {
                let ok = Some(a) == s.ack || Some(a) == inflight_ack;
                let older = s.ack.is_some_and(|c| before(a, c));
                assert!(ok || older, "sensor {i}: ack {a:#x} invented");
            }
            // Runs of recover are genuine.
            for r in &runs[i] {
                assert_eq!(r.kind, s.kind);
                assert_eq!(r.meta, s.meta(r.first_seq), "meta of run {r:?}");
                let lo = r.first_seq.wrapping_sub(s.start);
                let hi = r.end_seq().wrapping_sub(s.start);
                assert!(
                    lo < hi && hi <= inflight_end.wrapping_sub(s.start),
                    "run {r:?} outside flushed range"
                );
            }
            // Read everything from the recovered mark through the API.
            let from = rec_ack.unwrap_or(s.start);
            let mut seq = from;
            let mut out = [0u8; 4096];
            let mut delivered = Vec::new();
            let mut guard = 0;
            while let Some(ro) = st.read(s.key, seq, &mut out).unwrap() {
                guard += 1;
                assert!(guard < 1_000_000);
                assert!(ro.count > 0);
                assert!(!before(ro.first, seq), "read went backwards");
                let size = s.kind.record_size();
                for k in 0..ro.count {
                    let q = ro.first.wrapping_add(k as u32);
                    assert_eq!(
                        &out[k * size..(k + 1) * size],
                        &s.record(q)[..],
                        "sensor {i} seq {q:#x}: corrupted record"
                    );
                    delivered.push(q);
                }
                seq = ro.first.wrapping_add(ro.count as u32);
            }
            obs.records += delivered.len() as u64;
            sets.push(delivered.iter().copied().collect());
            // Nothing invented, nothing acknowledged comes back.
            for &q in &delivered {
                let off = q.wrapping_sub(s.start);
                assert!(
                    off < inflight_end.wrapping_sub(s.start),
                    "sensor {i}: record {q:#x} never flushed"
                );
                if let Some(c) = s.ack {
                    assert!(!before(q, c), "sensor {i}: acknowledged record {q:#x} back");
                }
                if !before(q, s.flushed_end) {
                    inflight_seen += 1;
                }
            }
            // Every committed, unacknowledged, unevicted record is there, in order.
            let mut req = s.evicted_end;
            for m in [s.ack, rec_ack].into_iter().flatten() {
                if before(req, m) {
                    req = m;
                }
            }
            let floor = req;
            let mut it = delivered.iter().copied().filter(|&q| !before(q, floor));
            while before(req, s.flushed_end) {
                assert_eq!(
                    it.next(),
                    Some(req),
                    "sensor {i}: committed record {req:#x} missing (evicted_end {:#x}, ack {:?}, rec_ack {:?})",
                    s.evicted_end,
                    s.ack,
                    rec_ack
                );
                req = req.wrapping_add(1);
            }
        }
        // A batch is one frame, or two when it fills the rest of a sector: the
        // in-flight records present must be a prefix of the batch, in order.
        obs.inflight_end = self.sensors.iter().map(|s| s.flushed_end).collect();
        if let Some(Op::Append(runs)) = inflight {
            let mut gone = false;
            for &(i, first, count) in runs {
                for k in 0..count as u32 {
                    let q = first.wrapping_add(k);
                    if sets[i].contains(&q) {
                        assert!(
                            !gone,
                            "batch not a prefix: sensor {i} record {q:#x} after a gap"
                        );
                        obs.inflight_end[i] = q.wrapping_add(1);
                    } else {
                        gone = true;
                    }
                }
            }
        }
        let _ = inflight_seen;
        obs.inflight_present = inflight_total > 0 && inflight_seen == inflight_total;
        obs
    }

    fn idx(&self, key: SensorKey) -> usize {
        self.sensors
            .iter()
            .position(|s| s.key == key)
            .expect("run of an unknown sensor")
    }
}

/// Exhaustive single-cut sweep using the mock's forks: runs `ops` operations
/// and checks a power-cut image for every program/erase. Returns (cut points,
/// sectors evicted).
pub fn sweep<const W: usize, const E: usize>(sectors: usize, ops: usize, seed: u64) -> (u64, u64) {
    sweep_with::<W, E>(sectors, ops, seed, Tear::Mixed)
}

/// [`sweep`] with a given tear model. After each cut image is checked, the
/// store is mounted on it (ECC-strict: the units the cut operation had started
/// to program count as programmed) and two more operations run, so a store that
/// programs a unit twice, or cannot carry on after the cut, fails here.
pub fn sweep_with<const W: usize, const E: usize>(
    sectors: usize,
    ops: usize,
    seed: u64,
    tear: Tear,
) -> (u64, u64) {
    let ops = scale(ops);
    let mut flash = Flash::<W, E>::new(sectors, seed);
    flash.set_tear(tear);
    let mut st = Store::<W, E>::new(flash).unwrap();
    st.mount().unwrap();
    let cap = if E >= 65536 {
        3 * (20 + 8 * 400)
    } else {
        3 * (20 + 8 * 48)
    };
    let max_body = sensor_spool::storage::Storage::max_batch_bytes(&st).min(cap);
    let mut m = Model::new(seed, max_body);
    st.flash_mut().set_fork(true);
    let mut cuts = 0u64;
    let mut seen = 0u64;
    // Unoptimized builds check every 8th cut of the 128 KiB geometries.
    let stride = if cfg!(debug_assertions) && E >= 65536 {
        8
    } else {
        1
    };
    for _ in 0..ops {
        let op = m.next_op();
        let before_model = m.clone();
        m.apply(&mut st, &op).unwrap();
        let forks = st.flash_mut().take_fork_flashes(seen ^ seed);
        for fork in forks {
            seen += 1;
            if !seen.is_multiple_of(stride) {
                continue;
            }
            // The model as it was before the op, plus evictions it reported.
            let mut chk = before_model.clone();
            for (c, now) in chk.sensors.iter_mut().zip(&m.sensors) {
                c.evicted_end = now.evicted_end;
            }
            let obs = chk.check::<W, E>(fork.image(), Some(&op));
            cuts += 1;
            // Carry on after the cut: nothing is programmed twice.
            chk.resolve(Some(&op), &obs);
            let mut after = Store::<W, E>::new(fork).unwrap();
            after.mount().unwrap();
            for _ in 0..2 {
                let op = chk.next_op();
                chk.apply(&mut after, &op)
                    .expect("an operation after the remount failed");
            }
        }
    }
    // The final image must also check out, with nothing in flight.
    st.flash_mut().set_fork(false);
    m.check::<W, E>(st.flash().image(), None);
    (cuts, st.stats().evicted_sectors as u64)
}

//! The pool's reference model, shared by `tests/pool_model.rs` and the `pool_ops` fuzz
//! target: which blocks are live and what every counter of every tier must read.

use std::collections::HashSet;

use sensor_spool::pool::{AllocError, BlockId, Pool, TIERS, TierSpec, TierStats};

/// The reference model: which blocks are live and what every counter must read.
pub struct Model<S, M, L> {
    pub live: HashSet<(u8, u16)>,
    pub stats: [TierStats; TIERS],
    pub stray: u32,
    _p: std::marker::PhantomData<(S, M, L)>,
}

impl<S: TierSpec, M: TierSpec, L: TierSpec> Model<S, M, L> {
    pub fn new() -> Self {
        let stats = std::array::from_fn(|t| TierStats {
            block_size: Pool::<S, M, L>::block_size(t) as u32,
            capacity: Pool::<S, M, L>::capacity(t) as u32,
            ..TierStats::default()
        });
        Self {
            live: HashSet::new(),
            stats,
            stray: 0,
            _p: std::marker::PhantomData,
        }
    }

    /// Lowest free index of tier `t`, if any.
    fn lowest_free(&self, t: usize) -> Option<u16> {
        (0..Pool::<S, M, L>::capacity(t) as u16).find(|&i| !self.live.contains(&(t as u8, i)))
    }

    fn take(&mut self, t: usize, i: u16) -> BlockId {
        assert!(self.live.insert((t as u8, i)));
        let s = &mut self.stats[t];
        s.in_use += 1;
        s.peak = s.peak.max(s.in_use);
        BlockId::new(t as u8, i)
    }

    pub fn alloc(&mut self, size: usize) -> Result<BlockId, AllocError> {
        let pref = Pool::<S, M, L>::tier_of_size(size).ok_or(AllocError::TooLarge)?;
        for t in pref..TIERS {
            if let Some(i) = self.lowest_free(t) {
                if t != pref {
                    self.stats[pref].fallbacks += 1;
                }
                return Ok(self.take(t, i));
            }
        }
        self.stats[pref].failed_allocs += 1;
        Err(AllocError::Exhausted)
    }

    pub fn alloc_in(&mut self, t: usize) -> Result<BlockId, AllocError> {
        if t >= TIERS {
            return Err(AllocError::TooLarge);
        }
        match self.lowest_free(t) {
            Some(i) => Ok(self.take(t, i)),
            None => {
                self.stats[t].failed_allocs += 1;
                Err(AllocError::Exhausted)
            }
        }
    }

    pub fn release(&mut self, id: BlockId) {
        assert!(self.live.remove(&(id.tier(), id.index())));
        self.stats[usize::from(id.tier())].in_use -= 1;
    }

    pub fn invalid(&mut self, t: u8) {
        self.stats[usize::from(t)].invalid_frees += 1;
    }
}

//! Resource caps for one run, enforced through wasmi's `ResourceLimiter`.
//!
//! The memory cap counts the bytes of all linear memories together (multi-
//! memory is enabled). A refused request is remembered so the runner can say
//! why a run failed:
//! - a module whose initial memory exceeds the cap fails to instantiate and
//!   the run reports `Outcome::MemoryLimit`;
//! - a `memory.grow` past the cap returns -1 to the module, as the spec
//!   prescribes, and the module carries on (allocators handle that). If the
//!   run then ends in a trap (the usual fate of a program whose allocator
//!   gave up: `abort` is `unreachable`), the outcome is `MemoryLimit` rather
//!   than `Trap`; a run that exits normally reports its exit code.
//!
//! Tables count into the same cap: each element costs the host
//! [`TABLE_ELEMENT_BYTES`], and the elements of all tables together are also
//! capped at [`MAX_TABLE_ELEMENTS`]. Instances, tables and memories are capped
//! by number, so a hostile module cannot make the guest allocate without bound.

use wasmi::errors::{MemoryError, TableError};
use wasmi::ResourceLimiter;
use wasmi_core::LimiterError;

/// Most table elements a module may have, all tables together.
pub const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Host bytes one table element is charged against the memory cap (a
/// wasmi table slot holds an untyped 64-bit reference).
pub const TABLE_ELEMENT_BYTES: u64 = 8;
/// Most instances per store: one module per run.
const MAX_INSTANCES: usize = 1;
/// Most tables per module.
const MAX_TABLES: usize = 16;
/// Most linear memories per module.
const MAX_MEMORIES: usize = 4;

/// A memory request the cap refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Total bytes of linear memory the module asked to have.
    pub requested: u64,
    /// The cap.
    pub limit: u64,
}

/// The limiter installed in each run's store.
#[derive(Debug)]
pub struct MemoryCap {
    limit: Option<u64>,
    in_use: u64,
    last_growth: u64,
    table_elements: u64,
    last_table_growth: u64,
    refused: Option<Refusal>,
}

impl MemoryCap {
    /// A cap of `limit` bytes of linear memory in total (`None`: only the
    /// wasm32 maximum of 4 GiB per memory applies).
    pub fn new(limit: Option<u64>) -> Self {
        MemoryCap {
            limit,
            in_use: 0,
            last_growth: 0,
            table_elements: 0,
            last_table_growth: 0,
            refused: None,
        }
    }

    /// The first request the cap refused, if any.
    pub fn refused(&self) -> Option<Refusal> {
        self.refused
    }

    /// Moves the cap to `limit` for what is already counted (an instance made
    /// ahead of its run gets the run's cap); `false`, and nothing changed, if
    /// what is in use already exceeds it.
    pub fn set_limit(&mut self, limit: Option<u64>) -> bool {
        if limit.is_some_and(|limit| self.in_use > limit) {
            return false;
        }
        self.limit = limit;
        true
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        if maximum.is_some_and(|maximum| desired > maximum) {
            return Ok(false);
        }
        let growth = (desired as u64).saturating_sub(current as u64);
        let requested = self.in_use.saturating_add(growth);
        if let Some(limit) = self.limit {
            if requested > limit {
                self.refused.get_or_insert(Refusal { requested, limit });
                return Ok(false);
            }
        }
        self.in_use = requested;
        self.last_growth = growth;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: &MemoryError) -> Result<(), LimiterError> {
        // The allocation itself failed after we counted it: give it back.
        self.in_use = self.in_use.saturating_sub(self.last_growth);
        self.last_growth = 0;
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        if maximum.is_some_and(|maximum| desired > maximum) {
            return Ok(false);
        }
        let growth = (desired as u64).saturating_sub(current as u64);
        let elements = self.table_elements.saturating_add(growth);
        if elements > MAX_TABLE_ELEMENTS as u64 {
            return Ok(false);
        }
        let bytes = growth.saturating_mul(TABLE_ELEMENT_BYTES);
        let requested = self.in_use.saturating_add(bytes);
        if let Some(limit) = self.limit {
            if requested > limit {
                self.refused.get_or_insert(Refusal { requested, limit });
                return Ok(false);
            }
        }
        self.in_use = requested;
        self.table_elements = elements;
        self.last_table_growth = growth;
        Ok(true)
    }

    fn table_grow_failed(&mut self, _error: &TableError) -> Result<(), LimiterError> {
        // As for memories: the allocation failed after we counted it.
        let growth = self.last_table_growth;
        self.table_elements = self.table_elements.saturating_sub(growth);
        self.in_use = self
            .in_use
            .saturating_sub(growth.saturating_mul(TABLE_ELEMENT_BYTES));
        self.last_table_growth = 0;
        Ok(())
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_all_memories_and_records_first_refusal() {
        let mut cap = MemoryCap::new(Some(100));
        assert_eq!(cap.memory_growing(0, 60, None).ok(), Some(true));
        assert_eq!(cap.memory_growing(0, 30, None).ok(), Some(true));
        assert_eq!(cap.memory_growing(30, 50, None).ok(), Some(false));
        assert_eq!(
            cap.refused(),
            Some(Refusal {
                requested: 110,
                limit: 100
            })
        );
        assert_eq!(cap.memory_growing(60, 200, None).ok(), Some(false));
        assert_eq!(
            cap.refused(),
            Some(Refusal {
                requested: 110,
                limit: 100
            })
        );
        assert_eq!(cap.memory_growing(30, 40, None).ok(), Some(true));
    }

    #[test]
    fn uncapped_respects_declared_maximum_only() {
        let mut cap = MemoryCap::new(None);
        assert_eq!(cap.memory_growing(0, 1 << 30, None).ok(), Some(true));
        assert_eq!(cap.memory_growing(0, 20, Some(10)).ok(), Some(false));
        assert_eq!(cap.refused(), None);
        assert_eq!(
            cap.table_growing(0, MAX_TABLE_ELEMENTS + 1, None).ok(),
            Some(false)
        );
    }

    #[test]
    fn table_elements_are_capped_across_tables() {
        let mut cap = MemoryCap::new(None);
        let half = MAX_TABLE_ELEMENTS / 2;
        assert_eq!(cap.table_growing(0, half, None).ok(), Some(true));
        assert_eq!(cap.table_growing(0, half, None).ok(), Some(true));
        // A third table, each within the per-table figure, exceeds the total.
        assert_eq!(cap.table_growing(0, 1, None).ok(), Some(false));
        assert_eq!(cap.table_growing(half, half + 1, None).ok(), Some(false));
    }

    #[test]
    fn table_elements_count_into_the_memory_cap() {
        let mut cap = MemoryCap::new(Some(1000));
        assert_eq!(cap.memory_growing(0, 800, None).ok(), Some(true));
        assert_eq!(cap.table_growing(0, 25, None).ok(), Some(true)); // 200 bytes
        assert_eq!(cap.table_growing(25, 26, None).ok(), Some(false));
        assert_eq!(
            cap.refused(),
            Some(Refusal {
                requested: 1008,
                limit: 1000
            })
        );
        assert_eq!(cap.memory_growing(800, 801, None).ok(), Some(false));
    }
}

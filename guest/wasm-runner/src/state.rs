//! What a run's wasmi `Store` carries: the WASI state and the resource cap.
//! Both are created fresh for every run and dropped with its store.

use crate::limits::MemoryCap;
use crate::wasi::ctx::WasiCtx;

/// The `T` of `Store<T>` for one run.
pub struct StoreData<'a> {
    /// State the WASI host functions read and update.
    pub wasi: WasiCtx<'a>,
    /// The limiter wasmi consults when memories and tables grow.
    pub cap: MemoryCap,
    /// Fuel of the run's budget not yet loaded into the store (the runner
    /// loads it a slice at a time); `None`: unmetered.
    pub reserve: Option<u64>,
}

//! Threads: rayon on native targets; the threaded wasm build (`+atomics`, shared memory)
//! runs tasks on its own pool of Web Workers ([`crate::wasm_pool`]); other wasm builds
//! run them on the calling thread.

/// A raw pointer that may cross threads; users guarantee disjoint access.
pub(crate) struct SendPtr<T>(pub *mut T);
// By hand: derive would ask `T: Copy`, and a pointer copies whatever it points to.
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    /// A method (not field access) so closures capture the whole wrapper, which is Sync.
    #[inline(always)]
    pub fn get(self) -> *mut T {
        self.0
    }
}

/// Threads available to kernels: rayon's current pool (so callers can confine
/// Cairn with `ThreadPool::install`); on wasm the worker pool's size, 1 without atomics.
pub fn threads() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    return rayon::current_num_threads();
    #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
    return crate::wasm_pool::threads();
    #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
    return 1;
}

/// Gets the wasm pool's workers out of `memory.atomic.wait` as a run starts, so that its
/// first split layer finds them spinning: a wake costs tens of microseconds, about what
/// binding the inputs and looking up the plan take, and the two now overlap. Natively
/// (rayon) and in builds without threads it does nothing.
pub fn wake_pool() {
    #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
    crate::wasm_pool::wake();
}

/// Runs `f` on every task, in parallel where threads exist.
pub(crate) fn for_each_task<T: Sync>(tasks: &[T], f: impl Fn(&T) + Sync + Send) {
    // One thread: run here. Handing the tasks to a one-thread pool from outside it
    // would cost a wake-up and a futex wait per kernel call (~5% of MobileNetV2).
    if tasks.len() <= 1 || threads() <= 1 {
        tasks.iter().for_each(f);
        return;
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        tasks.par_iter().for_each(f);
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
    crate::wasm_pool::run(tasks.len(), &|i| f(&tasks[i]));
    #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
    tasks.iter().for_each(f);
}

/// Work (elements) below which [`for_row_blocks`] stays on the calling thread: a fork-join
/// costs a few microseconds, and 2^15 elements of a row kernel (softmax: ~1.2 ns an element in
/// wasm) take ~40 us, so splitting them over two threads gains more than it costs.
pub const ROW_BLOCKS_MIN_ELEMENTS: usize = 1 << 15;

/// Calls `f(first_row, block)` on blocks of whole rows (`row_len` elements each) that cover
/// `out`, in parallel where threads exist and `out` holds at least
/// [`ROW_BLOCKS_MIN_ELEMENTS`]: two blocks per thread, claimed as threads finish (a thread the
/// OS pauses leaves its second block to the others). For row-wise kernels (Softmax, layer
/// normalization) whose rows are independent: results do not depend on the split.
pub fn for_row_blocks<T: Send>(out: &mut [T], row_len: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    let rows = out.len().checked_div(row_len).unwrap_or(0);
    let t = threads();
    if t <= 1 || rows < 2 || out.len() < ROW_BLOCKS_MIN_ELEMENTS || rows * row_len != out.len() {
        f(0, out);
        return;
    }
    let parts = (2 * t).min(rows);
    let blocks: Vec<(usize, usize)> = (0..parts).map(|p| (rows * p / parts, rows * (p + 1) / parts)).collect();
    let base = SendPtr(out.as_mut_ptr());
    for_each_task(&blocks, |&(r0, r1)| {
        // SAFETY: the blocks are disjoint ranges of whole rows inside `out`, which the caller
        // lent mutably for the whole call; each task makes the only slice of its range.
        let block = unsafe { std::slice::from_raw_parts_mut(base.get().add(r0 * row_len), (r1 - r0) * row_len) };
        f(r0, block);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row is visited once, in blocks of whole rows, whatever the split.
    #[test]
    fn row_blocks_cover_every_row_once() {
        for (rows, row_len) in [(1usize, 7usize), (3, 5), (1536, 128), (4096, 9), (40_000, 1)] {
            let mut out = vec![0u32; rows * row_len];
            for_row_blocks(&mut out, row_len, |r0, block| {
                assert_eq!(block.len() % row_len, 0);
                for (k, v) in block.iter_mut().enumerate() {
                    *v += (r0 * row_len + k) as u32 + 1;
                }
            });
            assert!(out.iter().enumerate().all(|(i, &v)| v == i as u32 + 1), "rows {rows} x {row_len}");
        }
        // A length that is not whole rows runs as one block.
        let mut odd = vec![0u8; 70_001];
        for_row_blocks(&mut odd, 7, |r0, block| {
            assert_eq!((r0, block.len()), (0, 70_001));
        });
    }
}

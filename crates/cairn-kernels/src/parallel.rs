//! Threads: rayon on native targets; the threaded wasm build (`+atomics`, shared memory)
//! runs tasks on its own pool of Web Workers ([`crate::wasm_pool`]); other wasm builds
//! run them on the calling thread.

/// A raw pointer that may cross threads; users guarantee disjoint access.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub *mut T);
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

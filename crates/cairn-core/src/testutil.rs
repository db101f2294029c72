//! Helpers shared by the crate's tests.

/// Runs `f` with the kernels on `n` threads (natively the kernels' threads are rayon's): the
/// thread-split tests compare one thread against several.
pub(crate) fn on_threads<R: Send>(n: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap().install(f)
}

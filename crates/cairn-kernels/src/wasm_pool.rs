//! Fork-join over Web Workers for the threaded wasm build (`+atomics`, shared memory).
//!
//! The kernels already cut their work into tasks ([`crate::parallel::for_each_task`]);
//! natively rayon runs them. In the browser the threads are Web Workers (Node: worker
//! threads) that instantiate this same module on the same shared memory and park in
//! [`worker_loop`]. A call publishes one job; the caller and the parked workers claim its
//! tasks from one counter, so the caller never waits for a worker that has not woken up
//! yet — it simply takes the task itself. See docs/adr/0019.
//!
//! Why not rayon + wasm-bindgen-rayon: that pool spawns its workers through a bundler-style
//! `new Worker(new URL(..., import.meta.url))` that Node cannot run, and a rayon call from
//! outside the pool parks the caller while the pool works; here the caller is a worker too.

use core::arch::wasm32::{memory_atomic_notify, memory_atomic_wait32};
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

/// The current job: `generation << 40 | tasks << 20 | next task`. One word, so a worker
/// that claims a task knows the claim belongs to the job it read (a CAS against a newer
/// generation fails).
static STATE: AtomicU64 = AtomicU64::new(0);
const FIELD: u64 = (1 << 20) - 1;
/// Jobs with more tasks than this run on the caller alone (no kernel makes that many).
pub(crate) const MAX_TASKS: usize = FIELD as usize;
/// The job's body, valid while its tasks are unfinished (the caller waits for all of them).
static JOB: AtomicPtr<Body<'static>> = AtomicPtr::new(std::ptr::null_mut());
/// Tasks of the current job finished; the caller waits on it.
static DONE: AtomicI32 = AtomicI32::new(0);
/// Bumped on every publish; parked workers wait on it.
static WAKE: AtomicI32 = AtomicI32::new(0);
/// Workers that have entered [`worker_loop`].
static WORKERS: AtomicUsize = AtomicUsize::new(0);
/// Set while a job runs: a second caller (a task that itself splits) runs inline.
static BUSY: AtomicU32 = AtomicU32::new(0);

/// What the pool did since the last [`take_counters`], for profiles (bench/web/profile_ops.mjs):
/// how the tasks of split jobs fell between the caller and the workers, and how often a
/// thread parked in `memory.atomic.wait` (each park costs a wake-up of tens of microseconds).
/// Relaxed counters bumped once per job or task, never inside a spin loop.
static COUNTERS: [AtomicU64; Counter::COUNT] = [const { AtomicU64::new(0) }; Counter::COUNT];

/// The pool's counters, in [`take_counters`]' order.
#[derive(Clone, Copy)]
pub enum Counter {
    /// Jobs published to the workers (calls of [`run`] that split).
    Jobs,
    /// Tasks of those jobs the calling thread ran.
    CallerTasks,
    /// Tasks of those jobs the workers ran.
    WorkerTasks,
    /// Times a worker parked between jobs (its spin window ran out).
    WorkerParks,
    /// Times the caller parked at a join, waiting for a worker's last task.
    CallerParks,
}

impl Counter {
    pub const COUNT: usize = 5;
    fn bump(self, by: u64) {
        COUNTERS[self as usize].fetch_add(by, Relaxed);
    }
}

/// The counters ([`Counter`] order) since the last call, and resets them.
pub fn take_counters() -> [u64; Counter::COUNT] {
    COUNTERS.each_ref().map(|c| c.swap(0, Relaxed))
}

type Body<'a> = &'a (dyn Fn(usize) + Sync);

/// Spins before parking, in `spin_loop` hints (no-ops in wasm: an iteration is an atomic
/// load and a compare, ~1-2 cycles, so this is ~0.1-0.2 ms): consecutive layers publish
/// jobs a few microseconds apart, and a wake from `memory.atomic.wait` costs tens of
/// microseconds. With 2^14 (~10 us) MobileNetV2 on 2 threads parked its worker ~8 times and
/// its caller ~6 times a run (bench/web/profile_ops.mjs counters); with 2^18 about once and
/// 0.3 times (docs/adr/0019 amendment).
const SPINS_BEFORE_PARK: u32 = 1 << 18;

/// Threads that run tasks: the caller plus the workers parked in [`worker_loop`].
pub fn threads() -> usize {
    1 + WORKERS.load(Relaxed)
}

/// Wakes parked workers without publishing a job: they spin for the next one (up to
/// [`SPINS_BEFORE_PARK`]). Called as a run starts ([`crate::parallel::wake_pool`]).
pub fn wake() {
    if WORKERS.load(Relaxed) == 0 {
        return;
    }
    WAKE.fetch_add(1, Release);
    // SAFETY: WAKE is a live static; notify only wakes waiters on that address.
    unsafe { memory_atomic_notify(WAKE.as_ptr(), u32::MAX) };
}

/// Runs `f(0..tasks)` on the caller and the pool's workers; returns when all are done.
pub(crate) fn run(tasks: usize, f: &(dyn Fn(usize) + Sync)) {
    if tasks <= 1 || tasks > MAX_TASKS || threads() <= 1 || BUSY.swap(1, Acquire) == 1 {
        (0..tasks).for_each(f);
        return;
    }
    // SAFETY: the body outlives every use: workers only call it after claiming a task of
    // this generation, and this function returns only when all those tasks are done.
    let body: Body<'static> = unsafe { std::mem::transmute::<Body<'_>, Body<'static>>(f) };
    let slot: *mut Body<'static> = &body as *const Body<'static> as *mut Body<'static>;
    let generation = (STATE.load(Relaxed) >> 40).wrapping_add(1) & ((1 << 24) - 1);
    DONE.store(0, Relaxed);
    JOB.store(slot, Relaxed);
    STATE.store(generation << 40 | (tasks as u64) << 20, Release);
    WAKE.fetch_add(1, Release);
    // SAFETY: WAKE is a live static; notify only wakes waiters on that address.
    unsafe { memory_atomic_notify(WAKE.as_ptr(), u32::MAX) };
    Counter::Jobs.bump(1);
    Counter::CallerTasks.bump(work(generation));
    let mut spins = 0u32;
    loop {
        let done = DONE.load(Acquire);
        if done as usize == tasks {
            break;
        }
        spins += 1;
        if spins < SPINS_BEFORE_PARK {
            std::hint::spin_loop();
        } else {
            if spins == SPINS_BEFORE_PARK {
                Counter::CallerParks.bump(1);
            }
            // A worker was descheduled mid-task: sleep until the last task's notify
            // (1 ms timeout as a guard against a lost wake-up).
            // SAFETY: DONE is a live static.
            unsafe { memory_atomic_wait32(DONE.as_ptr(), done, 1_000_000) };
        }
    }
    JOB.store(std::ptr::null_mut(), Relaxed);
    BUSY.store(0, Release);
}

/// Claims and runs tasks of job `generation` until none are left or a newer job is out;
/// returns how many it ran.
fn work(generation: u64) -> u64 {
    let mut ran = 0;
    loop {
        let state = STATE.load(Acquire);
        let (tasks, next) = ((state >> 20) & FIELD, state & FIELD);
        if state >> 40 != generation || next >= tasks {
            return ran;
        }
        if STATE.compare_exchange_weak(state, state + 1, AcqRel, Relaxed).is_err() {
            continue;
        }
        // SAFETY: a successful claim means this generation's task `next` is unfinished,
        // so its caller is still waiting and JOB points at its live body.
        let body = unsafe { *JOB.load(Acquire) };
        body(next as usize);
        ran += 1;
        if DONE.fetch_add(1, Release) as u64 + 1 == tasks {
            // SAFETY: DONE is a live static.
            unsafe { memory_atomic_notify(DONE.as_ptr(), 1) };
        }
    }
}

/// The body of a pool worker: parks until a job is published, helps with it, parks
/// again. Never returns; the worker ends when its Web Worker is terminated.
pub fn worker_loop() -> ! {
    WORKERS.fetch_add(1, Release);
    loop {
        let wake = WAKE.load(Acquire);
        Counter::WorkerTasks.bump(work(STATE.load(Acquire) >> 40));
        let mut spins = 0u32;
        while WAKE.load(Acquire) == wake {
            spins += 1;
            if spins < SPINS_BEFORE_PARK {
                std::hint::spin_loop();
            } else {
                if spins == SPINS_BEFORE_PARK {
                    Counter::WorkerParks.bump(1);
                }
                // SAFETY: WAKE is a live static; returns at once if a job was published since.
                unsafe { memory_atomic_wait32(WAKE.as_ptr(), wake, -1) };
            }
        }
    }
}

/// Runs `jobs` jobs of one task per thread, each task `spins` iterations of dependent
/// arithmetic; `split: false` runs the same tasks on the caller alone. Timed from
/// JavaScript (bench/web/fork_join.mjs), the difference is what splitting a layer of that
/// size gains or loses (docs/adr/0019).
pub fn spin_jobs(jobs: usize, spins: u32, split: bool) {
    let tasks = threads();
    let task = |i: usize| {
        let mut x = i as u32;
        for _ in 0..spins {
            x = std::hint::black_box(x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223));
        }
        std::hint::black_box(x);
    };
    for _ in 0..jobs {
        if split {
            run(tasks, &task);
        } else {
            (0..tasks).for_each(task);
        }
    }
}

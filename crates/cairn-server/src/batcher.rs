//! Dynamic batching: requests for one model wait in a bounded queue; a batcher task
//! stacks compatible ones along the first dim (up to `max_batch` rows, waiting at most
//! `max_wait` after the oldest arrived) and runs the stack on the compute pool, off
//! the async runtime. A full queue refuses at once (503 + Retry-After) rather than
//! letting latency grow without bound.

use crate::metrics::Metrics;
use cairn_core::{Session, Tensor, TensorData};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Semaphore};

#[derive(Clone, Debug)]
pub struct BatchConfig {
    /// Most rows stacked into one run (1 turns batching off).
    pub max_batch: usize,
    /// Longest a request waits for company once a compute slot is free.
    pub max_wait: Duration,
    /// Requests (and explanations) admitted but not yet computing, per model.
    pub queue_capacity: usize,
    /// Measure each model at load (idle) and lower `max_batch` to the size that runs the
    /// most rows per second then (see `calibrate`; off by default).
    pub calibrate: bool,
}

impl BatchConfig {
    /// The same queue without stacking (models whose inputs have no batch dim).
    pub fn unbatched(&self) -> BatchConfig {
        BatchConfig { max_batch: 1, max_wait: Duration::ZERO, ..self.clone() }
    }
}

/// Compute slots shared by every model: at most this many batches run at once, each on a
/// blocking thread (the kernels themselves use rayon's pool).
#[derive(Clone)]
pub struct ComputePool {
    slots: Arc<Semaphore>,
    pub metrics: Arc<Metrics>,
}

impl ComputePool {
    pub fn new(workers: usize, metrics: Arc<Metrics>) -> ComputePool {
        ComputePool { slots: Arc::new(Semaphore::new(workers.max(1))), metrics }
    }
}

/// What one request gets back: its rows of every output, and how its batch went.
pub struct Answer {
    pub outputs: Vec<(String, Tensor)>,
    /// Rows in the batch this request ran in (its own included).
    pub batch_rows: usize,
    pub queue_ms: f64,
    pub compute_ms: f64,
}

#[derive(Debug)]
pub enum SubmitError {
    /// The queue is full: answer 503.
    Busy,
    /// The model failed on valid inputs (an engine error): answer 500.
    Failed(String),
}

struct Job {
    tensors: Vec<Tensor>,
    rows: usize,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Answer, String>>,
}

pub struct Batcher {
    tx: mpsc::UnboundedSender<Job>,
    /// Admitted and not yet computing; bounded by `queue_capacity`.
    waiting: Arc<AtomicUsize>,
    config: BatchConfig,
    pool: ComputePool,
    session: Arc<Session>,
}

impl Batcher {
    /// Starts the model's batcher task on the current tokio runtime.
    pub fn start(model: &str, session: Arc<Session>, config: BatchConfig, pool: ComputePool) -> Batcher {
        let (tx, rx) = mpsc::unbounded_channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        tokio::spawn(batch_loop(model.to_string(), session.clone(), config.clone(), pool.clone(), waiting.clone(), rx));
        Batcher { tx, waiting, config, pool, session }
    }

    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    /// Requests waiting for a compute slot (the queue depth gauge).
    pub fn depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    fn admit(&self) -> Result<Admission, SubmitError> {
        let before = self.waiting.fetch_add(1, Ordering::AcqRel);
        if before >= self.config.queue_capacity {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(SubmitError::Busy);
        }
        Ok(Admission { waiting: self.waiting.clone(), released: false })
    }

    /// Queues one request's inputs (already checked against the model) and waits for its rows.
    pub async fn infer(&self, tensors: Vec<Tensor>, rows: usize) -> Result<Answer, SubmitError> {
        let admission = self.admit()?;
        let (reply, answer) = oneshot::channel();
        // The batcher releases the admission when it takes the job; forget our guard.
        admission.hand_over();
        if self.tx.send(Job { tensors, rows, enqueued: Instant::now(), reply }).is_err() {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(SubmitError::Failed("the model's batcher has stopped (the server is shutting down)".into()));
        }
        match answer.await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(SubmitError::Failed(e)),
            Err(_) => Err(SubmitError::Failed("the compute thread ended without an answer".into())),
        }
    }

    /// Runs `work` alone on a compute slot (one step of an explanation). A new piece of
    /// work is admitted through the same bounded queue as inference (`admit`); the later
    /// steps of admitted work only wait for a slot, so an explanation is never refused
    /// halfway, and inference batches run between its steps.
    pub async fn exclusive<T: Send + 'static>(
        &self,
        admit: bool,
        work: impl FnOnce(&Session, usize) -> Result<T, String> + Send + 'static,
    ) -> Result<T, SubmitError> {
        let admission = if admit { Some(self.admit()?) } else { None };
        let slot = self.pool.slots.clone().acquire_owned().await.map_err(|_| SubmitError::Failed("the compute pool is closed".into()))?;
        drop(admission);
        let session = self.session.clone();
        let max_batch = self.config.max_batch.max(1);
        let done = tokio::task::spawn_blocking(move || {
            let r = work(&session, max_batch);
            drop(slot);
            r
        })
        .await;
        match done {
            Ok(r) => r.map_err(SubmitError::Failed),
            Err(e) => Err(SubmitError::Failed(format!("the compute thread failed: {e}"))),
        }
    }
}

/// Holds a queue place; gives it back on drop unless handed over to the batcher.
struct Admission {
    waiting: Arc<AtomicUsize>,
    released: bool,
}

impl Admission {
    fn hand_over(mut self) {
        self.released = true;
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if !self.released {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

async fn batch_loop(
    model: String,
    session: Arc<Session>,
    config: BatchConfig,
    pool: ComputePool,
    waiting: Arc<AtomicUsize>,
    mut rx: mpsc::UnboundedReceiver<Job>,
) {
    let mut carry: Option<Job> = None;
    loop {
        let first = match carry.take() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => return,
            },
        };
        // Wait for a slot first: while every slot is busy, requests pile up in the
        // queue and the next batch is as full as it can be.
        let Ok(slot) = pool.slots.clone().acquire_owned().await else { return };
        let deadline = tokio::time::Instant::from_std(first.enqueued + config.max_wait);
        let mut rows = first.rows;
        let mut jobs = vec![first];
        while rows < config.max_batch {
            let next = match rx.try_recv() {
                Ok(j) => Some(j),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) => tokio::time::timeout_at(deadline, rx.recv()).await.ok().flatten(),
            };
            let Some(job) = next else { break };
            if rows + job.rows > config.max_batch || !stackable(&jobs[0], &job) {
                carry = Some(job);
                break;
            }
            rows += job.rows;
            jobs.push(job);
        }
        waiting.fetch_sub(jobs.len(), Ordering::AcqRel);
        let session = session.clone();
        let metrics = pool.metrics.clone();
        let model = model.clone();
        tokio::task::spawn_blocking(move || {
            run_batch(&session, jobs, &metrics, &model);
            drop(slot);
        });
    }
}

/// Same dtype and the same dims past the first, input by input.
fn stackable(a: &Job, b: &Job) -> bool {
    a.tensors.len() == b.tensors.len()
        && a.tensors.iter().zip(&b.tensors).all(|(x, y)| x.dtype() == y.dtype() && x.shape()[1..] == y.shape()[1..])
}

fn run_batch(session: &Session, jobs: Vec<Job>, metrics: &Metrics, model: &str) {
    let started = Instant::now();
    let rows: usize = jobs.iter().map(|j| j.rows).sum();
    let result = if jobs.len() == 1 { session_run(session, &jobs[0].tensors).map(|o| vec![o]) } else { run_stacked(session, &jobs, rows) };
    // A model whose outputs do not keep the batch rows cannot be split: run each alone.
    let result = match result {
        Ok(r) => Ok(r),
        Err(e) if jobs.len() > 1 => jobs.iter().map(|j| session_run(session, &j.tensors)).collect::<Result<Vec<_>, _>>().map_err(|_| e),
        Err(e) => Err(e),
    };
    let compute_ms = started.elapsed().as_secs_f64() * 1e3;
    metrics.record_batch(model, rows, compute_ms / 1e3);
    match result {
        Ok(per_job) => {
            for (job, outputs) in jobs.into_iter().zip(per_job) {
                let queue_ms = started.duration_since(job.enqueued).as_secs_f64() * 1e3;
                let _ = job.reply.send(Ok(Answer { outputs, batch_rows: rows, queue_ms, compute_ms }));
            }
        }
        Err(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

pub fn session_run(session: &Session, tensors: &[Tensor]) -> Result<Vec<(String, Tensor)>, String> {
    let inputs = session.graph().runtime_inputs().map(|i| i.name.clone()).zip(tensors.iter().cloned()).collect();
    session.run(inputs).map_err(|e| e.to_string())
}

/// Stacks every job's inputs along dim 0, runs once, and cuts each output back into rows.
fn run_stacked(session: &Session, jobs: &[Job], rows: usize) -> Result<Vec<Vec<(String, Tensor)>>, String> {
    let stacked: Vec<Tensor> =
        (0..jobs[0].tensors.len()).map(|i| stack(jobs.iter().map(|j| &j.tensors[i]), rows)).collect::<Result<_, _>>()?;
    let outputs = session_run(session, &stacked)?;
    let mut per_job: Vec<Vec<(String, Tensor)>> = jobs.iter().map(|_| Vec::with_capacity(outputs.len())).collect();
    for (name, t) in outputs {
        if t.rank() == 0 || t.shape()[0] != rows {
            return Err(format!("output '{name}' has shape {:?}, which does not keep the {rows} batch rows", t.shape()));
        }
        let row_bytes = t.byte_len() / rows;
        let mut offset = 0;
        for (job, out) in jobs.iter().zip(per_job.iter_mut()) {
            let mut shape = t.shape().to_vec();
            shape[0] = job.rows;
            out.push((name.clone(), from_bytes(&t, shape, &t.bytes()[offset..offset + job.rows * row_bytes])?));
            offset += job.rows * row_bytes;
        }
    }
    Ok(per_job)
}

pub fn stack<'a>(parts: impl Iterator<Item = &'a Tensor>, rows: usize) -> Result<Tensor, String> {
    let parts: Vec<&Tensor> = parts.collect();
    let mut shape = parts[0].shape().to_vec();
    shape[0] = rows;
    let mut bytes = Vec::with_capacity(parts.iter().map(|t| t.byte_len()).sum());
    for t in &parts {
        bytes.extend_from_slice(t.bytes());
    }
    from_bytes(parts[0], shape, &bytes)
}

/// A tensor of `like`'s dtype with `shape`, holding `bytes`.
pub fn from_bytes(like: &Tensor, shape: Vec<usize>, bytes: &[u8]) -> Result<Tensor, String> {
    let numel = shape.iter().product();
    let mut t = Tensor::new(shape, TensorData::zeros(like.dtype(), numel)).map_err(|e| e.to_string())?;
    t.bytes_mut().copy_from_slice(bytes);
    Ok(t)
}

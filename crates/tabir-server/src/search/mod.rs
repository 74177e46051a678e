//! 1:N searches as jobs: a probe is searched against a domain's gallery in shards of bounded
//! size, each shard yielding one encrypted any-match bit, and the shard bits are combined into
//! the job's result (one more sign bootstrap), which is escrowed like a verification's.
//!
//! The job and its shards live in the store (they survive a restart); the work itself travels
//! as [`Task`]s through a queue: in-process by default (`local`), or NATS JetStream (`nats`)
//! when workers on several machines share the load. A task is idempotent: a shard whose bit is
//! already recorded, or a job that already ended, is skipped, so redelivery is harmless.
//!
//! Searches run on their own thread pool at the lowest CPU priority, apart from the FHE pool
//! that answers 1:1 verifications: a long search never makes a counter wait.

mod local;
mod nats;

pub use nats::NatsConfig;

use crate::error::ApiError;
use crate::state::AppState;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tabir_crypto::ServerKeys;
use tabir_crypto::{Probe, ShardBit, Template, Threshold};
use tabir_proto::audit::{Action, AuditEvent, Outcome};
use tabir_proto::routes::Role;
use tabir_proto::ErrorCode;
use tabir_store::{
    Change, DomainRecord, JobRecord, JobState, ShardOutcome, ShardRange, StoreError,
};

/// How searches are run by this process.
#[derive(Clone, Debug)]
pub struct SearchConfig {
    /// Threads evaluating shards in this process (default: the machine's cores); 0 runs no
    /// shard here (a replica that only answers requests, with workers elsewhere on NATS).
    pub workers: usize,
    /// Templates per shard: bounds a worker's memory (about 30 KiB a template while its shard
    /// runs) and the work lost when a worker dies.
    pub shard_templates: usize,
    /// Attempts per task before the job fails with `shard_failed`.
    pub max_attempts: u32,
    /// Searches one device may have running at once (0: no limit); past it, 429.
    pub jobs_per_device: usize,
    /// Distribute tasks over NATS JetStream instead of in-process.
    pub nats: Option<NatsConfig>,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            shard_templates: tabir_crypto::DEFAULT_SHARD_TEMPLATES,
            max_attempts: 3,
            jobs_per_device: 2,
            nats: None,
        }
    }
}

/// One unit of search work. A task only names the job (and the shard): everything else (the
/// domain, the shard's range, the probe, the threshold) is read from the store, so a task
/// forged or altered on the queue can at worst repeat work that is due anyway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case", deny_unknown_fields)]
pub enum Task {
    /// Evaluate one shard and record its bit.
    Shard { job_id: String, shard: u32 },
    /// Every shard is done: combine the bits and escrow the result.
    Combine { job_id: String },
}

impl Task {
    pub fn job_id(&self) -> &str {
        match self {
            Task::Shard { job_id, .. } | Task::Combine { job_id, .. } => job_id,
        }
    }

    fn shard(job: &JobRecord, range: &ShardRange) -> Self {
        Task::Shard {
            job_id: job.job_id.clone(),
            shard: range.shard,
        }
    }

    fn combine(job: &JobRecord) -> Self {
        Task::Combine {
            job_id: job.job_id.clone(),
        }
    }
}

/// Why a task did not complete. Every failure is retried up to the attempt limit; the job
/// then fails with `shard_failed` (nothing is decided, nothing is escrowed).
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The server could not do its part (keys not prepared, a commit refused): its code.
    #[error("the server answered {0}")]
    Server(ErrorCode),
    #[error("a stored ciphertext does not decode: {0}")]
    Crypto(#[from] tabir_crypto::CryptoError),
    #[error("the search pool stopped")]
    PoolGone,
    #[error("every delivery of the task ended without an answer (its workers died)")]
    DeliveriesExhausted,
    #[error("the evaluation panicked")]
    Panicked,
}

impl TaskError {
    /// A passing condition (a full FHE pool while the keys are prepared, the database
    /// restarting): waited out without spending one of the task's attempts.
    fn is_transient(&self) -> bool {
        match self {
            TaskError::Server(code) => matches!(
                code,
                ErrorCode::Overloaded | ErrorCode::StorageUnavailable | ErrorCode::Unavailable
            ),
            TaskError::Store(StoreError::Unavailable(_)) => true,
            _ => false,
        }
    }
}

/// [`run_task`], waiting out transient failures (up to ten minutes, backing off to 30 s
/// between tries) so that a busy or restarting server does not fail a search.
pub async fn run_task_patiently(
    state: &Arc<AppState>,
    task: &Task,
) -> Result<Option<Task>, TaskError> {
    let started = Instant::now();
    let mut pause = std::time::Duration::from_millis(500);
    loop {
        match run_task(state, task).await {
            Err(error)
                if error.is_transient()
                    && started.elapsed() < std::time::Duration::from_secs(600) =>
            {
                tracing::info!(job = %task.job_id(), %error, "search task waits");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(30));
            }
            outcome => return outcome,
        }
    }
}

/// Where tasks go.
enum Queue {
    Local(local::LocalQueue),
    Nats(Arc<nats::NatsQueue>),
}

/// The search side of a server process: its thread pool and its queue.
pub struct SearchService {
    config: SearchConfig,
    pool: Option<rayon::ThreadPool>,
    queue: OnceLock<Queue>,
}

impl SearchService {
    pub fn new(config: SearchConfig) -> Self {
        let pool = (config.workers > 0)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(config.workers)
                    .thread_name(|i| format!("tabir-search-{i}"))
                    .start_handler(|_| lower_this_threads_priority())
                    .build()
                    .map_err(|e| tracing::error!(error = %e, "cannot start search threads"))
                    .ok()
            })
            .flatten();
        Self {
            config,
            pool,
            queue: OnceLock::new(),
        }
    }

    pub fn config(&self) -> &SearchConfig {
        &self.config
    }

    /// Hand tasks to the queue (in order). Errors only when the queue cannot take them (NATS
    /// unreachable): the caller answers 503 and the job is resumed later.
    pub async fn enqueue(&self, tasks: Vec<Task>) -> Result<(), ApiError> {
        match self.queue.get() {
            Some(Queue::Local(queue)) => {
                queue.push(tasks);
                Ok(())
            }
            Some(Queue::Nats(queue)) => queue.publish(tasks).await,
            None => Err(ApiError::new(ErrorCode::Unavailable)),
        }
    }

    /// Run `work` on the search pool (lowest priority), off the async runtime.
    async fn compute<T, F>(&self, work: F) -> Result<T, TaskError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let Some(pool) = &self.pool else {
            return Err(TaskError::PoolGone);
        };
        let (sender, receiver) = tokio::sync::oneshot::channel();
        pool.spawn(move || {
            // A panic must not take the process down (rayon aborts on a panicking spawn).
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ = sender.send(result);
        });
        match receiver.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(TaskError::Panicked),
            Err(_) => Err(TaskError::PoolGone),
        }
    }
}

/// Search threads yield the CPU to everything else (1:1 verifications first): the lowest
/// priority of the normal scheduler, as a batch job.
fn lower_this_threads_priority() {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadSchedulePolicy,
    };
    use thread_priority::ThreadPriority;
    if let Err(error) = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
    ) {
        tracing::warn!(?error, "cannot lower the search threads' priority");
    }
}

/// Start the queue and this process's workers, and resume jobs left unfinished (in-process
/// queue: its tasks were in memory; on NATS they are durable and need no resuming).
pub async fn start(state: &Arc<AppState>) -> Result<(), crate::StartError> {
    let config = state.search.config.clone();
    let queue = match &config.nats {
        None => Queue::Local(local::LocalQueue::start(state)),
        Some(nats) => Queue::Nats(nats::NatsQueue::start(state, nats).await?),
    };
    let is_local = matches!(queue, Queue::Local(_));
    if state.search.queue.set(queue).is_err() {
        return Err(crate::StartError::Startup(
            "the search queue was started twice".into(),
        ));
    }
    if is_local {
        let jobs = state
            .with_store(|store| store.running_jobs())
            .await
            .map_err(|e| crate::StartError::Startup(format!("resuming searches: {}", e.code)))?;
        for job in jobs {
            let tasks = tasks_to_resume(state, &job)
                .await
                .map_err(|e| crate::StartError::Startup(format!("resuming a search: {e}")))?;
            tracing::info!(job = %job.job_id, tasks = tasks.len(), "search resumed");
            state.search.enqueue(tasks).await.map_err(|e| {
                crate::StartError::Startup(format!("resuming a search: {}", e.code))
            })?;
        }
    }
    Ok(())
}

async fn tasks_to_resume(state: &Arc<AppState>, job: &JobRecord) -> Result<Vec<Task>, TaskError> {
    let store = Arc::clone(&state.store);
    let job_id = job.job_id.clone();
    let pending = tokio::task::spawn_blocking(move || store.pending_shards(&job_id))
        .await
        .map_err(|_| TaskError::PoolGone)??;
    Ok(if pending.is_empty() {
        vec![Task::combine(job)]
    } else {
        pending
            .iter()
            .map(|range| Task::shard(job, range))
            .collect()
    })
}

/// A new job's first tasks: its shards, or at once the combination when the gallery is empty.
pub fn first_tasks(job: &JobRecord, shards: &[ShardRange]) -> Vec<Task> {
    if shards.is_empty() {
        vec![Task::combine(job)]
    } else {
        shards.iter().map(|range| Task::shard(job, range)).collect()
    }
}

async fn blocking<T, F>(state: &Arc<AppState>, call: F) -> Result<T, TaskError>
where
    T: Send + 'static,
    F: FnOnce(&dyn tabir_store::Store) -> Result<T, StoreError> + Send + 'static,
{
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || call(state.store.as_ref()))
        .await
        .map_err(|_| TaskError::PoolGone)?
        .map_err(TaskError::from)
}

/// Carry out one task. Returns the follow-up task (the combination, after the last shard).
pub async fn run_task(state: &Arc<AppState>, task: &Task) -> Result<Option<Task>, TaskError> {
    match task {
        Task::Shard { job_id, shard } => run_shard(state, job_id, *shard).await,
        Task::Combine { job_id } => combine(state, job_id).await.map(|()| None),
    }
}

/// A domain's prepared keys, for a worker.
async fn keys_for(state: &Arc<AppState>, domain: &str) -> Result<Arc<ServerKeys>, TaskError> {
    state
        .domains
        .get(state, domain)
        .await
        .map_err(|e| TaskError::Server(e.code))
}

/// The threshold searches of a domain use: its 1:N one, or its 1:1 one for domains
/// registered before 1:N had its own.
fn search_threshold(record: &DomainRecord) -> Threshold {
    let (cosine, score) = record
        .identify_threshold
        .unwrap_or((record.threshold_cosine, record.threshold_score));
    Threshold { cosine, score }
}

/// Evaluate one shard and record its bit. The task only points at the shard: the domain and
/// the range are read from the store, so whoever can publish on the queue cannot narrow a
/// search or redirect it.
async fn run_shard(
    state: &Arc<AppState>,
    job_id: &str,
    shard: u32,
) -> Result<Option<Task>, TaskError> {
    let lookup = job_id.to_owned();
    let Some(job) = blocking(state, move |store| store.job(&lookup)).await? else {
        return Ok(None);
    };
    let lookup = job_id.to_owned();
    let pending = blocking(state, move |store| store.pending_shards(&lookup)).await?;
    let Some(range) = pending.into_iter().find(|range| range.shard == shard) else {
        // Done already (a redelivery), or the job ended: nothing to evaluate, but a
        // redelivered last shard still queues the combination (harmless if done).
        return Ok(
            (job.state == JobState::Running && job.shards_done == job.shards_total)
                .then(|| Task::combine(&job)),
        );
    };
    let lookup = job_id.to_owned();
    let Some(probe) = blocking(state, move |store| store.job_probe(&lookup)).await? else {
        // The job ended (cancelled, failed, done): nothing to do.
        return Ok(None);
    };
    let keys = keys_for(state, &job.domain).await?;
    let lookup = job.domain.clone();
    let record = blocking(state, move |store| store.domain_info(&lookup))
        .await?
        .ok_or_else(|| TaskError::Store(StoreError::UnknownDomain(job.domain.clone())))?;
    let threshold = search_threshold(&record);

    let started = Instant::now();
    let (store, domain) = (Arc::clone(&state.store), job.domain.clone());
    // The shard's templates are read, decoded and dropped on the search thread itself: their
    // memory comes and goes on the pool's few threads, so a worker's peak memory is one
    // shard's, whatever the gallery and however many shards it ran.
    let bit = state
        .search
        .compute(move || -> Result<Vec<u8>, TaskError> {
            let stored =
                store.templates_in_range(&domain, range.first_position, range.last_position)?;
            let (config, fingerprint) = (*keys.config(), keys.fingerprint());
            let probe = Probe::from_bytes(&probe, &config, fingerprint)?;
            let templates = stored
                .iter()
                .map(|blob| Template::from_bytes(blob, &config, fingerprint))
                .collect::<Result<Vec<_>, _>>()?;
            drop(stored);
            let search = keys.prepare_search(&probe, &threshold)?;
            Ok(keys.search_shard(&search, &templates)?.to_bytes())
        })
        .await??;
    state.metrics.fhe_job("identify_shard", started.elapsed());

    let (lookup, now) = (job_id.to_owned(), crate::time::rfc3339_now());
    let outcome = blocking(state, move |store| {
        store.finish_shard(&lookup, shard, &bit, &now)
    })
    .await?;
    // The last shard queues the combination. A redelivered last shard (its worker died after
    // recording the bit) queues it again: combining twice is harmless.
    Ok(match outcome {
        ShardOutcome::Recorded { done, total } | ShardOutcome::AlreadyDone { done, total }
            if done == total =>
        {
            Some(Task::combine(&job))
        }
        _ => None,
    })
}

/// Every shard is done: combine their bits into the search's and escrow it with the job's
/// Identify audit entry (once: a second combination finds the job ended).
async fn combine(state: &Arc<AppState>, job_id: &str) -> Result<(), TaskError> {
    let lookup = job_id.to_owned();
    let Some(job) = blocking(state, move |store| store.job(&lookup)).await? else {
        return Ok(());
    };
    let lookup = job_id.to_owned();
    let Some(bits) = blocking(state, move |store| store.shard_bits(&lookup)).await? else {
        // Not every shard is done (a duplicate), or the job ended.
        return Ok(());
    };
    let keys = keys_for(state, &job.domain).await?;
    let mut event = job_event(&job, Outcome::Done);
    event.key_fingerprint = Some(keys.fingerprint().to_hex());
    let result = state
        .search
        .compute(move || -> Result<Vec<u8>, TaskError> {
            let (config, fingerprint) = (*keys.config(), keys.fingerprint());
            let shards = bits
                .iter()
                .map(|blob| ShardBit::from_bytes(blob, &config, fingerprint))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(keys.combine_shards(&shards)?.to_bytes())
        })
        .await??;
    let change = Change::FinishJob {
        job_id: job_id.to_owned(),
        result,
    };
    match state.commit(change, event).await {
        Ok(entry) => {
            tracing::info!(job = %job_id, audit_seq = entry.seq, "search done");
            Ok(())
        }
        // Another worker finished it first.
        Err(error) if error.code == ErrorCode::JobEnded => Ok(()),
        Err(error) => Err(TaskError::Server(error.code)),
    }
}

/// Give up on a job whose task failed on its last attempt: it fails with `shard_failed`, and
/// the log says so (an identification that decided nothing).
pub async fn fail_job(state: &Arc<AppState>, job_id: &str, error: &TaskError) {
    tracing::error!(job = %job_id, %error, "search task failed on its last attempt");
    let lookup = job_id.to_owned();
    let job = match blocking(state, move |store| store.job(&lookup)).await {
        Ok(Some(job)) if job.state == JobState::Running => job,
        _ => return,
    };
    let event = job_event(
        &job,
        Outcome::Refused(ErrorCode::ShardFailed.name().to_owned()),
    );
    let change = Change::FailJob {
        job_id: job_id.to_owned(),
        error: ErrorCode::ShardFailed.name().to_owned(),
    };
    if let Err(error) = state.commit(change, event).await {
        if error.code != ErrorCode::JobEnded {
            tracing::error!(job = %job_id, code = %error.code, "could not record a failed search");
        }
    }
}

/// The audit event of a job's end, in the name of the device that asked.
fn job_event(job: &JobRecord, outcome: Outcome) -> AuditEvent {
    AuditEvent {
        time: crate::time::rfc3339_now(),
        actor: job.key_id.clone(),
        role: Some(Role::Device),
        domain: Some(job.domain.clone()),
        key_fingerprint: None,
        action: Action::Identify,
        subject: None,
        outcome,
        refers_to: None,
        reported: None,
    }
}

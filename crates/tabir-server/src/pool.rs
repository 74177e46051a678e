//! The bounded pool that runs encrypted matching off the async runtime.
//!
//! FHE work is CPU-bound (tens of milliseconds per verification, more per identification), so
//! it runs on its own threads. Admission is bounded: at most `workers + queue` jobs are running
//! or waiting; past that the caller gets 429 with Retry-After at once, instead of a queue that
//! grows without bound and answers everyone late.

use crate::error::ApiError;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tabir_proto::ErrorCode;
use tokio::sync::{oneshot, Semaphore};

pub struct FhePool {
    threads: Option<rayon::ThreadPool>,
    admission: Arc<Semaphore>,
    capacity: usize,
    retry_after_secs: u64,
    rejected: AtomicU64,
}

impl FhePool {
    pub fn new(workers: usize, queue: usize, retry_after_secs: u64) -> Self {
        let workers = workers.max(1);
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("tabir-fhe-{i}"))
            .build()
            .map_err(|e| tracing::error!(error = %e, "cannot start FHE threads"))
            .ok();
        let capacity = workers + queue;
        Self {
            threads,
            admission: Arc::new(Semaphore::new(capacity)),
            capacity,
            retry_after_secs,
            rejected: AtomicU64::new(0),
        }
    }

    /// Run `job` on the pool, or refuse at once with 429 when the pool is full.
    pub async fn run<T, F>(&self, job: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.admit()?.run(job).await
    }

    /// A place in the pool, or 429 at once when it is full: taken before work that should
    /// not happen for a request the pool would turn away (counting a quota).
    pub fn admit(&self) -> Result<Admission<'_>, ApiError> {
        match Arc::clone(&self.admission).try_acquire_owned() {
            Ok(permit) => Ok(Admission { pool: self, permit }),
            Err(_) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                Err(ApiError {
                    code: ErrorCode::Overloaded,
                    retry_after: Some(self.retry_after_secs),
                })
            }
        }
    }

    /// Jobs running or waiting now.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.admission.available_permits()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

/// An admitted job's place in the pool.
pub struct Admission<'a> {
    pool: &'a FhePool,
    permit: tokio::sync::OwnedSemaphorePermit,
}

impl Admission<'_> {
    /// Run `job` on the pool's threads.
    pub async fn run<T, F>(self, job: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = self.permit;
        let threads = self
            .pool
            .threads
            .as_ref()
            .ok_or(ApiError::new(ErrorCode::Unavailable))?;
        let (sender, receiver) = oneshot::channel();
        threads.spawn(move || {
            // A panic must not take the pool thread (or, under rayon, the process) down.
            let result = std::panic::catch_unwind(AssertUnwindSafe(job));
            drop(permit);
            let _ = sender.send(result);
        });
        match receiver.await {
            Ok(Ok(value)) => Ok(value),
            _ => {
                tracing::error!("an FHE job failed");
                Err(ErrorCode::Internal.into())
            }
        }
    }
}

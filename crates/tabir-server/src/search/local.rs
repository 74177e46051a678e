//! The in-process queue (the default, no extra service): tasks wait in memory and one worker
//! loop runs them in order, each shard spread over the search pool's threads. Tasks lost with
//! the process are rebuilt from the store at the next start (see [`super::start`]).

use super::{fail_job, run_task_patiently, Task};
use crate::state::AppState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub struct LocalQueue {
    sender: mpsc::UnboundedSender<Task>,
}

impl LocalQueue {
    /// The queue and its worker loop (none when this process runs no search threads: tasks
    /// then wait until a process with workers resumes them).
    pub fn start(state: &Arc<AppState>) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        if state.search.config().workers > 0 {
            tokio::spawn(work(Arc::clone(state), receiver));
        } else {
            tracing::warn!("no search workers in this process and no NATS: searches wait");
        }
        Self { sender }
    }

    pub fn push(&self, tasks: Vec<Task>) {
        for task in tasks {
            // The receiver lives as long as the runtime; a send fails only at shutdown, when
            // the job is resumed from the store at the next start anyway.
            let _ = self.sender.send(task);
        }
    }
}

async fn work(state: Arc<AppState>, mut tasks: mpsc::UnboundedReceiver<Task>) {
    let max_attempts = state.search.config().max_attempts.max(1);
    while let Some(task) = tasks.recv().await {
        let mut attempt = 1;
        loop {
            match run_task_patiently(&state, &task).await {
                Ok(follow_up) => {
                    if let Some(next) = follow_up {
                        // Handled next: the combination does not wait behind other jobs.
                        if let Err(error) = Box::pin(run_follow_up(&state, next)).await {
                            tracing::warn!(%error, "combining a search failed on its last attempt; the job failed");
                        }
                    }
                    break;
                }
                Err(error) if attempt < max_attempts => {
                    tracing::warn!(job = %task.job_id(), attempt, %error, "search task failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(error) => {
                    fail_job(&state, task.job_id(), &error).await;
                    break;
                }
            }
        }
    }
}

/// The combination after a job's last shard, with the same attempts as any task.
async fn run_follow_up(state: &Arc<AppState>, task: Task) -> Result<(), super::TaskError> {
    let max_attempts = state.search.config().max_attempts.max(1);
    let mut attempt = 1;
    loop {
        match run_task_patiently(state, &task).await {
            Ok(_) => return Ok(()),
            Err(error) if attempt < max_attempts => {
                tracing::warn!(job = %task.job_id(), attempt, %error, "combining failed; retrying");
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(error) => {
                fail_job(state, task.job_id(), &error).await;
                return Err(error);
            }
        }
    }
}

//! Shard tasks on NATS JetStream, for searches spread over several machines: a work-queue
//! stream (each task delivered to one worker), a durable pull consumer shared by every
//! replica's workers, explicit acknowledgements with progress while a shard runs, redelivery
//! when a worker dies (after `ack_wait`), and a delivery limit: a task that fails on its last
//! delivery, or whose worker dies on it (JetStream's max-deliveries advisory), fails its job
//! with `shard_failed` instead of looping.

use super::{fail_job, run_task_patiently, Task, TaskError};
use crate::error::ApiError;
use crate::state::AppState;
use async_nats::jetstream::{self, consumer, stream, AckKind};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tabir_proto::ErrorCode;

/// Where and how tasks are queued.
#[derive(Clone, Debug)]
pub struct NatsConfig {
    /// `nats://host:4222` (every replica and worker uses the same server or cluster).
    pub url: String,
    /// JetStream stream name; the consumer and subject derive from it. Replicas of one
    /// deployment share it; separate deployments on one NATS use separate names.
    pub stream: String,
    /// How long a delivered task may go without an acknowledgement (or a progress signal,
    /// sent every third of it while a shard runs) before it is redelivered elsewhere.
    pub ack_wait: Duration,
    /// Deliveries of one task before its job fails.
    pub max_deliver: i64,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            stream: "TABIR_SEARCH".into(),
            ack_wait: Duration::from_secs(60),
            max_deliver: 3,
        }
    }
}

impl NatsConfig {
    fn subject(&self) -> String {
        format!("tabir.search.{}", self.stream)
    }

    fn consumer(&self) -> String {
        format!("{}_WORKERS", self.stream)
    }
}

pub struct NatsQueue {
    jetstream: jetstream::Context,
    subject: String,
}

fn startup(what: &str, error: impl std::fmt::Display) -> crate::StartError {
    crate::StartError::Startup(format!("NATS JetStream, {what}: {error}"))
}

impl NatsQueue {
    /// Connect, create the stream and the consumer if they do not exist, and start this
    /// process's worker loop (when it runs search threads) and its advisory listener.
    pub async fn start(
        state: &Arc<AppState>,
        config: &NatsConfig,
    ) -> Result<Arc<Self>, crate::StartError> {
        let client = async_nats::connect(&config.url)
            .await
            .map_err(|e| startup("connecting", e))?;
        let jetstream = jetstream::new(client.clone());
        let stream = jetstream
            .get_or_create_stream(stream::Config {
                name: config.stream.clone(),
                subjects: vec![config.subject()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| startup("creating the stream", e))?;
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                &config.consumer(),
                consumer::pull::Config {
                    durable_name: Some(config.consumer()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: config.ack_wait,
                    max_deliver: config.max_deliver,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| startup("creating the consumer", e))?;
        let advisories = client
            .subscribe(format!(
                "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
                config.stream,
                config.consumer()
            ))
            .await
            .map_err(|e| startup("subscribing to advisories", e))?;
        tokio::spawn(watch_advisories(Arc::clone(state), stream, advisories));
        let queue = Arc::new(Self {
            jetstream,
            subject: config.subject(),
        });
        if state.search.config().workers > 0 {
            tokio::spawn(work(
                Arc::clone(state),
                Arc::clone(&queue),
                consumer,
                config.clone(),
            ));
        }
        tracing::info!(stream = %config.stream, "search tasks go through NATS JetStream");
        Ok(queue)
    }

    /// Publish tasks and wait for JetStream to store each. An unreachable queue answers 503.
    pub async fn publish(&self, tasks: Vec<Task>) -> Result<(), ApiError> {
        for task in tasks {
            let payload =
                serde_json::to_vec(&task).map_err(|_| ApiError::new(ErrorCode::Internal))?;
            let stored = async {
                self.jetstream
                    .publish(self.subject.clone(), payload.into())
                    .await?
                    .await
                    .map(drop)
            };
            match tokio::time::timeout(Duration::from_secs(10), stored).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(%error, "cannot queue a search task on NATS");
                    return Err(unavailable());
                }
                Err(_) => {
                    tracing::error!("queueing a search task on NATS timed out");
                    return Err(unavailable());
                }
            }
        }
        Ok(())
    }
}

fn unavailable() -> ApiError {
    ApiError {
        code: ErrorCode::Unavailable,
        retry_after: Some(5),
    }
}

/// Take one task at a time (a shard already uses every search thread of this process).
async fn work(
    state: Arc<AppState>,
    queue: Arc<NatsQueue>,
    consumer: consumer::PullConsumer,
    config: NatsConfig,
) {
    loop {
        let batch = consumer
            .batch()
            .max_messages(1)
            .expires(Duration::from_secs(5))
            .messages()
            .await;
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, "cannot pull search tasks; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(message) = batch.next().await {
            match message {
                Ok(message) => handle(&state, &queue, &config, message).await,
                Err(error) => {
                    tracing::warn!(%error, "pulling a search task failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

async fn handle(
    state: &Arc<AppState>,
    queue: &NatsQueue,
    config: &NatsConfig,
    message: jetstream::Message,
) {
    let Ok(task) = serde_json::from_slice::<Task>(&message.payload) else {
        tracing::error!("a search task on NATS does not decode; dropped");
        let _ = message.ack_with(AckKind::Term).await;
        return;
    };
    let delivered = message.info().map_or(1, |info| info.delivered);

    // Tell JetStream the task is in progress while it runs, so it is not redelivered to
    // another worker; if this process dies the signals stop and it is.
    let result = {
        let work = run_task_patiently(state, &task);
        tokio::pin!(work);
        let mut ticker =
            tokio::time::interval((config.ack_wait / 3).max(Duration::from_millis(200)));
        ticker.tick().await;
        loop {
            tokio::select! {
                result = &mut work => break result,
                _ = ticker.tick() => {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
            }
        }
    };
    match result {
        Ok(follow_up) => {
            if let Some(next) = follow_up {
                if let Err(error) = queue.publish(vec![next]).await {
                    // Not acknowledged: the shard is redelivered, finds its bit recorded and
                    // queues the combination again.
                    tracing::warn!(code = %error.code, "cannot queue a search's combination");
                    let _ = message
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                        .await;
                    return;
                }
            }
            if let Err(error) = message.double_ack().await {
                tracing::warn!(%error, "acknowledging a search task failed (it may run again)");
            }
        }
        Err(error) if delivered < config.max_deliver => {
            tracing::warn!(job = %task.job_id(), delivered, %error, "search task failed; redelivering");
            let delay = Duration::from_secs(delivered.clamp(1, 30) as u64);
            let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
        }
        Err(error) => {
            fail_job(state, task.job_id(), &error).await;
            let _ = message.ack_with(AckKind::Term).await;
        }
    }
}

/// A task whose deliveries ran out without an answer (its workers died on it): fail its job.
async fn watch_advisories(
    state: Arc<AppState>,
    stream: stream::Stream,
    mut advisories: async_nats::Subscriber,
) {
    #[derive(serde::Deserialize)]
    struct MaxDeliveries {
        stream_seq: u64,
    }
    while let Some(advisory) = advisories.next().await {
        let Ok(MaxDeliveries { stream_seq }) = serde_json::from_slice(&advisory.payload) else {
            continue;
        };
        let Ok(stored) = stream.get_raw_message(stream_seq).await else {
            // Already handled by the worker that saw its last delivery fail.
            continue;
        };
        if let Ok(task) = serde_json::from_slice::<Task>(&stored.payload) {
            let error = TaskError::DeliveriesExhausted;
            fail_job(&state, task.job_id(), &error).await;
        }
        let _ = stream.delete_message(stream_seq).await;
    }
}

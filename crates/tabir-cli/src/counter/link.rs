//! The link to the server as the counter sees it: checked every few seconds (one signed request,
//! no retries), shown on the page, and when the server answers again the enrolments queued
//! while it was away are sent, oldest first.

use super::api::{ApiError, State};
use std::sync::Mutex;
use std::time::Duration;
use tabir_client::outbox::{DrainReport, SentEntry};

/// How often the server is checked while it answers, and while it does not.
const CHECK_ONLINE: Duration = Duration::from_secs(10);
const CHECK_OFFLINE: Duration = Duration::from_secs(2);
/// Sent entries shown on the page (most recent).
const SENT_SHOWN: usize = 10;

#[derive(Default)]
pub struct Link {
    inner: Mutex<LinkState>,
    /// One pass over the queue at a time.
    draining: tokio::sync::Mutex<()>,
}

#[derive(Clone, Default)]
pub struct LinkState {
    pub online: Option<bool>,
    /// It answers, but refuses this device: nothing would be accepted, so nothing is queued.
    pub refused: bool,
    pub problem: Option<String>,
    pub last_sent: Vec<SentEntry>,
}

impl Link {
    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn snapshot(&self) -> LinkState {
        self.lock().clone()
    }

    pub fn mark_online(&self) {
        let mut state = self.lock();
        state.online = Some(true);
        state.refused = false;
        state.problem = None;
    }

    pub fn mark_offline(&self, problem: &str) {
        let mut state = self.lock();
        state.online = Some(false);
        state.refused = false;
        state.problem = Some(problem.to_owned());
    }

    pub fn mark_refused(&self, problem: &str) {
        let mut state = self.lock();
        state.online = Some(false);
        state.refused = true;
        state.problem = Some(problem.to_owned());
    }

    fn record_sent(&self, sent: Vec<SentEntry>) {
        let mut state = self.lock();
        state.last_sent.extend(sent);
        let excess = state.last_sent.len().saturating_sub(SENT_SHOWN);
        state.last_sent.drain(..excess);
    }
}

/// Send what waits in the queue (if the server answers).
pub async fn drain(state: &State) -> Result<DrainReport, ApiError> {
    let _one_at_a_time = state.link().draining.lock().await;
    let report = state.outbox().drain(state.client()).await?;
    match &report.unreachable {
        Some(problem) => state.link().mark_offline(problem),
        None => state.link().mark_online(),
    }
    if !report.sent.is_empty() {
        eprintln!(
            "counter: sent {} queued enrolment(s) to the server",
            report.sent.len()
        );
    }
    state.link().record_sent(report.sent.clone());
    Ok(report)
}

/// Watch the server; send the queue whenever it answers and something waits.
pub fn spawn(state: State) {
    tokio::spawn(async move {
        loop {
            let online = match state.client().ping().await {
                Ok(true) => {
                    state.link().mark_online();
                    true
                }
                Ok(false) => {
                    state.link().mark_offline("the server does not answer");
                    false
                }
                Err(error) => {
                    // It answers, but refuses this device (revoked, unknown domain, clock):
                    // not a network problem, and nothing queued would be accepted either.
                    state.link().mark_refused(&error.to_string());
                    false
                }
            };
            state.sweep_captures();
            if online && state.outbox().queued().unwrap_or(0) > 0 {
                if let Err(error) = drain(&state).await {
                    eprintln!("counter: sending the queue failed: {}", error.message());
                }
            }
            tokio::time::sleep(if online { CHECK_ONLINE } else { CHECK_OFFLINE }).await;
        }
    });
}

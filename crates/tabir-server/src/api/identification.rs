//! 1:N identification as a job. `POST .../identifications` checks the probe, counts it against
//! the device's quotas, records the job with its shards and queues them, and answers 202 at
//! once; the device then follows the job (`GET .../{job_id}`), fetches the result when it is
//! done (`GET .../{job_id}/result`: the escrowed any-match bit with the device's share
//! applied), or cancels it (`DELETE .../{job_id}`). Only the device that submitted a job sees
//! it; to any other key it does not exist.

use super::matching::{domain_keys, take_quota};
use super::{blob_response, conclude, policy, Signed};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::{Act, AppState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::RngCore;
use std::sync::Arc;
use tabir_crypto::ciphertexts::{EscrowedBit, Probe};
use tabir_proto::audit::Outcome;
use tabir_proto::messages::{IdentificationJob, JobStatus};
use tabir_proto::routes::HEADER_AUDIT_SEQ;
use tabir_proto::ErrorCode;
use tabir_store::{Change, JobRecord, JobState};

/// `POST /v1/domains/{domain}/identifications` (device): probe in, 202 job out.
pub async fn submit(
    State(state): State<Arc<AppState>>,
    Path(domain): Path<String>,
    signed: Signed<policy::Identification>,
) -> Response {
    let Signed {
        caller,
        body,
        mut act,
        ..
    } = signed;
    let result = submit_checked(&state, &caller, &mut act, &domain, body).await;
    conclude(&state, &caller, &act, result).await
}

async fn submit_checked(
    state: &Arc<AppState>,
    caller: &Caller,
    act: &mut Act,
    domain: &str,
    body: Bytes,
) -> Result<Response, ApiError> {
    let keys = domain_keys(state, act, domain).await?;
    Probe::from_bytes(&body, keys.config(), keys.fingerprint())?;
    // A device without a share could never read the result: refuse before any work.
    crate::shares::key_share(state, &caller.key_id, &keys).await?;
    // A device has at most a few searches running: one office cannot fill the queue.
    let (key_id, cap) = (caller.key_id.clone(), state.config.search.jobs_per_device);
    let running = state
        .with_store(move |store| store.running_jobs())
        .await?
        .iter()
        .filter(|job| job.key_id == key_id)
        .count();
    if cap > 0 && running >= cap {
        return Err(ApiError {
            code: ErrorCode::QuotaExceeded,
            retry_after: Some(60),
        });
    }
    take_quota(state, caller, domain, None).await?;

    let job_id = new_job_id();
    let shard_templates = state.config.search.shard_templates.max(1);
    let (lookup, key_id, id, now) = (
        domain.to_owned(),
        caller.key_id.clone(),
        job_id.clone(),
        crate::time::rfc3339_now(),
    );
    let (job, shards) = state
        .with_store(move |store| {
            store.create_job(&id, &lookup, &key_id, &body, shard_templates, &now)
        })
        .await?;
    if job.gallery_size > state.config.max_gallery as u64 {
        let error = ApiError::new(ErrorCode::PayloadTooLarge);
        return refuse_job(state, caller, act, &job_id, error).await;
    }
    // The submission's own audit entry, before any work is queued: no search runs that the
    // log does not show (its result is audited when the job ends).
    if let Err(error) = state
        .commit(Change::None, act.event(caller, Outcome::Done))
        .await
    {
        return refuse_job(state, caller, act, &job_id, error).await;
    }
    if let Err(error) = state
        .search
        .enqueue(crate::search::first_tasks(&job, &shards))
        .await
    {
        // Nothing will run it: end it now rather than leave it waiting forever.
        return refuse_job(state, caller, act, &job_id, error).await;
    }
    tracing::info!(job = %job_id, shards = shards.len(), "search submitted");
    Ok((StatusCode::ACCEPTED, Json(job_message(&job))).into_response())
}

/// End a job that cannot start, and answer with the refusal. The job's failure is the audit
/// entry of the refusal (so it is not audited twice).
async fn refuse_job(
    state: &Arc<AppState>,
    caller: &Caller,
    act: &Act,
    job_id: &str,
    error: ApiError,
) -> Result<Response, ApiError> {
    let change = Change::FailJob {
        job_id: job_id.to_owned(),
        error: error.code.name().to_owned(),
    };
    let event = act.event(caller, Outcome::Refused(error.code.name().to_owned()));
    if let Err(failed) = state.commit(change, event).await {
        tracing::error!(job = %job_id, code = %failed.code, "could not end a search that cannot start");
    }
    Ok(error.into_response())
}

/// 128 random bits, hex: unguessable, so a job id says nothing and cannot be enumerated.
fn new_job_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    tabir_proto::hex::encode(&bytes)
}

/// `GET /v1/domains/{domain}/identifications/{job_id}` (device): the job's state.
pub async fn status(
    State(state): State<Arc<AppState>>,
    Path((domain, job_id)): Path<(String, String)>,
    signed: Signed<policy::IdentificationStatus>,
) -> Response {
    let Signed { caller, .. } = signed;
    // Reading one's own job changes nothing and is not audited (a device polls it), its
    // refusals neither.
    match own_job(&state, &caller, &domain, &job_id).await {
        Ok(job) => Json(job_message(&job)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `GET /v1/domains/{domain}/identifications/{job_id}/result` (device): the encrypted
/// any-match bit of a finished job, with the caller's share applied, and the audit entry that
/// escrows it (for the decision report).
pub async fn result(
    State(state): State<Arc<AppState>>,
    Path((domain, job_id)): Path<(String, String)>,
    signed: Signed<policy::IdentificationResult>,
) -> Response {
    let Signed {
        caller, mut act, ..
    } = signed;
    // Like the status, not audited: the job's end is (with its escrowed result).
    match result_checked(&state, &caller, &mut act, &domain, &job_id).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn result_checked(
    state: &Arc<AppState>,
    caller: &Caller,
    act: &mut Act,
    domain: &str,
    job_id: &str,
) -> Result<Response, ApiError> {
    let job = own_job(state, caller, domain, job_id).await?;
    let seq = match (job.state, job.audit_seq) {
        (JobState::Done, Some(seq)) => seq,
        (JobState::Running, _) => {
            return Err(ApiError {
                code: ErrorCode::JobNotDone,
                retry_after: Some(1),
            })
        }
        (JobState::Cancelled, _) => return Err(ErrorCode::JobCancelled.into()),
        (JobState::Failed, _) => {
            let code = job
                .error
                .as_deref()
                .and_then(ErrorCode::from_name)
                .unwrap_or(ErrorCode::ShardFailed);
            return Err(code.into());
        }
        (JobState::Done, None) => return Err(ErrorCode::Internal.into()),
    };
    let keys = domain_keys(state, act, domain).await?;
    let lookup = domain.to_owned();
    let escrowed = state
        .with_store(move |store| store.escrow_page(&lookup, seq, seq, 1))
        .await?
        .into_iter()
        .find(|record| record.seq == seq)
        .ok_or(ApiError::new(ErrorCode::Internal))?;
    let escrowed = EscrowedBit::from_bytes(&escrowed.result, keys.config(), keys.fingerprint())
        .map_err(|_| ApiError::new(ErrorCode::Internal))?;
    let share = crate::shares::key_share(state, &caller.key_id, &keys).await?;
    let for_caller = share.apply(&escrowed)?;
    let mut response = blob_response(for_caller.to_bytes());
    response
        .headers_mut()
        .insert(HEADER_AUDIT_SEQ, HeaderValue::from(seq));
    Ok(response)
}

/// `DELETE /v1/domains/{domain}/identifications/{job_id}` (device): cancel a running job.
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Path((domain, job_id)): Path<(String, String)>,
    signed: Signed<policy::IdentificationCancel>,
) -> Response {
    let Signed { caller, act, .. } = signed;
    let result = async {
        own_job(&state, &caller, &domain, &job_id).await?;
        state
            .commit(
                Change::CancelJob {
                    job_id: job_id.clone(),
                    key_id: caller.key_id.clone(),
                },
                act.event(&caller, Outcome::Done),
            )
            .await?;
        let job = own_job(&state, &caller, &domain, &job_id).await?;
        Ok(Json(job_message(&job)).into_response())
    }
    .await;
    conclude(&state, &caller, &act, result).await
}

/// The job, if it exists in this domain and belongs to the caller; otherwise 404 either way
/// (another device's job is indistinguishable from none).
async fn own_job(
    state: &Arc<AppState>,
    caller: &Caller,
    domain: &str,
    job_id: &str,
) -> Result<JobRecord, ApiError> {
    if job_id.len() != 32 || !job_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ErrorCode::UnknownJob.into());
    }
    let lookup = job_id.to_owned();
    match state.with_store(move |store| store.job(&lookup)).await? {
        Some(job) if job.domain == domain && job.key_id == caller.key_id => Ok(job),
        _ => Err(ErrorCode::UnknownJob.into()),
    }
}

fn job_message(job: &JobRecord) -> IdentificationJob {
    IdentificationJob {
        job_id: job.job_id.clone(),
        state: match job.state {
            JobState::Running => JobStatus::Running,
            JobState::Done => JobStatus::Done,
            JobState::Failed => JobStatus::Failed,
            JobState::Cancelled => JobStatus::Cancelled,
        },
        gallery_size: job.gallery_size,
        shards_total: job.shards_total,
        shards_done: job.shards_done,
        error: job.error.clone(),
        audit_seq: job.audit_seq,
    }
}

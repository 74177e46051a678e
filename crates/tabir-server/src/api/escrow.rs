//! Decision escrow: every verification and identification result is kept, under the whole
//! domain key, with its audit entry. Devices report the decision they read; auditors get the
//! escrowed results re-shared to their own share, and compare. The server re-shares only
//! results it computed and escrowed: no route takes a ciphertext to re-share.

use super::{audited, conclude, policy, Signed};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::{Act, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;
use tabir_crypto::ciphertexts::EscrowedBit;
use tabir_proto::audit::{Outcome, SeqRange};
use tabir_proto::messages::{
    DecisionReport, ReportReceipt, ResharePage, ReshareRequest, ResharedResult,
};
use tabir_proto::routes::RESHARE_PAGE_MAX;
use tabir_proto::ErrorCode;
use tabir_store::Change;

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|_| ApiError::new(ErrorCode::BadRequest))
}

/// `POST /v1/domains/{domain}/decisions/{seq}` (the device that asked): the decision it read
/// from the result escrowed with entry `seq`. Once per result.
pub async fn report_decision(
    State(state): State<Arc<AppState>>,
    Path((domain, seq)): Path<(String, u64)>,
    signed: Signed<policy::DecisionReport>,
) -> Result<Response, ApiError> {
    let caller = signed.caller;
    let mut act = signed.act;
    act.refers_to = Some(SeqRange { from: seq, to: seq });
    let report: Result<DecisionReport, ApiError> = parse_json(&signed.body);
    if let Ok(report) = &report {
        act.reported = Some(report.decision);
    }
    Ok(audited(&state, &caller, &act, async {
        let report = report?;
        let entry = state
            .commit(
                Change::ReportDecision {
                    domain: domain.clone(),
                    key_id: caller.key_id.clone(),
                    seq,
                    decision: report.decision,
                },
                act.event(&caller, Outcome::Done),
            )
            .await?;
        Ok((
            StatusCode::CREATED,
            Json(ReportReceipt {
                audit_seq: entry.seq,
            }),
        )
            .into_response())
    })
    .await)
}

/// `POST /v1/domains/{domain}/escrow/reshare` (an auditor of the domain): the escrowed results
/// of a range of the log, each with the auditor's server share applied, so only the auditor's
/// own share opens them. The request is audited (who asked for which entries) before anything
/// leaves.
pub async fn reshare(
    State(state): State<Arc<AppState>>,
    Path(domain): Path<String>,
    signed: Signed<policy::Reshare>,
) -> Result<Response, ApiError> {
    let mut act = signed.act;
    let result = reshare_checked(&state, &signed.caller, &mut act, &domain, &signed.body).await;
    Ok(conclude(&state, &signed.caller, &act, result).await)
}

async fn reshare_checked(
    state: &Arc<AppState>,
    caller: &Caller,
    act: &mut Act,
    domain: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let request: ReshareRequest = parse_json(body)?;
    act.refers_to = Some(SeqRange {
        from: request.from,
        to: request.to,
    });
    if request.from > request.to {
        return Err(ApiError::new(ErrorCode::BadRequest));
    }
    let keys = state.domains.get(state, domain).await?;
    act.key_fingerprint = Some(keys.fingerprint().to_hex());
    let share = crate::shares::key_share(state, &caller.key_id, &keys).await?;
    let lookup = domain.to_owned();
    let page = state
        .with_store(move |store| {
            store.escrow_page(&lookup, request.from, request.to, RESHARE_PAGE_MAX)
        })
        .await?;
    let complete = page.len() < RESHARE_PAGE_MAX;
    let last = page.last().map_or(request.to, |r| r.seq);
    // The audit entry names exactly the range this answer covers.
    act.refers_to = Some(SeqRange {
        from: request.from,
        to: if complete { request.to } else { last },
    });
    let mut results = Vec::with_capacity(page.len());
    for record in &page {
        let escrowed = EscrowedBit::from_bytes(&record.result, keys.config(), keys.fingerprint())
            .map_err(|e| {
            tracing::error!(error = %e, "an escrowed result does not decode");
            ApiError::new(ErrorCode::Internal)
        })?;
        results.push(ResharedResult {
            seq: record.seq,
            actor: record.key_id.clone(),
            action: record.action,
            bit: tabir_proto::hex::encode(&share.apply(&escrowed)?.to_bytes()),
        });
    }
    let entry = state
        .commit(Change::None, act.event(caller, Outcome::Done))
        .await?;
    let next_from = (!complete && last < request.to).then_some(last + 1);
    Ok(Json(ResharePage {
        audit_seq: entry.seq,
        results,
        next_from,
    })
    .into_response())
}

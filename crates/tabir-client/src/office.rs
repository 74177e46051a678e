//! The office device's client: photo in, decision out. It runs the face pipeline locally,
//! encrypts with the domain's public key, signs, sends, opens the server's answer with this
//! device's decryption share, and reports the decision it read (the server escrows every
//! result, so auditors can check the report). The photo and the embedding never leave the
//! device; a bad photo is refused before anything is sent. The device holds nothing that
//! decrypts a template or a probe.

use crate::config::ClientConfig;
use crate::custody::{read_decryption_share, read_public_key, read_signing_key};
use crate::error::{ClientError, Result};
use crate::sealed::Passphrase;
use crate::transport::{Reply, Transport};
use reqwest::Method;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tabir_crypto::ciphertexts::EncryptedBit;
use tabir_crypto::Decision;
use tabir_device_crypto::{DecryptionShare, Encryptor};
use tabir_face::{Embedding, FacePipeline};
use tabir_proto::audit::ReportedDecision;
use tabir_proto::messages::{
    DecisionReport, DeletionReceipt, DomainInfo, EnrolmentReceipt, IdentificationJob, JobStatus,
    ReportReceipt,
};
use tabir_proto::routes::{self, CONTENT_TYPE_BLOB, CONTENT_TYPE_JSON};
use tabir_proto::{ErrorCode, SubjectId};
use tokio::sync::OnceCell;

/// Where the time went, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Timings {
    pub face_ms: f64,
    pub encrypt_ms: f64,
    /// Round trip to the server, encrypted evaluation included.
    pub server_ms: f64,
    pub decrypt_ms: f64,
    pub total_ms: f64,
}

/// Request and response body bytes on the wire.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct WireBytes {
    pub sent: usize,
    pub received: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct EnrolOutcome {
    /// An earlier template of the subject was replaced.
    pub replaced: bool,
    pub audit_seq: u64,
    /// The request id of the enrolment (for support: the server logs it).
    pub request_id: Option<String>,
    pub timings: Timings,
    pub bytes: WireBytes,
}

/// Whether the decision read was reported back to the server (escrow check by auditors).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum ReportStatus {
    /// Recorded in the audit log as entry `audit_seq`.
    Reported { audit_seq: u64 },
    /// The report did not reach the server; auditors will see the result as unreported.
    /// `OfficeClient::report` can send it again.
    Failed { reason: String },
}

#[derive(Clone, Debug, Serialize)]
pub struct VerifyOutcome {
    pub decision: Decision,
    /// The audit entry that escrows the result (what the report refers to).
    pub audit_seq: u64,
    /// The request id of the question that produced the result (for support).
    pub request_id: Option<String>,
    pub report: ReportStatus,
    pub timings: Timings,
    pub bytes: WireBytes,
}

/// A submitted identification job, with what submitting it cost.
#[derive(Clone, Debug)]
pub struct SubmittedJob {
    pub job: IdentificationJob,
    pub timings: Timings,
    pub bytes: WireBytes,
}

/// The answer to an identification: does the face match anyone enrolled in the domain?
pub type IdentifyOutcome = VerifyOutcome;

/// A decision read but not reported yet (for integrators who report separately).
#[derive(Clone, Debug, Serialize)]
pub struct UnreportedDecision {
    pub decision: Decision,
    pub audit_seq: u64,
    pub request_id: Option<String>,
    pub timings: Timings,
    pub bytes: WireBytes,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct DeleteOutcome {
    pub audit_seq: u64,
    pub timings: Timings,
    pub bytes: WireBytes,
}

impl From<&Reply> for WireBytes {
    fn from(reply: &Reply) -> Self {
        Self {
            sent: reply.bytes_sent,
            received: reply.bytes_received,
        }
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// A client for one office device in one key domain.
pub struct OfficeClient {
    transport: Transport,
    domain: String,
    encryptor: Arc<Encryptor>,
    share: Arc<DecryptionShare>,
    /// None for a client opened without one (deletion, embeddings computed elsewhere).
    face: Option<Arc<FacePipeline>>,
    /// Checked once, before the first request: the server's domain has this key's fingerprint.
    domain_checked: OnceCell<()>,
}

impl std::fmt::Debug for OfficeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfficeClient")
            .field("server", &self.transport.server())
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl OfficeClient {
    /// Open the device's sealed keys named by `config`. Nothing is sent yet.
    pub fn open(
        config: &ClientConfig,
        passphrase: &Passphrase,
        face: Arc<FacePipeline>,
    ) -> Result<Self> {
        let mut client = Self::open_without_face(config, passphrase)?;
        client.face = Some(face);
        Ok(client)
    }

    /// Open without loading the face models: enough to delete an enrolment, or to work on
    /// embeddings computed elsewhere (`*_embedding`); the photo calls then fail.
    pub fn open_without_face(config: &ClientConfig, passphrase: &Passphrase) -> Result<Self> {
        let not_a_device = |what: &str| {
            ClientError::Config(format!(
                "no {what} in the configuration: this is not an office device bundle"
            ))
        };
        let public_key_path = config
            .public_key
            .as_ref()
            .ok_or_else(|| not_a_device("public_key"))?;
        let share_path = config.share.as_ref().ok_or_else(|| not_a_device("share"))?;
        let public_key = read_public_key(public_key_path)?;
        let fingerprint = public_key.fingerprint();
        if let Some(expected) = &config.fingerprint {
            if *expected != fingerprint.to_hex() {
                return Err(ClientError::Config(format!(
                    "the configuration names key domain {expected}, but the public key belongs to {}",
                    fingerprint.to_hex()
                )));
            }
        }
        let share =
            read_decryption_share(share_path, passphrase, public_key.config(), fingerprint)?;
        let encryptor = Encryptor::new(&public_key)?;
        let signing_key = read_signing_key(&config.device_key, passphrase)?;
        let transport = config.transport(signing_key)?;
        Ok(Self::from_parts(
            transport,
            &config.domain,
            encryptor,
            share,
            None,
        ))
    }

    /// For integrators who keep keys their own way.
    pub fn from_parts(
        transport: Transport,
        domain: &str,
        encryptor: Encryptor,
        share: DecryptionShare,
        face: Option<Arc<FacePipeline>>,
    ) -> Self {
        Self {
            transport,
            domain: domain.to_owned(),
            encryptor: Arc::new(encryptor),
            share: Arc::new(share),
            face,
            domain_checked: OnceCell::new(),
        }
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Is the server reachable, and does it know this device's key domain? One signed request,
    /// no retries: for a status light. Ok(false) when the server cannot be reached; an error
    /// when it answers with a refusal (a revoked device, an unknown domain).
    pub async fn ping(&self) -> Result<bool> {
        match self.transport.probe(&routes::domain(&self.domain)).await {
            Ok(_) => Ok(true),
            Err(error) if crate::outbox::is_unreachable(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// The face pipeline on a blocking thread: photo bytes to an embedding, or the reason the
    /// photo is refused.
    pub async fn embed(&self, photo: Vec<u8>) -> Result<Embedding> {
        let face = self.face.clone().ok_or_else(|| {
            ClientError::Config("this client was opened without the face pipeline".into())
        })?;
        tokio::task::spawn_blocking(move || face.embed_photo(&photo))
            .await
            .map_err(|e| ClientError::Config(format!("face pipeline task: {e}")))?
            .map(|found| found.embedding)
            .map_err(ClientError::from)
    }

    async fn check_domain(&self) -> Result<()> {
        self.domain_checked
            .get_or_try_init(|| async {
                let reply = self
                    .transport
                    .send(
                        Method::GET,
                        &routes::domain(&self.domain),
                        Vec::new(),
                        CONTENT_TYPE_JSON,
                    )
                    .await?;
                let info: DomainInfo = serde_json::from_slice(&reply.body)
                    .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
                let local = self.encryptor.fingerprint().to_hex();
                if info.fingerprint != local {
                    return Err(ClientError::DomainMismatch {
                        server: info.fingerprint,
                        local,
                    });
                }
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// Check the domain (once), send, and time the round trip.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(Reply, f64)> {
        self.check_domain().await?;
        let sending = Instant::now();
        let reply = self
            .transport
            .send(method, path, body, content_type)
            .await?;
        Ok((reply, ms(sending)))
    }

    /// Enrol (or re-enrol) a subject from a photo.
    pub async fn enroll(&self, subject: &SubjectId, photo: Vec<u8>) -> Result<EnrolOutcome> {
        let started = Instant::now();
        let embedding = self.embed(photo).await?;
        let face_ms = ms(started);
        let mut outcome = self.enroll_embedding(subject, embedding.as_slice()).await?;
        outcome.timings.face_ms = face_ms;
        outcome.timings.total_ms = ms(started);
        Ok(outcome)
    }

    /// Enrol from an embedding computed elsewhere (unit length, the domain's dimension).
    pub async fn enroll_embedding(
        &self,
        subject: &SubjectId,
        embedding: &[f32],
    ) -> Result<EnrolOutcome> {
        let started = Instant::now();
        let encrypting = Instant::now();
        let template = self.encrypt_template(embedding)?;
        let encrypt_ms = ms(encrypting);
        let mut outcome = self.send_template(subject, template).await?;
        outcome.timings.encrypt_ms = encrypt_ms;
        outcome.timings.total_ms = ms(started);
        Ok(outcome)
    }

    /// The enrolment template of an embedding, encrypted with the domain's public key (the
    /// bytes [`OfficeClient::send_template`] sends). Nothing on this device can decrypt it, so
    /// it may wait on disk for the server (the counter app's queue seals it all the same: the
    /// subject's NIK goes with it).
    pub fn encrypt_template(&self, embedding: &[f32]) -> Result<Vec<u8>> {
        Ok(self.encryptor.encrypt_template(embedding)?.to_bytes())
    }

    /// Send an encrypted template made by [`OfficeClient::encrypt_template`] (enrolment is
    /// idempotent: sending the same template twice leaves one enrolment).
    pub async fn send_template(
        &self,
        subject: &SubjectId,
        template: Vec<u8>,
    ) -> Result<EnrolOutcome> {
        let started = Instant::now();
        let (reply, server_ms) = self
            .exchange(
                Method::PUT,
                &routes::enrolment(&self.domain, subject.as_str()),
                template,
                CONTENT_TYPE_BLOB,
            )
            .await?;
        let receipt: EnrolmentReceipt = serde_json::from_slice(&reply.body)
            .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        Ok(EnrolOutcome {
            replaced: receipt.replaced,
            audit_seq: receipt.audit_seq,
            request_id: reply.request_id.clone(),
            timings: Timings {
                server_ms,
                total_ms: ms(started),
                ..Timings::default()
            },
            bytes: WireBytes::from(&reply),
        })
    }

    /// 1:1: is the person in the photo the enrolled subject? The decision is reported back.
    pub async fn verify(&self, subject: &SubjectId, photo: Vec<u8>) -> Result<VerifyOutcome> {
        let started = Instant::now();
        let embedding = self.embed(photo).await?;
        let face_ms = ms(started);
        let mut outcome = self.verify_embedding(subject, embedding.as_slice()).await?;
        outcome.timings.face_ms = face_ms;
        outcome.timings.total_ms = ms(started);
        Ok(outcome)
    }

    pub async fn verify_embedding(
        &self,
        subject: &SubjectId,
        embedding: &[f32],
    ) -> Result<VerifyOutcome> {
        let read = self.verify_embedding_unreported(subject, embedding).await?;
        Ok(self.reported(read).await)
    }

    /// Verify without reporting the decision: the caller must [`OfficeClient::report`] it (an
    /// unreported result is listed by the auditors' escrow check).
    pub async fn verify_embedding_unreported(
        &self,
        subject: &SubjectId,
        embedding: &[f32],
    ) -> Result<UnreportedDecision> {
        let path = routes::verification(&self.domain, subject.as_str());
        self.ask(&path, embedding).await
    }

    /// 1:N: does the person in the photo match anyone enrolled in the domain? The decision is
    /// reported back.
    pub async fn identify(&self, photo: Vec<u8>) -> Result<IdentifyOutcome> {
        let started = Instant::now();
        let embedding = self.embed(photo).await?;
        let face_ms = ms(started);
        let mut outcome = self.identify_embedding(embedding.as_slice()).await?;
        outcome.timings.face_ms = face_ms;
        outcome.timings.total_ms = ms(started);
        Ok(outcome)
    }

    /// 1:N from an embedding: submit the search, wait for it (polling its progress), read the
    /// result and report the decision.
    pub async fn identify_embedding(&self, embedding: &[f32]) -> Result<IdentifyOutcome> {
        let started = Instant::now();
        let encrypting = Instant::now();
        let probe = self.encryptor.encrypt_probe(embedding)?.to_bytes();
        let encrypt_ms = ms(encrypting);
        let job = self.submit_probe(probe).await?;
        let mut outcome = self.wait_identification(&job.job_id, |_| {}).await?;
        outcome.timings.encrypt_ms = encrypt_ms;
        outcome.timings.total_ms = ms(started);
        Ok(outcome)
    }

    /// Submit a search for the person in the photo and return at once with the job (its id
    /// lets any later process on this device follow it: [`OfficeClient::wait_identification`]).
    pub async fn submit_identification(&self, photo: Vec<u8>) -> Result<IdentificationJob> {
        self.submit_identification_timed(photo)
            .await
            .map(|submitted| submitted.job)
    }

    /// [`OfficeClient::submit_identification`], with what the submission cost (face, encryption,
    /// the request) for a caller that reports timings once the job is done.
    pub async fn submit_identification_timed(&self, photo: Vec<u8>) -> Result<SubmittedJob> {
        let started = Instant::now();
        let embedding = self.embed(photo).await?;
        let face_ms = ms(started);
        let encrypting = Instant::now();
        let probe = self
            .encryptor
            .encrypt_probe(embedding.as_slice())?
            .to_bytes();
        let encrypt_ms = ms(encrypting);
        let path = routes::identification(&self.domain);
        let (reply, server_ms) = self
            .exchange(Method::POST, &path, probe, CONTENT_TYPE_BLOB)
            .await?;
        Ok(SubmittedJob {
            job: job_from(&reply.body)?,
            timings: Timings {
                face_ms,
                encrypt_ms,
                server_ms,
                total_ms: ms(started),
                ..Timings::default()
            },
            bytes: WireBytes::from(&reply),
        })
    }

    /// Submit a search for an embedding computed elsewhere.
    pub async fn submit_identification_embedding(
        &self,
        embedding: &[f32],
    ) -> Result<IdentificationJob> {
        let probe = self.encryptor.encrypt_probe(embedding)?.to_bytes();
        self.submit_probe(probe).await
    }

    async fn submit_probe(&self, probe: Vec<u8>) -> Result<IdentificationJob> {
        let path = routes::identification(&self.domain);
        let (reply, _) = self
            .exchange(Method::POST, &path, probe, CONTENT_TYPE_BLOB)
            .await?;
        job_from(&reply.body)
    }

    /// A job's state and progress.
    pub async fn identification_status(&self, job_id: &str) -> Result<IdentificationJob> {
        let path = routes::identification_job(&self.domain, job_id);
        let (reply, _) = self
            .exchange(Method::GET, &path, Vec::new(), CONTENT_TYPE_JSON)
            .await?;
        job_from(&reply.body)
    }

    /// Cancel a running job (its shards stop being evaluated).
    pub async fn cancel_identification(&self, job_id: &str) -> Result<IdentificationJob> {
        let path = routes::identification_job(&self.domain, job_id);
        let (reply, _) = self
            .exchange(Method::DELETE, &path, Vec::new(), CONTENT_TYPE_JSON)
            .await?;
        job_from(&reply.body)
    }

    /// Follow a job until it ends, calling `progress` with each state seen; then read the
    /// result with this device's share and report the decision. A failed or cancelled job is
    /// an error with the server's code (`shard_failed`, `job_cancelled`).
    pub async fn wait_identification(
        &self,
        job_id: &str,
        mut progress: impl FnMut(&IdentificationJob),
    ) -> Result<IdentifyOutcome> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(250);
        let job = loop {
            let job = self.identification_status(job_id).await?;
            progress(&job);
            if job.ended() {
                break job;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        };
        let server_ms = ms(started);
        match job.state {
            JobStatus::Done => {}
            JobStatus::Cancelled => return Err(refusal(ErrorCode::JobCancelled)),
            JobStatus::Failed | JobStatus::Running => {
                let code = job
                    .error
                    .as_deref()
                    .and_then(ErrorCode::from_name)
                    .unwrap_or(ErrorCode::ShardFailed);
                return Err(refusal(code));
            }
        }
        let path = routes::identification_result(&self.domain, job_id);
        let (reply, _) = self
            .exchange(Method::GET, &path, Vec::new(), CONTENT_TYPE_BLOB)
            .await?;
        let mut read = self.open_answer(&reply)?;
        read.timings.server_ms = server_ms;
        read.timings.total_ms = ms(started);
        Ok(self.reported(read).await)
    }

    /// Encrypt a probe, send it, open the answer with this device's share.
    async fn ask(&self, path: &str, embedding: &[f32]) -> Result<UnreportedDecision> {
        let started = Instant::now();
        let encrypting = Instant::now();
        let probe = self.encryptor.encrypt_probe(embedding)?.to_bytes();
        let encrypt_ms = ms(encrypting);
        let (reply, server_ms) = self
            .exchange(Method::POST, path, probe, CONTENT_TYPE_BLOB)
            .await?;
        let mut read = self.open_answer(&reply)?;
        read.timings.encrypt_ms = encrypt_ms;
        read.timings.server_ms = server_ms;
        read.timings.total_ms = ms(started);
        Ok(read)
    }

    /// An encrypted bit answer opened with this device's share, with its audit entry.
    fn open_answer(&self, reply: &Reply) -> Result<UnreportedDecision> {
        let audit_seq = reply.audit_seq.ok_or_else(|| {
            ClientError::BadAnswer("the answer names no audit entry for its result".into())
        })?;
        let decrypting = Instant::now();
        let bit = EncryptedBit::from_bytes(
            &reply.body,
            self.encryptor.config(),
            self.encryptor.fingerprint(),
        )
        .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        let decision = self.share.decrypt(&bit)?;
        Ok(UnreportedDecision {
            decision,
            audit_seq,
            request_id: reply.request_id.clone(),
            timings: Timings {
                decrypt_ms: ms(decrypting),
                ..Timings::default()
            },
            bytes: WireBytes::from(reply),
        })
    }

    async fn reported(&self, read: UnreportedDecision) -> VerifyOutcome {
        let report = match self.report(read.audit_seq, read.decision).await {
            Ok(audit_seq) => ReportStatus::Reported { audit_seq },
            Err(error) => ReportStatus::Failed {
                reason: error.to_string(),
            },
        };
        VerifyOutcome {
            decision: read.decision,
            audit_seq: read.audit_seq,
            request_id: read.request_id,
            report,
            timings: read.timings,
            bytes: read.bytes,
        }
    }

    /// Report the decision read from the result escrowed with audit entry `audit_seq`. The
    /// server records it once; auditors compare it with the escrowed result.
    pub async fn report(&self, audit_seq: u64, decision: Decision) -> Result<u64> {
        let report = DecisionReport {
            decision: match decision {
                Decision::Match => ReportedDecision::Match,
                Decision::NoMatch => ReportedDecision::NoMatch,
            },
        };
        let body = serde_json::to_vec(&report).unwrap_or_default();
        let reply = self
            .transport
            .send(
                Method::POST,
                &routes::decision_report(&self.domain, audit_seq),
                body,
                CONTENT_TYPE_JSON,
            )
            .await?;
        let receipt: ReportReceipt = serde_json::from_slice(&reply.body)
            .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        Ok(receipt.audit_seq)
    }

    /// Delete a subject's template (the audit log keeps the event, not the data).
    pub async fn delete(&self, subject: &SubjectId) -> Result<DeleteOutcome> {
        let started = Instant::now();
        let (reply, server_ms) = self
            .exchange(
                Method::DELETE,
                &routes::enrolment(&self.domain, subject.as_str()),
                Vec::new(),
                CONTENT_TYPE_JSON,
            )
            .await?;
        let receipt: DeletionReceipt = serde_json::from_slice(&reply.body)
            .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        Ok(DeleteOutcome {
            audit_seq: receipt.audit_seq,
            timings: Timings {
                server_ms,
                total_ms: ms(started),
                ..Timings::default()
            },
            bytes: WireBytes::from(&reply),
        })
    }
}

fn job_from(body: &[u8]) -> Result<IdentificationJob> {
    serde_json::from_slice(body)
        .map_err(|e| ClientError::BadAnswer(format!("identification job: {e}")))
}

/// A job's failure as the refusal it amounts to.
fn refusal(code: ErrorCode) -> ClientError {
    ClientError::Refused {
        status: code.status(),
        code: code.name().to_owned(),
        message: code.message().to_owned(),
    }
}

/// The same client for code without an async runtime: each call blocks until done.
pub mod blocking {
    use super::*;

    pub struct OfficeClient {
        runtime: tokio::runtime::Runtime,
        inner: super::OfficeClient,
    }

    impl OfficeClient {
        pub fn open(
            config: &ClientConfig,
            passphrase: &Passphrase,
            face: Arc<FacePipeline>,
        ) -> Result<Self> {
            Self::new(super::OfficeClient::open(config, passphrase, face)?)
        }

        pub fn new(inner: super::OfficeClient) -> Result<Self> {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| ClientError::Config(format!("async runtime: {e}")))?;
            Ok(Self { runtime, inner })
        }

        pub fn enroll(&self, subject: &SubjectId, photo: Vec<u8>) -> Result<EnrolOutcome> {
            self.runtime.block_on(self.inner.enroll(subject, photo))
        }

        pub fn verify(&self, subject: &SubjectId, photo: Vec<u8>) -> Result<VerifyOutcome> {
            self.runtime.block_on(self.inner.verify(subject, photo))
        }

        pub fn identify(&self, photo: Vec<u8>) -> Result<IdentifyOutcome> {
            self.runtime.block_on(self.inner.identify(photo))
        }

        pub fn delete(&self, subject: &SubjectId) -> Result<DeleteOutcome> {
            self.runtime.block_on(self.inner.delete(subject))
        }

        pub fn submit_identification(&self, photo: Vec<u8>) -> Result<IdentificationJob> {
            self.runtime
                .block_on(self.inner.submit_identification(photo))
        }

        pub fn wait_identification(
            &self,
            job_id: &str,
            progress: impl FnMut(&IdentificationJob),
        ) -> Result<IdentifyOutcome> {
            self.runtime
                .block_on(self.inner.wait_identification(job_id, progress))
        }

        pub fn cancel_identification(&self, job_id: &str) -> Result<IdentificationJob> {
            self.runtime
                .block_on(self.inner.cancel_identification(job_id))
        }
    }
}

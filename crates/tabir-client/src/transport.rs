//! Signed HTTP to the server: every request signed with the caller's Ed25519 key (fresh
//! timestamp and nonce per attempt; the body's digest in a header, so the server checks the
//! signature before reading the body), answers read whole, errors sorted into refusals (never
//! retried) and overload or network failures (retried with exponential backoff, honouring
//! Retry-After).
//!
//! Retries are safe: every request that changes something carries a request id, the same on
//! every attempt, and the server runs it once and answers later attempts from its record (a
//! deletion whose answer was lost reports the deletion, not "unknown subject"). Redirects are
//! never followed (they would carry the signed headers elsewhere), and plain http is refused
//! except to this machine unless explicitly allowed.

use crate::error::{ClientError, Result};
use ed25519_dalek::SigningKey;
use rand::RngCore;
pub use reqwest::Method;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tabir_proto::signing::RequestSignature;
use tabir_proto::ErrorBody;

/// How often and how patiently to retry on 429 and network failures.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// No retries (for tests that want to see the first answer).
    pub fn none() -> Self {
        Self {
            attempts: 1,
            ..Self::default()
        }
    }

    fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.min(16);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// A successful answer and what crossed the wire.
#[derive(Debug)]
pub struct Reply {
    pub body: Vec<u8>,
    pub status: u16,
    /// Request body bytes sent (last attempt).
    pub bytes_sent: usize,
    /// Response body bytes received.
    pub bytes_received: usize,
    /// Tries it took.
    pub attempts: u32,
    /// The audit entry that escrows a verification's or identification's result.
    pub audit_seq: Option<u64>,
    /// The request id sent with every attempt (none for GET): what support looks up in the
    /// server's log.
    pub request_id: Option<String>,
}

/// A signing HTTP client for one key and one server.
pub struct Transport {
    http: reqwest::Client,
    base: String,
    key: SigningKey,
    retry: RetryPolicy,
}

/// Whether `base` (an `http://...` URL) points at this machine.
fn is_loopback(base: &str) -> bool {
    let rest = base.trim_start_matches("http://");
    let host = match rest.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => rest.split(['/', ':']).next().unwrap_or(""),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A fresh request id (32 hex characters), the same for every attempt of one request.
fn request_id() -> String {
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    tabir_proto::hex::encode(&id)
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("server", &self.base)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// `server` is the base URL (`https://tabir.example:8443`); `tls_root` an extra PEM
    /// certificate to trust (a private CA or a self-signed server certificate). Plain
    /// `http://` only to this machine (see [`Transport::with_insecure_http`]).
    pub fn new(server: &str, key: SigningKey, tls_root: Option<&[u8]>) -> Result<Self> {
        Self::build(server, key, tls_root, false)
    }

    /// As [`Transport::new`], but plain `http://` to any host is allowed: only for a network
    /// that is itself protected (a TLS-terminating proxy on the same host, a test bed).
    pub fn with_insecure_http(
        server: &str,
        key: SigningKey,
        tls_root: Option<&[u8]>,
    ) -> Result<Self> {
        Self::build(server, key, tls_root, true)
    }

    fn build(
        server: &str,
        key: SigningKey,
        tls_root: Option<&[u8]>,
        allow_http: bool,
    ) -> Result<Self> {
        let base = server.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Config(format!(
                "the server URL must start with http:// or https://, got {base:?}"
            )));
        }
        if base.starts_with("http://") && !allow_http && !is_loopback(&base) {
            return Err(ClientError::Config(format!(
                "{base} is plain http to another machine: requests, subject ids and answers would cross the network unencrypted. Use https://, or set allow_http = true (TABIR_ALLOW_HTTP=1) if a protected network carries it"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            // Signed headers must never follow a redirect to another place.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = tls_root {
            let certificate = reqwest::Certificate::from_pem(pem)
                .map_err(|e| ClientError::Config(format!("TLS certificate: {e}")))?;
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            key,
            retry: RetryPolicy::default(),
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn server(&self) -> &str {
        &self.base
    }

    /// The key id the server knows this client by.
    pub fn key_id(&self) -> String {
        tabir_proto::signing::key_id(&self.key.verifying_key())
    }

    /// Send a signed request; Ok only for a 2xx answer. Requests other than GET carry a request
    /// id, so retrying them is safe.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<Reply> {
        self.send_with(self.retry, method, path, body, content_type)
            .await
    }

    /// A signed GET tried once: is the server there now? (A status light, not an operation.)
    pub async fn probe(&self, path: &str) -> Result<Reply> {
        self.send_with(
            RetryPolicy::none(),
            Method::GET,
            path,
            Vec::new(),
            tabir_proto::routes::CONTENT_TYPE_JSON,
        )
        .await
    }

    async fn send_with(
        &self,
        retry: RetryPolicy,
        method: Method,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<Reply> {
        let request_id = (method != Method::GET).then(request_id);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self
                .attempt(&method, path, &body, content_type, request_id.as_deref())
                .await;
            let wait = match outcome {
                Attempt::Done(mut reply) => {
                    reply.attempts = attempt;
                    reply.request_id = request_id;
                    return Ok(reply);
                }
                Attempt::Refused(error) => return Err(error),
                Attempt::Busy { retry_after } => {
                    if attempt >= retry.attempts {
                        return Err(ClientError::Overloaded { attempts: attempt });
                    }
                    retry_after
                        .unwrap_or_default()
                        .max(retry.delay(attempt - 1))
                }
                Attempt::Failed(detail) => {
                    if attempt >= retry.attempts {
                        return Err(ClientError::Network {
                            server: self.base.clone(),
                            detail,
                        });
                    }
                    retry.delay(attempt - 1)
                }
            };
            tokio::time::sleep(wait.min(retry.max_delay)).await;
        }
    }

    async fn attempt(
        &self,
        method: &Method,
        path: &str,
        body: &[u8],
        content_type: &str,
        request_id: Option<&str>,
    ) -> Attempt {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let signature = RequestSignature::sign(
            &self.key,
            method.as_str(),
            path,
            body,
            timestamp,
            tabir_proto::hex::encode(&nonce),
            request_id.map(str::to_owned),
        );
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.to_vec());
        for (name, value) in signature.headers() {
            request = request.header(name, value);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Attempt::Failed(describe(e)),
        };
        let status = response.status().as_u16();
        let audit_seq = response
            .headers()
            .get(tabir_proto::routes::HEADER_AUDIT_SEQ)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs);
        let answer = match read_answer(response).await {
            Ok(bytes) => bytes,
            Err(AnswerError::TooLarge) => {
                return Attempt::Refused(ClientError::BadAnswer(format!(
                    "the answer is over {MAX_ANSWER_BYTES} bytes"
                )))
            }
            Err(AnswerError::Failed(detail)) => return Attempt::Failed(detail),
        };
        match status {
            200..=299 => Attempt::Done(Reply {
                bytes_sent: body.len(),
                bytes_received: answer.len(),
                body: answer,
                status,
                attempts: 0,
                audit_seq,
                request_id: None,
            }),
            429 => {
                // A quota is a refusal worth reporting at once, not a wait.
                match serde_json::from_slice::<ErrorBody>(&answer) {
                    Ok(body) if body.error.code == "quota_exceeded" => {
                        Attempt::Refused(ClientError::Refused {
                            status,
                            code: body.error.code,
                            message: body.error.message,
                        })
                    }
                    _ => Attempt::Busy { retry_after },
                }
            }
            // An earlier attempt of this request is still running at the server.
            409 if serde_json::from_slice::<ErrorBody>(&answer)
                .is_ok_and(|b| b.error.code == "request_in_progress") =>
            {
                Attempt::Busy { retry_after }
            }
            // Starting or shutting down, or its database is: like a network failure, worth
            // another try (every request but a GET carries a request id).
            503 => Attempt::Failed(match serde_json::from_slice::<ErrorBody>(&answer) {
                Ok(body) => format!("the server is unavailable: {}", body.error.message),
                Err(_) => "the server is unavailable (starting or stopping)".into(),
            }),
            _ => {
                let (code, message) = match serde_json::from_slice::<ErrorBody>(&answer) {
                    Ok(body) => (body.error.code, body.error.message),
                    Err(_) => ("unknown".to_owned(), format!("HTTP status {status}")),
                };
                Attempt::Refused(ClientError::Refused {
                    status,
                    code,
                    message,
                })
            }
        }
    }
}

enum Attempt {
    Done(Reply),
    Refused(ClientError),
    Busy { retry_after: Option<Duration> },
    Failed(String),
}

/// The largest answer read: an audit page of 1,000 entries is under 1 MiB, an encrypted bit
/// 2.7 KiB. A longer answer is refused, not buffered.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

pub(crate) enum AnswerError {
    TooLarge,
    Failed(String),
}

/// Read a response body, at most [`MAX_ANSWER_BYTES`].
pub(crate) async fn read_answer(
    mut response: reqwest::Response,
) -> std::result::Result<Vec<u8>, AnswerError> {
    if response
        .content_length()
        .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
    {
        return Err(AnswerError::TooLarge);
    }
    let mut answer = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| AnswerError::Failed(describe(e)))?
    {
        if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(AnswerError::TooLarge);
        }
        answer.extend_from_slice(&chunk);
    }
    Ok(answer)
}

/// The error and its causes in one line (reqwest's Display alone omits the cause), without
/// the URL: request paths hold subject ids (NIKs), which must not reach messages or logs.
pub(crate) fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

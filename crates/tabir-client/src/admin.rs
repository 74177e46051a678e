//! Custodian and auditor calls: the first-custodian bootstrap, key domains, device keys, the
//! server's public key and the audit log.

use crate::error::{ClientError, Result};
use crate::transport::{describe, read_answer, AnswerError, Transport};
use ed25519_dalek::VerifyingKey;
use reqwest::Method;
use tabir_crypto::shares::ShareDelta;
use tabir_proto::audit::{Checkpoint, LogEntry};
use tabir_proto::messages::{
    AuditPage, CustodianBootstrap, DeviceInfo, DeviceRegistration, DomainInfo, ResharePage,
    ReshareRequest, ServerInfo,
};
use tabir_proto::routes::{self, AUDIT_PAGE_MAX, CONTENT_TYPE_BLOB, CONTENT_TYPE_JSON};
use tabir_proto::{ErrorBody, Role};
use zeroize::Zeroizing;

/// Calls made with a custodian's or auditor's key.
#[derive(Debug)]
pub struct AdminClient {
    transport: Transport,
}

fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| ClientError::BadAnswer(e.to_string()))
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

impl AdminClient {
    pub fn new(transport: Transport) -> Self {
        Self { transport }
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Register the first custodian's public key with the server's one-time token. Plain http
    /// only to this machine unless `allow_http`; redirects are not followed.
    pub async fn bootstrap(
        server: &str,
        token: &str,
        label: &str,
        custodian: &VerifyingKey,
        tls_root: Option<&[u8]>,
        allow_http: bool,
    ) -> Result<DeviceInfo> {
        let base = server.trim_end_matches('/');
        // The same URL rules as every signed request.
        let probe_key = ed25519_dalek::SigningKey::from_bytes(&[0; 32]);
        if allow_http {
            Transport::with_insecure_http(base, probe_key, None)?;
        } else {
            Transport::new(base, probe_key, None)?;
        }
        let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = tls_root {
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_pem(pem)
                    .map_err(|e| ClientError::Config(format!("TLS certificate: {e}")))?,
            );
        }
        let client = builder
            .build()
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let body = to_json(&CustodianBootstrap {
            label: label.to_owned(),
            public_key: tabir_proto::hex::encode(custodian.as_bytes()),
        });
        let network = |detail: String| ClientError::Network {
            server: base.to_owned(),
            detail,
        };
        let response = client
            .post(format!("{base}{}", routes::BOOTSTRAP))
            .bearer_auth(token.trim())
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE_JSON)
            .body(body)
            .send()
            .await
            .map_err(|e| network(describe(e)))?;
        let status = response.status().as_u16();
        let answer = read_answer(response).await.map_err(|e| match e {
            AnswerError::TooLarge => ClientError::BadAnswer("the answer is too large".into()),
            AnswerError::Failed(detail) => network(detail),
        })?;
        if status == 201 {
            return json(&answer);
        }
        let error: ErrorBody = json(&answer)?;
        Err(ClientError::Refused {
            status,
            code: error.error.code,
            message: error.error.message,
        })
    }

    /// Upload a domain's registration (evaluation keys, public key and the server's reference
    /// share: `tabir_crypto::DomainRegistration` bytes); the server answers with the
    /// fingerprint it computed.
    pub async fn register_domain(&self, domain: &str, registration: &[u8]) -> Result<DomainInfo> {
        let reply = self
            .transport
            .send(
                Method::PUT,
                &routes::domain(domain),
                registration.to_vec(),
                CONTENT_TYPE_BLOB,
            )
            .await?;
        json(&reply.body)
    }

    /// Register a device's or auditor's signing key, with the delta from which the server
    /// derives its half of the key's share pair.
    pub async fn register_key(
        &self,
        domain: &str,
        label: &str,
        public_key: &VerifyingKey,
        role: Role,
        share_delta: Option<&ShareDelta>,
    ) -> Result<DeviceInfo> {
        let delta_hex =
            share_delta.map(|delta| Zeroizing::new(tabir_proto::hex::encode(&delta.to_bytes())));
        let registration = DeviceRegistration {
            label: label.to_owned(),
            public_key: tabir_proto::hex::encode(public_key.as_bytes()),
            role,
            share_delta: delta_hex.as_ref().map(|hex| hex.to_string()),
        };
        let reply = self
            .transport
            .send(
                Method::POST,
                &routes::devices(domain),
                to_json(&registration),
                CONTENT_TYPE_JSON,
            )
            .await?;
        json(&reply.body)
    }

    pub async fn revoke_key(&self, domain: &str, key_id: &str) -> Result<DeviceInfo> {
        let reply = self
            .transport
            .send(
                Method::DELETE,
                &routes::device(domain, key_id),
                Vec::new(),
                CONTENT_TYPE_JSON,
            )
            .await?;
        json(&reply.body)
    }

    pub async fn keys(&self, domain: &str) -> Result<Vec<DeviceInfo>> {
        let reply = self
            .transport
            .send(
                Method::GET,
                &routes::devices(domain),
                Vec::new(),
                CONTENT_TYPE_JSON,
            )
            .await?;
        json(&reply.body)
    }

    pub async fn domains(&self) -> Result<Vec<DomainInfo>> {
        let reply = self
            .transport
            .send(Method::GET, routes::DOMAINS, Vec::new(), CONTENT_TYPE_JSON)
            .await?;
        json(&reply.body)
    }

    pub async fn server_info(&self) -> Result<ServerInfo> {
        let reply = self
            .transport
            .send(
                Method::GET,
                routes::SERVER_INFO,
                Vec::new(),
                CONTENT_TYPE_JSON,
            )
            .await?;
        json(&reply.body)
    }

    /// Escrowed results of `domain` with `from <= seq <= to`, re-shared to this auditor's
    /// share (one page; follow `next_from`). The server audits the request.
    pub async fn reshare(&self, domain: &str, from: u64, to: u64) -> Result<ResharePage> {
        let body = serde_json::to_vec(&ReshareRequest { from, to }).unwrap_or_default();
        let reply = self
            .transport
            .send(
                Method::POST,
                &routes::escrow_reshare(domain),
                body,
                CONTENT_TYPE_JSON,
            )
            .await?;
        json(&reply.body)
    }

    /// The whole audit log, page by page; `progress` is told the count so far. An auditor gets
    /// other domains' entries redacted.
    pub async fn export_audit(&self, progress: impl FnMut(usize)) -> Result<Vec<LogEntry>> {
        self.export_audit_after(0, progress).await
    }

    /// The log's head, signed by the server: keep it, and check later logs extend it.
    pub async fn checkpoint(&self) -> Result<Checkpoint> {
        let reply = self
            .transport
            .send(
                Method::GET,
                routes::AUDIT_CHECKPOINT,
                Vec::new(),
                CONTENT_TYPE_JSON,
            )
            .await?;
        json(&reply.body)
    }

    /// The audit log's entries after sequence number `after`, page by page.
    pub async fn export_audit_after(
        &self,
        after: u64,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<LogEntry>> {
        let mut entries: Vec<LogEntry> = Vec::new();
        let mut after = after;
        loop {
            let reply = self
                .transport
                .send(
                    Method::GET,
                    &routes::audit_page(after, AUDIT_PAGE_MAX),
                    Vec::new(),
                    CONTENT_TYPE_JSON,
                )
                .await?;
            let page: AuditPage = json(&reply.body)?;
            entries.extend(page.entries);
            progress(entries.len());
            match page.next_after {
                Some(next) if next > after => after = next,
                _ => return Ok(entries),
            }
        }
    }
}

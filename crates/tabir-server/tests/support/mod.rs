//! What the server tests share: one key domain per test process, a server on 127.0.0.1:0
//! with its first custodian bootstrapped, and a signing HTTP client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

pub mod process;

use ed25519_dalek::SigningKey;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use reqwest::{Method, StatusCode};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tabir_crypto::ciphertexts::EncryptedBit;
use tabir_crypto::params::DomainConfig;
use tabir_crypto::{Decision, DomainRegistration, KeyFingerprint, ShareDelta};
use tabir_device_crypto::{
    domain_config, generate_key_domain, CustodianShare, DecryptionShare, Encryptor,
};
use tabir_proto::messages::{CustodianBootstrap, DeviceInfo, DeviceRegistration};
use tabir_proto::signing::RequestSignature;
use tabir_proto::{routes, ErrorBody, Role};
use tabir_server::{MasterKey, RunningServer, ServerConfig, Startup};
use tabir_store::Store;

pub const DOMAIN: &str = "jabar-bansos";
pub const DIM: u32 = 128;

/// One key domain for the whole test process (key generation takes about a second), held as
/// the custodian and a device would: the public key, the custodian's reference share, and the
/// registration (evaluation keys and the server's reference share) to upload. Nobody holds the
/// domain's secret key.
pub struct Keys {
    pub config: DomainConfig,
    pub fingerprint: KeyFingerprint,
    pub encryptor: Encryptor,
    pub custodian: CustodianShare,
    pub registration: Vec<u8>,
    pub evaluation: Vec<u8>,
}

impl Keys {
    fn generate() -> Self {
        let config = domain_config(DIM, 0.363).unwrap();
        let domain = generate_key_domain(config).unwrap();
        let public_key = domain.evaluation_keys.public_key();
        let evaluation = domain.evaluation_keys.to_bytes();
        let registration = DomainRegistration {
            evaluation_keys: domain.evaluation_keys,
            server_share: domain.server_share,
            identify_threshold: tabir_device_crypto::identify_threshold(&config, 0.5).unwrap(),
        }
        .to_bytes()
        .to_vec();
        Keys {
            config,
            fingerprint: public_key.fingerprint(),
            encryptor: Encryptor::new(&public_key).unwrap(),
            custodian: domain.custodian_share,
            registration,
            evaluation,
        }
    }

    /// A new share pair: the device's share, and the delta the server derives its half from.
    pub fn issue(&self) -> (DecryptionShare, ShareDelta) {
        self.custodian.issue(&self.config).unwrap()
    }

    pub fn template(&self, embedding: &[f32]) -> Vec<u8> {
        self.encryptor
            .encrypt_template(embedding)
            .unwrap()
            .to_bytes()
    }

    pub fn probe(&self, embedding: &[f32]) -> Vec<u8> {
        self.encryptor.encrypt_probe(embedding).unwrap().to_bytes()
    }

    /// Open an answer's encrypted bit with a device's share.
    pub fn open(&self, share: &DecryptionShare, body: &[u8]) -> Decision {
        let bit = EncryptedBit::from_bytes(body, &self.config, self.fingerprint).unwrap();
        share.decrypt(&bit).unwrap()
    }
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(Keys::generate)
}

/// A second, unrelated key domain (for wrong-fingerprint refusals).
pub fn other_keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(Keys::generate)
}

pub fn signing_key(seed: u64) -> SigningKey {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    SigningKey::from_bytes(&bytes)
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn fresh_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    tabir_proto::hex::encode(&bytes)
}

/// A response, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The protocol error code of an error answer.
    pub fn code(&self) -> String {
        let body: ErrorBody = serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!("not an error body: {}", String::from_utf8_lossy(&self.body))
        });
        body.error.code
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap()
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
        );
        self
    }

    #[track_caller]
    pub fn refused(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "code {}", self.code());
        assert_eq!(self.code(), code);
    }
}

/// How to sign one request; the default is a correct signature made now.
#[derive(Clone, Default)]
pub struct Signing {
    pub timestamp: Option<u64>,
    pub nonce: Option<String>,
    /// Sign this body instead of the one sent.
    pub signed_body: Option<Vec<u8>>,
    pub unsigned: bool,
    /// A request id (the same on retries).
    pub request_id: Option<String>,
}

#[derive(Clone)]
pub struct Http {
    pub base: String,
    pub client: reqwest::Client,
}

impl Http {
    pub fn new(base: String) -> Self {
        Self {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        }
    }

    pub async fn send(
        &self,
        key: &SigningKey,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Answer {
        self.send_with(key, method, path, body, &Signing::default())
            .await
    }

    pub async fn send_with(
        &self,
        key: &SigningKey,
        method: Method,
        path: &str,
        body: Vec<u8>,
        signing: &Signing,
    ) -> Answer {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if !signing.unsigned {
            let signature = RequestSignature::sign(
                key,
                method.as_str(),
                path,
                signing.signed_body.as_deref().unwrap_or(&body),
                signing.timestamp.unwrap_or_else(now),
                signing.nonce.clone().unwrap_or_else(fresh_nonce),
                signing.request_id.clone(),
            );
            for (name, value) in signature.headers() {
                request = request.header(name, value);
            }
        }
        let response = request.body(body).send().await.expect("request failed");
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.bytes().await.unwrap().to_vec(),
        }
    }

    pub async fn get_unsigned(&self, path: &str) -> Answer {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.bytes().await.unwrap().to_vec(),
        }
    }
}

/// A running server with its custodian, on loopback.
pub struct Harness {
    pub http: Http,
    pub server: RunningServer,
    pub store: Arc<dyn Store>,
    pub custodian: SigningKey,
    pub audit_key: ed25519_dalek::VerifyingKey,
    /// The master key, as an operator would give it to every replica (TABIR_MASTER_KEY).
    pub master_key_hex: String,
    _data: tempfile::TempDir,
}

/// The default configuration without quotas (for tests that verify one subject many times).
pub fn no_quotas() -> ServerConfig {
    ServerConfig {
        quotas: tabir_server::Quotas {
            subject_per_day: 0,
            device_per_hour: 0,
            device_per_day: 0,
        },
        ..ServerConfig::default()
    }
}

/// A random master key in its environment form (64 hex characters).
pub fn random_master_key_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    tabir_proto::hex::encode(&bytes)
}

impl Harness {
    pub async fn start(store: Arc<dyn Store>, config: ServerConfig) -> Self {
        let data = tempfile::tempdir().unwrap();
        let server_key = tabir_server::load_or_create_server_key(
            &data.path().join(tabir_server::SERVER_KEY_FILE),
        )
        .unwrap();
        let audit_key = server_key.signing_key().verifying_key();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let master_key_hex = random_master_key_hex();
        let server = tabir_server::start(
            Startup {
                store: Arc::clone(&store),
                server_key,
                master_key: MasterKey::from_hex(&master_key_hex).unwrap(),
                config,
                custodian_key: None,
                tls: None,
            },
            listener,
        )
        .await
        .unwrap();
        let http = Http::new(format!("http://{}", server.address));
        wait_healthy(&http).await;
        let custodian = signing_key(1);
        let token = server
            .bootstrap_token
            .as_ref()
            .expect("a fresh server has a token")
            .token
            .clone();
        let body = serde_json::to_vec(&CustodianBootstrap {
            label: "test custodian".into(),
            public_key: tabir_proto::hex::encode(custodian.verifying_key().as_bytes()),
        })
        .unwrap();
        let answer = http
            .client
            .post(format!("{}{}", http.base, routes::BOOTSTRAP))
            .bearer_auth(token)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 201);
        Self {
            http,
            server,
            store,
            custodian,
            audit_key,
            master_key_hex,
            _data: data,
        }
    }

    /// The keyed tag the server stores and logs instead of `nik` in the test domain.
    pub fn subject_tag(&self, nik: &str) -> tabir_proto::SubjectTag {
        MasterKey::from_hex(&self.master_key_hex)
            .unwrap()
            .subject_tag(DOMAIN, nik)
    }

    /// Register the test domain's keys.
    pub async fn register_domain(&self) {
        self.http
            .send(
                &self.custodian,
                Method::PUT,
                &routes::domain(DOMAIN),
                keys().registration.clone(),
            )
            .await
            .expect(201);
    }

    /// Register a key for `domain` with `role` and a share pair of the test domain; returns
    /// its key id.
    pub async fn register(&self, key: &SigningKey, domain: &str, role: Role) -> String {
        self.register_with_share(key, domain, role).await.0
    }

    /// Register a device or auditor key with a fresh share pair; returns its key id and its
    /// decryption share.
    pub async fn register_with_share(
        &self,
        key: &SigningKey,
        domain: &str,
        role: Role,
    ) -> (String, DecryptionShare) {
        let (share, delta) = keys().issue();
        let registration = DeviceRegistration {
            label: format!("{role:?} for tests"),
            public_key: tabir_proto::hex::encode(key.verifying_key().as_bytes()),
            role,
            share_delta: Some(tabir_proto::hex::encode(&delta.to_bytes())),
        };
        let info: DeviceInfo = self
            .http
            .send(
                &self.custodian,
                Method::POST,
                &routes::devices(domain),
                serde_json::to_vec(&registration).unwrap(),
            )
            .await
            .expect(201)
            .json();
        assert!(info.holds_share);
        (info.key_id, share)
    }
}

/// Submit an identification job with `probe`, poll it until it ends, and return the final
/// job state and, when done, the result's answer (blob with the audit seq header).
pub async fn identify_job(
    http: &Http,
    device: &SigningKey,
    probe: Vec<u8>,
) -> (tabir_proto::messages::IdentificationJob, Option<Answer>) {
    use tabir_proto::messages::IdentificationJob;
    let job: IdentificationJob = http
        .send(device, Method::POST, &routes::identification(DOMAIN), probe)
        .await
        .expect(202)
        .json();
    let job = wait_job(http, device, &job.job_id).await;
    if job.state != tabir_proto::messages::JobStatus::Done {
        return (job, None);
    }
    let answer = http
        .send(
            device,
            Method::GET,
            &routes::identification_result(DOMAIN, &job.job_id),
            Vec::new(),
        )
        .await
        .expect(200);
    (job, Some(answer))
}

/// Poll a job (about 10 times a second, at most two minutes) until it ends.
pub async fn wait_job(
    http: &Http,
    device: &SigningKey,
    job_id: &str,
) -> tabir_proto::messages::IdentificationJob {
    use tabir_proto::messages::IdentificationJob;
    for _ in 0..1200 {
        let job: IdentificationJob = http
            .send(
                device,
                Method::GET,
                &routes::identification_job(DOMAIN, job_id),
                Vec::new(),
            )
            .await
            .expect(200)
            .json();
        if job.ended() {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("identification job {job_id} did not end within two minutes");
}

/// The whole log, read page by page through `http` (as a custodian or an auditor).
pub async fn whole_log(http: &Http, reader: &SigningKey) -> Vec<tabir_proto::audit::LogEntry> {
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let page: tabir_proto::messages::AuditPage = http
            .send(
                reader,
                Method::GET,
                &routes::audit_page(after, routes::AUDIT_PAGE_MAX),
                Vec::new(),
            )
            .await
            .expect(200)
            .json();
        entries.extend(page.entries);
        match page.next_after {
            Some(next) => after = next,
            None => return entries,
        }
    }
}

/// Poll /healthz until it answers 200 (no sleeps in place of readiness).
pub async fn wait_healthy(http: &Http) {
    for _ in 0..200 {
        if let Ok(response) = http
            .client
            .get(format!("{}{}", http.base, routes::HEALTH))
            .send()
            .await
        {
            if response.status().is_success() {
                return;
            }
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the server never became healthy");
}

/// Poll /healthz from synchronous code (a raw HTTP/1.1 GET).
pub fn wait_healthy_blocking(url: &str) {
    use std::io::{Read, Write};
    let address = url.trim_start_matches("http://");
    for _ in 0..500 {
        if let Ok(mut stream) = std::net::TcpStream::connect(address) {
            let _ = write!(
                stream,
                "GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
            );
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the server at {url} never became healthy");
}

/// The PostgreSQL URL the tests may use, or None (with a note naming `test`) when none is set.
pub fn database_url(test: &str) -> Option<String> {
    match std::env::var("TABIR_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "{test}: skipped, TABIR_TEST_DATABASE_URL is not set"
            );
            None
        }
    }
}

/// A fresh schema name for `test`, unique per process and call.
pub fn schema_name(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("tabir_server_{test}_{}_{nanos}", std::process::id())
}

pub fn sqlite_store() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = tabir_store::sqlite::SqliteStore::open(dir.path()).unwrap();
    (Arc::new(store), dir)
}

/// A PostgreSQL store in a fresh schema, or None (with a note) when no database is set.
pub fn postgres_store(test: &str) -> Option<(Arc<dyn Store>, DropSchema)> {
    let url = database_url(&format!("server test {test} on PostgreSQL"))?;
    let schema = schema_name(test);
    let store = tabir_store::postgres::PostgresStore::connect(&url, Some(&schema)).unwrap();
    Some((Arc::new(store), DropSchema::new(&url, &schema)))
}

/// Call the (synchronous) store from async test code: the PostgreSQL client must not run on
/// an async worker.
pub fn blocking<T>(call: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(call)
}

/// Drops a test's PostgreSQL schema at the end of the test.
pub struct DropSchema(String, String);

impl DropSchema {
    pub fn new(url: &str, schema: &str) -> Self {
        Self(url.to_owned(), schema.to_owned())
    }
}

impl Drop for DropSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.0.clone(), self.1.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(mut client) = postgres::Client::connect(&url, postgres::NoTls) {
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        })
        .join();
    }
}

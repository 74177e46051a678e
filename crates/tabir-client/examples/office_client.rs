//! An office client against a local server: a server on 127.0.0.1 (SQLite in a temporary
//! folder), a custodian who creates a key domain and a device bundle, and the device enrolling
//! and verifying through the SDK, as an integrator's application would.
//!
//! Run: `cargo run -p tabir-client --example office_client` (after `scripts/setup-ort.sh`).
//! Against your own server, skip the set-up and use `OfficeClient::open` with the device's
//! tabir.toml (see the README).

use std::path::Path;
use std::sync::Arc;
use tabir_client::ceremony::{init_domain, issue_key, Issue};
use tabir_client::custody::Custody;
use tabir_client::{AdminClient, ClientConfig, OfficeClient, Passphrase, Transport};
use tabir_proto::{Role, SubjectId};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;
    let passphrase = || Passphrase::new("example passphrase, not for real use".into());

    // Custodian: the custodian's signing key, sealed in a key folder.
    let custody = Custody::new(work.path().join("keys"));
    let (custodian, _) = custody.custodian_key(&passphrase())?;

    // A local server that trusts this custodian.
    let store = tabir_store::sqlite::SqliteStore::open(&work.path().join("server"))?;
    let server = tabir_server::start(
        tabir_server::Startup {
            store: Arc::new(store),
            server_key: tabir_server::load_or_create_server_key(
                &work.path().join("server/server.key"),
            )?,
            master_key: tabir_server::MasterKey::generate(),
            config: Default::default(),
            custodian_key: Some(tabir_proto::hex::encode(
                custodian.verifying_key().as_bytes(),
            )),
            tls: None,
        },
        std::net::TcpListener::bind("127.0.0.1:0")?,
    )
    .await?;
    let url = format!("http://{}", server.address);
    println!("server on {url}");

    // Custodian: create and register a key domain (its secret key split into share pairs and
    // wiped), and issue the device's bundle with its own share.
    let admin = AdminClient::new(Transport::new(&url, custodian, None)?);
    let config = tabir_device_crypto::domain_config(128, tabir_face::DEFAULT_COSINE_THRESHOLD)?;
    let manifest = init_domain(
        &custody,
        &admin,
        "example",
        config,
        tabir_device_crypto::identify_threshold(
            &config,
            tabir_face::DEFAULT_IDENTIFY_COSINE_THRESHOLD,
        )?,
        &passphrase(),
        |_| {},
    )
    .await?;
    println!("key domain example, fingerprint {}", manifest.fingerprint);
    let bundle = work.path().join("device");
    issue_key(
        &custody,
        &admin,
        Issue {
            domain: "example",
            label: "example counter",
            role: Role::Device,
            server: &url,
            out: &bundle,
            custodian_passphrase: &passphrase(),
            bundle_passphrase: &passphrase(),
        },
    )
    .await?;

    // The device: open its bundle and work.
    let face = Arc::new(tabir_face::FacePipeline::load(&Default::default())?);
    let office = OfficeClient::open(
        &ClientConfig::load(Some(&bundle.join("tabir.toml")))?,
        &passphrase(),
        face,
    )?;
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/images");
    let subject = SubjectId::parse("3201014101900001")?;
    let enrolled = office
        .enroll(&subject, std::fs::read(photos.join("obama.jpg"))?)
        .await?;
    println!(
        "enrolled {subject}: {:.0} ms, {} bytes sent",
        enrolled.timings.total_ms, enrolled.bytes.sent
    );
    for photo in ["obama2.jpg", "biden.jpg"] {
        let outcome = office
            .verify(&subject, std::fs::read(photos.join(photo))?)
            .await?;
        println!(
            "verify {photo}: {} in {:.0} ms ({} bytes sent, {} received; report: {:?})",
            outcome.decision.name().replace('_', " "),
            outcome.timings.total_ms,
            outcome.bytes.sent,
            outcome.bytes.received,
            outcome.report
        );
    }
    office.delete(&subject).await?;
    println!("deleted the enrolment of {subject}");
    server.shutdown(std::time::Duration::from_secs(5)).await?;
    Ok(())
}

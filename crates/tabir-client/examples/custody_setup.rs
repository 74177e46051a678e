//! Key custody for a custodian, against a local server: a key domain whose secret key is split
//! into share pairs and wiped (no file holds it), a device bundle and an auditor bundle each
//! with its own decryption share, a revocation (the server deletes its half of the revoked
//! device's pair), and the status an auditor reads: fingerprints, devices with the times
//! their shares were issued and revoked, and where secret files are (never their contents).
//!
//! Run: `cargo run -p tabir-client --example custody_setup`.

use std::sync::Arc;
use tabir_client::ceremony::{init_domain, issue_key, revoke_key, Issue};
use tabir_client::custody::Custody;
use tabir_client::{AdminClient, Passphrase, Transport};
use tabir_proto::Role;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;
    let custodian_passphrase = Passphrase::new("custodian passphrase, example only".into());
    let bundle_passphrase = Passphrase::new("bundle passphrase, example only".into());
    let custody = Custody::new(work.path().join("keys"));
    let (custodian, _) = custody.custodian_key(&custodian_passphrase)?;

    // A local server that trusts this custodian (its master key lives outside its database).
    let store = tabir_store::sqlite::SqliteStore::open(&work.path().join("server"))?;
    let server = tabir_server::start(
        tabir_server::Startup {
            store: Arc::new(store),
            server_key: tabir_server::load_or_create_server_key(
                &work.path().join("server/server.key"),
            )?,
            master_key: tabir_server::MasterKey::load_or_create(
                &work.path().join("server-master.key"),
                Some(&work.path().join("server")),
            )?,
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
    let admin = AdminClient::new(Transport::new(&url, custodian, None)?);

    let config = tabir_device_crypto::domain_config(128, tabir_face::DEFAULT_COSINE_THRESHOLD)?;
    let domain = "jabar-bansos-2026";
    let manifest = init_domain(
        &custody,
        &admin,
        domain,
        config,
        tabir_device_crypto::identify_threshold(
            &config,
            tabir_face::DEFAULT_IDENTIFY_COSINE_THRESHOLD,
        )?,
        &custodian_passphrase,
        |_| {},
    )
    .await?;
    println!(
        "created and registered key domain {} with fingerprint {}",
        manifest.name, manifest.fingerprint
    );

    let mut issued = Vec::new();
    for (label, role, folder) in [
        ("Kantor Desa Sukamaju, loket 1", Role::Device, "counter-1"),
        ("Inspektorat, auditor 1", Role::Auditor, "auditor-1"),
    ] {
        let out = work.path().join("bundles").join(folder);
        let (info, _) = issue_key(
            &custody,
            &admin,
            Issue {
                domain,
                label,
                role,
                server: &url,
                out: &out,
                custodian_passphrase: &custodian_passphrase,
                bundle_passphrase: &bundle_passphrase,
            },
        )
        .await?;
        println!("issued {role:?} key {} with its own share", info.key_id);
        issued.push(info.key_id);
    }
    let revoked = revoke_key(&custody, &admin, domain, &issued[0]).await?;
    println!(
        "revoked {} at {}; the server holds its share half: {}",
        revoked.key_id,
        revoked.revoked_at.unwrap_or_default(),
        revoked.holds_share
    );

    // A wrong passphrase is refused with a clear error.
    let share = custody
        .domain_dir(domain)
        .join(tabir_client::custody::CUSTODIAN_SHARE_FILE);
    let wrong = tabir_client::sealed::read_sealed(
        &share,
        tabir_client::custody::PURPOSE_CUSTODIAN_SHARE,
        &Passphrase::new("not the passphrase".into()),
    );
    println!(
        "opening the custodian's share with a wrong passphrase: {}",
        wrong.err().map(|e| e.to_string()).unwrap_or_default()
    );

    println!("{}", serde_json::to_string_pretty(&custody.status()?)?);
    server.shutdown(std::time::Duration::from_secs(5)).await?;
    Ok(())
}

//! Key custody for a custodian: a key domain whose secret key is sealed at rest (Argon2id +
//! XChaCha20-Poly1305, mode 0600), a device bundle and an auditor bundle, and the status an
//! auditor reads (fingerprints, devices, where secret files are; never their contents).
//!
//! Run: `cargo run -p tabir-client --example custody_setup`.

use tabir_client::custody::Custody;
use tabir_client::Passphrase;
use tabir_crypto::params::DomainConfig;
use tabir_proto::Role;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;
    let custodian_passphrase = Passphrase::new("custodian passphrase, example only".into());
    let device_passphrase = Passphrase::new("device passphrase, example only".into());
    let custody = Custody::new(work.path().join("keys"));
    custody.custodian_key(&custodian_passphrase)?;
    let config = DomainConfig::with_cosine_threshold(128, tabir_face::DEFAULT_COSINE_THRESHOLD)?;
    let manifest = custody.create_domain("jabar-bansos-2026", config, &custodian_passphrase)?;
    println!(
        "created key domain {} with fingerprint {}",
        manifest.name, manifest.fingerprint
    );

    let server = "https://tabir.example.invalid:8443";
    let device = custody.issue_bundle(
        "jabar-bansos-2026",
        Role::Device,
        server,
        &work.path().join("bundles/counter-1"),
        &custodian_passphrase,
        &device_passphrase,
    )?;
    let auditor = custody.issue_bundle(
        "jabar-bansos-2026",
        Role::Auditor,
        server,
        &work.path().join("bundles/auditor"),
        &custodian_passphrase,
        &device_passphrase,
    )?;
    println!("device key {}", tabir_proto::signing::key_id(&device));
    println!("auditor key {}", tabir_proto::signing::key_id(&auditor));
    // (Registering the domain and the keys needs a server: `tabir custody register` and
    // `tabir custody device add` do both steps; see the office_client example.)

    // A wrong passphrase is refused with a clear error.
    let secret = custody
        .domain_dir("jabar-bansos-2026")
        .join(tabir_client::custody::DOMAIN_SECRET_FILE);
    let wrong = tabir_client::custody::read_domain_secret(
        &secret,
        &Passphrase::new("not the passphrase".into()),
    );
    println!(
        "opening with a wrong passphrase: {}",
        wrong.err().map(|e| e.to_string()).unwrap_or_default()
    );

    println!("{}", serde_json::to_string_pretty(&custody.status()?)?);
    Ok(())
}

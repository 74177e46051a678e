//! Fill a key domain with N synthetic faces through a device bundle, for load tests of 1:N
//! searches (`tabir identify` against a gallery the size of a region). Each face is a random
//! unit vector encrypted with the domain's public key and enrolled over the SDK, 16 requests
//! in flight; NIKs are synthetic (province 32, serials from 0001).
//!
//! Run: `TABIR_PASSPHRASE=... cargo run --release -p tabir-client --example enrol_synthetic --
//! DEVICE/tabir.toml 20000`. Never against a production domain: the faces are noise.

use rand::SeedableRng;
use std::sync::Arc;
use std::time::Instant;
use tabir_client::{ClientConfig, OfficeClient, Passphrase};
use tabir_proto::SubjectId;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(config), Some(count)) = (args.next(), args.next()) else {
        return Err("usage: enrol_synthetic DEVICE/tabir.toml COUNT".into());
    };
    let count: usize = count.parse()?;
    let passphrase = Passphrase::new(std::env::var("TABIR_PASSPHRASE")?);
    let config = ClientConfig::load(Some(std::path::Path::new(&config)))?;
    let client = Arc::new(OfficeClient::open_without_face(&config, &passphrase)?);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
    let started = Instant::now();
    let mut in_flight = Vec::new();
    for i in 0..count {
        let nik = SubjectId::parse(&format!(
            "320101{:02}{:02}90{:04}",
            1 + (i / 9999) % 28,
            1 + (i / (9999 * 28)) % 12,
            1 + i % 9999
        ))?;
        let face = tabir_device_crypto::quantize::random_unit_vector(&mut rng, 128);
        let client = Arc::clone(&client);
        in_flight.push(tokio::spawn(async move {
            client.enroll_embedding(&nik, &face).await.map(drop)
        }));
        if in_flight.len() == 16 {
            for task in in_flight.drain(..) {
                task.await??;
            }
        }
        if (i + 1) % 1000 == 0 {
            eprintln!(
                "enrolled {} of {count} ({:.0} s)",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    for task in in_flight {
        task.await??;
    }
    println!(
        "enrolled {count} synthetic faces in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

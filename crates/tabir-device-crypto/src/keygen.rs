//! The custodian's key ceremony: a key domain's keys generated once, the secret split into
//! shares, and the secret wiped. After [`generate_key_domain`] returns, the domain's secret key
//! S exists nowhere: the custodian holds S1_ref, the server S2_ref (S = S1_ref + S2_ref mod
//! 2^10), and neither half alone decrypts anything.

use crate::shares::{random_share, CustodianShare};
use tabir_crypto::error::Result;
use tabir_crypto::evaluation_keys::{EvaluationKeys, SeededKeyswitchKey};
use tabir_crypto::params::{DomainConfig, KeyswitchKind};
use tabir_crypto::shares::{ServerShare, ShareValues};
use tfhe::core_crypto::prelude::*;
use zeroize::{Zeroize, Zeroizing};

/// What the ceremony hands out. The evaluation keys (with the public key) are public; the two
/// shares are secret and go to different parties: `custodian_share` sealed in the custodian's
/// key folder, `server_share` uploaded with the evaluation keys and sealed by the server.
pub struct KeyDomain {
    pub evaluation_keys: EvaluationKeys,
    pub custodian_share: CustodianShare,
    pub server_share: ServerShare,
}

impl std::fmt::Debug for KeyDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyDomain(domain {}, <shares>)",
            self.server_share.fingerprint()
        )
    }
}

/// The whole secret of a domain: the binary GLWE key S and the small LWE key s. It lives only
/// inside key generation (and, in this crate's own tests, the noise measurements) and is wiped
/// on drop.
pub(crate) struct DomainSecrets {
    pub(crate) glwe: GlweSecretKeyOwned<u64>,
    pub(crate) lwe: LweSecretKeyOwned<u64>,
}

impl Drop for DomainSecrets {
    fn drop(&mut self) {
        self.glwe.as_mut().zeroize();
        self.lwe.as_mut().zeroize();
    }
}

/// Generate a key domain: evaluation keys, public key, and the reference share pair. The
/// secret keys are wiped before this returns. About 1.5 s on two cores (the seeded
/// bootstrapping key dominates).
pub fn generate_key_domain(config: DomainConfig) -> Result<KeyDomain> {
    generate_with_secrets(config).map(|(domain, _secrets_wiped_on_drop)| domain)
}

pub(crate) fn generate_with_secrets(config: DomainConfig) -> Result<(KeyDomain, DomainSecrets)> {
    config.validate()?;
    let p = config.params.lattice();
    let mut seeder = new_seeder();
    let seeder = seeder.as_mut();
    let mut secret_generator = SecretRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed());

    let secrets = DomainSecrets {
        glwe: allocate_and_generate_new_binary_glwe_secret_key(
            p.glwe_dimension,
            p.polynomial_size,
            &mut secret_generator,
        ),
        lwe: allocate_and_generate_new_binary_lwe_secret_key(
            p.lwe_dimension,
            &mut secret_generator,
        ),
    };

    let mut bootstrap_key = SeededLweBootstrapKey::new(
        0u64,
        p.glwe_size(),
        p.polynomial_size,
        p.pbs_base_log,
        p.pbs_level,
        p.lwe_dimension,
        seeder.seed().into(),
        p.ciphertext_modulus,
    );
    par_generate_seeded_lwe_bootstrap_key(
        &secrets.lwe,
        &secrets.glwe,
        &mut bootstrap_key,
        p.glwe_noise,
        seeder,
    );

    let big_key = secrets.glwe.as_lwe_secret_key();
    let keyswitch_key = match p.keyswitch {
        KeyswitchKind::Native64 { noise } => {
            let mut key = SeededLweKeyswitchKey::new(
                0u64,
                p.ks_base_log,
                p.ks_level,
                p.big_lwe_dimension(),
                p.lwe_dimension,
                seeder.seed().into(),
                p.ciphertext_modulus,
            );
            generate_seeded_lwe_keyswitch_key(&big_key, &secrets.lwe, &mut key, noise, seeder);
            SeededKeyswitchKey::Ks64(key)
        }
        KeyswitchKind::Native32 { noise } => {
            // The same binary small key, read as 32-bit words.
            let small_key = Zeroizing::new(
                secrets
                    .lwe
                    .as_ref()
                    .iter()
                    .map(|&bit| bit as u32)
                    .collect::<Vec<u32>>(),
            );
            let small_key = LweSecretKey::from_container(small_key.as_slice());
            let mut key = SeededLweKeyswitchKey::new(
                0u32,
                p.ks_base_log,
                p.ks_level,
                p.big_lwe_dimension(),
                p.lwe_dimension,
                seeder.seed().into(),
                CiphertextModulus::new_native(),
            );
            generate_seeded_lwe_keyswitch_key(&big_key, &small_key, &mut key, noise, seeder);
            SeededKeyswitchKey::Ks32(key)
        }
    };

    // The public key (A, B = A S + E) is a seeded GLWE encryption of zero with the noise of
    // tfhe's vetted public-key encryption set for this key size.
    let mut public_key = SeededGlweCiphertext::new(
        0u64,
        p.glwe_size(),
        p.polynomial_size,
        seeder.seed().into(),
        p.ciphertext_modulus,
    );
    encrypt_seeded_glwe_ciphertext(
        &secrets.glwe,
        &mut public_key,
        &PlaintextList::new(0u64, PlaintextCount(p.polynomial_size.0)),
        p.public_key_noise,
        seeder,
    );

    let evaluation_keys =
        EvaluationKeys::from_parts(config, bootstrap_key, keyswitch_key, public_key)?;
    let fingerprint = evaluation_keys.fingerprint();

    // S = S1_ref + S2_ref (mod 2^10), S1_ref uniform.
    let key_mod_share = ShareValues::from_values(
        fingerprint,
        Zeroizing::new(secrets.glwe.as_ref().iter().map(|&s| s as u16).collect()),
        &config,
    )?;
    let custodian_values = random_share(fingerprint, &config)?;
    let server_values = key_mod_share.minus(&custodian_values)?;
    drop(key_mod_share);

    Ok((
        KeyDomain {
            evaluation_keys,
            custodian_share: CustodianShare::new(custodian_values),
            server_share: ServerShare::new(server_values),
        },
        secrets,
    ))
}

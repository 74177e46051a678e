//! The device side: key generation, template and probe encryption, result decryption.
//! Compiled only with the `client` feature; the server builds without it.

use crate::ciphertexts::{EncryptedBit, IdentifyResult, Probe, Template};
use crate::error::{CryptoError, Result};
use crate::evaluation_keys::EvaluationKeys;
use crate::fingerprint::KeyFingerprint;
use crate::params::{DomainConfig, RESULT_MODULUS_LOG};
use crate::quantize::{quantise, QuantisedEmbedding};
use serde::{Deserialize, Serialize};
use std::fmt;
use tfhe::core_crypto::algorithms::polynomial_algorithms::polynomial_wrapping_add_mul_assign;
use tfhe::core_crypto::prelude::*;
use zeroize::{Zeroize, Zeroizing};

/// The outcome of one decision, as the device reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Match,
    NoMatch,
}

impl Decision {
    pub fn is_match(self) -> bool {
        self == Decision::Match
    }
}

/// The decrypted answer to an identification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentifyDecision {
    pub any_match: Decision,
    /// One decision per gallery entry, in gallery order; empty when the server withheld them.
    pub candidates: Vec<Decision>,
}

/// The secret key of a key domain: the GLWE secret key (which, read as an LWE key, also
/// decrypts results) and the small LWE key. Wiped on drop; Debug shows no content; not
/// serializable except through [`ClientKey::export_secret`].
pub struct ClientKey {
    config: DomainConfig,
    fingerprint: KeyFingerprint,
    glwe_secret: GlweSecretKeyOwned<u64>,
    lwe_secret: LweSecretKeyOwned<u64>,
}

impl Drop for ClientKey {
    fn drop(&mut self) {
        self.glwe_secret.as_mut().zeroize();
        self.lwe_secret.as_mut().zeroize();
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientKey(domain {}, <secret>)", self.fingerprint)
    }
}

/// Exported secret key bytes: wiped on drop, no Debug content. Seal them before storing.
pub struct ExportedSecret(Zeroizing<Vec<u8>>);

impl ExportedSecret {
    /// The raw bytes, for sealing. Do not log or store them unsealed.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ExportedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExportedSecret({} bytes, <secret>)", self.0.len())
    }
}

/// The export format of a client key. Versioned by its first field.
#[derive(Serialize, Deserialize, Zeroize)]
#[zeroize(drop)]
struct SecretExport {
    format_version: u16,
    #[zeroize(skip)]
    config: DomainConfig,
    fingerprint: [u8; 32],
    glwe_secret: Vec<u64>,
    lwe_secret: Vec<u64>,
}

const SECRET_EXPORT_VERSION: u16 = 1;
const SECRET_EXPORT_LIMIT: u64 = 64 * 1024;

/// Generate a fresh key domain: the secret client key and the public evaluation keys.
/// Takes about 1.5 s on two cores (the seeded bootstrapping key dominates).
pub fn generate_key_domain(config: DomainConfig) -> Result<(ClientKey, EvaluationKeys)> {
    config.validate()?;
    let p = config.params.lattice();
    let mut seeder = new_seeder();
    let seeder = seeder.as_mut();
    let mut secret_generator = SecretRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed());

    let glwe_secret = allocate_and_generate_new_binary_glwe_secret_key(
        p.glwe_dimension,
        p.polynomial_size,
        &mut secret_generator,
    );
    let lwe_secret =
        allocate_and_generate_new_binary_lwe_secret_key(p.lwe_dimension, &mut secret_generator);

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
        &lwe_secret,
        &glwe_secret,
        &mut bootstrap_key,
        p.glwe_noise,
        seeder,
    );

    let mut keyswitch_key = SeededLweKeyswitchKey::new(
        0u64,
        p.ks_base_log,
        p.ks_level,
        p.big_lwe_dimension(),
        p.lwe_dimension,
        seeder.seed().into(),
        p.ciphertext_modulus,
    );
    generate_seeded_lwe_keyswitch_key(
        &glwe_secret.as_lwe_secret_key(),
        &lwe_secret,
        &mut keyswitch_key,
        p.lwe_noise,
        seeder,
    );

    let evaluation_keys = EvaluationKeys {
        config,
        bootstrap_key,
        keyswitch_key,
    };
    let client_key = ClientKey {
        config,
        fingerprint: evaluation_keys.fingerprint(),
        glwe_secret,
        lwe_secret,
    };
    Ok((client_key, evaluation_keys))
}

impl ClientKey {
    pub fn config(&self) -> &DomainConfig {
        &self.config
    }

    /// Fingerprint of the evaluation keys generated with this key.
    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    /// Encrypt an enrolled template from an L2-normalised embedding.
    pub fn encrypt_template(&self, embedding: &[f32]) -> Result<Template> {
        self.encrypt_template_quantised(&quantise(embedding, &self.config)?)
    }

    /// Encrypt a probe from an L2-normalised embedding.
    pub fn encrypt_probe(&self, embedding: &[f32]) -> Result<Probe> {
        self.encrypt_probe_quantised(&quantise(embedding, &self.config)?)
    }

    /// Template: seeded GLWE of Delta * T(X), T(X) = sum t_i X^i.
    pub fn encrypt_template_quantised(&self, template: &QuantisedEmbedding) -> Result<Template> {
        self.check_dim(template)?;
        let p = self.config.params.lattice();
        let delta_log = self.config.delta_log()?;
        let mut plaintext = Zeroizing::new(vec![0u64; p.polynomial_size.0]);
        for (slot, &t) in plaintext.iter_mut().zip(template.coordinates()) {
            *slot = (i64::from(t) as u64) << delta_log;
        }
        let mut seeder = new_seeder();
        let seeder = seeder.as_mut();
        let mut glwe = SeededGlweCiphertext::new(
            0u64,
            p.glwe_size(),
            p.polynomial_size,
            seeder.seed().into(),
            p.ciphertext_modulus,
        );
        encrypt_seeded_glwe_ciphertext(
            &self.glwe_secret,
            &mut glwe,
            &PlaintextList::from_container(plaintext.as_slice()),
            p.glwe_noise,
            seeder,
        );
        Ok(Template {
            fingerprint: self.fingerprint,
            glwe,
        })
    }

    /// Probe: seeded GGSW of the polynomial P(X) = p_0 - sum_{i>=1} p_i X^(N-i).
    ///
    /// tfhe only encrypts constants in a GGSW, so this starts from its seeded GGSW encryption
    /// of 0 (which keeps tfhe's seed forking, so the server's decompression regenerates the
    /// same masks) and adds the plaintext rows to the bodies: -(P * S_i) * q/B^j for mask row
    /// i and P * q/B^j for the last row, exactly where tfhe would put a constant message.
    pub fn encrypt_probe_quantised(&self, probe: &QuantisedEmbedding) -> Result<Probe> {
        self.check_dim(probe)?;
        let p = self.config.params.lattice();
        let n = p.polynomial_size.0;
        let mut message = Polynomial::new(0u64, p.polynomial_size);
        for (i, &coordinate) in probe.coordinates().iter().enumerate() {
            let value = i64::from(coordinate) as u64;
            if i == 0 {
                message.as_mut()[0] = value;
            } else {
                message.as_mut()[n - i] = value.wrapping_neg();
            }
        }

        let mut seeder = new_seeder();
        let seeder = seeder.as_mut();
        let mut ggsw = SeededGgswCiphertext::new(
            0u64,
            p.glwe_size(),
            p.polynomial_size,
            p.pbs_base_log,
            p.pbs_level,
            seeder.seed().into(),
            p.ciphertext_modulus,
        );
        encrypt_constant_seeded_ggsw_ciphertext(
            &self.glwe_secret,
            &mut ggsw,
            Cleartext(0u64),
            p.glwe_noise,
            seeder,
        );

        let level_count = p.pbs_level.0;
        let last_row = p.glwe_dimension.0;
        let secret_polys = self.glwe_secret.as_polynomial_list();
        let mut product = Polynomial::new(0u64, p.polynomial_size);
        for (matrix_index, mut level_matrix) in ggsw.iter_mut().enumerate() {
            // tfhe stores level matrices from the highest level (smallest factor) down.
            let level = level_count - matrix_index;
            let shift = 64 - p.pbs_base_log.0 * level;
            for (row, mut row_glwe) in level_matrix
                .as_mut_seeded_glwe_list()
                .iter_mut()
                .enumerate()
            {
                let mut body = row_glwe.get_mut_body();
                let body = body.as_mut();
                if row < last_row {
                    product.as_mut().fill(0);
                    polynomial_wrapping_add_mul_assign(
                        &mut product,
                        &message,
                        &secret_polys.get(row),
                    );
                    for (b, m) in body.iter_mut().zip(product.as_ref()) {
                        *b = b.wrapping_sub(m << shift);
                    }
                } else {
                    for (b, m) in body.iter_mut().zip(message.as_ref()) {
                        *b = b.wrapping_add(m << shift);
                    }
                }
            }
        }
        product.as_mut().zeroize();
        message.as_mut().zeroize();
        Ok(Probe {
            fingerprint: self.fingerprint,
            ggsw,
        })
    }

    /// Decrypt one encrypted decision bit.
    pub fn decrypt(&self, bit: &EncryptedBit) -> Result<Decision> {
        crate::ciphertexts::expect_domain("encrypted bit", self.fingerprint, bit.fingerprint)?;
        Ok(self.decrypt_compressed(&bit.lwe))
    }

    /// Decrypt an identification result.
    pub fn decrypt_identify(&self, result: &IdentifyResult) -> Result<IdentifyDecision> {
        crate::ciphertexts::expect_domain("identify result", self.fingerprint, result.fingerprint)?;
        Ok(IdentifyDecision {
            any_match: self.decrypt_compressed(&result.any_match),
            candidates: result
                .candidates
                .iter()
                .map(|bit| self.decrypt_compressed(bit))
                .collect(),
        })
    }

    /// The result encrypts 0 (no match) or q/4 (match) at modulus 2^10: decide by the nearer.
    fn decrypt_compressed(&self, lwe: &CompressedModulusSwitchedLweCiphertext<u64>) -> Decision {
        let switched = lwe.extract();
        let modulus_mask = (1usize << RESULT_MODULUS_LOG) - 1;
        let key = self.glwe_secret.as_lwe_secret_key();
        let mask_dot_key = switched
            .mask()
            .zip(key.as_ref())
            .fold(0usize, |acc, (a, &s)| {
                acc.wrapping_add(a.wrapping_mul(s as usize))
            });
        let phase = switched.body().wrapping_sub(mask_dot_key) & modulus_mask;
        let quarter = 1usize << (RESULT_MODULUS_LOG - 2);
        // Match iff the phase is nearer q/4 than 0: it lies in [q/8, 5q/8).
        if (quarter / 2..quarter / 2 + 2 * quarter).contains(&phase) {
            Decision::Match
        } else {
            Decision::NoMatch
        }
    }

    /// The secret keys, for the noise measurements in the tests only.
    #[cfg(test)]
    pub(crate) fn secret_keys(&self) -> (&GlweSecretKeyOwned<u64>, &LweSecretKeyOwned<u64>) {
        (&self.glwe_secret, &self.lwe_secret)
    }

    fn check_dim(&self, embedding: &QuantisedEmbedding) -> Result<()> {
        let expected = self.config.dim as usize;
        if embedding.dim() != expected {
            return Err(CryptoError::DimensionMismatch {
                expected,
                got: embedding.dim(),
            });
        }
        Ok(())
    }

    /// Export the secret key as bytes, for sealing at rest. The caller owns the secret now.
    pub fn export_secret(&self) -> ExportedSecret {
        let export = SecretExport {
            format_version: SECRET_EXPORT_VERSION,
            config: self.config,
            fingerprint: *self.fingerprint.as_bytes(),
            glwe_secret: self.glwe_secret.as_ref().to_vec(),
            lwe_secret: self.lwe_secret.as_ref().to_vec(),
        };
        // Allocate the exact size up front: a growing Vec would leave copies of the secret in
        // freed memory that nothing wipes.
        let size = bincode::serialized_size(&export).unwrap_or(0) as usize;
        let mut bytes = Zeroizing::new(Vec::with_capacity(size));
        // Writing plain vectors and integers into a Vec cannot fail.
        let _ = bincode::serialize_into(&mut *bytes, &export);
        ExportedSecret(bytes)
    }

    /// Import a key exported by [`ClientKey::export_secret`], checking its shape.
    pub fn import_secret(bytes: &[u8]) -> Result<Self> {
        use bincode::Options;
        let malformed = |detail: &str| CryptoError::Malformed {
            kind: "secret key",
            detail: detail.to_owned(),
        };
        if bytes.len() as u64 > SECRET_EXPORT_LIMIT {
            return Err(CryptoError::TooLarge {
                kind: "secret key",
                got: bytes.len(),
                limit: SECRET_EXPORT_LIMIT,
            });
        }
        let export: SecretExport = bincode::DefaultOptions::new()
            .with_fixint_encoding()
            .with_limit(SECRET_EXPORT_LIMIT)
            .deserialize(bytes)
            .map_err(|_| malformed("cannot be decoded"))?;
        if export.format_version != SECRET_EXPORT_VERSION {
            return Err(malformed("unknown format version"));
        }
        export.config.validate()?;
        let p = export.config.params.lattice();
        let binary = |v: &[u64]| v.iter().all(|&x| x <= 1);
        if export.glwe_secret.len() != p.big_lwe_dimension().0
            || export.lwe_secret.len() != p.lwe_dimension.0
            || !binary(&export.glwe_secret)
            || !binary(&export.lwe_secret)
        {
            return Err(malformed("key sizes do not match the parameter set"));
        }
        Ok(Self {
            config: export.config,
            fingerprint: KeyFingerprint::from_bytes(export.fingerprint),
            glwe_secret: GlweSecretKey::from_container(
                export.glwe_secret.clone(),
                p.polynomial_size,
            ),
            lwe_secret: LweSecretKey::from_container(export.lwe_secret.clone()),
        })
    }
}

//! Public-key encryption of templates and probes on the office device. The device holds the
//! domain's public key (A, B = A S + E), never S: with u a fresh binary polynomial and e1, e2
//! fresh noise, Enc(M) = (A u + e1, B u + e2 + M), whose phase is E u + e2 - e1 S + M.
//!
//! - Template: Enc(Delta T(X)), each coefficient rounded to the 23 bits the server's external
//!   product keeps.
//! - Probe: a GGSW of P(X) built row by row from encryptions of zero: P q/B^j is added to the
//!   mask polynomial i of mask row i (where tfhe's secret-key encryption would put
//!   -(P S_i) q/B^j into the body) and to the body of the last row. Every row's phase is what a
//!   secret-key GGSW encryption gives, so the external product is unchanged.

use crate::quantize::{quantise, QuantisedEmbedding};
use tabir_crypto::ciphertexts::{Probe, Template};
use tabir_crypto::error::{CryptoError, Result};
use tabir_crypto::evaluation_keys::DomainPublicKey;
use tabir_crypto::fingerprint::KeyFingerprint;
use tabir_crypto::params::{DomainConfig, LatticeParams, PROBE_BITS, TEMPLATE_BITS};
use tfhe::core_crypto::algorithms::polynomial_algorithms::polynomial_wrapping_add_mul_assign;
use tfhe::core_crypto::commons::math::random::RandomGenerator;
use tfhe::core_crypto::prelude::*;
use zeroize::Zeroizing;

/// Encrypts under one domain's public key. Holds no secret.
pub struct Encryptor {
    config: DomainConfig,
    fingerprint: KeyFingerprint,
    lattice: LatticeParams,
    delta_log: u32,
    /// The public key's mask polynomials A_1..A_k and body B.
    public_key: GlweCiphertextOwned<u64>,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encryptor(domain {})", self.fingerprint)
    }
}

/// One GLWE row under construction: k mask polynomials then the body, N coefficients each.
type Row = Zeroizing<Vec<u64>>;

impl Encryptor {
    pub fn new(public_key: &DomainPublicKey) -> Result<Self> {
        let config = *public_key.config();
        config.validate()?;
        Ok(Self {
            config,
            fingerprint: public_key.fingerprint(),
            lattice: config.params.lattice(),
            delta_log: config.delta_log()?,
            public_key: public_key.decompressed(),
        })
    }

    pub fn config(&self) -> &DomainConfig {
        &self.config
    }

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

    /// Template: Enc(Delta T(X)), T(X) = sum t_i X^i, rounded to [`TEMPLATE_BITS`] bits.
    pub fn encrypt_template_quantised(&self, template: &QuantisedEmbedding) -> Result<Template> {
        self.check_dim(template)?;
        let n = self.lattice.polynomial_size.0;
        let mut message = Zeroizing::new(vec![0u64; n]);
        for (slot, &t) in message.iter_mut().zip(template.coordinates()) {
            *slot = (i64::from(t) as u64) << self.delta_log;
        }
        let mut rng = fresh_generator();
        let mut row = self.encrypt_zero(&mut rng);
        let body = self.lattice.glwe_dimension.0 * n;
        add_assign(&mut row[body..], &message);
        Template::from_rounded(
            self.fingerprint,
            round_to_top_bits(&row, TEMPLATE_BITS),
            &self.config,
        )
    }

    /// Probe: GGSW of P(X) = p_0 - sum_{i>=1} p_i X^(N-i), rounded to [`PROBE_BITS`] bits, in
    /// tfhe's GGSW layout (level matrices from the highest level down, then rows).
    pub fn encrypt_probe_quantised(&self, probe: &QuantisedEmbedding) -> Result<Probe> {
        self.check_dim(probe)?;
        let p = &self.lattice;
        let n = p.polynomial_size.0;
        let mut message = Zeroizing::new(vec![0u64; n]);
        for (i, &coordinate) in probe.coordinates().iter().enumerate() {
            let value = i64::from(coordinate) as u64;
            if i == 0 {
                message[0] = value;
            } else {
                message[n - i] = value.wrapping_neg();
            }
        }
        let rows = p.glwe_size().0;
        let level_count = p.pbs_level.0;
        let mut rng = fresh_generator();
        let mut coefficients = Vec::with_capacity(level_count * rows * rows * n);
        let mut scaled = Zeroizing::new(vec![0u64; n]);
        for matrix_index in 0..level_count {
            let level = level_count - matrix_index;
            let shift = 64 - p.pbs_base_log.0 * level;
            for (slot, &m) in scaled.iter_mut().zip(message.iter()) {
                *slot = m << shift;
            }
            for row_index in 0..rows {
                let mut row = self.encrypt_zero(&mut rng);
                // Row i < k: the message goes into mask polynomial i; the last row: the body.
                let target = row_index * n;
                add_assign(&mut row[target..target + n], &scaled);
                coefficients.extend(round_to_top_bits(&row, PROBE_BITS));
            }
        }
        Probe::from_rounded(self.fingerprint, coefficients, &self.config)
    }

    /// (A_1 u + e1_1, ..., A_k u + e1_k, B u + e2): a fresh public-key encryption of zero.
    fn encrypt_zero(&self, rng: &mut RandomGenerator<DefaultRandomGenerator>) -> Row {
        let p = &self.lattice;
        let size = p.polynomial_size;
        let n = size.0;
        let mut u = Zeroizing::new(vec![0u64; n]);
        rng.fill_slice_with_random_uniform_binary(&mut u);
        let u = Polynomial::from_container(u.as_slice());
        let mut row = Zeroizing::new(vec![0u64; p.glwe_size().0 * n]);
        // Noise first (e1 in every mask polynomial, e2 in the body), then add A_i u and B u.
        rng.fill_slice_with_random_from_distribution(&mut row, p.public_key_noise);
        for (out, key_poly) in row
            .chunks_exact_mut(n)
            .zip(self.public_key.as_polynomial_list().iter())
        {
            let mut out = Polynomial::from_container(out);
            polynomial_wrapping_add_mul_assign(&mut out, &key_poly, &u);
        }
        row
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
}

/// A fresh CSPRNG seeded from the operating system, for one encryption.
fn fresh_generator() -> RandomGenerator<DefaultRandomGenerator> {
    let mut seeder = new_seeder();
    RandomGenerator::new(seeder.seed())
}

fn add_assign(target: &mut [u64], values: &[u64]) {
    for (t, v) in target.iter_mut().zip(values) {
        *t = t.wrapping_add(*v);
    }
}

/// Each coefficient rounded to its top `bits` bits (modulo 2^64), as a `bits`-bit number.
fn round_to_top_bits(values: &[u64], bits: u32) -> Vec<u64> {
    let drop = 64 - bits;
    values
        .iter()
        .map(|&c| c.wrapping_add(1u64 << (drop - 1)) >> drop)
        .collect()
}

//! The server side: evaluation keys prepared for use, and the matcher.
//!
//! Per decision: one external product GGSW(P) x GLWE(Delta T) -> GLWE(Delta P T), whose
//! coefficient j*d holds Delta * S_j; sample extraction; subtraction of (theta - 1/2) Delta;
//! one keyswitch to the small key; one sign bootstrap; a modulus switch to 2^10. Nothing here
//! can decrypt: there is no key in this crate; key generation, encryption and decryption live
//! in `tabir-device-crypto`, which the server does not depend on.

use crate::ciphertexts::{EscrowedBit, Probe, ResultLwe, ShardBit, Template};
use crate::error::{CryptoError, Result};
use crate::evaluation_keys::{EvaluationKeys, KeyParts, KeyswitchKey};
use crate::fingerprint::KeyFingerprint;
use crate::params::{
    DomainConfig, LatticeParams, Threshold, MODULUS_BITS, PROBE_BITS, RESULT_MODULUS_LOG,
    TEMPLATE_BITS,
};
use rayon::prelude::*;
use std::fmt;
use tfhe::core_crypto::algorithms::polynomial_algorithms::polynomial_wrapping_monic_monomial_mul_assign;
use tfhe::core_crypto::fft_impl::fft64::crypto::bootstrap::batch_blind_rotate_assign_scratch;
use tfhe::core_crypto::fft_impl::fft64::ABox;
use tfhe::core_crypto::prelude::*;

type FourierGgswCiphertextOwned = FourierGgswCiphertext<ABox<[c64]>>;

/// A decision bit inside the server encrypts 0 or BIT_UNIT = q/64. Up to 31 such bits can be
/// summed without reaching q/2, which is what the "any match" reduction needs.
const BIT_UNIT_LOG: u32 = 58;
/// Bits summed per "any match" bootstrap: 31 * q/64 - q/128 stays below q/2 (margin 3q/128),
/// and no sum lies within q/128 of the boundary at 0 (see docs/crypto.md for the failure
/// probability with the measured noise).
pub const ANY_MATCH_GROUP: usize = 31;
/// Results leave at 0 or q/4: multiply the internal bit by 16.
const RESULT_SCALE: u64 = 1 << (62 - BIT_UNIT_LOG);
/// Blind rotations run together in batches of this many (tfhe's batched blind rotation shares
/// the bootstrapping key's passes over memory between them; 16 measured fastest here).
const ROTATION_BATCH: usize = 16;

/// Evaluation keys decompressed and converted for fast use. About 115 MiB per key domain.
pub struct ServerKeys {
    config: DomainConfig,
    fingerprint: KeyFingerprint,
    lattice: LatticeParams,
    delta_log: u32,
    bootstrap_key: FourierLweBootstrapKeyOwned,
    keyswitch_key: KeyswitchKey,
    /// Trivial GLWE with q/128 (half a bit unit) in every coefficient: blind-rotating it is the
    /// sign function.
    sign_accumulator: GlweCiphertextOwned<u64>,
}

impl fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerKeys(domain {})", self.fingerprint)
    }
}

/// Templates per shard when a caller does not choose: about 12 MiB of stored templates and
/// 16 MiB of decoded ones, a few seconds of work on two cores.
pub const DEFAULT_SHARD_TEMPLATES: usize = 1024;

/// A search's probe, checked and in the Fourier domain (about 64 KiB), shared by its shards.
pub struct SearchProbe {
    fingerprint: KeyFingerprint,
    ggsw: FourierGgswCiphertextOwned,
    /// (theta - 1/2) Delta for the search's threshold.
    offset: u64,
}

impl fmt::Debug for SearchProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SearchProbe(domain {}, <ciphertext>)", self.fingerprint)
    }
}

/// Whether an identification returns one bit per candidate besides the any-match bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CandidateBits {
    Withhold,
    Reveal,
}

/// The encrypted outcome of an identification, under the whole domain key (escrow form).
pub struct Identification {
    /// Does the probe match any template of the gallery?
    pub any_match: EscrowedBit,
    /// One bit per template in gallery order, when [`CandidateBits::Reveal`] was asked
    /// (benchmarks and tests; the server's routes withhold them).
    pub candidates: Vec<EscrowedBit>,
}

/// Per-thread working memory for external products and bootstraps.
struct Scratch {
    fft: Fft,
    buffers: ComputationBuffers,
    polynomial_size: PolynomialSize,
}

impl Scratch {
    fn new(p: &LatticeParams) -> Self {
        let fft = Fft::new(p.polynomial_size);
        let mut buffers = ComputationBuffers::new();
        let view = fft.as_view();
        let rotate = blind_rotate_assign_mem_optimized_requirement::<u64>(
            p.glwe_size(),
            p.polynomial_size,
            view,
        )
        .unaligned_bytes_required();
        let product = add_external_product_assign_mem_optimized_requirement::<u64>(
            p.glwe_size(),
            p.polynomial_size,
            view,
        )
        .unaligned_bytes_required();
        let convert = convert_standard_ggsw_ciphertext_to_fourier_mem_optimized_requirement(view)
            .unaligned_bytes_required();
        let batch = batch_blind_rotate_assign_scratch::<u64>(
            p.glwe_size(),
            p.polynomial_size,
            CiphertextCount(ROTATION_BATCH),
            view,
        )
        .unaligned_bytes_required();
        buffers.resize(rotate.max(product).max(convert).max(batch));
        Self {
            fft,
            buffers,
            polynomial_size: p.polynomial_size,
        }
    }
}

impl ServerKeys {
    /// Decompress the seeded keys and convert the bootstrapping key to the Fourier domain
    /// (about a second on two cores). Do it once per domain and keep the result.
    pub fn prepare(keys: EvaluationKeys) -> Result<Self> {
        let fingerprint = keys.fingerprint();
        let KeyParts {
            config,
            bootstrap_key,
            keyswitch_key,
        } = keys.into_parts();
        config.validate()?;
        let lattice = config.params.lattice();
        let delta_log = config.delta_log()?;

        let standard_bsk = bootstrap_key.par_decompress_into_lwe_bootstrap_key();
        let mut fourier_bsk = FourierLweBootstrapKey::new(
            standard_bsk.input_lwe_dimension(),
            standard_bsk.glwe_size(),
            standard_bsk.polynomial_size(),
            standard_bsk.decomposition_base_log(),
            standard_bsk.decomposition_level_count(),
        );
        par_convert_standard_lwe_bootstrap_key_to_fourier(&standard_bsk, &mut fourier_bsk);
        drop(standard_bsk);

        let half_bit = 1u64 << (BIT_UNIT_LOG - 1);
        let sign_accumulator = GlweCiphertext::from_container(
            {
                let mut data = vec![0u64; lattice.glwe_size().0 * lattice.polynomial_size.0];
                let body_start = lattice.glwe_dimension.0 * lattice.polynomial_size.0;
                data[body_start..].fill(half_bit);
                data
            },
            lattice.polynomial_size,
            lattice.ciphertext_modulus,
        );

        Ok(Self {
            config,
            fingerprint,
            lattice,
            delta_log,
            bootstrap_key: fourier_bsk,
            keyswitch_key,
            sign_accumulator,
        })
    }

    pub fn config(&self) -> &DomainConfig {
        &self.config
    }

    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    /// Memory the prepared keys hold (the Fourier bootstrapping key and the keyswitching key
    /// dominate: about 120 MiB for the default set).
    pub fn memory_bytes(&self) -> usize {
        let keyswitch_key = match &self.keyswitch_key {
            KeyswitchKey::Ks64(k) => std::mem::size_of_val(k.as_ref()),
            KeyswitchKey::Ks32(k) => std::mem::size_of_val(k.as_ref()),
        };
        std::mem::size_of_val(self.bootstrap_key.as_view().data())
            + keyswitch_key
            + std::mem::size_of_val(self.sign_accumulator.as_ref())
    }

    /// 1:1: does the probe match this template? One external product, one keyswitch, one
    /// bootstrap. Returns the encrypted bit under the whole domain key, for escrow; a caller
    /// receives it only after [`crate::shares::ServerShare::apply`]. The server learns nothing.
    pub fn verify(&self, probe: &Probe, template: &Template) -> Result<EscrowedBit> {
        probe.check(&self.config, self.fingerprint)?;
        template.check(&self.config, self.fingerprint)?;
        let bit = with_scratch(&self.lattice, |scratch| {
            let probe = self.prepare_probe(probe, scratch);
            let glwe = self.template_glwe(template);
            let offset = self.offset(self.config.threshold.score);
            let scores = self.encrypted_scores(&probe, &glwe, 1, offset, scratch);
            self.decide_batch(&scores, scratch).remove(0)
        });
        Ok(self.escrowed(&bit))
    }

    /// 1:N: does the probe match any template of the gallery? The gallery is searched in
    /// shards (see [`ServerKeys::search_shard`]) whose bits are then combined, exactly as a
    /// streamed search does. `max_gallery` bounds the work one call may ask for.
    pub fn identify(
        &self,
        probe: &Probe,
        gallery: &[Template],
        candidate_bits: CandidateBits,
        max_gallery: usize,
    ) -> Result<Identification> {
        if gallery.len() > max_gallery {
            return Err(CryptoError::GalleryTooLarge {
                got: gallery.len(),
                limit: max_gallery,
            });
        }
        let search = self.prepare_search(probe, &self.config.threshold)?;
        let mut shards = Vec::new();
        let mut candidates = Vec::new();
        for shard in gallery.chunks(DEFAULT_SHARD_TEMPLATES) {
            let (bit, bits) = self.search_shard_bits(&search, shard)?;
            shards.push(bit);
            if candidate_bits == CandidateBits::Reveal {
                candidates.extend(bits.iter().map(|bit| self.escrowed(bit)));
            }
        }
        Ok(Identification {
            any_match: self.combine_shards(&shards)?,
            candidates,
        })
    }

    /// Start a search at `threshold` (the domain's 1:N one): check both, and put the probe in
    /// the Fourier domain once for every shard.
    pub fn prepare_search(&self, probe: &Probe, threshold: &Threshold) -> Result<SearchProbe> {
        probe.check(&self.config, self.fingerprint)?;
        self.config.check_threshold(threshold)?;
        let ggsw = with_scratch(&self.lattice, |scratch| self.prepare_probe(probe, scratch));
        Ok(SearchProbe {
            fingerprint: self.fingerprint,
            ggsw,
            offset: self.offset(threshold.score),
        })
    }

    /// One shard of a search: does the probe match any of these templates? Templates are
    /// packed `templates_per_glwe` to a GLWE (rotation by X^(j d) is free and adds no noise),
    /// so one external product yields that many scores; the bootstraps run in batches on all
    /// cores of the current rayon pool. Memory is proportional to the shard, not the gallery.
    pub fn search_shard(&self, search: &SearchProbe, templates: &[Template]) -> Result<ShardBit> {
        self.search_shard_bits(search, templates)
            .map(|(bit, _)| bit)
    }

    fn search_shard_bits(
        &self,
        search: &SearchProbe,
        templates: &[Template],
    ) -> Result<(ShardBit, Vec<LweCiphertextOwned<u64>>)> {
        if search.fingerprint != self.fingerprint {
            return Err(CryptoError::WrongKeyDomain {
                kind: "search probe",
                expected: self.fingerprint,
                got: search.fingerprint,
            });
        }
        for template in templates {
            template.check(&self.config, self.fingerprint)?;
        }
        let per_glwe = self.config.templates_per_glwe();
        let scores: Vec<LweCiphertextOwned<u64>> = templates
            .par_chunks(per_glwe)
            .map_init(
                || Scratch::new(&self.lattice),
                |scratch, chunk| {
                    let packed = self.pack(chunk);
                    self.encrypted_scores(
                        &search.ggsw,
                        &packed,
                        chunk.len(),
                        search.offset,
                        scratch,
                    )
                },
            )
            .flatten_iter()
            .collect();
        let bits = self.decide_all(&scores);
        let any = self.any_of(&bits);
        Ok((
            ShardBit {
                fingerprint: self.fingerprint,
                lwe: any,
            },
            bits,
        ))
    }

    /// The whole search's answer from its shards' bits: their OR, in escrow form. No shard
    /// (an empty gallery) gives an encryption of "no match".
    pub fn combine_shards(&self, shards: &[ShardBit]) -> Result<EscrowedBit> {
        if let Some(other) = shards.iter().find(|s| s.fingerprint != self.fingerprint) {
            return Err(CryptoError::WrongKeyDomain {
                kind: "shard bit",
                expected: self.fingerprint,
                got: other.fingerprint,
            });
        }
        let bits: Vec<LweCiphertextOwned<u64>> = shards.iter().map(|s| s.lwe.clone()).collect();
        Ok(self.escrowed(&self.any_of(&bits)))
    }

    /// The intermediate ciphertexts of one 1:1 decision (after the external product and the
    /// offset, and after the keyswitch), for the noise measurements of `tabir-device-crypto`'s
    /// tests. They are what the server computes anyway; without a key they show nothing.
    #[doc(hidden)]
    pub fn intermediates(
        &self,
        probe: &Probe,
        template: &Template,
    ) -> (LweCiphertextOwned<u64>, LweCiphertextOwned<u64>) {
        let p = &self.lattice;
        let mut scratch = Scratch::new(p);
        let probe = self.prepare_probe(probe, &mut scratch);
        let glwe = self.template_glwe(template);
        let offset = self.offset(self.config.threshold.score);
        let score = self
            .encrypted_scores(&probe, &glwe, 1, offset, &mut scratch)
            .remove(0);
        let small = match &self.keyswitch_key {
            KeyswitchKey::Ks64(key) => {
                let mut small =
                    LweCiphertext::new(0u64, p.lwe_dimension.to_lwe_size(), p.ciphertext_modulus);
                keyswitch_lwe_ciphertext(key, &score, &mut small);
                small
            }
            // A ciphertext modulo 2^32 read modulo 2^64: every coefficient times 2^32, which
            // scales the phase by the same factor and keeps it exact.
            KeyswitchKey::Ks32(key) => {
                let small = self.keyswitch_32(key, &score);
                LweCiphertext::from_container(
                    small.as_ref().iter().map(|&c| u64::from(c) << 32).collect(),
                    p.ciphertext_modulus,
                )
            }
        };
        (score, small)
    }

    fn prepare_probe(&self, probe: &Probe, scratch: &mut Scratch) -> FourierGgswCiphertextOwned {
        let p = &self.lattice;
        // Coefficients were rounded to their top PROBE_BITS bits: put them back in place.
        let shift = MODULUS_BITS - PROBE_BITS;
        let ggsw = GgswCiphertext::from_container(
            probe
                .coefficients
                .iter()
                .map(|&c| c << shift)
                .collect::<Vec<u64>>(),
            p.glwe_size(),
            p.polynomial_size,
            p.pbs_base_log,
            p.ciphertext_modulus,
        );
        let mut fourier = FourierGgswCiphertext::new(
            p.glwe_size(),
            p.polynomial_size,
            p.pbs_base_log,
            p.pbs_level,
        );
        convert_standard_ggsw_ciphertext_to_fourier_mem_optimized(
            &ggsw,
            &mut fourier,
            scratch.fft.as_view(),
            scratch.buffers.stack(),
        );
        fourier
    }

    /// A template's GLWE: its 23-bit coefficients put back at the top of each 64-bit word.
    fn template_glwe(&self, template: &Template) -> GlweCiphertextOwned<u64> {
        let shift = MODULUS_BITS - TEMPLATE_BITS;
        GlweCiphertext::from_container(
            template
                .coefficients
                .iter()
                .map(|&c| c << shift)
                .collect::<Vec<u64>>(),
            self.lattice.polynomial_size,
            self.lattice.ciphertext_modulus,
        )
    }

    /// Sum of template j multiplied by X^(j d), for the templates of one chunk.
    fn pack(&self, chunk: &[Template]) -> GlweCiphertextOwned<u64> {
        let p = &self.lattice;
        let d = self.config.dim as usize;
        let mut packed =
            GlweCiphertext::new(0u64, p.glwe_size(), p.polynomial_size, p.ciphertext_modulus);
        for (j, template) in chunk.iter().enumerate() {
            let mut glwe = self.template_glwe(template);
            if j > 0 {
                for mut poly in glwe.as_mut_polynomial_list().iter_mut() {
                    polynomial_wrapping_monic_monomial_mul_assign(&mut poly, MonomialDegree(j * d));
                }
            }
            glwe_ciphertext_add_assign(&mut packed, &glwe);
        }
        packed
    }

    /// What is subtracted from a score to decide at `threshold_score`: (theta - 1/2) Delta, so
    /// an integer score never sits on the boundary.
    fn offset(&self, threshold_score: i32) -> u64 {
        let theta = i64::from(threshold_score) as u64;
        (theta << self.delta_log).wrapping_sub(1u64 << (self.delta_log - 1))
    }

    /// External product, then one LWE per template: coefficient j*d, minus (theta - 1/2) Delta.
    fn encrypted_scores(
        &self,
        probe: &FourierGgswCiphertextOwned,
        templates: &GlweCiphertextOwned<u64>,
        count: usize,
        offset: u64,
        scratch: &mut Scratch,
    ) -> Vec<LweCiphertextOwned<u64>> {
        let p = &self.lattice;
        let mut product =
            GlweCiphertext::new(0u64, p.glwe_size(), p.polynomial_size, p.ciphertext_modulus);
        add_external_product_assign_mem_optimized(
            &mut product,
            probe,
            templates,
            scratch.fft.as_view(),
            scratch.buffers.stack(),
        );
        (0..count)
            .map(|j| {
                let mut lwe = LweCiphertext::new(
                    0u64,
                    p.big_lwe_dimension().to_lwe_size(),
                    p.ciphertext_modulus,
                );
                extract_lwe_sample_from_glwe_ciphertext(
                    &product,
                    &mut lwe,
                    MonomialDegree(j * self.config.dim as usize),
                );
                let body = lwe.get_mut_body().data;
                *body = body.wrapping_sub(offset);
                lwe
            })
            .collect()
    }

    /// Keyswitch, then the sign bootstrap, for a batch of LWEs: an LWE whose phase lies in
    /// [0, q/2) becomes an encryption of BIT_UNIT, one in [q/2, q) an encryption of 0 (under
    /// the big key).
    fn decide_batch(
        &self,
        lwes: &[LweCiphertextOwned<u64>],
        scratch: &mut Scratch,
    ) -> Vec<LweCiphertextOwned<u64>> {
        match &self.keyswitch_key {
            KeyswitchKey::Ks64(key) => {
                let p = &self.lattice;
                let smalls: Vec<LweCiphertextOwned<u64>> = lwes
                    .iter()
                    .map(|lwe| {
                        let mut small = LweCiphertext::new(
                            0u64,
                            p.lwe_dimension.to_lwe_size(),
                            p.ciphertext_modulus,
                        );
                        keyswitch_lwe_ciphertext(key, lwe, &mut small);
                        small
                    })
                    .collect();
                self.sign_bootstrap(&smalls, scratch)
            }
            KeyswitchKey::Ks32(key) => {
                let smalls: Vec<LweCiphertextOwned<u32>> =
                    lwes.iter().map(|lwe| self.keyswitch_32(key, lwe)).collect();
                self.sign_bootstrap(&smalls, scratch)
            }
        }
    }

    /// The 32-bit keyswitch: the input's top bits decomposed, output modulo 2^32.
    fn keyswitch_32(
        &self,
        key: &LweKeyswitchKeyOwned<u32>,
        lwe: &LweCiphertextOwned<u64>,
    ) -> LweCiphertextOwned<u32> {
        let mut small = LweCiphertext::new(
            0u32,
            self.lattice.lwe_dimension.to_lwe_size(),
            CiphertextModulus::new_native(),
        );
        keyswitch_lwe_ciphertext_with_scalar_change(key, lwe, &mut small);
        small
    }

    /// The sign bootstrap of small-key LWEs (64- or 32-bit), batched blind rotations.
    fn sign_bootstrap<Small>(
        &self,
        smalls: &[LweCiphertextOwned<Small>],
        scratch: &mut Scratch,
    ) -> Vec<LweCiphertextOwned<u64>>
    where
        Small: UnsignedInteger + CastInto<usize>,
    {
        let p = &self.lattice;
        let log_2n = p.polynomial_size.to_blind_rotation_input_modulus_log();
        let mut bits = Vec::with_capacity(smalls.len());
        for batch in smalls.chunks(ROTATION_BATCH) {
            // The centred binary modulus switch removes the mean rounding error of the binary
            // key and shifts by half a step, which puts the decision boundary exactly at 0.
            let switched: Vec<_> = batch
                .iter()
                .map(|small| {
                    lwe_ciphertext_centered_binary_modulus_switch::<Small, usize, _>(
                        small.as_view(),
                        log_2n,
                    )
                })
                .collect();
            let mut accumulators = GlweCiphertextList::new(
                0u64,
                p.glwe_size(),
                p.polynomial_size,
                GlweCiphertextCount(batch.len()),
                p.ciphertext_modulus,
            );
            for mut accumulator in accumulators.iter_mut() {
                accumulator
                    .as_mut()
                    .copy_from_slice(self.sign_accumulator.as_ref());
            }
            self.bootstrap_key.as_view().batch_blind_rotate_assign(
                accumulators.as_mut_view(),
                &switched,
                scratch.fft.as_view(),
                scratch.buffers.stack(),
            );
            for accumulator in accumulators.iter() {
                let mut bit = LweCiphertext::new(
                    0u64,
                    p.big_lwe_dimension().to_lwe_size(),
                    p.ciphertext_modulus,
                );
                extract_lwe_sample_from_glwe_ciphertext(&accumulator, &mut bit, MonomialDegree(0));
                // +-BIT_UNIT/2 -> BIT_UNIT or 0.
                let body = bit.get_mut_body().data;
                *body = body.wrapping_add(1u64 << (BIT_UNIT_LOG - 1));
                bits.push(bit);
            }
        }
        bits
    }

    fn decide_all(&self, lwes: &[LweCiphertextOwned<u64>]) -> Vec<LweCiphertextOwned<u64>> {
        lwes.par_chunks(ROTATION_BATCH)
            .map_init(
                || Scratch::new(&self.lattice),
                |scratch, batch| self.decide_batch(batch, scratch),
            )
            .flatten_iter()
            .collect()
    }

    /// OR of encrypted bits: sum up to 31 bits, subtract half a bit, sign-bootstrap; repeat
    /// until one bit is left. An empty gallery gives a trivial encryption of 0 (no match).
    fn any_of(&self, bits: &[LweCiphertextOwned<u64>]) -> LweCiphertextOwned<u64> {
        let p = &self.lattice;
        let big_size = p.big_lwe_dimension().to_lwe_size();
        let zero = || LweCiphertext::new(0u64, big_size, p.ciphertext_modulus);
        let mut level: Vec<LweCiphertextOwned<u64>>;
        let mut current = bits;
        while current.len() > 1 {
            let sums: Vec<LweCiphertextOwned<u64>> = current
                .chunks(ANY_MATCH_GROUP)
                .map(|group| {
                    let mut sum = zero();
                    for bit in group {
                        lwe_ciphertext_add_assign(&mut sum, bit);
                    }
                    let body = sum.get_mut_body().data;
                    *body = body.wrapping_sub(1u64 << (BIT_UNIT_LOG - 1));
                    sum
                })
                .collect();
            level = self.decide_all(&sums);
            current = &level;
        }
        current.first().cloned().unwrap_or_else(zero)
    }
}

thread_local! {
    /// One scratch per thread for 1:1 decisions, kept between requests (the FFT plan and a few
    /// MiB of buffers).
    static SCRATCH: std::cell::RefCell<Option<Scratch>> = const { std::cell::RefCell::new(None) };
}

/// Run `f` with this thread's scratch (made on first use for these lattice parameters).
fn with_scratch<T>(lattice: &LatticeParams, f: impl FnOnce(&mut Scratch) -> T) -> T {
    SCRATCH.with(|cell| {
        let mut slot = cell.borrow_mut();
        let fits = slot
            .as_ref()
            .is_some_and(|scratch| scratch.polynomial_size == lattice.polynomial_size);
        if !fits {
            *slot = Some(Scratch::new(lattice));
        }
        match slot.as_mut() {
            Some(scratch) => f(scratch),
            None => f(&mut Scratch::new(lattice)),
        }
    })
}

impl ServerKeys {
    /// Scale the internal bit (0 or q/64) to 0 or q/4 and switch it to modulus 2^10 (each
    /// coefficient rounded to the nearest multiple of q/2^10): the escrow form.
    fn escrowed(&self, bit: &LweCiphertextOwned<u64>) -> EscrowedBit {
        let drop = MODULUS_BITS - RESULT_MODULUS_LOG as u32;
        let switched = bit
            .as_ref()
            .iter()
            .map(|&c| {
                let scaled = c.wrapping_mul(RESULT_SCALE);
                // Round to nearest: add half a step, keep the top bits.
                (scaled.wrapping_add(1u64 << (drop - 1)) >> drop) as u16
            })
            .collect();
        EscrowedBit {
            fingerprint: self.fingerprint,
            lwe: ResultLwe(switched),
        }
    }
}

impl fmt::Debug for Identification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Identification(any_match + {} candidate bits, <ciphertexts>)",
            self.candidates.len()
        )
    }
}

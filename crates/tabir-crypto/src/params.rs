//! Parameter sets and the configuration of a key domain.
//!
//! The lattice parameters are never chosen here: they are read from one of tfhe's frozen,
//! versioned parameter sets, named by a stable wire id. What a key domain chooses on top is the
//! embedding dimension, the quantisation and the decision threshold; everything else (the
//! plaintext scaling, the packing) is derived from those and checked, not configured.

use crate::error::{CryptoError, Result};
use serde::{Deserialize, Serialize};
use tfhe::core_crypto::prelude::*;
use tfhe::shortint::parameters::v1_8::{
    V1_8_PARAM_MESSAGE_2_CARRY_2_KS32_PBS_TUNIFORM_2M128,
    V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
    V1_8_PARAM_PKE_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
};
use tfhe::shortint::parameters::{
    ClassicPBSParameters, CompactPublicKeyEncryptionParameters, KeySwitch32PBSParameters,
};
use tfhe_versionable::{Versionize, VersionsDispatch};

/// Stable identifier of a vetted lattice parameter set. On the wire and in stored keys it is
/// its number (`wire_id`), not a position in this enum; an id this build does not know is
/// refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Versionize)]
#[serde(into = "u16", try_from = "u16")]
#[versionize(try_convert = "ParamSetWireId")]
#[non_exhaustive]
pub enum ParamSetId {
    /// tfhe 1.8 `V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128`: n = 918, N = 2048, k = 1,
    /// TUniform noise, p_fail 2^-129.6 for its own bootstrap. Key domains made before the
    /// KS32 set became the default use it; it stays readable and usable.
    TfheV1_8Msg2Carry2KsPbsTUniform2M128,
    /// tfhe 1.8 `V1_8_PARAM_MESSAGE_2_CARRY_2_KS32_PBS_TUNIFORM_2M128`: the same lattice and
    /// bootstrapping key (n = 918, N = 2048, k = 1, same GLWE noise), with the keyswitch
    /// computed and output on 32 bits (TUniform(13) on 2^32): half the keyswitching key, about
    /// half the keyswitch time. p_fail 2^-129.6 for its own bootstrap.
    TfheV1_8Msg2Carry2Ks32PbsTUniform2M128,
}

/// The serialized form of a [`ParamSetId`]: its stable number.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, Versionize)]
#[versionize(ParamSetWireIdVersions)]
pub struct ParamSetWireId(pub u16);

#[derive(VersionsDispatch)]
#[allow(dead_code)]
pub enum ParamSetWireIdVersions {
    V0(ParamSetWireId),
}

impl From<ParamSetId> for ParamSetWireId {
    fn from(id: ParamSetId) -> Self {
        Self(id.wire_id())
    }
}

impl TryFrom<ParamSetWireId> for ParamSetId {
    type Error = CryptoError;
    fn try_from(wire: ParamSetWireId) -> Result<Self> {
        Self::from_wire_id(wire.0)
    }
}

impl From<ParamSetId> for u16 {
    fn from(id: ParamSetId) -> Self {
        id.wire_id()
    }
}

impl TryFrom<u16> for ParamSetId {
    type Error = CryptoError;
    fn try_from(id: u16) -> Result<Self> {
        Self::from_wire_id(id)
    }
}

impl ParamSetId {
    /// The set new key domains get: the KS32 variant (same band, cheaper keyswitch; see
    /// docs/crypto.md).
    pub const DEFAULT: ParamSetId = ParamSetId::TfheV1_8Msg2Carry2Ks32PbsTUniform2M128;

    /// Every set this build can read, oldest first.
    pub const ALL: [ParamSetId; 2] = [
        ParamSetId::TfheV1_8Msg2Carry2KsPbsTUniform2M128,
        ParamSetId::TfheV1_8Msg2Carry2Ks32PbsTUniform2M128,
    ];

    /// The stable number written to the wire.
    pub fn wire_id(self) -> u16 {
        match self {
            ParamSetId::TfheV1_8Msg2Carry2KsPbsTUniform2M128 => 1,
            ParamSetId::TfheV1_8Msg2Carry2Ks32PbsTUniform2M128 => 2,
        }
    }

    pub fn from_wire_id(id: u16) -> Result<Self> {
        match id {
            1 => Ok(ParamSetId::TfheV1_8Msg2Carry2KsPbsTUniform2M128),
            2 => Ok(ParamSetId::TfheV1_8Msg2Carry2Ks32PbsTUniform2M128),
            _ => Err(CryptoError::UnknownParameterSet { id }),
        }
    }

    /// Human-readable stable name (used in reports and the benchmark's JSON).
    pub fn name(self) -> &'static str {
        match self {
            ParamSetId::TfheV1_8Msg2Carry2KsPbsTUniform2M128 => {
                "tfhe-1.8/PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128"
            }
            ParamSetId::TfheV1_8Msg2Carry2Ks32PbsTUniform2M128 => {
                "tfhe-1.8/PARAM_MESSAGE_2_CARRY_2_KS32_PBS_TUNIFORM_2M128"
            }
        }
    }

    /// Whether domains on this set size Delta for any threshold (see
    /// [`DomainConfig::delta_log`]).
    pub fn delta_fits_any_threshold(self) -> bool {
        match self {
            ParamSetId::TfheV1_8Msg2Carry2KsPbsTUniform2M128 => false,
            ParamSetId::TfheV1_8Msg2Carry2Ks32PbsTUniform2M128 => true,
        }
    }

    /// The lattice parameters behind this id.
    pub fn lattice(self) -> LatticeParams {
        match self {
            ParamSetId::TfheV1_8Msg2Carry2KsPbsTUniform2M128 => LatticeParams::from_tfhe(
                &V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
                &V1_8_PARAM_PKE_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
            ),
            // The KS32 set has no public-key set of its own; its GLWE key has the same shape
            // (k N = 2048) and noise, so the same vetted public-key encryption noise applies.
            ParamSetId::TfheV1_8Msg2Carry2Ks32PbsTUniform2M128 => LatticeParams::from_tfhe_ks32(
                &V1_8_PARAM_MESSAGE_2_CARRY_2_KS32_PBS_TUNIFORM_2M128,
                &V1_8_PARAM_PKE_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
            ),
        }
    }
}

/// How the keyswitch computes and what its output lives on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeyswitchKind {
    /// Keyswitching key and output modulo 2^64.
    Native64 { noise: DynamicDistribution<u64> },
    /// Keyswitching key and output modulo 2^32 (the input's top 32 bits are decomposed).
    Native32 { noise: DynamicDistribution<u32> },
}

/// The subset of a tfhe parameter set that the matching circuit uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatticeParams {
    /// Small LWE dimension n (keyswitch output, bootstrap input).
    pub lwe_dimension: LweDimension,
    pub glwe_dimension: GlweDimension,
    pub polynomial_size: PolynomialSize,
    /// The keyswitch's scalar and the noise of its key.
    pub keyswitch: KeyswitchKind,
    pub glwe_noise: DynamicDistribution<u64>,
    /// Decomposition of the bootstrapping key; the probe GGSW reuses it.
    pub pbs_base_log: DecompositionBaseLog,
    pub pbs_level: DecompositionLevelCount,
    pub ks_base_log: DecompositionBaseLog,
    pub ks_level: DecompositionLevelCount,
    pub ciphertext_modulus: CiphertextModulus<u64>,
    /// Noise of the public key and of public-key encryption: the vetted compact public-key
    /// encryption set of the same tfhe release, whose key has exactly our GLWE key's shape
    /// (dimension k N = 2048).
    pub public_key_noise: DynamicDistribution<u64>,
    /// Dimension the public-key noise was vetted for (must equal k N).
    pub public_key_dimension: LweDimension,
}

impl LatticeParams {
    fn from_tfhe(p: &ClassicPBSParameters, pke: &CompactPublicKeyEncryptionParameters) -> Self {
        Self {
            lwe_dimension: p.lwe_dimension,
            glwe_dimension: p.glwe_dimension,
            polynomial_size: p.polynomial_size,
            keyswitch: KeyswitchKind::Native64 {
                noise: p.lwe_noise_distribution,
            },
            glwe_noise: p.glwe_noise_distribution,
            pbs_base_log: p.pbs_base_log,
            pbs_level: p.pbs_level,
            ks_base_log: p.ks_base_log,
            ks_level: p.ks_level,
            ciphertext_modulus: p.ciphertext_modulus,
            public_key_noise: pke.encryption_noise_distribution,
            public_key_dimension: pke.encryption_lwe_dimension,
        }
    }

    fn from_tfhe_ks32(
        p: &KeySwitch32PBSParameters,
        pke: &CompactPublicKeyEncryptionParameters,
    ) -> Self {
        debug_assert!(p.post_keyswitch_ciphertext_modulus.is_native_modulus());
        Self {
            lwe_dimension: p.lwe_dimension,
            glwe_dimension: p.glwe_dimension,
            polynomial_size: p.polynomial_size,
            keyswitch: KeyswitchKind::Native32 {
                noise: p.lwe_noise_distribution,
            },
            glwe_noise: p.glwe_noise_distribution,
            pbs_base_log: p.pbs_base_log,
            pbs_level: p.pbs_level,
            ks_base_log: p.ks_base_log,
            ks_level: p.ks_level,
            ciphertext_modulus: p.ciphertext_modulus,
            public_key_noise: pke.encryption_noise_distribution,
            public_key_dimension: pke.encryption_lwe_dimension,
        }
    }

    pub fn glwe_size(&self) -> GlweSize {
        self.glwe_dimension.to_glwe_size()
    }

    /// Dimension of the "big" LWE key: the GLWE key read as an LWE key (k * N).
    pub fn big_lwe_dimension(&self) -> LweDimension {
        self.glwe_dimension
            .to_equivalent_lwe_dimension(self.polynomial_size)
    }

    /// Bits of each GLWE coefficient the external product uses: its decomposition
    /// (base_log x level) rounds the rest away.
    pub fn decomposition_bits(&self) -> u32 {
        (self.pbs_base_log.0 * self.pbs_level.0) as u32
    }

    /// log2(2N): the modulus the blind rotation reads its input at.
    pub fn blind_rotation_modulus_log(&self) -> u32 {
        self.polynomial_size.to_blind_rotation_input_modulus_log().0 as u32
    }
}

/// Bits of the ciphertext modulus q = 2^64.
pub(crate) const MODULUS_BITS: u32 = 64;

/// Result ciphertexts are modulus-switched to 2^10 and bit-packed for the wire; decryption
/// shares live modulo the same 2^10.
pub const RESULT_MODULUS_LOG: usize = 10;

/// Bits kept of each probe coefficient (rounded): the 16 dropped bits lie far below the
/// public-key encryption noise (std about 2^21.7), and the probe fits in 48 KiB.
pub const PROBE_BITS: u32 = 48;

/// Bits kept of each template coefficient: exactly the bits the external product's
/// decomposition uses (base_log x level = 23; checked against the parameter set).
pub const TEMPLATE_BITS: u32 = 23;

/// Relative tolerance on the L2 norm of an incoming embedding (float round-off of the model).
pub const NORM_TOLERANCE: f32 = 1.0e-3;

/// Quantisation bits per coordinate. Fixed at 4 in this version (signed, -8..=7).
pub const QUANT_BITS: u8 = 4;

/// Safety margin, in units of q/2N, kept free between the largest honest score and the wrap
/// point q/2 of the sign bootstrap. The decision noise is about 4.4 such units (one sigma).
const WRAP_MARGIN_UNITS: u64 = 16;

/// Whether `extent` score units at scaling 2^`log` stay below q/2 less the wrap margin.
fn fits_below_wrap(extent: u64, log: u32, unit_log: u32) -> bool {
    let half_q = 1u128 << (MODULUS_BITS - 1);
    let usable = half_q - (u128::from(WRAP_MARGIN_UNITS) << unit_log);
    u128::from(extent) << log <= usable
}

/// The match threshold of a key domain: the policy as given (a cosine) and the integer score
/// threshold theta it was calibrated to. A pair matches when its quantised score S >= theta.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Versionize)]
#[versionize(ThresholdVersions)]
pub struct Threshold {
    pub cosine: f32,
    pub score: i32,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
pub enum ThresholdVersions {
    V0(Threshold),
}

/// Everything two parties must agree on to exchange ciphertexts in one key domain. It is part
/// of the evaluation keys, so it is covered by the key fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Versionize)]
#[versionize(DomainConfigVersions)]
pub struct DomainConfig {
    pub params: ParamSetId,
    /// Embedding dimension d (128 for SFace).
    pub dim: u32,
    /// Bits per quantised coordinate (4).
    pub quant_bits: u8,
    /// Quantisation scale s: q_i = clamp(round(e_i * s), -8, 7).
    pub scale: f32,
    pub threshold: Threshold,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
pub enum DomainConfigVersions {
    V0(DomainConfig),
}

impl DomainConfig {
    /// The default scale for dimension d: 3 * sqrt(d), which clips near 2.7 sigma.
    pub fn default_scale(dim: u32) -> f32 {
        3.0 * (dim as f32).sqrt()
    }

    /// Check the configuration before any use; every decoded configuration goes through here.
    pub fn validate(&self) -> Result<()> {
        let lattice = self.params.lattice();
        if lattice.decomposition_bits() != TEMPLATE_BITS
            || lattice.public_key_dimension != lattice.big_lwe_dimension()
        {
            return Err(CryptoError::InvalidConfig {
                reason: "the parameter set does not fit the template encoding or the public key",
            });
        }
        let n = lattice.polynomial_size.0 as u32;
        if self.dim == 0 || self.dim > n {
            return Err(CryptoError::InvalidConfig {
                reason: "dimension must be between 1 and the polynomial size (2048)",
            });
        }
        if self.quant_bits != QUANT_BITS {
            return Err(CryptoError::InvalidConfig {
                reason: "only 4-bit quantisation is supported",
            });
        }
        if !self.scale.is_finite() || self.scale <= 0.0 || self.scale > 1.0e4 {
            return Err(CryptoError::InvalidConfig {
                reason: "quantisation scale must be a positive finite number",
            });
        }
        if !self.threshold.cosine.is_finite() || self.threshold.cosine.abs() > 1.0 {
            return Err(CryptoError::InvalidConfig {
                reason: "threshold cosine must lie in [-1, 1]",
            });
        }
        if i64::from(self.threshold.score).unsigned_abs() > self.score_bound() {
            return Err(CryptoError::InvalidConfig {
                reason: "score threshold lies outside the range of possible scores",
            });
        }
        self.delta_log().map(|_| ())
    }

    /// Upper bound on |S| for honest inputs: by Cauchy-Schwarz |S| <= ||p|| ||t||, and for an
    /// L2-normalised embedding ||q|| <= s + sqrt(d)/2 (scaling, then at most 1/2 rounding error
    /// per coordinate; clamping only shortens the vector). Also |S| <= 64 d coordinate-wise.
    pub fn score_bound(&self) -> u64 {
        let d = f64::from(self.dim);
        let norm = f64::from(self.scale) * (1.0 + NORM_TOLERANCE as f64) + d.sqrt() / 2.0;
        let cauchy_schwarz = (norm * norm).ceil() as u64;
        cauchy_schwarz.min(64 * u64::from(self.dim))
    }

    /// log2 of the plaintext scaling Delta: the largest power of two such that
    /// (bound + room + 1) * Delta stays below q/2 with a margin for the decision noise. On the
    /// first set (wire id 1) `room` is the domain's threshold |theta|; from the KS32 set on it
    /// is the score bound itself, so that any threshold in [-bound, bound] (a stricter 1:N one,
    /// a policy changed later) fits the same templates. That costs one bit of Delta at d = 128
    /// (2^51 instead of 2^52): the decision noise doubles in score units.
    pub fn delta_log(&self) -> Result<u32> {
        let room = if self.params.delta_fits_any_threshold() {
            self.score_bound()
        } else {
            u64::from(self.threshold.score.unsigned_abs())
        };
        let extent = self.score_bound() + room + 1;
        let lattice = self.params.lattice();
        let unit_log = MODULUS_BITS - lattice.blind_rotation_modulus_log();
        let mut log = MODULUS_BITS - 2;
        while log > 0 && !fits_below_wrap(extent, log, unit_log) {
            log -= 1;
        }
        // Below one q/2N unit per score point the decision would drown in noise.
        if log < unit_log - 4 {
            return Err(CryptoError::InvalidConfig {
                reason: "dimension and scale leave too little room for the plaintext scaling",
            });
        }
        Ok(log)
    }

    /// Check a threshold other than the domain's own (the 1:N one) against this domain's
    /// scaling: its score must fit without the sign bootstrap wrapping around.
    pub fn check_threshold(&self, threshold: &Threshold) -> Result<()> {
        if !threshold.cosine.is_finite() || threshold.cosine.abs() > 1.0 {
            return Err(CryptoError::InvalidConfig {
                reason: "threshold cosine must lie in [-1, 1]",
            });
        }
        let theta = u64::from(threshold.score.unsigned_abs());
        let lattice = self.params.lattice();
        let unit_log = MODULUS_BITS - lattice.blind_rotation_modulus_log();
        if theta > self.score_bound()
            || !fits_below_wrap(self.score_bound() + theta + 1, self.delta_log()?, unit_log)
        {
            return Err(CryptoError::InvalidConfig {
                reason: "this threshold does not fit the key domain's plaintext scaling",
            });
        }
        Ok(())
    }

    /// Templates packed into one GLWE ciphertext for 1:N (16 for d = 128).
    pub fn templates_per_glwe(&self) -> usize {
        self.params.lattice().polynomial_size.0 / self.dim as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_ids_round_trip_and_unknown_is_refused() {
        let id = ParamSetId::DEFAULT;
        assert_eq!(ParamSetId::from_wire_id(id.wire_id()).ok(), Some(id));
        assert!(matches!(
            ParamSetId::from_wire_id(999),
            Err(CryptoError::UnknownParameterSet { id: 999 })
        ));
    }

    #[test]
    fn the_wire_carries_the_stable_number_and_refuses_unknown_ones() {
        use tfhe_versionable::{Unversionize, Versionize};
        let versioned = bincode::serialize(&ParamSetId::DEFAULT.versionize()).unwrap();
        let as_number = bincode::serialize(&ParamSetWireId(2).versionize()).unwrap();
        assert_eq!(versioned, as_number);
        let unknown = bincode::serialize(&ParamSetWireId(999).versionize()).unwrap();
        let decoded = bincode::deserialize(&unknown).unwrap();
        assert!(ParamSetId::unversionize(decoded).is_err());
        assert_eq!(plain_serde_number(ParamSetId::DEFAULT), 2);
    }

    fn plain_serde_number(id: ParamSetId) -> u16 {
        // Plain serde (not versioned) also writes the number.
        bincode::deserialize(&bincode::serialize(&id).unwrap()).unwrap()
    }

    #[test]
    fn lattice_matches_the_vetted_set() {
        for id in ParamSetId::ALL {
            let p = id.lattice();
            assert_eq!(p.lwe_dimension.0, 918);
            assert_eq!(p.polynomial_size.0, 2048);
            assert_eq!(p.glwe_dimension.0, 1);
            assert_eq!((p.pbs_base_log.0, p.pbs_level.0), (23, 1));
            assert_eq!((p.ks_base_log.0, p.ks_level.0), (4, 4));
            assert!(p.ciphertext_modulus.is_native_modulus());
        }
        // The two sets differ only in the keyswitch: same bootstrapping key, same GLWE noise.
        let old = ParamSetId::TfheV1_8Msg2Carry2KsPbsTUniform2M128.lattice();
        let ks32 = ParamSetId::TfheV1_8Msg2Carry2Ks32PbsTUniform2M128.lattice();
        assert_eq!(old.glwe_noise, ks32.glwe_noise);
        assert!(matches!(old.keyswitch, KeyswitchKind::Native64 { .. }));
        assert!(matches!(ks32.keyswitch, KeyswitchKind::Native32 { .. }));
    }

    #[test]
    fn both_sets_keep_their_wire_ids() {
        assert_eq!(
            ParamSetId::TfheV1_8Msg2Carry2KsPbsTUniform2M128.wire_id(),
            1
        );
        assert_eq!(
            ParamSetId::TfheV1_8Msg2Carry2Ks32PbsTUniform2M128.wire_id(),
            2
        );
        for id in ParamSetId::ALL {
            assert_eq!(ParamSetId::from_wire_id(id.wire_id()).ok(), Some(id));
        }
    }

    /// A configuration with a plausible score threshold (calibration lives with quantisation,
    /// on the device side).
    fn config(dim: u32) -> DomainConfig {
        DomainConfig {
            params: ParamSetId::DEFAULT,
            dim,
            quant_bits: QUANT_BITS,
            scale: DomainConfig::default_scale(dim),
            threshold: Threshold {
                cosine: 0.363,
                score: 400,
            },
        }
    }

    #[test]
    fn public_key_noise_is_vetted_for_our_key_shape() {
        let p = ParamSetId::DEFAULT.lattice();
        assert_eq!(p.public_key_dimension, p.big_lwe_dimension());
        assert_eq!(p.decomposition_bits(), TEMPLATE_BITS);
    }

    #[test]
    fn delta_matches_the_design_for_128_and_512() {
        // The first set: Delta sized for the domain's own threshold.
        let first = |dim| DomainConfig {
            params: ParamSetId::TfheV1_8Msg2Carry2KsPbsTUniform2M128,
            ..config(dim)
        };
        assert_eq!(first(128).delta_log().unwrap(), 52);
        assert_eq!(first(512).delta_log().unwrap(), 50);
        // From the KS32 set on: room for any threshold, one bit less at d = 128.
        let c128 = config(128);
        c128.validate().unwrap();
        assert_eq!(c128.delta_log().unwrap(), 51);
        assert_eq!(c128.templates_per_glwe(), 16);
        let c512 = config(512);
        assert_eq!(c512.delta_log().unwrap(), 49);
        assert_eq!(c512.templates_per_glwe(), 4);
    }

    #[test]
    fn any_threshold_fits_a_ks32_domain_but_not_every_one_fits_the_first_set() {
        let strict = Threshold {
            cosine: 0.5,
            score: 576,
        };
        config(128).check_threshold(&strict).unwrap();
        let bound = config(128).score_bound() as i32;
        for score in [-bound, 0, bound] {
            let t = Threshold { cosine: 0.9, score };
            config(128).check_threshold(&t).unwrap();
        }
        let first = DomainConfig {
            params: ParamSetId::TfheV1_8Msg2Carry2KsPbsTUniform2M128,
            ..config(128)
        };
        assert!(matches!(
            first.check_threshold(&strict),
            Err(CryptoError::InvalidConfig { .. })
        ));
        let beyond = Threshold {
            cosine: 1.0,
            score: bound + 1,
        };
        assert!(config(128).check_threshold(&beyond).is_err());
        let nan = Threshold {
            cosine: f32::NAN,
            score: 0,
        };
        assert!(config(128).check_threshold(&nan).is_err());
    }

    #[test]
    fn bad_configs_are_refused_with_reasons() {
        let good = config(128);
        for bad in [
            DomainConfig { dim: 0, ..good },
            DomainConfig { dim: 4096, ..good },
            DomainConfig {
                quant_bits: 8,
                ..good
            },
            DomainConfig {
                scale: f32::NAN,
                ..good
            },
            DomainConfig {
                scale: -1.0,
                ..good
            },
            DomainConfig {
                threshold: Threshold {
                    cosine: 2.0,
                    score: 0,
                },
                ..good
            },
            DomainConfig {
                threshold: Threshold {
                    cosine: 0.3,
                    score: i32::MAX,
                },
                ..good
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(CryptoError::InvalidConfig { .. })),
                "{bad:?}"
            );
        }
    }
}

//! Tests of the whole circuit against the plaintext twin, of the wire formats and of the keys.
//! Key generation takes seconds, so every test in this binary shares one key domain per
//! dimension through a `OnceLock`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agreement;
mod identify;
mod keys;
mod noise;
mod wire;

use crate::client::{generate_key_domain, ClientKey};
use crate::params::DomainConfig;
use crate::quantize::QuantisedEmbedding;
use crate::server::ServerKeys;
use rand::Rng;
use std::sync::OnceLock;

pub(crate) struct TestDomain {
    pub client: ClientKey,
    pub server: ServerKeys,
    pub evaluation_key_bytes: Vec<u8>,
}

fn make_domain(dim: u32) -> TestDomain {
    let config = DomainConfig::with_cosine_threshold(dim, 0.363).expect("valid config");
    let (client, evaluation_keys) = generate_key_domain(config).expect("key generation");
    let evaluation_key_bytes = evaluation_keys.to_bytes();
    let server = ServerKeys::prepare(evaluation_keys).expect("server keys");
    TestDomain {
        client,
        server,
        evaluation_key_bytes,
    }
}

pub(crate) fn domain128() -> &'static TestDomain {
    static DOMAIN: OnceLock<TestDomain> = OnceLock::new();
    DOMAIN.get_or_init(|| make_domain(128))
}

pub(crate) fn domain512() -> &'static TestDomain {
    static DOMAIN: OnceLock<TestDomain> = OnceLock::new();
    DOMAIN.get_or_init(|| make_domain(512))
}

/// A second, unrelated key domain of the same shape, for wrong-domain tests.
pub(crate) fn other_domain128() -> &'static TestDomain {
    static DOMAIN: OnceLock<TestDomain> = OnceLock::new();
    DOMAIN.get_or_init(|| make_domain(128))
}

/// Random quantised vector of a unit embedding (like a real template would be).
pub(crate) fn random_quantised<R: Rng>(rng: &mut R, config: &DomainConfig) -> QuantisedEmbedding {
    let v = crate::quantize::random_unit_vector(rng, config.dim as usize);
    crate::quantize::quantise(&v, config).expect("unit vector quantises")
}

/// Adjust `template` so that its score with `probe` is exactly `target` (tests of pairs at a
/// chosen distance from the threshold). Returns None when the coordinates cannot reach it.
pub(crate) fn with_exact_score(
    probe: &QuantisedEmbedding,
    template: &QuantisedEmbedding,
    target: i64,
) -> Option<QuantisedEmbedding> {
    let p = probe.coordinates();
    let mut t = template.coordinates().to_vec();
    let mut diff = target - probe.score(template);
    for _pass in 0..16 {
        if diff == 0 {
            break;
        }
        for i in 0..t.len() {
            let weight = i64::from(p[i]);
            if weight == 0 || diff == 0 || weight.abs() > diff.abs() {
                continue;
            }
            let step: i8 = if (diff > 0) == (weight > 0) { 1 } else { -1 };
            let next = t[i] + step;
            if (-8..=7).contains(&next) {
                t[i] = next;
                diff -= weight * i64::from(step);
            }
        }
    }
    (diff == 0).then(|| QuantisedEmbedding::from_coordinates(t).expect("in range"))
}

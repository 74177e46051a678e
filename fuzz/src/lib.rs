//! What the fuzz targets and the seed generator (`examples/make_seeds.rs`) share: the key
//! domain configuration the ciphertext decoders are given, the fixed keys and passphrase the
//! seeds are made with, and the input conventions of the targets that take more than one
//! value from one input.

use ed25519_dalek::{SigningKey, VerifyingKey};
use tabir_crypto::{CryptoError, DomainConfig, KeyFingerprint, ParamSetId, Threshold};

/// The configuration the decoders check ciphertexts and shares against: the default parameter
/// set, 128-d embeddings, cosine 0.363. It validates without any key generation.
pub fn config() -> DomainConfig {
    DomainConfig {
        params: ParamSetId::DEFAULT,
        dim: 128,
        quant_bits: 4,
        scale: DomainConfig::default_scale(128),
        threshold: Threshold {
            cosine: 0.363,
            score: 409,
        },
    }
}

/// The key domain the targets expect first (all zeros).
pub fn zero_domain() -> KeyFingerprint {
    KeyFingerprint::from_bytes([0; 32])
}

/// Decode for the all-zero domain, and when the blob names another domain decode it again for
/// that one: the blob's fingerprint is then expected, so the fuzzer reaches the unpacking and
/// shape checks whatever fingerprint a mutation left in place (and seeds made under a real key
/// domain stay useful).
pub fn decode_in_its_domain<T>(
    decode: impl Fn(KeyFingerprint) -> Result<T, CryptoError>,
) -> Result<T, CryptoError> {
    match decode(zero_domain()) {
        Err(CryptoError::WrongKeyDomain { got, .. }) => decode(got),
        other => other,
    }
}

/// The server's audit-signing key the audit seeds are signed with.
pub fn server_signing_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

pub fn server_key() -> VerifyingKey {
    server_signing_key().verifying_key()
}

/// The device key the request-signature seeds are signed with.
pub fn device_signing_key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

/// The clock the request-signature target checks freshness against (2027-01-15).
pub const NOW: u64 = 1_800_000_000;

/// The passphrase the sealed-file seeds are sealed with.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// The purposes Tabir seals files for (tabir-client's custody module).
pub const SEAL_PURPOSES: [&str; 3] = ["decryption-share", "custodian-share", "signing-key"];

/// The first part of `data` up to the first 0xFF byte (never part of UTF-8 text, so never of a
/// JSON document), and what follows it, if anything.
pub fn split_at_ff(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match data.iter().position(|&b| b == 0xFF) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    }
}

/// Sealed-file inputs. The first byte is a mode; the rest is a sealed file.
///
/// - bit 0 clear: the rest is the whole file, given to `unseal` as is (seeds and mutations
///   that keep the SHA-256 digest at the end intact);
/// - bit 0 set: the rest is the file without its digest. A declared KDF cost that `unseal`
///   would accept is first made cheap (memory below 1 MiB, at most 2 passes; costs `unseal`
///   refuses are kept, so the refusal is exercised), then the digest is appended. Mutations
///   so get past the integrity check to the header parser, Argon2id and the AEAD, at a
///   bounded cost per execution;
/// - bits 1-2: the purpose asked for: one of [`SEAL_PURPOSES`], or (3) the purpose the file
///   itself names.
pub mod sealed_input {
    use sha2::{Digest, Sha256};

    pub const MAGIC: &[u8] = b"TABIRSEAL1";
    /// `unseal`'s caps on a declared cost (tabir-client/src/sealed.rs).
    const MAX_M_COST_KIB: u32 = 1024 * 1024;
    const MAX_T_COST: u32 = 16;
    const MAX_P_COST: u32 = 16;

    pub struct Input {
        pub file: Vec<u8>,
        pub purpose: String,
    }

    /// Where the KDF cost starts in a file (after the magic, the purpose length and purpose).
    fn cost_offset(file: &[u8]) -> Option<usize> {
        let purpose_len = usize::from(*file.get(MAGIC.len())?);
        Some(MAGIC.len() + 1 + purpose_len)
    }

    fn read_u32(bytes: &[u8], at: usize) -> u32 {
        let mut le = [0u8; 4];
        le.copy_from_slice(&bytes[at..at + 4]);
        u32::from_le_bytes(le)
    }

    /// Make an acceptable declared cost cheap, in place.
    pub fn cheapen_cost(file: &mut [u8]) {
        let Some(at) = cost_offset(file) else { return };
        if file.len() < at + 12 {
            return;
        }
        let (m, t, p) = (
            read_u32(file, at),
            read_u32(file, at + 4),
            read_u32(file, at + 8),
        );
        if m <= MAX_M_COST_KIB && t <= MAX_T_COST && (1..=MAX_P_COST).contains(&p) {
            file[at..at + 4].copy_from_slice(&(m % 1024).to_le_bytes());
            file[at + 4..at + 8].copy_from_slice(&(t % 3).to_le_bytes());
        }
    }

    /// The purpose a file names (lossily decoded), or "" when it is too short to name one.
    fn own_purpose(file: &[u8]) -> String {
        let Some(end) = cost_offset(file) else {
            return String::new();
        };
        let start = MAGIC.len() + 1;
        file.get(start..end.min(file.len()))
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .unwrap_or_default()
    }

    pub fn parse(data: &[u8]) -> Option<Input> {
        let (&mode, rest) = data.split_first()?;
        let file = if mode & 1 == 0 {
            rest.to_vec()
        } else {
            let mut file = rest.to_vec();
            cheapen_cost(&mut file);
            let digest = Sha256::digest(&file);
            file.extend_from_slice(&digest);
            file
        };
        let purpose = match (mode >> 1) & 3 {
            3 => own_purpose(&file),
            i => super::SEAL_PURPOSES[usize::from(i)].to_owned(),
        };
        Some(Input { file, purpose })
    }
}

/// Request-signature inputs: the fields of one signed request, one per line, in the order
/// method, path, `x-tabir-key-id`, `x-tabir-timestamp`, `x-tabir-nonce`,
/// `x-tabir-content-sha256`, `x-tabir-signature`, `x-tabir-request-id` (absent when the input
/// has fewer lines), then the body (the rest of the input, any bytes).
pub struct RequestInput<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub key_id: &'a str,
    pub timestamp: &'a str,
    pub nonce: &'a str,
    pub content_sha256: &'a str,
    pub signature: &'a str,
    pub request_id: Option<&'a str>,
    pub body: &'a [u8],
}

impl<'a> RequestInput<'a> {
    /// None when a header field is not UTF-8 (an HTTP stack refuses it before Tabir sees it)
    /// or the input has fewer than seven lines.
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let mut parts = data.splitn(9, |&b| b == b'\n');
        let mut field = || -> Option<&'a str> { std::str::from_utf8(parts.next()?).ok() };
        let method = field()?;
        let path = field()?;
        let key_id = field()?;
        let timestamp = field()?;
        let nonce = field()?;
        let content_sha256 = field()?;
        let signature = field()?;
        let request_id = match parts.next() {
            Some(bytes) => Some(std::str::from_utf8(bytes).ok()?),
            None => None,
        };
        let body = parts.next().unwrap_or_default();
        Some(Self {
            method,
            path,
            key_id,
            timestamp,
            nonce,
            content_sha256,
            signature,
            request_id,
            body,
        })
    }

    /// The inverse of [`RequestInput::parse`] (for the seed generator).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for field in [
            self.method,
            self.path,
            self.key_id,
            self.timestamp,
            self.nonce,
            self.content_sha256,
            self.signature,
        ] {
            out.extend_from_slice(field.as_bytes());
            out.push(b'\n');
        }
        match self.request_id {
            Some(id) => {
                out.extend_from_slice(id.as_bytes());
                out.push(b'\n');
                out.extend_from_slice(self.body);
            }
            None => {
                // Without a request id there is no body line either.
                out.pop();
            }
        }
        out
    }
}

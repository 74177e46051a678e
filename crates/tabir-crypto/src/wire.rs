//! Safe (de)serialization of every wire type: tfhe's typed header, a mandatory size limit, and
//! typed errors. Shape checks against the key domain happen in each type's own `from_bytes`.

use crate::error::{CryptoError, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tfhe::named::Named;
use tfhe::safe_serialization::{safe_deserialize, safe_serialize};
use tfhe_versionable::{Unversionize, Versionize};
use zeroize::Zeroizing;

/// Serialize with tfhe's versioned header. `limit` is the same limit the reader applies, so
/// anything this side writes the other side accepts.
pub(crate) fn encode<T: Serialize + Versionize + Named>(value: &T, limit: u64) -> Vec<u8> {
    let mut out = Vec::new();
    // Serializing our own well-formed values into a Vec cannot fail except by exceeding the
    // limit, which the limits are sized never to do; an empty blob would then be refused by
    // the reader rather than panic here.
    if safe_serialize(value, &mut out, limit).is_err() {
        out.clear();
    }
    out
}

/// [`encode`] for values that hold secrets: the buffer is sized first (a counting pass), so
/// no reallocation leaves a copy of the secret in freed memory, and it is wiped on drop.
pub(crate) fn encode_secret<T: Serialize + Versionize + Named>(
    value: &T,
    limit: u64,
) -> Zeroizing<Vec<u8>> {
    let mut counter = ByteCounter(0);
    if safe_serialize(value, &mut counter, limit).is_err() {
        return Zeroizing::new(Vec::new());
    }
    let mut out = Zeroizing::new(Vec::with_capacity(counter.0));
    if safe_serialize(value, &mut *out, limit).is_err() {
        out.clear();
    }
    out
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The parts of tfhe's serialization header we need to tell "wrong type" from "corrupted".
#[derive(Deserialize)]
struct HeaderView {
    _header_version: String,
    _versioning_mode: VersioningModeView,
    name: String,
}

#[derive(Deserialize)]
enum VersioningModeView {
    Versioned { _versioning_version: String },
    Unversioned { _crate_version: String },
}

const MAX_HEADER_BYTES: u64 = 512;

/// Names of the blobs of the first version, whose key domains were symmetric: every device
/// held the domain's whole secret key. This version refuses them with a typed error.
const LEGACY_SYMMETRIC_NAMES: &[&str] = &[
    "tabir::Probe",
    "tabir::Template",
    "tabir::EncryptedBit",
    "tabir::IdentifyResult",
    "tabir::EvaluationKeys",
];

/// Whether the blob's header names `name` (to choose between the forms of one value).
pub(crate) fn names(bytes: &[u8], name: &str) -> bool {
    header_name(bytes).is_some_and(|found| found == name)
}

fn header_name(bytes: &[u8]) -> Option<String> {
    use bincode::Options;
    let header: HeaderView = bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_limit(MAX_HEADER_BYTES)
        .allow_trailing_bytes()
        .deserialize(bytes)
        .ok()?;
    let _ = (&header._header_version, &header._versioning_mode);
    Some(header.name)
}

/// Decode one value of type `T` from exactly `bytes`, refusing anything over `limit` bytes,
/// a header that names another type, a body that does not decode, and trailing bytes.
pub(crate) fn decode<T: DeserializeOwned + Unversionize + Named>(
    bytes: &[u8],
    kind: &'static str,
    limit: u64,
) -> Result<T> {
    if bytes.len() as u64 > limit {
        return Err(CryptoError::TooLarge {
            kind,
            got: bytes.len(),
            limit,
        });
    }
    match header_name(bytes) {
        Some(name) if name == T::NAME => {}
        Some(name) if LEGACY_SYMMETRIC_NAMES.contains(&name.as_str()) => {
            return Err(CryptoError::SymmetricKeyDomain { kind })
        }
        Some(name) => {
            return Err(CryptoError::WrongType {
                expected: T::NAME,
                got: printable(&name),
            })
        }
        None => {
            return Err(CryptoError::Malformed {
                kind,
                detail: "the header cannot be read (truncated or not a Tabir blob)".into(),
            })
        }
    }
    let mut reader = bytes;
    let value =
        safe_deserialize::<T>(&mut reader, limit).map_err(|detail| CryptoError::Malformed {
            kind,
            detail: printable(&detail),
        })?;
    if !reader.is_empty() {
        return Err(CryptoError::Malformed {
            kind,
            detail: format!("{} trailing bytes after the value", reader.len()),
        });
    }
    Ok(value)
}

/// Keep text that came from a blob short and printable before it goes into an error.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(96).collect()
}

//! # tabir-proto
//!
//! Tabir's wire protocol, version 1: route paths and the role allowed on each, body limits,
//! the bytes a request signature covers, subject ids (NIK) and the one table of error codes.
//! Ciphertexts and keys travel as `tabir-crypto` blobs; this crate depends on its evaluation
//! side only. See docs/protocol.md (with the server).

#![forbid(unsafe_code)]

pub mod audit;
pub mod errors;
pub mod hex;
pub mod messages;
pub mod routes;
pub mod signing;
pub mod subject;

pub use errors::{ErrorBody, ErrorCode};
pub use routes::Role;
pub use subject::{SubjectId, SubjectIdError, SubjectTag};

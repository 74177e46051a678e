//! Inputs of the fuzz targets (fuzz/, `make fuzz`) that made a decoder panic, kept as
//! regression tests: each must be refused with an error, never panic. Every file under
//! tests/fuzz/ is an input of the fuzz target its name starts with; replay one there with
//! `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O audit_log ../crates/tabir-proto/tests/fuzz/FILE`.
//!
//! The three below were one bug: `audit::verify_links` did arithmetic on a sequence number it
//! had not checked (`seq + 1` for the entry before the run, then a `(first_seq..)` range that
//! stepped past the last entry). With u64::MAX there, builds with overflow checks (debug and
//! test builds) panicked with "attempt to add with overflow"; release builds wrapped to 0. It
//! now uses checked arithmetic and refuses such a log with `ChainError::Sequence`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use ed25519_dalek::{SigningKey, VerifyingKey};
use tabir_proto::audit::{verify_links_after, verify_log, Checkpoint, LogEntry};

/// The key the fuzz targets' seeds are signed with.
fn server_key() -> VerifyingKey {
    SigningKey::from_bytes(&[7; 32]).verifying_key()
}

fn log(json: &[u8]) -> Vec<LogEntry> {
    serde_json::from_slice(json).expect("the input decodes as a log")
}

/// The auditor's escrow check (tabir-client's `Auditor::check_decisions`) verifies the server's
/// export after its first entry, passed as `previous` before anything about it is checked. A
/// first entry claiming sequence number u64::MAX overflowed `seq + 1`.
#[test]
fn a_previous_entry_at_the_last_sequence_number_is_refused() {
    let entries = log(include_bytes!("fuzz/audit_log-previous-seq-max.json"));
    let (previous, rest) = entries.split_first().unwrap();
    assert!(verify_log(rest, Some(previous), &server_key()).is_err());
}

/// An entry before the run at u64::MAX - 1: the run's first entry is expected at u64::MAX, and
/// the range of expected numbers overflowed when it stepped past it.
#[test]
fn a_run_reaching_the_last_sequence_number_is_refused() {
    let entries = log(include_bytes!(
        "fuzz/audit_log-previous-seq-max-minus-one.json"
    ));
    let (previous, rest) = entries.split_first().unwrap();
    assert!(verify_log(rest, Some(previous), &server_key()).is_err());
}

/// `tabir audit verify --from-checkpoint` verifies a log after a checkpoint's (seq, hash). The
/// input is a log, a 0xFF byte and a checkpoint at u64::MAX.
#[test]
fn verifying_after_a_checkpoint_at_the_last_sequence_number_is_refused() {
    let input: &[u8] = include_bytes!("fuzz/audit_log-checkpoint-seq-max.bin");
    let at = input.iter().position(|&b| b == 0xFF).unwrap();
    let entries = log(&input[..at]);
    let checkpoint: Checkpoint = serde_json::from_slice(&input[at + 1..]).unwrap();
    let after = Some((checkpoint.seq, checkpoint.hash.clone()));
    assert!(verify_links_after(&entries, after, &server_key()).is_err());
}

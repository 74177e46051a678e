//! Audit entries and exported logs (`tabir audit verify`, the auditor's escrow check): JSON of
//! one `LogEntry` / `AuditEntry` or of a whole log (`Vec<LogEntry>`, `Vec<AuditEntry>`),
//! optionally followed by a 0xFF byte and a `Checkpoint` in JSON. Every entry point of the
//! chain check runs on what decodes: `verify_log` and `verify_chain` from the start and after
//! the first entry (as the auditor's escrow check does with the entry before its range),
//! `verify_links_after` and `check_extends` with the checkpoint (as `tabir audit verify
//! --from-checkpoint/--checkpoint` does), all against the fixed server key the seeds are
//! signed with. Decoded values must survive a JSON round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tabir_fuzz::{server_key, split_at_ff};
use tabir_proto::audit::{
    check_extends, verify_chain, verify_links_after, verify_log, AuditEntry, Checkpoint, LogEntry,
};

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(value: &T) {
    let json = serde_json::to_vec(value).expect("a decoded value serializes");
    let back: T = serde_json::from_slice(&json).expect("a serialized value decodes");
    assert_eq!(&back, value);
}

fuzz_target!(|data: &[u8]| {
    let key = server_key();
    let (log, checkpoint) = split_at_ff(data);
    let checkpoint: Option<Checkpoint> =
        checkpoint.and_then(|json| serde_json::from_slice(json).ok());
    if let Some(checkpoint) = &checkpoint {
        round_trip(checkpoint);
        let _ = checkpoint.is_signed_by(&key);
    }

    if let Ok(entry) = serde_json::from_slice::<LogEntry>(log) {
        round_trip(&entry);
        let _ = verify_log(std::slice::from_ref(&entry), None, &key);
    }
    if let Ok(entry) = serde_json::from_slice::<AuditEntry>(log) {
        round_trip(&entry);
        let redacted = entry.redacted();
        assert_eq!(redacted.content_digest, entry.content_digest());
        let _ = verify_chain(std::slice::from_ref(&entry), None, &key);
    }
    if let Ok(entries) = serde_json::from_slice::<Vec<LogEntry>>(log) {
        round_trip(&entries);
        let _ = verify_log(&entries, None, &key);
        if let Some((first, rest)) = entries.split_first() {
            let _ = verify_log(rest, Some(first), &key);
        }
        if let Some(checkpoint) = &checkpoint {
            let after = Some((checkpoint.seq, checkpoint.hash.clone()));
            let _ = verify_links_after(&entries, after, &key);
            let _ = check_extends(&entries, None, checkpoint, &key);
            let previous = Some((checkpoint.seq, checkpoint.hash.as_str()));
            let _ = check_extends(&entries, previous, checkpoint, &key);
            if let Some((first, rest)) = entries.split_first() {
                let _ = check_extends(rest, Some((first.seq(), first.hash())), checkpoint, &key);
            }
        }
    }
    if let Ok(entries) = serde_json::from_slice::<Vec<AuditEntry>>(log) {
        let _ = verify_chain(&entries, None, &key);
        if let Some((first, rest)) = entries.split_first() {
            let _ = verify_chain(rest, Some(first), &key);
        }
    }
});

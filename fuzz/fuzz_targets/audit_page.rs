//! Pages of the audit log as the server sends them (`GET /v1/audit`): `AuditPage` in JSON,
//! then the page checked as a client checks it (`verify_log` from the start of the log and,
//! for a later page, after its first entry), its entries used (`full`, `redacted`), and the
//! page round-tripped through JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tabir_fuzz::server_key;
use tabir_proto::audit::verify_log;
use tabir_proto::messages::AuditPage;

fuzz_target!(|data: &[u8]| {
    let Ok(page) = serde_json::from_slice::<AuditPage>(data) else {
        return;
    };
    let json = serde_json::to_vec(&page).expect("a decoded page serializes");
    let back: AuditPage = serde_json::from_slice(&json).expect("a serialized page decodes");
    assert_eq!(back, page);
    let key = server_key();
    let _ = verify_log(&page.entries, None, &key);
    if let Some((first, rest)) = page.entries.split_first() {
        let _ = verify_log(rest, Some(first), &key);
    }
    for entry in &page.entries {
        let _ = (entry.seq(), entry.hash());
        if let Some(full) = entry.full() {
            let _ = full.redacted();
        }
    }
    if let (Some(next), Some(last)) = (page.next_after, page.entries.last()) {
        let _ = next == last.seq();
    }
});

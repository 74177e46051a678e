//! The behaviour every `Store` must have, run against each implementation: atomic writes
//! with their audit entries, refusals that write nothing, durability across reopening, and a
//! verifiable audit chain.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, dead_code)]

use ed25519_dalek::SigningKey;
use tabir_proto::audit::{self, Action, AuditEntry, AuditEvent, Outcome, ReportedDecision};
use tabir_proto::{Role, SubjectTag};
use tabir_store::{
    AuditSealer, Change, DomainRecord, KeyRecord, QuotaCheck, QuotaDecision, RequestRecord, Store,
    StoreError, StoredAnswer,
};

fn put_domain() -> Change {
    Change::PutDomain {
        record: domain(),
        sealed_server_share: vec![0xaa; 48],
    }
}

fn device_key(id: u8) -> KeyRecord {
    KeyRecord {
        key_id: format!("{id:02x}").repeat(32),
        public_key: "22".repeat(32),
        domain: Some("jabar".into()),
        role: Role::Device,
        label: "Kantor Desa Sukamaju, loket 1".into(),
        registered_at: "t".into(),
        revoked_at: None,
        holds_share: false,
    }
}

struct Sealer(SigningKey);

impl AuditSealer for Sealer {
    fn seal(&self, event: AuditEvent, previous: Option<&AuditEntry>) -> AuditEntry {
        audit::seal(event, previous, &self.0)
    }
}

fn sealer() -> Sealer {
    Sealer(SigningKey::from_bytes(&[9; 32]))
}

fn event(action: Action, subject: Option<&SubjectTag>) -> AuditEvent {
    AuditEvent {
        time: "2026-11-28T02:00:00Z".into(),
        actor: "ab".repeat(32),
        role: Some(Role::Device),
        domain: Some("jabar".into()),
        key_fingerprint: Some("cd".repeat(32)),
        action,
        subject: subject.cloned(),
        outcome: Outcome::Done,
        refers_to: None,
        reported: None,
    }
}

fn domain() -> DomainRecord {
    DomainRecord {
        name: "jabar".into(),
        fingerprint: "cd".repeat(32),
        params: "tfhe-1.8/PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128".into(),
        dim: 128,
        threshold_cosine: 0.363,
        threshold_score: 409,
        evaluation_keys: vec![1, 2, 3],
        registered_at: "2026-11-28T01:00:00Z".into(),
    }
}

/// A subject's keyed tag (the store never sees a NIK).
fn nik(serial: u32) -> SubjectTag {
    SubjectTag::parse(&format!("{serial:064x}")).unwrap()
}

fn audit_len(store: &dyn Store) -> usize {
    store.audit_page(0, 10_000).unwrap().len()
}

pub fn enrol_replace_delete_and_refusals_write_nothing(store: &dyn Store) {
    let sealer = sealer();

    // A template for an unknown domain is refused, and nothing (not even audit) is written.
    let orphan = Change::PutTemplate {
        domain: "jabar".into(),
        subject: nik(1),
        template: vec![7; 10],
        at: "t".into(),
    };
    assert!(matches!(
        store.commit(orphan, event(Action::Enrol, Some(&nik(1))), &sealer),
        Err(StoreError::UnknownDomain(_))
    ));
    assert_eq!(audit_len(store), 0);

    store
        .commit(put_domain(), event(Action::RegisterDomain, None), &sealer)
        .unwrap();
    assert!(matches!(
        store.commit(put_domain(), event(Action::RegisterDomain, None), &sealer),
        Err(StoreError::DomainExists(_))
    ));
    assert_eq!(audit_len(store), 1);
    assert_eq!(
        store.domain("jabar").unwrap().unwrap().evaluation_keys,
        vec![1, 2, 3]
    );
    assert!(store.domains().unwrap()[0].evaluation_keys.is_empty());
    // The registry entry alone never reads the keys.
    let info = store.domain_info("jabar").unwrap().unwrap();
    assert!(info.evaluation_keys.is_empty());
    assert_eq!(info.fingerprint, domain().fingerprint);
    assert_eq!(store.domain_info("nowhere").unwrap(), None);

    for serial in 1..=3 {
        let change = Change::PutTemplate {
            domain: "jabar".into(),
            subject: nik(serial),
            template: vec![serial as u8; 16],
            at: "t".into(),
        };
        store
            .commit(change, event(Action::Enrol, Some(&nik(serial))), &sealer)
            .unwrap();
    }
    // Replacing keeps the gallery order.
    let replace = Change::PutTemplate {
        domain: "jabar".into(),
        subject: nik(1),
        template: vec![42; 16],
        at: "t2".into(),
    };
    store
        .commit(
            replace,
            event(Action::ReplaceEnrolment, Some(&nik(1))),
            &sealer,
        )
        .unwrap();
    let gallery = store.templates("jabar").unwrap();
    let order: Vec<&str> = gallery.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(order, [nik(1).as_str(), nik(2).as_str(), nik(3).as_str()]);
    assert_eq!(gallery[0].1, vec![42; 16]);

    let delete = || Change::DeleteTemplate {
        domain: "jabar".into(),
        subject: nik(2),
    };
    store
        .commit(
            delete(),
            event(Action::DeleteEnrolment, Some(&nik(2))),
            &sealer,
        )
        .unwrap();
    assert_eq!(store.template("jabar", &nik(2)).unwrap(), None);
    let before = audit_len(store);
    assert!(matches!(
        store.commit(
            delete(),
            event(Action::DeleteEnrolment, Some(&nik(2))),
            &sealer
        ),
        Err(StoreError::UnknownSubject)
    ));
    assert_eq!(audit_len(store), before);

    // The whole log verifies under the server's key.
    let entries = store.audit_page(0, 1000).unwrap();
    assert_eq!(entries.len(), 6);
    audit::verify_chain(&entries, None, &sealer.0.verifying_key()).unwrap();
    // Paging continues the chain.
    let (first, rest) = (
        store.audit_page(0, 2).unwrap(),
        store.audit_page(2, 1000).unwrap(),
    );
    audit::verify_chain(&rest, first.last(), &sealer.0.verifying_key()).unwrap();
}

pub fn keys_register_once_and_revoke_once(store: &dyn Store) {
    let sealer = sealer();
    store
        .commit(put_domain(), event(Action::RegisterDomain, None), &sealer)
        .unwrap();
    let key = device_key(0x11);
    let put = || Change::PutKey {
        record: key.clone(),
        sealed_share: Some(vec![0x5e; 40]),
    };
    store
        .commit(put(), event(Action::RegisterDevice, None), &sealer)
        .unwrap();
    assert!(matches!(
        store.commit(put(), event(Action::RegisterDevice, None), &sealer),
        Err(StoreError::KeyExists)
    ));
    let stored = store.key(&key.key_id).unwrap().unwrap();
    assert!(stored.holds_share);
    assert_eq!(
        KeyRecord {
            holds_share: false,
            ..stored
        },
        key
    );
    assert_eq!(store.key_share(&key.key_id).unwrap(), Some(vec![0x5e; 40]));
    assert_eq!(store.domain_share("jabar").unwrap(), Some(vec![0xaa; 48]));
    assert_eq!(store.domain_share("nowhere").unwrap(), None);
    let revoke = || Change::RevokeKey {
        key_id: "11".repeat(32),
        at: "t3".into(),
    };
    store
        .commit(revoke(), event(Action::RevokeDevice, None), &sealer)
        .unwrap();
    assert!(matches!(
        store.commit(revoke(), event(Action::RevokeDevice, None), &sealer),
        Err(StoreError::UnknownKey)
    ));
    let listed = store.keys(Some("jabar")).unwrap();
    assert_eq!(listed[0].revoked_at.as_deref(), Some("t3"));
    assert_eq!(store.keys(None).unwrap().len(), 1);
    // Revocation deletes the server's share, in the same transaction.
    assert!(!listed[0].holds_share);
    assert_eq!(store.key_share(&key.key_id).unwrap(), None);
}

pub fn results_are_escrowed_with_their_entry_and_reported_once(store: &dyn Store) {
    let sealer = sealer();
    store
        .commit(put_domain(), event(Action::RegisterDomain, None), &sealer)
        .unwrap();
    let escrow = |key: &str| Change::Escrow {
        domain: "jabar".into(),
        key_id: key.into(),
        action: Action::Verify,
        result: vec![0xe5; 30],
    };
    let device = "ab".repeat(32);
    let verified = store
        .commit(
            escrow(&device),
            event(Action::Verify, Some(&nik(1))),
            &sealer,
        )
        .unwrap();
    let other = store
        .commit(
            escrow(&device),
            event(Action::Verify, Some(&nik(2))),
            &sealer,
        )
        .unwrap();
    let page = store.escrow_page("jabar", 0, u64::MAX, 10).unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(
        page[0].seq, verified.seq,
        "escrowed under its audit entry's number"
    );
    assert_eq!(page[0].key_id, device);
    assert_eq!(page[0].action, Action::Verify);
    assert_eq!(page[0].result, vec![0xe5; 30]);
    assert_eq!(page[0].report, None);

    let report = |key: &str, seq: u64, decision| Change::ReportDecision {
        domain: "jabar".into(),
        key_id: key.into(),
        seq,
        decision,
    };
    let before = audit_len(store);
    // Another device cannot report for it; nor can anyone for a result that does not exist.
    for change in [
        report(&"cd".repeat(32), verified.seq, ReportedDecision::Match),
        report(&device, 999, ReportedDecision::Match),
    ] {
        assert!(matches!(
            store.commit(change, event(Action::ReportDecision, None), &sealer),
            Err(StoreError::UnknownEscrow)
        ));
    }
    assert_eq!(audit_len(store), before, "refused reports write nothing");
    let reported = store
        .commit(
            report(&device, verified.seq, ReportedDecision::NoMatch),
            event(Action::ReportDecision, None),
            &sealer,
        )
        .unwrap();
    assert!(matches!(
        store.commit(
            report(&device, verified.seq, ReportedDecision::Match),
            event(Action::ReportDecision, None),
            &sealer
        ),
        Err(StoreError::AlreadyReported)
    ));
    let page = store
        .escrow_page("jabar", verified.seq, verified.seq, 10)
        .unwrap();
    assert_eq!(
        page[0].report,
        Some((reported.seq, ReportedDecision::NoMatch))
    );
    // Ranges and limits.
    assert_eq!(
        store
            .escrow_page("jabar", other.seq, u64::MAX, 10)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.escrow_page("jabar", 0, u64::MAX, 1).unwrap().len(), 1);
    assert!(store
        .escrow_page("elsewhere", 0, u64::MAX, 10)
        .unwrap()
        .is_empty());
    audit::verify_chain(
        &store.audit_page(0, 100).unwrap(),
        None,
        &sealer.0.verifying_key(),
    )
    .unwrap();
}

/// `open` must return a fresh handle on the same database each time it is called.
pub fn committed_writes_survive_reopening(open: &dyn Fn() -> Box<dyn Store>) {
    let sealer = sealer();
    {
        let store = open();
        store
            .commit(put_domain(), event(Action::RegisterDomain, None), &sealer)
            .unwrap();
        let change = Change::PutTemplate {
            domain: "jabar".into(),
            subject: nik(5),
            template: vec![5; 32],
            at: "t".into(),
        };
        store
            .commit(change, event(Action::Enrol, Some(&nik(5))), &sealer)
            .unwrap();
    }
    let store = open();
    assert_eq!(store.template("jabar", &nik(5)).unwrap(), Some(vec![5; 32]));
    let entries = store.audit_page(0, 100).unwrap();
    audit::verify_chain(&entries, None, &sealer.0.verifying_key()).unwrap();
    // The next entry chains onto the reopened log.
    store
        .commit(Change::None, event(Action::Verify, Some(&nik(5))), &sealer)
        .unwrap();
    let entries = store.audit_page(0, 100).unwrap();
    assert_eq!(entries.len(), 3);
    audit::verify_chain(&entries, None, &sealer.0.verifying_key()).unwrap();
}

pub fn nonces_are_accepted_once_and_forgotten_after_expiry(store: &dyn Store) {
    assert!(store.remember_nonce("key-a", "n1", 400, 100).unwrap());
    assert!(
        !store.remember_nonce("key-a", "n1", 400, 101).unwrap(),
        "a replay was accepted"
    );
    assert!(
        store.remember_nonce("key-b", "n1", 400, 101).unwrap(),
        "nonces are per key"
    );
    // Past its expiry a nonce is forgotten (its request would be stale by then anyway).
    assert!(store.remember_nonce("key-a", "n1", 1000, 401).unwrap());
}

pub fn quotas_count_sliding_windows_and_refuse_without_counting(store: &dyn Store) {
    let checks = |scope: &str| {
        vec![
            QuotaCheck {
                scope: format!("subject:{scope}"),
                window_secs: 100,
                limit: 3,
            },
            QuotaCheck {
                scope: "device:d1".into(),
                window_secs: 1000,
                limit: 5,
            },
        ]
    };
    for now in [10, 20, 30] {
        assert_eq!(
            store.take_quota(&checks("a"), now).unwrap(),
            QuotaDecision::Granted
        );
    }
    // The subject's window is full: refused, with the time until the oldest event leaves.
    assert_eq!(
        store.take_quota(&checks("a"), 40).unwrap(),
        QuotaDecision::Exceeded {
            check: 0,
            retry_after_secs: 70
        }
    );
    // Another subject on the same device: counted against the device only.
    assert_eq!(
        store.take_quota(&checks("b"), 41).unwrap(),
        QuotaDecision::Granted
    );
    assert_eq!(
        store.take_quota(&checks("b"), 42).unwrap(),
        QuotaDecision::Granted
    );
    // The device's window is full now (5 events): refused, nothing counted.
    assert!(matches!(
        store.take_quota(&checks("c"), 43).unwrap(),
        QuotaDecision::Exceeded { check: 1, .. }
    ));
    // The subject's window slides: at 111 its first event (10) has left.
    assert!(matches!(
        store.take_quota(&checks("a"), 111).unwrap(),
        QuotaDecision::Exceeded { check: 1, .. }
    ));
    // ... and after the device's window the device is free again.
    assert_eq!(
        store.take_quota(&checks("a"), 1011).unwrap(),
        QuotaDecision::Granted
    );
}

pub fn request_ids_are_answered_once(store: &dyn Store) {
    let answer = StoredAnswer {
        status: 200,
        content_type: "application/octet-stream".into(),
        audit_seq: Some(7),
        body: vec![1, 2, 3],
    };
    assert_eq!(
        store.begin_request("k1", "r1", 500, 100).unwrap(),
        RequestRecord::New
    );
    assert_eq!(
        store.begin_request("k1", "r1", 500, 101).unwrap(),
        RequestRecord::InProgress
    );
    // Request ids are per key.
    assert_eq!(
        store.begin_request("k2", "r1", 500, 101).unwrap(),
        RequestRecord::New
    );
    store.finish_request("k1", "r1", &answer).unwrap();
    assert_eq!(
        store.begin_request("k1", "r1", 500, 102).unwrap(),
        RequestRecord::Answered(answer)
    );
    // An abandoned request runs again; an expired record is forgotten.
    store.abandon_request("k2", "r1").unwrap();
    assert_eq!(
        store.begin_request("k2", "r1", 500, 103).unwrap(),
        RequestRecord::New
    );
    assert_eq!(
        store.begin_request("k1", "r1", 900, 600).unwrap(),
        RequestRecord::New
    );
}

pub fn a_bootstrap_token_is_used_once_and_only_before_expiry(store: &dyn Store) {
    let sealer = sealer();
    let custodian = |id: u8| KeyRecord {
        key_id: format!("{id:02x}").repeat(32),
        public_key: "33".repeat(32),
        domain: None,
        role: Role::Custodian,
        label: "custodian".into(),
        registered_at: "t".into(),
        revoked_at: None,
        holds_share: false,
    };
    store.add_bootstrap_token("t-old", 100).unwrap();
    store.add_bootstrap_token("t-new", 1000).unwrap();
    store.add_bootstrap_token("t-other", 1000).unwrap();
    let redeem = |digest: &str, id: u8| Change::RedeemBootstrap {
        token_digest: digest.into(),
        now: 200,
        record: custodian(id),
    };
    for digest in ["t-old", "t-unknown"] {
        assert!(matches!(
            store.commit(
                redeem(digest, 1),
                event(Action::BootstrapCustodian, None),
                &sealer
            ),
            Err(StoreError::BootstrapRefused)
        ));
    }
    assert_eq!(audit_len(store), 0, "refused redemptions write nothing");
    store
        .commit(
            redeem("t-new", 1),
            event(Action::BootstrapCustodian, None),
            &sealer,
        )
        .unwrap();
    // Used up; and with a custodian in place no other token works either.
    for digest in ["t-new", "t-other"] {
        assert!(matches!(
            store.commit(
                redeem(digest, 2),
                event(Action::BootstrapCustodian, None),
                &sealer
            ),
            Err(StoreError::BootstrapRefused)
        ));
    }
    assert_eq!(store.keys(None).unwrap().len(), 1);
}

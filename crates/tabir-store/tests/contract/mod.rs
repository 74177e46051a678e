//! The behaviour every `Store` must have, run against each implementation: atomic writes
//! with their audit entries, refusals that write nothing, durability across reopening, and a
//! verifiable audit chain.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, dead_code)]

use ed25519_dalek::SigningKey;
use tabir_proto::audit::{self, Action, AuditEntry, AuditEvent, Outcome, ReportedDecision};
use tabir_proto::{Role, SubjectTag};
use tabir_store::{
    AuditSealer, Change, DomainRecord, JobState, KeyRecord, QuotaCheck, QuotaDecision,
    RequestRecord, ShardOutcome, ShardRange, Store, StoreError, StoredAnswer,
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
        identify_threshold: Some((0.5, 576)),
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
    assert_eq!(info.identify_threshold, Some((0.5, 576)));
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

// Identification jobs.

/// The device that asks for identifications in these tests.
fn asker() -> String {
    "ab".repeat(32)
}

/// Register domain `jabar` and enrol subjects `1..=count` (template `[serial; 8]`, at positions
/// `1..=count`).
fn gallery(store: &dyn Store, count: u32) {
    let sealer = sealer();
    store
        .commit(put_domain(), event(Action::RegisterDomain, None), &sealer)
        .unwrap();
    for serial in 1..=count {
        enrol(store, serial);
    }
}

fn enrol(store: &dyn Store, serial: u32) {
    let change = Change::PutTemplate {
        domain: "jabar".into(),
        subject: nik(serial),
        template: vec![serial as u8; 8],
        at: "t".into(),
    };
    store
        .commit(change, event(Action::Enrol, Some(&nik(serial))), &sealer())
        .unwrap();
}

fn range(shard: u32, first_position: i64, last_position: i64) -> ShardRange {
    ShardRange {
        shard,
        first_position,
        last_position,
    }
}

fn job_change(store: &dyn Store, change: Change) -> Result<u64, StoreError> {
    store
        .commit(change, event(Action::Identify, None), &sealer())
        .map(|entry| entry.seq)
}

pub fn jobs_cut_the_gallery_into_shards_of_positions(store: &dyn Store) {
    gallery(store, 10);
    let (job, shards) = store
        .create_job("job-1", "jabar", &asker(), &[0x9b; 20], 4, "t1")
        .unwrap();
    assert_eq!(shards, [range(0, 1, 4), range(1, 5, 8), range(2, 9, 10)]);
    assert_eq!(job.job_id, "job-1");
    assert_eq!(job.domain, "jabar");
    assert_eq!(job.key_id, asker());
    assert_eq!(job.state, JobState::Running);
    assert_eq!(job.gallery_size, 10);
    assert_eq!((job.shards_total, job.shards_done), (3, 0));
    assert_eq!((job.error.as_deref(), job.audit_seq), (None, None));
    assert_eq!(
        (job.created_at.as_str(), job.updated_at.as_str()),
        ("t1", "t1")
    );
    assert_eq!(store.job("job-1").unwrap(), Some(job.clone()));
    assert_eq!(store.job_probe("job-1").unwrap(), Some(vec![0x9b; 20]));
    assert_eq!(store.pending_shards("job-1").unwrap(), shards);
    assert_eq!(store.running_jobs().unwrap(), [job]);
    // Creating a job writes no audit entry (its end does).
    assert_eq!(audit_len(store), 11);

    // Workers read a shard's templates by position, in order.
    let blobs = |first, last| store.templates_in_range("jabar", first, last).unwrap();
    assert_eq!(blobs(1, 4), [[1; 8], [2; 8], [3; 8], [4; 8]]);
    assert_eq!(blobs(9, 10), [[9; 8], [10; 8]]);
    assert_eq!(blobs(7, 7), [[7; 8]]);
    assert!(blobs(11, 20).is_empty());
    assert!(store
        .templates_in_range("elsewhere", 1, 10)
        .unwrap()
        .is_empty());
    // A deleted template is simply absent from its range.
    let delete = Change::DeleteTemplate {
        domain: "jabar".into(),
        subject: nik(2),
    };
    store
        .commit(
            delete,
            event(Action::DeleteEnrolment, Some(&nik(2))),
            &sealer(),
        )
        .unwrap();
    assert_eq!(blobs(1, 4), [[1; 8], [3; 8], [4; 8]]);

    // Shards follow the positions that exist, gaps included; later enrolments are not in
    // earlier jobs.
    let (job, shards) = store
        .create_job("job-2", "jabar", &asker(), &[1], 4, "t2")
        .unwrap();
    assert_eq!(job.gallery_size, 9);
    assert_eq!(shards, [range(0, 1, 5), range(1, 6, 9), range(2, 10, 10)]);
    assert_eq!(blobs(1, 4).len(), 3);
    let (_, shards) = store
        .create_job("job-3", "jabar", &asker(), &[1], 2, "t2")
        .unwrap();
    assert_eq!(
        shards,
        [
            range(0, 1, 3),
            range(1, 4, 5),
            range(2, 6, 7),
            range(3, 8, 9),
            range(4, 10, 10)
        ]
    );
    enrol(store, 11);
    assert_eq!(store.pending_shards("job-3").unwrap(), shards);
    assert_eq!(store.job("job-3").unwrap().unwrap().gallery_size, 9);
    // A shard size of 0 counts as 1.
    let (job, shards) = store
        .create_job("job-4", "jabar", &asker(), &[1], 0, "t2")
        .unwrap();
    assert_eq!((job.gallery_size, job.shards_total), (10, 10));
    assert_eq!(shards[0], range(0, 1, 1));
    assert_eq!(shards[1], range(1, 3, 3));
    assert_eq!(shards[9], range(9, 11, 11));
    // A shard larger than the gallery: one shard.
    let (_, shards) = store
        .create_job("job-5", "jabar", &asker(), &[1], 1000, "t2")
        .unwrap();
    assert_eq!(shards, [range(0, 1, 11)]);

    // An empty gallery: a job with no shards, complete at once.
    // (A domain registered before 1:N had its own threshold: none stored.)
    let other = DomainRecord {
        name: "banten".into(),
        fingerprint: "ef".repeat(32),
        identify_threshold: None,
        ..domain()
    };
    store
        .commit(
            Change::PutDomain {
                record: other,
                sealed_server_share: vec![0xaa; 48],
            },
            event(Action::RegisterDomain, None),
            &sealer(),
        )
        .unwrap();
    let banten = store.domain_info("banten").unwrap().unwrap();
    assert_eq!(banten.identify_threshold, None);
    let (job, shards) = store
        .create_job("job-empty", "banten", &asker(), &[1], 4, "t3")
        .unwrap();
    assert!(shards.is_empty());
    assert_eq!((job.gallery_size, job.shards_total), (0, 0));
    assert!(store.pending_shards("job-empty").unwrap().is_empty());
    assert_eq!(store.shard_bits("job-empty").unwrap(), Some(vec![]));

    // Unknown domains and reused job ids are refused, writing nothing.
    let jobs = store.running_jobs().unwrap().len();
    assert!(matches!(
        store.create_job("job-x", "nowhere", &asker(), &[1], 4, "t4"),
        Err(StoreError::UnknownDomain(_))
    ));
    assert_eq!(store.job("job-x").unwrap(), None);
    assert!(store
        .create_job("job-1", "jabar", &asker(), &[2], 4, "t4")
        .is_err());
    assert_eq!(store.job_probe("job-1").unwrap(), Some(vec![0x9b; 20]));
    assert_eq!(store.running_jobs().unwrap().len(), jobs);
}

pub fn shard_bits_are_recorded_once_and_complete_in_shard_order(store: &dyn Store) {
    gallery(store, 5);
    let (_, shards) = store
        .create_job("job-1", "jabar", &asker(), &[7], 2, "t1")
        .unwrap();
    assert_eq!(shards.len(), 3);
    assert_eq!(store.shard_bits("job-1").unwrap(), None);

    assert_eq!(
        store.finish_shard("job-1", 1, &[0xb1], "t2").unwrap(),
        ShardOutcome::Recorded { done: 1, total: 3 }
    );
    // A redelivered task changes nothing, not even the bit.
    assert_eq!(
        store.finish_shard("job-1", 1, &[0xff], "t3").unwrap(),
        ShardOutcome::AlreadyDone { done: 1, total: 3 }
    );
    let job = store.job("job-1").unwrap().unwrap();
    assert_eq!((job.shards_done, job.updated_at.as_str()), (1, "t2"));
    assert_eq!(
        store.pending_shards("job-1").unwrap(),
        [range(0, 1, 2), range(2, 5, 5)]
    );
    assert_eq!(store.shard_bits("job-1").unwrap(), None);
    assert_eq!(
        store.finish_shard("job-1", 2, &[0xb2], "t4").unwrap(),
        ShardOutcome::Recorded { done: 2, total: 3 }
    );
    assert_eq!(store.shard_bits("job-1").unwrap(), None);
    // A shard the job does not have.
    assert!(matches!(
        store.finish_shard("job-1", 3, &[0xb3], "t5"),
        Err(StoreError::UnknownJob)
    ));
    assert!(matches!(
        store.finish_shard("job-1", u32::MAX, &[0xb3], "t5"),
        Err(StoreError::UnknownJob)
    ));
    assert_eq!(
        store.finish_shard("job-1", 0, &[0xb0], "t6").unwrap(),
        ShardOutcome::Recorded { done: 3, total: 3 }
    );
    assert_eq!(
        store.finish_shard("job-1", 0, &[0xb0], "t7").unwrap(),
        ShardOutcome::AlreadyDone { done: 3, total: 3 }
    );
    assert!(store.pending_shards("job-1").unwrap().is_empty());
    assert_eq!(
        store.shard_bits("job-1").unwrap(),
        Some(vec![vec![0xb0], vec![0xb1], vec![0xb2]])
    );
    let job = store.job("job-1").unwrap().unwrap();
    assert_eq!((job.shards_done, job.updated_at.as_str()), (3, "t6"));
    assert_eq!(job.state, JobState::Running);

    // Unknown jobs.
    assert_eq!(
        store.finish_shard("job-0", 0, &[1], "t8").unwrap(),
        ShardOutcome::JobNotRunning
    );
    assert_eq!(store.job("job-0").unwrap(), None);
    assert_eq!(store.job_probe("job-0").unwrap(), None);
    assert!(store.pending_shards("job-0").unwrap().is_empty());
    assert_eq!(store.shard_bits("job-0").unwrap(), None);
}

pub fn a_finished_job_escrows_its_result_once(store: &dyn Store) {
    gallery(store, 3);
    store
        .create_job("job-1", "jabar", &"cd".repeat(32), &[7], 3, "t1")
        .unwrap();
    store
        .create_job("job-2", "jabar", &asker(), &[8], 3, "t1")
        .unwrap();
    store.finish_shard("job-1", 0, &[0xb0], "t2").unwrap();
    let before = audit_len(store);
    let finish = || Change::FinishJob {
        job_id: "job-1".into(),
        result: vec![0xe5; 30],
    };
    let seq = job_change(store, finish()).unwrap();
    assert_eq!(audit_len(store), before + 1);
    // Escrowed under its audit entry, for the device that asked.
    let page = store.escrow_page("jabar", 0, u64::MAX, 10).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].seq, seq);
    assert_eq!(page[0].domain, "jabar");
    assert_eq!(page[0].key_id, "cd".repeat(32));
    assert_eq!(page[0].action, Action::Identify);
    assert_eq!(page[0].result, vec![0xe5; 30]);
    assert_eq!(page[0].report, None);
    let job = store.job("job-1").unwrap().unwrap();
    assert_eq!(job.state, JobState::Done);
    assert_eq!(job.audit_seq, Some(seq));
    assert_eq!(job.updated_at, event(Action::Identify, None).time);
    assert_eq!((job.shards_total, job.shards_done), (1, 1));
    assert_eq!(job.error, None);
    // Probe and bits are gone; the job no longer runs.
    assert_eq!(store.job_probe("job-1").unwrap(), None);
    assert_eq!(store.shard_bits("job-1").unwrap(), None);
    assert!(store.pending_shards("job-1").unwrap().is_empty());
    let running: Vec<String> = store
        .running_jobs()
        .unwrap()
        .into_iter()
        .map(|j| j.job_id)
        .collect();
    assert_eq!(running, ["job-2"]);
    assert_eq!(
        store.finish_shard("job-1", 0, &[0xb0], "t3").unwrap(),
        ShardOutcome::JobNotRunning
    );

    // A second end is refused and writes nothing, audit entry included.
    for change in [
        finish(),
        Change::FailJob {
            job_id: "job-1".into(),
            error: "internal".into(),
        },
        Change::CancelJob {
            job_id: "job-1".into(),
            key_id: "cd".repeat(32),
        },
        Change::FinishJob {
            job_id: "job-0".into(),
            result: vec![1],
        },
    ] {
        assert!(matches!(
            job_change(store, change),
            Err(StoreError::JobNotRunning)
        ));
    }
    assert_eq!(audit_len(store), before + 1);
    assert_eq!(
        store.escrow_page("jabar", 0, u64::MAX, 10).unwrap().len(),
        1
    );
    assert_eq!(store.job("job-1").unwrap().unwrap(), job);
    audit::verify_chain(
        &store.audit_page(0, 100).unwrap(),
        None,
        &sealer().0.verifying_key(),
    )
    .unwrap();
}

pub fn failed_and_cancelled_jobs_stop(store: &dyn Store) {
    gallery(store, 4);
    for job_id in ["job-f", "job-c", "job-r"] {
        store
            .create_job(job_id, "jabar", &asker(), &[7], 2, "t1")
            .unwrap();
    }
    store.finish_shard("job-f", 0, &[0xb0], "t2").unwrap();
    store.finish_shard("job-c", 1, &[0xb1], "t2").unwrap();
    let before = audit_len(store);

    // Failed: the error is kept, the probe and bits are not.
    let fail = || Change::FailJob {
        job_id: "job-f".into(),
        error: "internal".into(),
    };
    job_change(store, fail()).unwrap();
    let job = store.job("job-f").unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.error.as_deref(), Some("internal"));
    assert_eq!(job.audit_seq, None);
    assert_eq!(job.updated_at, event(Action::Identify, None).time);
    assert_eq!(store.job_probe("job-f").unwrap(), None);
    assert!(store.pending_shards("job-f").unwrap().is_empty());
    assert_eq!(
        store.finish_shard("job-f", 1, &[0xb1], "t3").unwrap(),
        ShardOutcome::JobNotRunning
    );
    assert!(matches!(
        job_change(store, fail()),
        Err(StoreError::JobNotRunning)
    ));
    assert!(matches!(
        job_change(
            store,
            Change::FailJob {
                job_id: "job-0".into(),
                error: "internal".into(),
            }
        ),
        Err(StoreError::JobNotRunning)
    ));

    // Cancelled: only by the device that asked.
    let cancel = |job_id: &str, key_id: &str| Change::CancelJob {
        job_id: job_id.into(),
        key_id: key_id.into(),
    };
    for change in [cancel("job-c", &"cd".repeat(32)), cancel("job-0", &asker())] {
        assert!(matches!(
            job_change(store, change),
            Err(StoreError::UnknownJob)
        ));
    }
    assert_eq!(store.job_probe("job-c").unwrap(), Some(vec![7]));
    assert_eq!(audit_len(store), before + 1);
    job_change(store, cancel("job-c", &asker())).unwrap();
    let job = store.job("job-c").unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!((job.error.as_deref(), job.audit_seq), (None, None));
    assert_eq!(store.job_probe("job-c").unwrap(), None);
    assert_eq!(store.shard_bits("job-c").unwrap(), None);
    assert!(store.pending_shards("job-c").unwrap().is_empty());
    assert_eq!(
        store.finish_shard("job-c", 0, &[0xb0], "t3").unwrap(),
        ShardOutcome::JobNotRunning
    );
    for change in [
        cancel("job-c", &asker()),
        cancel("job-f", &asker()),
        Change::FinishJob {
            job_id: "job-c".into(),
            result: vec![1],
        },
    ] {
        assert!(matches!(
            job_change(store, change),
            Err(StoreError::JobNotRunning)
        ));
    }
    assert_eq!(audit_len(store), before + 2);
    assert!(store
        .escrow_page("jabar", 0, u64::MAX, 10)
        .unwrap()
        .is_empty());

    // Only the untouched job still runs.
    let running = store.running_jobs().unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].job_id, "job-r");
    assert_eq!(store.job_probe("job-r").unwrap(), Some(vec![7]));
    assert_eq!(store.pending_shards("job-r").unwrap().len(), 2);
}

/// Two handles on one database (two replicas) record the shards of one job at the same time:
/// every shard is counted once, and exactly one caller sees the job complete.
pub fn concurrent_shards_are_counted_once(first: &dyn Store, second: &dyn Store) {
    gallery(first, 16);
    let (_, shards) = first
        .create_job("job-1", "jabar", &asker(), &[7], 2, "t1")
        .unwrap();
    assert_eq!(shards.len(), 8);
    let barrier = std::sync::Barrier::new(2);
    let run = |store: &dyn Store, order: Vec<u32>| {
        barrier.wait();
        order
            .into_iter()
            .map(|shard| {
                store
                    .finish_shard("job-1", shard, &[shard as u8], "t2")
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };
    // Split 4/4, then each redelivers the other's shards.
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| run(first, vec![0, 2, 4, 6, 1, 3, 5, 7]));
        let b = scope.spawn(|| run(second, vec![1, 3, 5, 7, 0, 2, 4, 6]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut recorded: Vec<u32> = a
        .iter()
        .chain(&b)
        .filter_map(|outcome| match outcome {
            ShardOutcome::Recorded { done, total: 8 } => Some(*done),
            ShardOutcome::AlreadyDone { total: 8, .. } => None,
            other => panic!("unexpected outcome {other:?}"),
        })
        .collect();
    recorded.sort_unstable();
    assert_eq!(recorded, (1..=8).collect::<Vec<_>>(), "{a:?} {b:?}");
    for store in [first, second] {
        assert_eq!(store.job("job-1").unwrap().unwrap().shards_done, 8);
        assert_eq!(
            store.shard_bits("job-1").unwrap(),
            Some((0..8).map(|shard| vec![shard]).collect())
        );
    }
    // Ending it on one replica is seen by the other, and not repeated there.
    job_change(
        first,
        Change::FinishJob {
            job_id: "job-1".into(),
            result: vec![1],
        },
    )
    .unwrap();
    assert!(matches!(
        job_change(
            second,
            Change::FinishJob {
                job_id: "job-1".into(),
                result: vec![1],
            }
        ),
        Err(StoreError::JobNotRunning)
    ));
    assert_eq!(second.job("job-1").unwrap().unwrap().state, JobState::Done);
}

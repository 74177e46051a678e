//! The store contract against the embedded SQLite store.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod contract;

use tabir_store::sqlite::SqliteStore;
use tabir_store::Store;

#[test]
fn enrol_replace_delete_and_refusals_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    contract::enrol_replace_delete_and_refusals_write_nothing(
        &SqliteStore::open(dir.path()).unwrap(),
    );
}

#[test]
fn keys_register_once_and_revoke_once() {
    let dir = tempfile::tempdir().unwrap();
    contract::keys_register_once_and_revoke_once(&SqliteStore::open(dir.path()).unwrap());
}

#[test]
fn committed_writes_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    contract::committed_writes_survive_reopening(&move || -> Box<dyn Store> {
        Box::new(SqliteStore::open(&path).unwrap())
    });
}

#[test]
fn nonces_are_accepted_once_and_forgotten_after_expiry() {
    let dir = tempfile::tempdir().unwrap();
    contract::nonces_are_accepted_once_and_forgotten_after_expiry(
        &SqliteStore::open(dir.path()).unwrap(),
    );
}

#[test]
fn results_are_escrowed_with_their_entry_and_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    contract::results_are_escrowed_with_their_entry_and_reported_once(
        &SqliteStore::open(dir.path()).unwrap(),
    );
}

#[test]
fn quotas_count_sliding_windows_and_refuse_without_counting() {
    let dir = tempfile::tempdir().unwrap();
    contract::quotas_count_sliding_windows_and_refuse_without_counting(
        &SqliteStore::open(dir.path()).unwrap(),
    );
}

#[test]
fn request_ids_are_answered_once() {
    let dir = tempfile::tempdir().unwrap();
    contract::request_ids_are_answered_once(&SqliteStore::open(dir.path()).unwrap());
}

#[test]
fn a_bootstrap_token_is_used_once_and_only_before_expiry() {
    let dir = tempfile::tempdir().unwrap();
    contract::a_bootstrap_token_is_used_once_and_only_before_expiry(
        &SqliteStore::open(dir.path()).unwrap(),
    );
}

#[test]
fn jobs_cut_the_gallery_into_shards_of_positions() {
    let dir = tempfile::tempdir().unwrap();
    contract::jobs_cut_the_gallery_into_shards_of_positions(
        &SqliteStore::open(dir.path()).unwrap(),
    );
}

#[test]
fn shard_bits_are_recorded_once_and_complete_in_shard_order() {
    let dir = tempfile::tempdir().unwrap();
    contract::shard_bits_are_recorded_once_and_complete_in_shard_order(
        &SqliteStore::open(dir.path()).unwrap(),
    );
}

#[test]
fn a_finished_job_escrows_its_result_once() {
    let dir = tempfile::tempdir().unwrap();
    contract::a_finished_job_escrows_its_result_once(&SqliteStore::open(dir.path()).unwrap());
}

#[test]
fn failed_and_cancelled_jobs_stop() {
    let dir = tempfile::tempdir().unwrap();
    contract::failed_and_cancelled_jobs_stop(&SqliteStore::open(dir.path()).unwrap());
}

#[test]
fn concurrent_shards_are_counted_once() {
    // Two stores on one file: two writers, as two processes would be.
    let dir = tempfile::tempdir().unwrap();
    contract::concurrent_shards_are_counted_once(
        &SqliteStore::open(dir.path()).unwrap(),
        &SqliteStore::open(dir.path()).unwrap(),
    );
}

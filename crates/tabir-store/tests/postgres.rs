//! The store contract against PostgreSQL. Runs when TABIR_TEST_DATABASE_URL is set (`.ci/run`
//! sets it where a server is reachable); otherwise each test says it was skipped. Every test
//! works in a schema of its own, dropped at the end.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod contract;

use tabir_store::postgres::PostgresStore;
use tabir_store::Store;

/// A fresh schema name and the URL, or None (and a note) when no database is configured.
fn database(test: &str) -> Option<(String, String)> {
    match std::env::var("TABIR_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            Some((
                url,
                format!("tabir_test_{test}_{}_{nanos}", std::process::id()),
            ))
        }
        _ => {
            // Written straight to stderr (not eprintln!), so the test harness shows it.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "postgres store test {test}: skipped, TABIR_TEST_DATABASE_URL is not set"
            );
            None
        }
    }
}

struct DropSchema(String, String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.0, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.1));
        }
    }
}

fn open(url: &str, schema: &str) -> PostgresStore {
    PostgresStore::connect(url, Some(schema)).unwrap()
}

#[test]
fn enrol_replace_delete_and_refusals_write_nothing() {
    let Some((url, schema)) = database("enrol") else {
        return;
    };
    let _cleanup = DropSchema(url.clone(), schema.clone());
    contract::enrol_replace_delete_and_refusals_write_nothing(&open(&url, &schema));
}

#[test]
fn keys_register_once_and_revoke_once() {
    let Some((url, schema)) = database("keys") else {
        return;
    };
    let _cleanup = DropSchema(url.clone(), schema.clone());
    contract::keys_register_once_and_revoke_once(&open(&url, &schema));
}

#[test]
fn committed_writes_survive_reopening() {
    let Some((url, schema)) = database("reopen") else {
        return;
    };
    let _cleanup = DropSchema(url.clone(), schema.clone());
    contract::committed_writes_survive_reopening(&move || -> Box<dyn Store> {
        Box::new(open(&url, &schema))
    });
}

#[test]
fn nonces_are_accepted_once_and_forgotten_after_expiry() {
    let Some((url, schema)) = database("nonces") else {
        return;
    };
    let _cleanup = DropSchema(url.clone(), schema.clone());
    contract::nonces_are_accepted_once_and_forgotten_after_expiry(&open(&url, &schema));
}

#[test]
fn results_are_escrowed_with_their_entry_and_reported_once() {
    let Some((url, schema)) = database("escrow") else {
        return;
    };
    let _cleanup = DropSchema(url.clone(), schema.clone());
    contract::results_are_escrowed_with_their_entry_and_reported_once(&open(&url, &schema));
}

#[test]
fn quotas_count_sliding_windows_and_refuse_without_counting() {
    let Some((url, schema)) = database("quotascount") else {
        return;
    };
    let _cleanup = DropSchema(url.clone(), schema.clone());
    contract::quotas_count_sliding_windows_and_refuse_without_counting(&open(&url, &schema));
}

#[test]
fn request_ids_are_answered_once() {
    let Some((url, schema)) = database("requestids") else {
        return;
    };
    let _cleanup = DropSchema(url.clone(), schema.clone());
    contract::request_ids_are_answered_once(&open(&url, &schema));
}

#[test]
fn a_bootstrap_token_is_used_once_and_only_before_expiry() {
    let Some((url, schema)) = database("abootstrap") else {
        return;
    };
    let _cleanup = DropSchema(url.clone(), schema.clone());
    contract::a_bootstrap_token_is_used_once_and_only_before_expiry(&open(&url, &schema));
}

#[test]
fn jobs_cut_the_gallery_into_shards_of_positions() {
    let Some((url, schema)) = database("jobshards") else {
        return;
    };
    let _cleanup = DropSchema(url.clone(), schema.clone());
    contract::jobs_cut_the_gallery_into_shards_of_positions(&open(&url, &schema));
}

#[test]
fn shard_bits_are_recorded_once_and_complete_in_shard_order() {
    let Some((url, schema)) = database("jobbits") else {
        return;
    };
    let _cleanup = DropSchema(url.clone(), schema.clone());
    contract::shard_bits_are_recorded_once_and_complete_in_shard_order(&open(&url, &schema));
}

#[test]
fn a_finished_job_escrows_its_result_once() {
    let Some((url, schema)) = database("jobfinish") else {
        return;
    };
    let _cleanup = DropSchema(url.clone(), schema.clone());
    contract::a_finished_job_escrows_its_result_once(&open(&url, &schema));
}

#[test]
fn failed_and_cancelled_jobs_stop() {
    let Some((url, schema)) = database("jobstop") else {
        return;
    };
    let _cleanup = DropSchema(url.clone(), schema.clone());
    contract::failed_and_cancelled_jobs_stop(&open(&url, &schema));
}

#[test]
fn concurrent_shards_are_counted_once() {
    // Two replicas: separate stores, with their own pools, on one schema.
    let Some((url, schema)) = database("jobrace") else {
        return;
    };
    let _cleanup = DropSchema(url.clone(), schema.clone());
    contract::concurrent_shards_are_counted_once(&open(&url, &schema), &open(&url, &schema));
}

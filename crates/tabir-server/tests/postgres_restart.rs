//! The database goes away and comes back under a running server: while PostgreSQL is down,
//! requests are answered 503 `storage_unavailable` with Retry-After (never a hang, never a 500),
//! and once it is back the same server process serves again, with a chain that still verifies.
//!
//! Runs where the test may stop and start the database: TABIR_TEST_DATABASE_URL names it and
//! TABIR_TEST_PG_CTL is a command taking `stop` or `start` (`.ci/run` sets both for the local
//! cluster it manages; elsewhere the test says it was skipped).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use reqwest::Method;
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tabir_proto::{audit, routes, Role};
use tabir_server::ServerConfig;

const NIK: &str = "3201014101900001";
const LATER_NIK: &str = "3201014101900002";

fn unit_vector(axis: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; DIM as usize];
    v[axis] = 1.0;
    v
}

/// The database cluster, through `TABIR_TEST_PG_CTL`. Started again when dropped stopped, so
/// a failing test leaves the database up for the tests after it.
struct Cluster {
    control: String,
    stopped: bool,
}

impl Cluster {
    fn run(&mut self, action: &str) {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{} {action}", self.control))
            .status()
            .unwrap();
        assert!(
            status.success(),
            "`{} {action}` failed: {status}",
            self.control
        );
        self.stopped = action == "stop";
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.stopped {
            let _ = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{} start", self.control))
                .status();
        }
    }
}

#[test]
fn a_database_restart_is_answered_503_and_the_server_recovers_without_a_restart() {
    let control = match std::env::var("TABIR_TEST_PG_CTL") {
        Ok(command) if !command.is_empty() => command,
        _ => {
            eprintln!("database restart: skipped, TABIR_TEST_PG_CTL is not set");
            return;
        }
    };
    let Some((store, _schema)) = postgres_store("restart") else {
        return;
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let harness = Harness::start(Arc::clone(&store), ServerConfig::default()).await;
            harness.register_domain().await;
            let device = signing_key(70);
            harness.register(&device, DOMAIN, Role::Device).await;
            let http = &harness.http;
            http.send(
                &device,
                Method::PUT,
                &routes::enrolment(DOMAIN, NIK),
                keys().template(&unit_vector(0)),
            )
            .await
            .expect(201);
            let verify = routes::verification(DOMAIN, NIK);
            let probe = keys().probe(&unit_vector(0));
            http.send(&device, Method::POST, &verify, probe.clone())
                .await
                .expect(200);

            let mut cluster = Cluster {
                control,
                stopped: false,
            };
            tokio::task::block_in_place(|| cluster.run("stop"));
            let down = http
                .send(&device, Method::POST, &verify, probe.clone())
                .await;
            down.refused(503, "storage_unavailable");
            assert!(down.headers.contains_key("retry-after"));
            tokio::task::block_in_place(|| cluster.run("start"));

            // The pool replaces its broken connections: within a few tries (the database
            // may still be starting) the same server answers again.
            let mut recovered = false;
            for _ in 0..100 {
                let answer = http
                    .send(&device, Method::POST, &verify, probe.clone())
                    .await;
                if answer.status == 200 {
                    recovered = true;
                    break;
                }
                answer.refused(503, "storage_unavailable");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(recovered, "the server never served again after the restart");
            http.send(
                &device,
                Method::PUT,
                &routes::enrolment(DOMAIN, LATER_NIK),
                keys().template(&unit_vector(1)),
            )
            .await
            .expect(201);
            let log = blocking(|| store.audit_page(0, 10_000)).unwrap();
            audit::verify_chain(&log, None, &harness.audit_key).unwrap();
            drop(cluster);
        });
}

//! An auditor sees only the key domains it is registered for: the domain list, device lists
//! and whole audit entries of its own domain; entries of other domains arrive redacted (their
//! digests still chain, so the log verifies), and another domain's devices or escrow are
//! refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use reqwest::Method;
use std::sync::Arc;
use support::*;
use tabir_proto::audit::{self, LogEntry};
use tabir_proto::messages::{AuditPage, DeviceInfo, DeviceRegistration, DomainInfo};
use tabir_proto::{routes, Role};
use tabir_server::ServerConfig;

const OTHER: &str = "jatim-bansos";
const NIK: &str = "3201014101900001";
const OTHER_NIK: &str = "3501014101900001";

fn unit_vector(axis: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; DIM as usize];
    v[axis] = 1.0;
    v
}

#[test]
fn an_auditor_sees_its_own_domain_and_only_digests_of_the_others() {
    let (store, _dir) = sqlite_store();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let harness = Harness::start(Arc::clone(&store), ServerConfig::default()).await;
            let http = &harness.http;
            harness.register_domain().await;
            http.send(
                &harness.custodian,
                Method::PUT,
                &routes::domain(OTHER),
                other_keys().registration.clone(),
            )
            .await
            .expect(201);
            let device = signing_key(80);
            harness.register(&device, DOMAIN, Role::Device).await;
            let auditor = signing_key(81);
            harness.register(&auditor, DOMAIN, Role::Auditor).await;
            // A device of the other domain, with a share of that domain.
            let other_device = signing_key(82);
            let (_, delta) = other_keys().custodian.issue(&other_keys().config).unwrap();
            let info: DeviceInfo = http
                .send(
                    &harness.custodian,
                    Method::POST,
                    &routes::devices(OTHER),
                    serde_json::to_vec(&DeviceRegistration {
                        label: "other office".into(),
                        public_key: tabir_proto::hex::encode(
                            other_device.verifying_key().as_bytes(),
                        ),
                        role: Role::Device,
                        share_delta: Some(tabir_proto::hex::encode(&delta.to_bytes())),
                    })
                    .unwrap(),
                )
                .await
                .expect(201)
                .json();
            assert!(info.holds_share);
            http.send(
                &device,
                Method::PUT,
                &routes::enrolment(DOMAIN, NIK),
                keys().template(&unit_vector(0)),
            )
            .await
            .expect(201);
            http.send(
                &other_device,
                Method::PUT,
                &routes::enrolment(OTHER, OTHER_NIK),
                other_keys().template(&unit_vector(1)),
            )
            .await
            .expect(201);

            // The domain list and device lists: its own domain only.
            let domains: Vec<DomainInfo> = http
                .send(&auditor, Method::GET, routes::DOMAINS, Vec::new())
                .await
                .expect(200)
                .json();
            let names: Vec<&str> = domains.iter().map(|d| d.name.as_str()).collect();
            assert_eq!(names, [DOMAIN]);
            http.send(&auditor, Method::GET, &routes::devices(DOMAIN), Vec::new())
                .await
                .expect(200);
            http.send(&auditor, Method::GET, &routes::devices(OTHER), Vec::new())
                .await
                .refused(403, "forbidden");
            http.send(&auditor, Method::GET, &routes::domain(OTHER), Vec::new())
                .await
                .refused(403, "forbidden");

            // The log: whole entries of its domain, digests of the rest; it verifies.
            let answer = http
                .send(
                    &auditor,
                    Method::GET,
                    &routes::audit_page(0, 1000),
                    Vec::new(),
                )
                .await
                .expect(200);
            let page: AuditPage = answer.json();
            audit::verify_log(&page.entries, None, &harness.audit_key).unwrap();
            let whole: Vec<_> = page.entries.iter().filter_map(LogEntry::full).collect();
            assert!(!whole.is_empty());
            assert!(whole
                .iter()
                .all(|e| e.event.domain.as_deref() == Some(DOMAIN)));
            let redacted = page.entries.iter().filter(|e| e.full().is_none()).count();
            // The bootstrap, the other domain's registration, its device and its enrolment.
            assert!(redacted >= 4, "{redacted} redacted entries");
            // Nothing of the other domain shows in the page's bytes: not its name, not its
            // subject's tag.
            let text = String::from_utf8(answer.body.clone()).unwrap();
            assert!(!text.contains(OTHER));
            let other_tag = tabir_server::MasterKey::from_hex(&harness.master_key_hex)
                .unwrap()
                .subject_tag(OTHER, OTHER_NIK);
            assert!(!text.contains(other_tag.as_str()));

            // Another domain's escrow is not this auditor's to ask for.
            http.send(
                &auditor,
                Method::POST,
                &routes::escrow_reshare(OTHER),
                serde_json::to_vec(&serde_json::json!({"from": 1, "to": 100})).unwrap(),
            )
            .await
            .refused(403, "forbidden");
        });
}

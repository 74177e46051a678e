//! The OpenAPI document the server serves: unauthenticated, OpenAPI 3.1, every operation it
//! lists is routed (answered by its handler, not by the 404/405 fallbacks), and it lists the
//! same routes as docs/protocol.md's table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use support::*;
use tabir_proto::routes;
use tabir_server::ServerConfig;

/// (METHOD, path template) of every operation in the document.
fn operations(document: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            found.insert((method.to_uppercase(), path.clone()));
        }
    }
    found
}

/// (METHOD, path) of every row of docs/protocol.md's routes table, the query left out.
fn documented_routes() -> BTreeSet<(String, String)> {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol.md"),
    )
    .unwrap();
    let table = doc
        .split("## Routes")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .nth(1)
        .unwrap();
    table
        .lines()
        .skip(2)
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let path = cells[2].trim_matches('`');
            let path = path.split('?').next().unwrap();
            (cells[1].to_owned(), path.to_owned())
        })
        .collect()
}

/// A template with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{domain}", DOMAIN)
        .replace("{subject}", "3201014101900001")
        .replace("{key_id}", &"ab".repeat(32))
        .replace("{seq}", "1")
        .replace("{job_id}", &"0f".repeat(16))
}

#[test]
fn the_served_document_matches_the_router_and_docs_protocol() {
    let (store, _dir) = sqlite_store();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let harness = Harness::start(store, ServerConfig::default()).await;
            let answer = harness.http.get_unsigned(routes::OPENAPI).await.expect(200);
            assert_eq!(answer.headers["content-type"], "application/json");
            let document: serde_json::Value = answer.json();
            assert_eq!(document["openapi"], "3.1.0");

            // Every path parameter of every operation is declared.
            for (path, item) in document["paths"].as_object().unwrap() {
                for (method, operation) in item.as_object().unwrap() {
                    for name in path.split('{').skip(1).filter_map(|p| p.split('}').next()) {
                        let declared = operation["parameters"].as_array().is_some_and(|ps| {
                            ps.iter().any(|p| p["name"] == name && p["in"] == "path")
                        });
                        assert!(declared, "{method} {path}: path parameter {name}");
                    }
                }
            }

            let served = operations(&document);
            assert_eq!(
                served,
                documented_routes(),
                "docs/protocol.md's routes table and the OpenAPI document differ"
            );

            // Each operation reaches its handler: public ones answer, the others refuse an
            // unsigned request as unauthenticated (not 404 or 405 from the fallbacks).
            for (method, path) in &served {
                let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                let response = harness
                    .http
                    .client
                    .request(
                        method.clone(),
                        format!("{}{}", harness.http.base, concrete(path)),
                    )
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let operation = &document["paths"][path][method.as_str().to_lowercase()];
                if operation["security"] == serde_json::json!([]) {
                    assert_eq!(status, 200, "{method} {path}");
                } else {
                    assert_eq!(status, 401, "{method} {path}");
                }
            }
        });
}

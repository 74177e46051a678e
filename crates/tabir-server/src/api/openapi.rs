//! The protocol as an OpenAPI 3.1 document (`GET /v1/openapi.json`), built from the code that
//! serves it: the route templates the router uses, each route's [`Policy`] (who may call it,
//! how large its body may be), JSON Schemas derived from the message types, and the table of
//! error codes. docs/protocol.md is checked against it (tests/openapi.rs).

use super::policy;
use super::signed::Policy;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};
use std::sync::OnceLock;
use tabir_proto::messages::{
    AuditPage, CustodianBootstrap, DecisionReport, DeletionReceipt, DeviceInfo, DeviceRegistration,
    DomainInfo, EnrolmentReceipt, IdentificationJob, ReportReceipt, ResharePage, ReshareRequest,
    ServerInfo,
};
use tabir_proto::routes::{self, templates};
use tabir_proto::signing;
use tabir_proto::{audit::Checkpoint, ErrorBody, ErrorCode, Role};

/// `GET /v1/openapi.json`: the document, built once.
pub async fn document() -> Response {
    static DOCUMENT: OnceLock<Vec<u8>> = OnceLock::new();
    let body = DOCUMENT.get_or_init(|| serde_json::to_vec_pretty(&build()).unwrap_or_default());
    (
        [(header::CONTENT_TYPE, routes::CONTENT_TYPE_JSON)],
        body.clone(),
    )
        .into_response()
}

/// Who may call a route.
enum Access {
    /// Nobody signs: health, metrics, this document.
    Public,
    /// The one-time bootstrap token, as a bearer token.
    Bootstrap,
    /// A signed request from a key of one of these roles.
    Signed { roles: &'static [Role] },
}

fn signed<P: Policy>() -> (Access, u64) {
    (Access::Signed { roles: P::ROLES }, P::LIMIT)
}

/// A request or answer body.
enum Body {
    None,
    Text(&'static str),
    /// A JSON message, its schema from the type.
    Json(fn(&mut SchemaGenerator) -> Value),
    /// An opaque blob of tabir-crypto's serialization.
    Blob(&'static str),
}

fn json_of<T: JsonSchema>() -> Body {
    Body::Json(|generator| generator.subschema_for::<T>().to_value())
}

fn json_list_of<T: JsonSchema>() -> Body {
    Body::Json(|generator| json!({"type": "array", "items": generator.subschema_for::<T>()}))
}

struct Operation {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    access: Access,
    /// The request body's limit in bytes (0: no body is read).
    limit: u64,
    request: Body,
    success: u16,
    answer: Body,
    /// The answer carries `tabir-audit-seq`.
    audit_seq: bool,
}

/// Every route the server serves.
fn operations() -> Vec<Operation> {
    let op =
        |method, path, id, summary, (access, limit): (Access, u64), request, success, answer| {
            Operation {
                method,
                path,
                id,
                summary,
                access,
                limit,
                request,
                success,
                answer,
                audit_seq: false,
            }
        };
    let public = || (Access::Public, 0);
    vec![
        op("get", routes::HEALTH, "health", "Readiness: 200 when the store answers.", public(), Body::None, 200, Body::Text("ok")),
        op("get", routes::METRICS, "metrics", "Prometheus metrics (route templates only, never subject ids).", public(), Body::None, 200, Body::Text("Prometheus text exposition")),
        op("get", routes::OPENAPI, "openapi", "This document.", public(), Body::None, 200, Body::Text("OpenAPI 3.1 JSON")),
        op("post", routes::BOOTSTRAP, "bootstrap", "Register the first custodian with the one-time token from the server's token file.", (Access::Bootstrap, routes::LIMIT_JSON), json_of::<CustodianBootstrap>(), 201, json_of::<DeviceInfo>()),
        op("get", routes::SERVER_INFO, "serverInfo", "The server's audit-signing public key and versions.", signed::<policy::ServerInfo>(), Body::None, 200, json_of::<ServerInfo>()),
        op("get", routes::DOMAINS, "listDomains", "Key domains (an auditor sees its own).", signed::<policy::DomainList>(), Body::None, 200, json_list_of::<DomainInfo>()),
        op("put", templates::DOMAIN, "registerDomain", "Register a key domain: evaluation keys, public key and the server's reference share.", signed::<policy::DomainRegistration>(), Body::Blob("domain registration (tabir::DomainRegistration/3)"), 201, json_of::<DomainInfo>()),
        op("get", templates::DOMAIN, "getDomain", "A key domain's registry entry (metadata only).", signed::<policy::DomainRead>(), Body::None, 200, json_of::<DomainInfo>()),
        op("post", templates::DEVICES, "registerKey", "Register a device or auditor key with its share delta.", signed::<policy::KeyRegistration>(), json_of::<DeviceRegistration>(), 201, json_of::<DeviceInfo>()),
        op("get", templates::DEVICES, "listKeys", "The domain's registered keys, revoked ones included.", signed::<policy::KeyList>(), Body::None, 200, json_list_of::<DeviceInfo>()),
        op("delete", templates::DEVICE, "revokeKey", "Revoke a key; its server share is deleted.", signed::<policy::KeyRevocation>(), Body::None, 200, json_of::<DeviceInfo>()),
        op("put", templates::ENROLMENT, "enrol", "Enrol a subject (201), or replace its template (200).", signed::<policy::Enrolment>(), Body::Blob("encrypted template (tabir::Template/2)"), 201, json_of::<EnrolmentReceipt>()),
        op("delete", templates::ENROLMENT, "deleteEnrolment", "Delete a subject's template.", signed::<policy::Deletion>(), Body::None, 200, json_of::<DeletionReceipt>()),
        Operation {
            audit_seq: true,
            ..op("post", templates::VERIFICATIONS, "verify", "1:1: the encrypted match bit of a probe against the subject's template, opened only by the caller's share.", signed::<policy::Verification>(), Body::Blob("encrypted probe (tabir::Probe/2)"), 200, Body::Blob("encrypted bit (tabir::EncryptedBit/2)"))
        },
        op("post", templates::IDENTIFICATIONS, "submitIdentification", "1:N: submit a search of the domain's gallery for a probe; it runs as a job, in shards (202).", signed::<policy::Identification>(), Body::Blob("encrypted probe (tabir::Probe/2)"), 202, json_of::<IdentificationJob>()),
        op("get", templates::IDENTIFICATION_JOB, "identificationStatus", "An identification job's state and progress (the submitting device only).", signed::<policy::IdentificationStatus>(), Body::None, 200, json_of::<IdentificationJob>()),
        op("delete", templates::IDENTIFICATION_JOB, "cancelIdentification", "Cancel a running identification job.", signed::<policy::IdentificationCancel>(), Body::None, 200, json_of::<IdentificationJob>()),
        Operation {
            audit_seq: true,
            ..op("get", templates::IDENTIFICATION_RESULT, "identificationResult", "A finished job's encrypted any-match bit, opened only by the caller's share (409 job_not_done while it runs).", signed::<policy::IdentificationResult>(), Body::None, 200, Body::Blob("encrypted bit (tabir::EncryptedBit/2)"))
        },
        op("post", templates::DECISION, "reportDecision", "Report the decision read from the result escrowed with audit entry `seq`.", signed::<policy::DecisionReport>(), json_of::<DecisionReport>(), 201, json_of::<ReportReceipt>()),
        op("post", templates::ESCROW_RESHARE, "reshareEscrow", "Escrowed results of a range of the log, re-shared to the calling auditor's share.", signed::<policy::Reshare>(), json_of::<ReshareRequest>(), 200, json_of::<ResharePage>()),
        op("get", routes::AUDIT, "auditPage", "A page of the audit log (an auditor gets other domains' entries redacted).", signed::<policy::AuditRead>(), Body::None, 200, json_of::<AuditPage>()),
        op("get", routes::AUDIT_CHECKPOINT, "auditCheckpoint", "The log's head, signed: a checkpoint for auditors to keep.", signed::<policy::AuditRead>(), Body::None, 200, json_of::<Checkpoint>()),
    ]
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Device => "device",
        Role::Auditor => "auditor",
        Role::Custodian => "custodian",
        _ => "other",
    }
}

/// Path parameters, from the template.
fn parameters(operation: &Operation) -> Vec<Value> {
    let mut parameters = Vec::new();
    for (name, schema, description) in [
        ("domain", json!({"type": "string", "pattern": "^[a-z][a-z0-9-]{0,63}$"}), "Key domain name."),
        ("subject", json!({"type": "string", "pattern": "^[0-9]{16}$"}), "The subject's NIK (16 digits, validated); the server stores and logs only its keyed tag."),
        ("key_id", json!({"type": "string", "pattern": "^[0-9a-f]{64}$"}), "Hex SHA-256 of the key's public key."),
        ("seq", json!({"type": "integer", "minimum": 1}), "Sequence number of the audit entry that escrows the result."),
        ("job_id", json!({"type": "string", "pattern": "^[0-9a-f]{32}$"}), "The identification job's id (from its submission)."),
    ] {
        if operation.path.contains(&format!("{{{name}}}")) {
            parameters.push(json!({
                "name": name, "in": "path", "required": true,
                "description": description, "schema": schema,
            }));
        }
    }
    if operation.path == routes::AUDIT {
        parameters.push(json!({"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}, "description": "Entries with a greater sequence number."}));
        parameters.push(json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": routes::AUDIT_PAGE_MAX, "default": routes::AUDIT_PAGE_MAX}}));
    }
    if matches!(operation.access, Access::Signed { .. }) && operation.method != "get" {
        parameters.push(json!({
            "name": signing::HEADER_REQUEST_ID, "in": "header", "required": false,
            "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "description": "The same on every retry of one request (and signed): a retry is answered from the server's record instead of acting twice.",
        }));
    }
    parameters
}

fn content(body: &Body, generator: &mut SchemaGenerator) -> Option<Value> {
    match body {
        Body::None => None,
        Body::Text(description) => Some(json!({
            "text/plain": {"schema": {"type": "string", "description": description}}
        })),
        Body::Json(schema) => {
            Some(json!({routes::CONTENT_TYPE_JSON: {"schema": schema(generator)}}))
        }
        Body::Blob(description) => Some(json!({
            routes::CONTENT_TYPE_BLOB: {"schema": {
                "type": "string", "contentMediaType": routes::CONTENT_TYPE_BLOB,
                "description": format!("{description}: tfhe's versioned, size-limited serialization with a typed header and the key domain's fingerprint"),
            }}
        })),
    }
}

/// The error answers a route can give, one per status, listing its codes.
fn error_responses(operation: &Operation) -> Map<String, Value> {
    let applies = |code: ErrorCode| -> bool {
        use ErrorCode as E;
        match operation.access {
            Access::Public => matches!(code, E::Unavailable | E::Internal | E::StorageUnavailable),
            Access::Bootstrap => matches!(
                code,
                E::BadRequest
                    | E::Unauthenticated
                    | E::PayloadTooLarge
                    | E::RequestTimeout
                    | E::Internal
                    | E::Unavailable
                    | E::StorageUnavailable
            ),
            Access::Signed { .. } => true,
        }
    };
    let mut by_status: std::collections::BTreeMap<u16, Vec<&'static str>> = Default::default();
    for &code in ErrorCode::ALL {
        if applies(code) {
            by_status
                .entry(code.status())
                .or_default()
                .push(code.name());
        }
    }
    by_status
        .into_iter()
        .map(|(status, codes)| {
            let mut response = json!({
                "description": format!("Error codes: {}.", codes.join(", ")),
                "content": {routes::CONTENT_TYPE_JSON: {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
            });
            if matches!(status, 429 | 503) {
                response["headers"] = json!({"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}});
            }
            (status.to_string(), response)
        })
        .collect()
}

fn build() -> Value {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|settings| settings.definitions_path = "/components/schemas".into())
        .into_generator();
    generator.subschema_for::<ErrorBody>();
    let mut paths = Map::new();
    for operation in operations() {
        let mut entry = json!({
            "operationId": operation.id,
            "summary": operation.summary,
            "parameters": parameters(&operation),
        });
        match &operation.access {
            Access::Public => entry["security"] = json!([]),
            Access::Bootstrap => entry["security"] = json!([{"bootstrapToken": []}]),
            Access::Signed { roles } => {
                entry["security"] = json!([{
                    "keyId": [], "timestamp": [], "nonce": [], "contentSha256": [], "signature": []
                }]);
                let roles: Vec<&str> = roles.iter().map(|r| role_name(*r)).collect();
                entry["x-tabir-roles"] = json!(roles);
                entry["description"] = json!(format!(
                    "Signed by a key with role {}. Key, role, domain and the declared body length are checked from the headers before any body is read.",
                    roles.join(" or ")
                ));
            }
        }
        if let Some(content) = content(&operation.request, &mut generator) {
            entry["requestBody"] = json!({"required": true, "content": content});
            entry["x-tabir-body-limit"] = json!(operation.limit);
        }
        let mut responses = error_responses(&operation);
        let mut success = json!({"description": "Done."});
        if let Some(content) = content(&operation.answer, &mut generator) {
            success["content"] = content;
        }
        if operation.audit_seq {
            success["headers"] = json!({routes::HEADER_AUDIT_SEQ: {
                "description": "Sequence number of the audit entry that escrows the result (what the decision report refers to).",
                "schema": {"type": "integer"},
            }});
        }
        if operation.id == "enrol" {
            responses.insert(
                "200".into(),
                json!({
                    "description": "Replaced an existing template.",
                    "content": success["content"].clone(),
                }),
            );
        }
        responses.insert(operation.success.to_string(), success);
        let path = paths
            .entry(operation.path.to_owned())
            .or_insert_with(|| json!({}));
        path[operation.method] = entry;
    }
    let header_scheme = |name: &str, description: &str| json!({"type": "apiKey", "in": "header", "name": name, "description": description});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Tabir verification server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Privacy-preserving face verification: devices send TFHE ciphertexts, the server answers encrypted match bits and keeps a signed, hash-chained audit log. Signing: docs/protocol.md (message `tabir-request-v2`).",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {
            "schemas": generator.take_definitions(true),
            "securitySchemes": {
                "keyId": header_scheme(signing::HEADER_KEY_ID, "Hex SHA-256 of the caller's Ed25519 public key."),
                "timestamp": header_scheme(signing::HEADER_TIMESTAMP, "Seconds since the Unix epoch, within 300 s of the server's clock."),
                "nonce": header_scheme(signing::HEADER_NONCE, "32 lower-case hex characters, fresh for every attempt."),
                "contentSha256": header_scheme(signing::HEADER_CONTENT_SHA256, "Hex SHA-256 of the body."),
                "signature": header_scheme(signing::HEADER_SIGNATURE, "Hex Ed25519 signature of the request message (docs/protocol.md)."),
                "bootstrapToken": {"type": "http", "scheme": "bearer", "description": "The one-time token from the server's bootstrap token file."},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_documented_once_with_resolvable_schemas() {
        let document = build();
        let mut seen = std::collections::BTreeSet::new();
        for operation in operations() {
            assert!(seen.insert((operation.method, operation.path)));
            assert!(document["paths"][operation.path][operation.method].is_object());
        }
        // Every $ref points at a schema the document defines.
        let text = document.to_string();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &reference[..reference.find('"').unwrap()];
            assert!(schemas.contains_key(name), "no schema {name}");
        }
        assert!(schemas.contains_key("ErrorBody"));
        assert!(schemas.contains_key("AuditPage"));
    }
}

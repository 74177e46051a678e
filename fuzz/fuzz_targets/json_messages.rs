//! The protocol's JSON messages: every type of `tabir_proto::messages` and
//! `tabir_proto::ErrorBody` (and the lists the registry answers with) is decoded from every
//! input; what decodes must survive a JSON round trip, and is then used as its receiver uses
//! it: a device registration is validated and its share delta decoded (hex, then
//! `ShareDelta::from_bytes`, as the server does), keys are parsed, re-shared bits decoded
//! (hex, then `EncryptedBit::from_bytes`, as the auditor does), error codes looked up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tabir_crypto::{EncryptedBit, KeyFingerprint, ShareDelta};
use tabir_fuzz::{config, decode_in_its_domain};
use tabir_proto::messages::{
    AuditPage, CustodianBootstrap, DecisionReport, DeletionReceipt, DeviceInfo, DeviceRegistration,
    DomainInfo, EnrolmentReceipt, ReportReceipt, ResharePage, ReshareRequest, ServerInfo,
};
use tabir_proto::{hex, signing, ErrorBody};

fn decode<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(data: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(data).ok()?;
    let json = serde_json::to_vec(&value).expect("a decoded message serializes");
    let back: T = serde_json::from_slice(&json).expect("a serialized message decodes");
    assert_eq!(back, value);
    Some(value)
}

/// DomainInfo carries an f32, which JSON cannot round-trip when it is not finite (serde_json
/// writes null); such a value is checked without the round trip.
fn decode_domain_info(info: DomainInfo) {
    if info.threshold_cosine.is_finite() {
        let json = serde_json::to_vec(&info).expect("a decoded message serializes");
        let back: DomainInfo = serde_json::from_slice(&json).expect("a serialized message decodes");
        assert_eq!(back, info);
    }
    let _ = KeyFingerprint::from_hex(&info.fingerprint);
}

fuzz_target!(|data: &[u8]| {
    let config = config();
    if let Ok(info) = serde_json::from_slice::<DomainInfo>(data) {
        decode_domain_info(info);
    }
    if let Ok(list) = serde_json::from_slice::<Vec<DomainInfo>>(data) {
        list.into_iter().for_each(decode_domain_info);
    }
    if let Some(registration) = decode::<DeviceRegistration>(data) {
        let _ = format!("{registration:?}");
        if registration.validate().is_ok() {
            let _ = signing::parse_public_key(&registration.public_key);
            if let Some(delta) = &registration.share_delta {
                let bytes = hex::decode_vec(delta).expect("a validated delta is hex");
                let _ = decode_in_its_domain(|d| ShareDelta::from_bytes(&bytes, &config, d));
            }
        }
    }
    let _ = decode::<DeviceInfo>(data);
    let _ = decode::<Vec<DeviceInfo>>(data);
    let _ = decode::<EnrolmentReceipt>(data);
    let _ = decode::<DeletionReceipt>(data);
    let _ = decode::<AuditPage>(data);
    if let Some(info) = decode::<ServerInfo>(data) {
        let _ = signing::parse_public_key(&info.audit_public_key);
    }
    if let Some(bootstrap) = decode::<CustodianBootstrap>(data) {
        let _ = signing::parse_public_key(&bootstrap.public_key);
    }
    let _ = decode::<DecisionReport>(data);
    let _ = decode::<ReportReceipt>(data);
    let _ = decode::<ReshareRequest>(data);
    if let Some(page) = decode::<ResharePage>(data) {
        for result in &page.results {
            if let Some(bytes) = hex::decode_vec(&result.bit) {
                let _ = decode_in_its_domain(|d| EncryptedBit::from_bytes(&bytes, &config, d));
            }
        }
    }
    if let Some(body) = decode::<ErrorBody>(data) {
        if let Some(code) = body.code() {
            assert_eq!(code.name(), body.error.code);
        }
    }
});

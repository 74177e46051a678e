//! Who may call each authenticated route, how large its body may be, and what its refusals are
//! recorded as: read by the [`Signed`](super::Signed) extractor before any body is read.

use super::signed::Policy;
use tabir_crypto::ciphertexts::{PROBE_LIMIT, TEMPLATE_LIMIT};
use tabir_crypto::registration::REGISTRATION_LIMIT;
use tabir_proto::audit::Action;
use tabir_proto::routes::LIMIT_JSON;
use tabir_proto::Role;

const ANY_KEY: &[Role] = &[Role::Device, Role::Auditor, Role::Custodian];
const READERS: &[Role] = &[Role::Auditor, Role::Custodian];
const CUSTODIAN: &[Role] = &[Role::Custodian];
const DEVICE: &[Role] = &[Role::Device];
const AUDITOR: &[Role] = &[Role::Auditor];

macro_rules! policies {
    ($( $(#[$doc:meta])* $name:ident = ($roles:expr, $limit:expr, $action:expr); )*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl Policy for $name {
            const ROLES: &'static [Role] = $roles;
            const LIMIT: u64 = $limit;
            const ACTION: Option<Action> = $action;
        }
    )*};
}

policies! {
    /// `GET /v1/server`.
    ServerInfo = (ANY_KEY, LIMIT_JSON, None);
    /// `GET /v1/domains`.
    DomainList = (READERS, LIMIT_JSON, None);
    /// `GET /v1/domains/{domain}`.
    DomainRead = (ANY_KEY, LIMIT_JSON, None);
    /// `PUT /v1/domains/{domain}`: the only large body (tens of MiB), custodians only.
    DomainRegistration = (CUSTODIAN, REGISTRATION_LIMIT, Some(Action::RegisterDomain));
    /// `POST /v1/domains/{domain}/devices`.
    KeyRegistration = (CUSTODIAN, LIMIT_JSON, Some(Action::RegisterDevice));
    /// `GET /v1/domains/{domain}/devices`.
    KeyList = (READERS, LIMIT_JSON, None);
    /// `DELETE /v1/domains/{domain}/devices/{key_id}`.
    KeyRevocation = (CUSTODIAN, LIMIT_JSON, Some(Action::RevokeDevice));
    /// `PUT /v1/domains/{domain}/subjects/{subject}`.
    Enrolment = (DEVICE, TEMPLATE_LIMIT, Some(Action::Enrol));
    /// `DELETE /v1/domains/{domain}/subjects/{subject}`.
    Deletion = (DEVICE, LIMIT_JSON, Some(Action::DeleteEnrolment));
    /// `POST .../subjects/{subject}/verifications`.
    Verification = (DEVICE, PROBE_LIMIT, Some(Action::Verify));
    /// `POST /v1/domains/{domain}/identifications`: submits a search job.
    Identification = (DEVICE, PROBE_LIMIT, Some(Action::SubmitIdentification));
    /// `GET .../identifications/{job_id}`.
    IdentificationStatus = (DEVICE, LIMIT_JSON, None);
    /// `GET .../identifications/{job_id}/result`.
    IdentificationResult = (DEVICE, LIMIT_JSON, None);
    /// `DELETE .../identifications/{job_id}`.
    IdentificationCancel = (DEVICE, LIMIT_JSON, Some(Action::CancelIdentification));
    /// `POST /v1/domains/{domain}/decisions/{seq}`.
    DecisionReport = (DEVICE, LIMIT_JSON, Some(Action::ReportDecision));
    /// `POST /v1/domains/{domain}/escrow/reshare`.
    Reshare = (AUDITOR, LIMIT_JSON, Some(Action::ReshareEscrow));
    /// `GET /v1/audit`, `GET /v1/audit/checkpoint`.
    AuditRead = (READERS, LIMIT_JSON, Some(Action::ReadAudit));
}

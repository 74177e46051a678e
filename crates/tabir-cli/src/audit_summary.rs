//! What the auditor page draws from a chain-verified audit log, as pure functions of its
//! entries (no network, no clock): verifications, identifications, refusals and quota hits per
//! UTC day per device, and the registry's keys set against what the log records about them.
//!
//! An entry holds no key id or label for the key a `register_device` or `revoke_device` entry
//! is about (only the custodian who acted, and when), so the device table comes from the
//! server's registry (`GET /v1/domains/{domain}/devices`, readable by auditors) and the log
//! checks it: as many registrations and revocations in the log as the registry lists, no key
//! acting in the log that the registry does not list, none acting outside its registered
//! period.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use tabir_proto::audit::{Action, AuditEntry, Outcome};
use tabir_proto::messages::DeviceInfo;
use tabir_proto::Role;

/// The refusal code of a quota hit.
pub const QUOTA_EXCEEDED: &str = "quota_exceeded";

/// At most this many days are drawn one by one (a gap-free axis); over a longer span only the
/// days with activity are.
pub const MAX_FILLED_DAYS: i64 = 92;

/// What one device did on one day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Verifications answered (`verify`, done).
    pub verifications: u64,
    /// Identifications answered (`identify`, done).
    pub identifications: u64,
    /// Requests refused, quota hits excluded (they are counted apart).
    pub refusals: u64,
    /// Requests refused over a quota (`quota_exceeded`).
    pub quota_hits: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.verifications += other.verifications;
        self.identifications += other.identifications;
        self.refusals += other.refusals;
        self.quota_hits += other.quota_hits;
    }

    fn is_zero(&self) -> bool {
        *self == Counts::default()
    }
}

/// One device's counts on one UTC day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DayCounts {
    /// YYYY-MM-DD, UTC.
    pub day: String,
    /// The device's key id.
    pub device: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// Activity per day per device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Activity {
    /// The chart's axis, oldest first: every day from the first to the last with activity
    /// (only the days with activity when that spans more than [`MAX_FILLED_DAYS`]).
    pub days: Vec<String>,
    /// Key ids of the devices with any count, in order.
    pub devices: Vec<String>,
    /// Days and devices with a count other than zero, by day then device.
    pub rows: Vec<DayCounts>,
    /// Per device, over every day.
    pub totals: BTreeMap<String, Counts>,
    /// Entries counted but for their time, which could not be read (none from an honest
    /// server).
    pub undated: usize,
}

/// Count the device entries of `domain` per UTC day per device.
pub fn activity<'a>(entries: impl IntoIterator<Item = &'a AuditEntry>, domain: &str) -> Activity {
    let mut cells: BTreeMap<(i64, String), Counts> = BTreeMap::new();
    let mut undated = 0;
    for entry in entries {
        let event = &entry.event;
        if event.domain.as_deref() != Some(domain) || event.role != Some(Role::Device) {
            continue;
        }
        let counts = match (&event.action, &event.outcome) {
            (Action::Verify, Outcome::Done) => Counts {
                verifications: 1,
                ..Counts::default()
            },
            (Action::Identify, Outcome::Done) => Counts {
                identifications: 1,
                ..Counts::default()
            },
            (_, Outcome::Refused(code)) if code == QUOTA_EXCEEDED => Counts {
                quota_hits: 1,
                ..Counts::default()
            },
            (_, Outcome::Refused(_)) => Counts {
                refusals: 1,
                ..Counts::default()
            },
            _ => continue,
        };
        let Some(seconds) = parse_utc(&event.time) else {
            undated += 1;
            continue;
        };
        cells
            .entry((seconds.div_euclid(86_400), event.actor.clone()))
            .or_default()
            .add(&counts);
    }

    let mut activity = Activity {
        undated,
        ..Activity::default()
    };
    let active_days: BTreeSet<i64> = cells.keys().map(|(day, _)| *day).collect();
    if let (Some(first), Some(last)) = (active_days.first(), active_days.last()) {
        activity.days = if last - first < MAX_FILLED_DAYS {
            (*first..=*last).map(day_name).collect()
        } else {
            active_days.iter().copied().map(day_name).collect()
        };
    }
    let mut devices = BTreeSet::new();
    for ((day, device), counts) in cells {
        devices.insert(device.clone());
        activity
            .totals
            .entry(device.clone())
            .or_default()
            .add(&counts);
        activity.rows.push(DayCounts {
            day: day_name(day),
            device,
            counts,
        });
    }
    activity.rows.retain(|row| !row.counts.is_zero());
    activity.devices = devices.into_iter().collect();
    activity
}

/// What the log records about one registered key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KeyLog {
    /// Entries this key made (as the actor), in the key's domain.
    pub entries: usize,
    /// Time of its first and last entry.
    pub first: Option<String>,
    pub last: Option<String>,
    /// Entries it made that were done before its registration or after its revocation (a
    /// revoked key is refused before anything is done: any is a finding).
    pub outside_validity: Vec<u64>,
}

/// A key of the registry, with what the log says about it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceRow {
    #[serde(flatten)]
    pub info: DeviceInfo,
    pub log: KeyLog,
}

/// The registry set against the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RegistryCheck {
    /// `register_device` entries of the domain, done.
    pub registrations_in_log: usize,
    /// `revoke_device` entries of the domain, done.
    pub revocations_in_log: usize,
    /// Keys the registry lists for the domain, and how many of them are revoked.
    pub registry_keys: usize,
    pub registry_revoked: usize,
    /// Key ids acting in the domain's entries (as devices or auditors) that the registry does
    /// not list.
    pub unknown_actors: Vec<String>,
    /// True when the counts agree, no unknown key acts, and no key acted outside its period.
    pub agrees: bool,
}

/// The device table: the registry's keys, oldest first, each with its activity in the log.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DeviceTable {
    pub devices: Vec<DeviceRow>,
    pub check: RegistryCheck,
}

/// Set the registry's keys of `domain` against the domain's entries of the (verified) log.
pub fn device_table<'a>(
    keys: &[DeviceInfo],
    entries: impl IntoIterator<Item = &'a AuditEntry>,
    domain: &str,
) -> DeviceTable {
    let mut logs: BTreeMap<&str, KeyLog> = BTreeMap::new();
    let mut check = RegistryCheck::default();
    let known: BTreeMap<&str, &DeviceInfo> = keys.iter().map(|k| (k.key_id.as_str(), k)).collect();
    let mut unknown = BTreeSet::new();
    for entry in entries {
        let event = &entry.event;
        if event.domain.as_deref() != Some(domain) {
            continue;
        }
        match (&event.action, &event.outcome) {
            (Action::RegisterDevice, Outcome::Done) => check.registrations_in_log += 1,
            (Action::RevokeDevice, Outcome::Done) => check.revocations_in_log += 1,
            _ => {}
        }
        if !matches!(event.role, Some(Role::Device | Role::Auditor)) {
            continue;
        }
        let Some(info) = known.get(event.actor.as_str()) else {
            unknown.insert(event.actor.clone());
            continue;
        };
        let log = logs.entry(info.key_id.as_str()).or_default();
        log.entries += 1;
        if log.first.is_none() {
            log.first = Some(event.time.clone());
        }
        log.last = Some(event.time.clone());
        if event.outcome == Outcome::Done && outside(&event.time, info) {
            log.outside_validity.push(entry.seq);
        }
    }
    check.registry_keys = keys.len();
    check.registry_revoked = keys.iter().filter(|k| k.revoked_at.is_some()).count();
    check.unknown_actors = unknown.into_iter().collect();
    let mut devices: Vec<DeviceRow> = keys
        .iter()
        .map(|info| DeviceRow {
            info: info.clone(),
            log: logs.remove(info.key_id.as_str()).unwrap_or_default(),
        })
        .collect();
    devices.sort_by_key(|row| (parse_utc(&row.info.registered_at), row.info.key_id.clone()));
    check.agrees = check.registrations_in_log == check.registry_keys
        && check.revocations_in_log == check.registry_revoked
        && check.unknown_actors.is_empty()
        && devices
            .iter()
            .all(|row| row.log.outside_validity.is_empty());
    DeviceTable { devices, check }
}

/// Whether a time falls before the key's registration or after its revocation (to the
/// second; a time that cannot be read counts as outside).
fn outside(time: &str, info: &DeviceInfo) -> bool {
    let Some(at) = parse_utc(time) else {
        return true;
    };
    let before = parse_utc(&info.registered_at).is_some_and(|registered| at < registered);
    let after = info
        .revoked_at
        .as_deref()
        .and_then(parse_utc)
        .is_some_and(|revoked| at > revoked);
    before || after
}

/// Seconds since the Unix epoch of an RFC 3339 time (`2026-12-02T01:31:58Z`, with optional
/// fractional seconds and a `Z` or `+HH:MM` offset), or None.
pub fn parse_utc(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let hours = number(text.len() - 5..text.len() - 3)?;
            let minutes = number(text.len() - 2..text.len())?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'+' {
                offset
            } else {
                -offset
            }
        }
        _ => return None,
    };
    Some(
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(59)
            - offset,
    )
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day number (days since 1970-01-01).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// YYYY-MM-DD of a day number.
pub fn day_name(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// RFC 3339 UTC, to the second, of seconds since the Unix epoch.
pub fn format_utc(seconds: i64) -> String {
    let time = seconds.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        day_name(seconds.div_euclid(86_400)),
        time / 3600,
        time % 3600 / 60,
        time % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tabir_proto::audit::{AuditEvent, SeqRange};

    const DOMAIN: &str = "jabar-bansos";

    fn key(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    fn entry(
        seq: u64,
        time: &str,
        actor: &str,
        role: Role,
        action: Action,
        outcome: Outcome,
    ) -> AuditEntry {
        AuditEntry {
            seq,
            event: AuditEvent {
                time: time.into(),
                actor: actor.into(),
                role: Some(role),
                domain: Some(DOMAIN.into()),
                key_fingerprint: None,
                action,
                subject: None,
                outcome,
                refers_to: None::<SeqRange>,
                reported: None,
            },
            prev_hash: String::new(),
            hash: String::new(),
            signature: String::new(),
        }
    }

    fn device(n: u8, role: Role, registered: &str, revoked: Option<&str>) -> DeviceInfo {
        DeviceInfo {
            key_id: key(n),
            label: format!("key {n}"),
            role,
            domain: DOMAIN.into(),
            registered_at: registered.into(),
            revoked_at: revoked.map(str::to_owned),
            holds_share: revoked.is_none(),
        }
    }

    fn refused(code: &str) -> Outcome {
        Outcome::Refused(code.into())
    }

    #[test]
    fn parses_rfc3339_times_to_utc_seconds() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc("2026-12-02T01:31:58Z"), Some(1_796_175_118));
        assert_eq!(parse_utc("2026-12-02T01:31:58.250Z"), Some(1_796_175_118));
        // 08:31:58 in Jakarta is 01:31:58 UTC.
        assert_eq!(parse_utc("2026-12-02T08:31:58+07:00"), Some(1_796_175_118));
        assert_eq!(parse_utc("2026-12-01T20:31:58-05:00"), Some(1_796_175_118));
        assert_eq!(parse_utc("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        for bad in [
            "",
            "2026-12-02",
            "2026-12-02T01:31:58",
            "2026-13-02T01:31:58Z",
            "2025-02-29T01:31:58Z",
            "2026-12-02T24:00:00Z",
            "2026-12-02T01:31:58.Z",
            "2026-12-02T01:31:58+7:00",
            "2026-12-0xT01:31:58Z",
            "２026-12-02T01:31:58Z",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn day_numbers_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(day_name(0), "1970-01-01");
        assert_eq!(day_name(-1), "1969-12-31");
        for days in [-800_000, -1, 0, 59, 365, 11_016, 20_789, 2_000_000] {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
        assert_eq!(day_name(days_from_civil(2024, 2, 29) + 1), "2024-03-01");
    }

    #[test]
    fn formats_utc_times() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(1_796_175_118), "2026-12-02T01:31:58Z");
        assert_eq!(parse_utc(&format_utc(1_709_251_199)), Some(1_709_251_199));
    }

    #[test]
    fn counts_per_day_per_device() {
        let (a, b) = (key(1), key(2));
        let entries = vec![
            entry(
                1,
                "2026-12-01T23:59:59Z",
                &a,
                Role::Device,
                Action::Verify,
                Outcome::Done,
            ),
            entry(
                2,
                "2026-12-02T00:00:00Z",
                &a,
                Role::Device,
                Action::Verify,
                Outcome::Done,
            ),
            entry(
                3,
                "2026-12-02T00:10:00Z",
                &a,
                Role::Device,
                Action::Identify,
                Outcome::Done,
            ),
            entry(
                4,
                "2026-12-02T00:11:00Z",
                &a,
                Role::Device,
                Action::Verify,
                refused(QUOTA_EXCEEDED),
            ),
            entry(
                5,
                "2026-12-02T00:12:00Z",
                &a,
                Role::Device,
                Action::SubmitIdentification,
                refused(QUOTA_EXCEEDED),
            ),
            entry(
                6,
                "2026-12-02T00:13:00Z",
                &a,
                Role::Device,
                Action::Verify,
                refused("unknown_subject"),
            ),
            entry(
                7,
                "2026-12-04T09:00:00+07:00",
                &b,
                Role::Device,
                Action::Verify,
                Outcome::Done,
            ),
            // Not counted: other actions done, failures, auditors, other domains.
            entry(
                8,
                "2026-12-02T00:14:00Z",
                &a,
                Role::Device,
                Action::Enrol,
                Outcome::Done,
            ),
            entry(
                9,
                "2026-12-02T00:15:00Z",
                &a,
                Role::Device,
                Action::ReportDecision,
                Outcome::Done,
            ),
            entry(
                10,
                "2026-12-02T00:16:00Z",
                &a,
                Role::Device,
                Action::Verify,
                Outcome::Failed,
            ),
            entry(
                11,
                "2026-12-02T00:17:00Z",
                &key(3),
                Role::Auditor,
                Action::ReshareEscrow,
                refused("forbidden"),
            ),
            {
                let mut other = entry(
                    12,
                    "2026-12-02T00:18:00Z",
                    &a,
                    Role::Device,
                    Action::Verify,
                    Outcome::Done,
                );
                other.event.domain = Some("other".into());
                other
            },
            entry(
                13,
                "yesterday",
                &b,
                Role::Device,
                Action::Verify,
                Outcome::Done,
            ),
        ];
        let activity = activity(&entries, DOMAIN);
        assert_eq!(
            activity.days,
            ["2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04"]
        );
        assert_eq!(activity.devices, [a.clone(), b.clone()]);
        let row = |day: &str, device: &str| {
            activity
                .rows
                .iter()
                .find(|r| r.day == day && r.device == device)
                .map(|r| r.counts)
        };
        assert_eq!(
            row("2026-12-01", &a),
            Some(Counts {
                verifications: 1,
                ..Counts::default()
            })
        );
        assert_eq!(
            row("2026-12-02", &a),
            Some(Counts {
                verifications: 1,
                identifications: 1,
                refusals: 1,
                quota_hits: 2,
            })
        );
        // 09:00 in Jakarta on the 4th is 02:00 UTC on the 4th.
        assert_eq!(
            row("2026-12-04", &b),
            Some(Counts {
                verifications: 1,
                ..Counts::default()
            })
        );
        assert_eq!(row("2026-12-03", &a), None);
        assert_eq!(activity.rows.len(), 3);
        assert_eq!(activity.totals[&a].verifications, 2);
        assert_eq!(activity.totals[&a].quota_hits, 2);
        assert_eq!(activity.undated, 1);
    }

    #[test]
    fn a_long_span_draws_only_active_days() {
        let a = key(1);
        let entries = vec![
            entry(
                1,
                "2026-01-01T10:00:00Z",
                &a,
                Role::Device,
                Action::Verify,
                Outcome::Done,
            ),
            entry(
                2,
                "2026-12-01T10:00:00Z",
                &a,
                Role::Device,
                Action::Verify,
                Outcome::Done,
            ),
        ];
        assert_eq!(
            activity(&entries, DOMAIN).days,
            ["2026-01-01", "2026-12-01"]
        );
        assert_eq!(activity(&[], DOMAIN), Activity::default());
    }

    #[test]
    fn the_registry_agrees_with_the_log() {
        let custodian = key(9);
        let (a, b) = (key(1), key(2));
        let keys = vec![
            device(2, Role::Auditor, "2026-12-01T08:00:05Z", None),
            device(
                1,
                Role::Device,
                "2026-12-01T08:00:00Z",
                Some("2026-12-03T00:00:00Z"),
            ),
        ];
        let mut entries = vec![
            entry(
                1,
                "2026-12-01T08:00:00Z",
                &custodian,
                Role::Custodian,
                Action::RegisterDevice,
                Outcome::Done,
            ),
            entry(
                2,
                "2026-12-01T08:00:05Z",
                &custodian,
                Role::Custodian,
                Action::RegisterDevice,
                Outcome::Done,
            ),
            entry(
                3,
                "2026-12-01T09:00:00Z",
                &a,
                Role::Device,
                Action::Verify,
                Outcome::Done,
            ),
            entry(
                4,
                "2026-12-02T09:00:00Z",
                &a,
                Role::Device,
                Action::Verify,
                refused("unknown_subject"),
            ),
            entry(
                5,
                "2026-12-02T10:00:00Z",
                &b,
                Role::Auditor,
                Action::ReadAudit,
                Outcome::Done,
            ),
            entry(
                6,
                "2026-12-03T00:00:00Z",
                &custodian,
                Role::Custodian,
                Action::RevokeDevice,
                Outcome::Done,
            ),
        ];
        let table = device_table(&keys, &entries, DOMAIN);
        assert!(table.check.agrees, "{table:?}");
        assert_eq!(table.check.registrations_in_log, 2);
        assert_eq!(table.check.revocations_in_log, 1);
        assert_eq!(table.check.registry_revoked, 1);
        // Oldest registration first.
        assert_eq!(table.devices[0].info.key_id, a);
        assert_eq!(table.devices[0].log.entries, 2);
        assert_eq!(
            table.devices[0].log.first.as_deref(),
            Some("2026-12-01T09:00:00Z")
        );
        assert_eq!(
            table.devices[0].log.last.as_deref(),
            Some("2026-12-02T09:00:00Z")
        );
        assert_eq!(table.devices[1].log.entries, 1);

        // A revoked key acting, a key the registry does not list, a registration missing
        // from the log: each is found.
        entries.push(entry(
            7,
            "2026-12-03T00:00:01Z",
            &a,
            Role::Device,
            Action::Verify,
            Outcome::Done,
        ));
        let table = device_table(&keys, &entries, DOMAIN);
        assert!(!table.check.agrees);
        assert_eq!(table.devices[0].log.outside_validity, [7]);
        entries.pop();
        entries.push(entry(
            7,
            "2026-12-03T01:00:00Z",
            &key(4),
            Role::Device,
            Action::Verify,
            Outcome::Done,
        ));
        let table = device_table(&keys, &entries, DOMAIN);
        assert!(!table.check.agrees);
        assert_eq!(table.check.unknown_actors, [key(4)]);
        entries.pop();
        entries.remove(1);
        let table = device_table(&keys, &entries, DOMAIN);
        assert!(!table.check.agrees);
        assert_eq!(table.check.registrations_in_log, 1);
    }
}

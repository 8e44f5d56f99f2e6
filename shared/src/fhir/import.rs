//! A clinic system's `transaction` Bundle to the entries it adds to that
//! clinic's record of one patient.
//!
//! Only Observations, DiagnosticReports, MedicationRequests and
//! AllergyIntolerances are taken, each with a business `identifier`: the
//! entry id is derived from it ([`entry_id`]), so sending the same Bundle
//! again names the same entries and adds nothing. Every problem of every
//! resource is named at once; the caller stores nothing unless there are
//! none, and then judges the entries with the write policy and safety
//! rules as a provider's own (`shared::policy`).

use std::collections::{BTreeSet, HashMap};

use uuid::Uuid;

use super::json::Value;
use super::read::{self, Reader, Recorded};
use super::{Issue, URI, parse_urn};
use crate::fields::limits::ENTRIES_PER_CHANGE;
use crate::ids::{ClinicId, EntryId, PatientId};
use crate::schema::{Allergy, Observation, Prescription, Provenance, Report};

/// Resources one Bundle may hold: what one change of the record may add.
pub const MAX_RESOURCES: usize = ENTRIES_PER_CHANGE;

/// Namespace of imported entry ids (fixed; never change it, or re-sent
/// Bundles would be imported again).
const IMPORT_NAMESPACE: Uuid = Uuid::from_u128(0x9a41_07d3_62bc_4f18_b5e0_7c2d_84f1_3a96);

/// One entry to add.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Report(Report),
    Observation(Observation),
    Prescription(Prescription),
    Allergy(Allergy),
}

/// An entry and where it came from in the Bundle.
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    /// Index in `Bundle.entry`.
    pub index: usize,
    pub id: EntryId,
    pub entry: Entry,
}

/// What a Bundle adds: entries for one patient, in Bundle order.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub patient: PatientId,
    pub entries: Vec<Imported>,
}

/// The entry id for a resource of `clinic` with business identifier
/// `system`|`value`: a portal entry id (`urn:ietf:rfc:3986`,
/// `urn:uuid:<id>`, as the portal exports) is kept, so a record exported
/// and imported elsewhere keeps its ids; any other identifier gives a
/// UUIDv5 of clinic, system and value.
pub fn entry_id(clinic: ClinicId, system: &str, value: &str) -> EntryId {
    if system == URI
        && let Some(id) = parse_urn::<EntryId>(value)
    {
        return id;
    }
    let name = format!("{clinic}|{system}|{value}");
    EntryId::from_uuid(Uuid::new_v5(&IMPORT_NAMESPACE, name.as_bytes()))
}

/// The entries `bundle` adds to `clinic`'s record, recorded as
/// `provenance` (the importing system, now), or every problem found.
pub fn plan(bundle: &Value, clinic: ClinicId, provenance: &Provenance) -> Result<Plan, Vec<Issue>> {
    let mut issues = Vec::new();
    if bundle.str_at(&["resourceType"]) != Some("Bundle") {
        return Err(vec![Issue::new("invalid", "Bundle", "not a Bundle")]);
    }
    if bundle.str_at(&["type"]) != Some("transaction") {
        issues.push(Issue::new("value", "Bundle.type", "must be transaction"));
    }
    let entries = bundle.items("entry");
    if entries.is_empty() {
        issues.push(Issue::new("required", "Bundle.entry", "the Bundle has no entries"));
    }
    if entries.len() > MAX_RESOURCES {
        issues.push(Issue::new(
            "too-costly",
            "Bundle.entry",
            format!("at most {MAX_RESOURCES} resources per Bundle; send more Bundles"),
        ));
        return Err(issues);
    }
    // First pass: each resource's identity, and how other entries refer to it.
    let mut ids: Vec<Option<EntryId>> = Vec::new();
    let mut by_reference: HashMap<String, usize> = HashMap::new();
    let mut seen: BTreeSet<EntryId> = BTreeSet::new();
    let mut patient: Option<PatientId> = None;
    for (i, e) in entries.iter().enumerate() {
        let base = format!("Bundle.entry[{i}]");
        let mut rd = Reader { issues: &mut issues, base: base.clone() };
        let Some(r) = e.get("resource") else {
            rd.problem("required", "resource", "is required");
            ids.push(None);
            continue;
        };
        match e.str_at(&["request", "method"]) {
            Some("POST" | "PUT") => {}
            Some(_) => {
                rd.problem("not-supported", "request.method", "only POST and PUT create entries")
            }
            None => rd.problem("required", "request.method", "is required in a transaction"),
        }
        let kind = r.str_at(&["resourceType"]).unwrap_or_default();
        rd.base = format!("{base}.resource");
        if !matches!(
            kind,
            "Observation" | "DiagnosticReport" | "MedicationRequest" | "AllergyIntolerance"
        ) {
            rd.problem(
                "not-supported",
                "resourceType",
                "only Observation, DiagnosticReport, MedicationRequest and AllergyIntolerance are imported",
            );
            ids.push(None);
            continue;
        }
        let identifier = r.items("identifier").iter().find_map(|i| {
            let (system, value) = (i.str_at(&["system"])?, i.str_at(&["value"])?);
            (!system.is_empty() && !value.is_empty()).then_some((system, value))
        });
        let id = match identifier {
            Some((system, value)) => Some(entry_id(clinic, system, value)),
            None => {
                rd.problem(
                    "required",
                    "identifier",
                    "needs a system and value: re-sending must not add it twice",
                );
                None
            }
        };
        if let Some(id) = id
            && !seen.insert(id)
        {
            rd.problem(
                "duplicate",
                "identifier",
                "another resource of this Bundle has the same identifier",
            );
        }
        let subject_key = if kind == "AllergyIntolerance" { "patient" } else { "subject" };
        let subject = r
            .str_at(&[subject_key, "reference"])
            .and_then(|s| s.strip_prefix("Patient/")?.parse::<PatientId>().ok());
        match (subject, patient) {
            (None, _) => {
                rd.problem("required", subject_key, "must reference Patient/<portal patient id>")
            }
            (Some(s), Some(p)) if s != p => rd.problem(
                "business-rule",
                subject_key,
                "every resource must be about the same patient",
            ),
            (Some(s), _) => patient = Some(s),
        }
        if let Some(full_url) = e.str_at(&["fullUrl"]) {
            by_reference.insert(full_url.to_owned(), i);
        }
        if let Some(rid) = r.str_at(&["id"]) {
            by_reference.insert(format!("{kind}/{rid}"), i);
        }
        ids.push(id);
    }
    // Results of a report point to it.
    let mut report_of: HashMap<usize, EntryId> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let Some(r) =
            e.get("resource").filter(|r| r.str_at(&["resourceType"]) == Some("DiagnosticReport"))
        else {
            continue;
        };
        for (n, result) in r.items("result").iter().enumerate() {
            let target = result.str_at(&["reference"]).and_then(|t| by_reference.get(t)).copied();
            let is_observation = target.is_some_and(|t| {
                entries[t].str_at(&["resource", "resourceType"]) == Some("Observation")
            });
            match (target, ids[i]) {
                (Some(t), Some(report)) if is_observation => {
                    report_of.insert(t, report);
                }
                _ => issues.push(Issue::new(
                    "invalid",
                    &format!("Bundle.entry[{i}].resource.result[{n}]"),
                    "must reference an Observation in this Bundle",
                )),
            }
        }
    }
    let mut plan = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let (Some(r), Some(id)) = (e.get("resource"), ids[i]) else { continue };
        let mut rd = Reader { issues: &mut issues, base: format!("Bundle.entry[{i}].resource") };
        let rec = || Recorded {
            provenance: provenance.clone(),
            status_reason: None,
            status_by: None,
            status_at: None,
        };
        let entry = match r.str_at(&["resourceType"]) {
            Some("Observation") => {
                read::observation(&mut rd, r, report_of.get(&i).copied(), None, rec()).map(
                    |mut o| {
                        o.effective = utc(&mut rd, "effectiveDateTime", &o.effective);
                        Entry::Observation(o)
                    },
                )
            }
            Some("DiagnosticReport") => read::report(&mut rd, r, rec()).map(|mut o| {
                o.effective = utc(&mut rd, "effectiveDateTime", &o.effective);
                Entry::Report(o)
            }),
            Some("MedicationRequest") => read::prescription(&mut rd, r, rec()).map(|mut o| {
                o.authored = utc(&mut rd, "authoredOn", &o.authored);
                Entry::Prescription(o)
            }),
            Some("AllergyIntolerance") => read::allergy(&mut rd, r, rec()).map(Entry::Allergy),
            _ => None,
        };
        if let Some(entry) = entry {
            plan.push(Imported { index: i, id, entry });
        }
    }
    match patient {
        Some(patient) if issues.is_empty() => Ok(Plan { patient, entries: plan }),
        _ => {
            if issues.is_empty() {
                issues.push(Issue::new(
                    "required",
                    "Bundle.entry",
                    "no resource names the patient",
                ));
            }
            Err(issues)
        }
    }
}

/// A FHIR date or dateTime as the record stores times: a date as it is, a
/// time in UTC to the second (`2024-05-01T06:15:00Z`), so times compare as
/// text. Anything else is a problem.
fn utc(rd: &mut Reader<'_>, path: &str, text: &str) -> String {
    match to_utc(text) {
        Some(t) => t,
        None => {
            rd.problem("value", path, "must be a FHIR date or dateTime with a time zone");
            text.to_owned()
        }
    }
}

pub fn to_utc(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(range)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
    {
        return None;
    }
    if b.len() == 10 {
        return Some(text.to_owned());
    }
    if b.get(10) != Some(&b'T') || b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Fractions of a second are dropped: the record keeps whole seconds.
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &fraction[n..];
    }
    let offset = match rest {
        "Z" | "+00:00" | "-00:00" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let (h, m) = (rest[1..3].parse::<i64>().ok()?, rest[4..6].parse::<i64>().ok()?);
            if h > 14 || m > 59 {
                return None;
            }
            sign * (h * 60 + m)
        }
    };
    let minutes = days_from_civil(year, month, day) * 1440 + hour * 60 + minute - offset;
    let (days, minute_of_day) = (minutes.div_euclid(1440), minutes.rem_euclid(1440));
    let (y, m, d) = civil_from_days(days);
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{second:02}Z",
        minute_of_day / 60,
        minute_of_day % 60
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

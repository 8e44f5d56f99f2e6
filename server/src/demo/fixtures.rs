//! Constructors for the entries the demo data set writes, so each entry is
//! written as what varies (a test, a value, a time) rather than as every
//! field of its type. Each entry is new: no status change yet, provenance
//! from the author writing it.

use automerge::AutoCommit;
use chrono::{DateTime, Duration, NaiveTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use shared::catalog::{self, PANELS};
use shared::record;
use shared::schema::{
    Allergy, Appointment, Immunization, Message, Observation, Prescription, Provenance,
    RefillRequest, Report,
};
use shared::status::{
    AllergyStatus, AppointmentStatus, ImmunizationStatus, PrescriptionStatus, RefillStatus,
    ResultStatus, Severity, Side,
};
use shared::{ClinicId, EntryId, UserId};

/// Who is writing, for entry provenance: a person and, for clinic staff,
/// their clinic, with the directory's names (the write policy checks them).
#[derive(Clone, Debug)]
pub struct Author {
    pub user: UserId,
    pub name: String,
    pub clinic: Option<(ClinicId, String)>,
}

impl Author {
    /// Provenance of an entry this author records at `recorded`.
    pub fn provenance(&self, recorded: DateTime<Utc>) -> Provenance {
        let (clinic, clinic_name) =
            self.clinic.clone().expect("clinical entries are written by clinic staff");
        Provenance {
            clinic,
            clinic_name,
            recorder: self.user,
            recorder_name: self.name.clone(),
            recorded: stamp(recorded),
        }
    }
}

/// A final lab result of the catalog's test `loinc`, outside any report,
/// marked critical when its value is (as the write policy requires).
pub fn observation(
    loinc: &str,
    value: f64,
    effective: DateTime<Utc>,
    provenance: Provenance,
) -> Observation {
    let test = catalog::lab_test(loinc).expect("test in catalog");
    Observation {
        report: None,
        loinc: test.loinc.into(),
        display: test.display.into(),
        value_quantity: Some(value),
        value_string: None,
        unit: Some(test.unit.into()),
        reference_low: test.low,
        reference_high: test.high,
        effective: stamp(effective),
        status: ResultStatus::Final,
        replaces: None,
        provenance,
        status_reason: None,
        status_by: None,
        status_at: None,
        interpretation: shared::safety::judge(loinc, value).interpretation().map(Into::into),
    }
}

/// A final report of the catalog's panel `loinc`.
pub fn report(loinc: &str, effective: DateTime<Utc>, provenance: Provenance) -> Report {
    let panel = PANELS.iter().find(|panel| panel.loinc == loinc).expect("panel in catalog");
    Report {
        loinc: panel.loinc.into(),
        display: panel.display.into(),
        effective: stamp(effective),
        status: ResultStatus::Final,
        provenance,
        status_reason: None,
        status_by: None,
        status_at: None,
    }
}

/// Adds a report of panel `panel_loinc` drawn on the day of `when` (at
/// 08:15, reported six hours later) and one result per value, in the
/// panel's order of tests (fewer values, fewer results).
pub fn add_panel(
    doc: &mut AutoCommit,
    p: &Author,
    panel_loinc: &str,
    when: DateTime<Utc>,
    values: &[f64],
) -> Result<(), record::RecordError> {
    let panel = PANELS.iter().find(|panel| panel.loinc == panel_loinc).expect("panel in catalog");
    let when = at_time(when, 8, 15);
    let report_id = EntryId::mint();
    record::add(
        doc,
        report_id,
        &report(panel.loinc, when, p.provenance(when + Duration::hours(6))),
    )?;
    for (loinc, value) in panel.tests.iter().zip(values) {
        let result = Observation {
            report: Some(report_id),
            ..observation(loinc, *value, when, p.provenance(when + Duration::hours(6)))
        };
        record::add(doc, EntryId::mint(), &result)?;
    }
    Ok(())
}

/// A prescription of the catalog's medication `rxnorm` at its usual dosage.
pub fn prescription(
    p: &Author,
    rxnorm: &str,
    quantity: u32,
    refills: u32,
    authored: DateTime<Utc>,
    status: PrescriptionStatus,
) -> Prescription {
    let medication = catalog::medication(rxnorm).expect("medication in catalog");
    Prescription {
        rxnorm: medication.rxnorm.into(),
        display: medication.display.into(),
        dosage: medication.usual_dosage.into(),
        quantity,
        refills_allowed: refills,
        authored: stamp(authored),
        status,
        provenance: p.provenance(authored),
        status_reason: None,
        status_by: None,
        status_at: None,
        override_reason: None,
    }
}

/// A completed immunization with the catalog's vaccine `cvx`.
pub fn immunization(p: &Author, cvx: &str, when: DateTime<Utc>) -> Immunization {
    let vaccine = catalog::VACCINES.iter().find(|v| v.cvx == cvx).expect("vaccine in catalog");
    Immunization {
        cvx: vaccine.cvx.into(),
        vaccine: vaccine.display.into(),
        occurrence: stamp(when),
        status: ImmunizationStatus::Completed,
        provenance: p.provenance(when),
        status_reason: None,
        status_by: None,
        status_at: None,
    }
}

/// An active allergy to `substance` (RxNorm `substance_code`).
pub fn allergy(
    p: &Author,
    substance_code: &str,
    substance: &str,
    reaction: &str,
    severity: Severity,
    recorded: DateTime<Utc>,
) -> Allergy {
    Allergy {
        substance_code: substance_code.into(),
        substance: substance.into(),
        reaction: reaction.into(),
        severity,
        status: AllergyStatus::Active,
        provenance: p.provenance(recorded),
        status_reason: None,
        status_by: None,
        status_at: None,
    }
}

/// A booked appointment at `start`, booked at `recorded`. `start` is the
/// clinic's wall time with its offset (`zone`): its date is the day at the
/// clinic.
pub fn appointment(
    p: &Author,
    start: DateTime<Tz>,
    reason: &str,
    recorded: DateTime<Utc>,
) -> Appointment {
    Appointment {
        start: start.to_rfc3339_opts(SecondsFormat::Secs, true),
        reason: reason.into(),
        status: AppointmentStatus::Booked,
        provenance: p.provenance(recorded),
        status_reason: None,
        status_by: None,
        status_at: None,
        preferred: None,
    }
}

/// An unread message from `author` on `side` of a thread.
pub fn message(author: &Author, side: Side, at: DateTime<Utc>, body: &str) -> Message {
    Message::new(author.user, author.name.clone(), side, stamp(at), body)
}

/// A refill of `prescription` requested from `clinic` by `author`, not yet answered.
pub fn refill_request(
    author: &Author,
    prescription: EntryId,
    clinic: ClinicId,
    at: DateTime<Utc>,
    note: &str,
) -> RefillRequest {
    RefillRequest {
        prescription,
        clinic,
        requested_by: author.user,
        requested_at: stamp(at),
        note: note.into(),
        status: RefillStatus::Requested,
        decided_by: None,
        decided_at: None,
        decision_note: None,
    }
}

/// A time as entries store it: RFC 3339, whole seconds, UTC.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The same day at `hour:minute` UTC.
pub fn at_time(t: DateTime<Utc>, hour: u32, minute: u32) -> DateTime<Utc> {
    t.date_naive().and_time(NaiveTime::from_hms_opt(hour, minute, 0).expect("valid time")).and_utc()
}

/// `t`'s day (UTC) at `hour:minute` on the clinic's clock in `zone`.
pub fn clinic_time(zone: Tz, t: DateTime<Utc>, hour: u32, minute: u32) -> DateTime<Tz> {
    let local = t.date_naive().and_time(NaiveTime::from_hms_opt(hour, minute, 0).expect("valid"));
    zone.from_local_datetime(&local).earliest().unwrap_or_else(|| t.with_timezone(&zone))
}

pub fn round0(v: f64) -> f64 {
    v.round()
}

pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// A small deterministic generator, so every demo has the same values.
pub struct Rng(pub u64);

impl Rng {
    /// Uniform noise in [-scale, scale].
    pub fn noise(&mut self, scale: f64) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 % 2001) as f64 / 1000.0 - 1.0) * scale
    }
}

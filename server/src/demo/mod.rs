//! A realistic demo data set: two clinics, two providers, an admin and two
//! patients with five years of history. Fixed ids make seeding idempotent.

use automerge::{ActorId, AutoCommit};
use chrono::{DateTime, Duration, Months, NaiveTime, SecondsFormat, Utc};
use shared::catalog::{self, PANELS};
use shared::record::{self, Entry};
use shared::schema::{
    Allergy, Appointment, Demographics, DocKind, Immunization, Message, Observation, Prescription,
    Provenance, RefillRequest, Report,
};
use shared::status::{
    AllergyStatus, AppointmentStatus, ImmunizationStatus, PrescriptionStatus, RefillStatus,
    ResultStatus, Severity, Side,
};
use shared::{ClinicId, EntryId, PatientId, UserId, check_change};
use uuid::Uuid;

use crate::Error;
use crate::storage::{NewUser, Store, UserRole};

const RIVERSIDE: ClinicId =
    ClinicId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0c01));
const NORTHGATE: ClinicId =
    ClinicId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0c02));
const MARIA: PatientId =
    PatientId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0a01));
const JAMES: PatientId =
    PatientId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0a02));

/// A demo user, as printed for the operator.
#[derive(Clone, Debug)]
pub struct DemoUser {
    pub id: UserId,
    pub name: &'static str,
    pub role: UserRole,
    pub patient: Option<PatientId>,
    pub clinics: &'static [ClinicId],
}

pub fn users() -> Vec<DemoUser> {
    let user = |n: u128, name, role, patient, clinics| DemoUser {
        id: UserId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0000 | n)),
        name,
        role,
        patient,
        clinics,
    };
    vec![
        user(0xb01, "Jordan Lee", UserRole::Admin, None, &[RIVERSIDE]),
        user(0xb02, "Dr. Amara Okafor", UserRole::Provider, None, &[RIVERSIDE]),
        user(0xb03, "Dr. Lukas Brandt", UserRole::Provider, None, &[NORTHGATE]),
        user(0xb04, "Maria Santos", UserRole::Patient, Some(MARIA), &[]),
        user(0xb05, "James Whitfield", UserRole::Patient, Some(JAMES), &[]),
    ]
}

/// Seeds the demo data unless it is there already. Returns the demo users.
pub async fn seed(store: &Store) -> Result<Vec<DemoUser>, Error> {
    let users = users();
    if store.clinic_name(RIVERSIDE).await?.is_some() {
        return Ok(users);
    }
    store.create_clinic(RIVERSIDE, "Riverside Family Practice").await?;
    store.create_clinic(NORTHGATE, "Northgate Diabetes & Endocrine Clinic").await?;
    store.create_patient(MARIA).await?;
    store.create_patient(JAMES).await?;
    for u in &users {
        let new = NewUser {
            id: u.id,
            display_name: u.name.to_owned(),
            role: u.role,
            patient: u.patient,
            may_message: false,
            clinics: u.clinics.to_vec(),
        };
        store.create_user(&new).await?;
    }
    store.grant_consent(MARIA, RIVERSIDE).await?;
    store.grant_consent(MARIA, NORTHGATE).await?;
    store.grant_consent(JAMES, RIVERSIDE).await?;

    let now = Utc::now();
    let [_, okafor, brandt, maria, james] = [0, 1, 2, 3, 4].map(|i| users[i].clone());
    let mut rng = Rng(0x5eed);
    let mut seeder = Seeder { store };

    // Maria Santos: type 2 diabetes followed at Northgate, primary care at Riverside.
    seeder
        .write(DocKind::PatientRecord { patient: MARIA }, &maria, |doc, _| {
            let demographics = Demographics {
                family: Some("Santos".into()),
                given: Some("Maria".into()),
                birth_date: Some("1968-04-12".into()),
                phone: Some("+1 555 0142".into()),
                email: Some("maria.santos@example.org".into()),
            };
            record::set_demographics(doc, &demographics)?;
            let request = RefillRequest {
                prescription: metformin_id(),
                clinic: NORTHGATE,
                requested_by: maria.id,
                requested_at: stamp(now - Duration::days(1)),
                note: "Down to my last week of tablets.".into(),
                status: RefillStatus::Requested,
                decided_by: None,
                decided_at: None,
                decision_note: None,
            };
            record::add(doc, EntryId::mint(), &request)
        })
        .await?;
    seeder
        .write(DocKind::ClinicalRecord { patient: MARIA, clinic: NORTHGATE }, &brandt, |doc, p| {
            for quarter in 0..20u32 {
                let when = now - Months::new(60 - quarter * 3)
                    + Duration::days(i64::from(quarter % 4) * 3);
                let a1c = 8.6 - 1.9 * f64::from(quarter) / 19.0 + rng.noise(0.2);
                add_panel(doc, p, "4548-4", when, &[round1(a1c)])?;
            }
            let metformin = prescription(
                p,
                "861007",
                180,
                3,
                now - Months::new(58),
                PrescriptionStatus::Active,
            );
            record::add(doc, metformin_id(), &metformin)?;
            let visit = Appointment {
                start: stamp(at_time(now + Duration::days(12), 9, 30)),
                reason: "Diabetes review and HbA1c".into(),
                status: AppointmentStatus::Booked,
                provenance: p.provenance(now - Duration::days(30)),
                status_reason: None,
                status_by: None,
                status_at: None,
            };
            record::add(doc, EntryId::mint(), &visit)
        })
        .await?;
    seeder
        .write(DocKind::ClinicalRecord { patient: MARIA, clinic: RIVERSIDE }, &okafor, |doc, p| {
            for year in 0..5u32 {
                let when = now - Months::new(58 - year * 12);
                let ldl =
                    if year == 0 { 152.0 } else { 118.0 - 8.0 * f64::from(year) + rng.noise(5.0) };
                let lipids = [
                    round0(ldl + 75.0),
                    round0(44.0 + rng.noise(3.0)),
                    round0(ldl),
                    round0(165.0 + rng.noise(20.0)),
                ];
                add_panel(doc, p, "57698-3", when, &lipids)?;
                add_panel(
                    doc,
                    p,
                    "58410-2",
                    when + Duration::days(1),
                    &[
                        round1(6.8 + rng.noise(1.0)),
                        round1(4.6 + rng.noise(0.2)),
                        round1(if year == 2 { 11.6 } else { 13.2 + rng.noise(0.4) }),
                        round1(40.5 + rng.noise(1.5)),
                        round0(260.0 + rng.noise(30.0)),
                    ],
                )?;
                add_immunization(doc, p, "140", when + Months::new(6))?;
            }
            for half in 0..10u32 {
                let when = now - Months::new(57 - half * 6);
                let egfr = 82.0 - 18.0 * f64::from(half) / 9.0 + rng.noise(2.0);
                let creatinine = 0.82 + (82.0 - egfr) * 0.012;
                let bmp = [
                    round0(142.0 - f64::from(half) * 3.0 + rng.noise(6.0)),
                    round2(creatinine),
                    round0(egfr),
                    round0(139.0 + rng.noise(2.0)),
                    round1(4.3 + rng.noise(0.3)),
                ];
                add_panel(doc, p, "51990-0", when, &bmp)?;
            }
            record::add(
                doc,
                EntryId::mint(),
                &prescription(
                    p,
                    "617310",
                    90,
                    3,
                    now - Months::new(57),
                    PrescriptionStatus::Active,
                ),
            )?;
            let lisinopril_id = EntryId::mint();
            record::add(
                doc,
                lisinopril_id,
                &prescription(
                    p,
                    "314076",
                    90,
                    3,
                    now - Months::new(59),
                    PrescriptionStatus::Active,
                ),
            )?;
            record::change_status(
                doc,
                Prescription::COLLECTION,
                lisinopril_id,
                "stopped",
                "Persistent dry cough",
                p.author,
                &stamp(now - Months::new(40)),
            )?;
            record::add(
                doc,
                EntryId::mint(),
                &prescription(
                    p,
                    "197361",
                    90,
                    5,
                    now - Months::new(40),
                    PrescriptionStatus::Active,
                ),
            )?;
            let allergy = Allergy {
                substance_code: "70618".into(),
                substance: "Penicillin".into(),
                reaction: "Hives".into(),
                severity: Severity::Moderate,
                status: AllergyStatus::Active,
                provenance: p.provenance(now - Months::new(59)),
                status_reason: None,
                status_by: None,
                status_at: None,
            };
            record::add(doc, EntryId::mint(), &allergy)?;
            add_immunization(doc, p, "208", now - Months::new(14))
        })
        .await?;
    let thread = DocKind::MessageThread { patient: MARIA, clinic: RIVERSIDE };
    let question = EntryId::mint();
    seeder
        .write(thread, &maria, |doc, _| {
            let body =
                "Since the new blood pressure tablet my ankles swell by evening. Is that expected?";
            record::add(
                doc,
                question,
                &message(&maria, Side::Patient, now - Duration::days(6), body),
            )
        })
        .await?;
    seeder
        .write(thread, &okafor, |doc, _| {
            record::mark_read(doc, question, okafor.id, &stamp(now - Duration::days(5)))?;
            let body = "Ankle swelling is a known effect of amlodipine. Keep taking it for now; we will review it at your next visit, sooner if it gets worse.";
            record::add(doc, EntryId::mint(), &message(&okafor, Side::Clinic, now - Duration::days(5), body))
        })
        .await?;
    seeder
        .write(DocKind::MessageThread { patient: MARIA, clinic: NORTHGATE }, &brandt, |_, _| Ok(()))
        .await?;

    // James Whitfield: hypertension and hypothyroidism, Riverside only.
    seeder
        .write(DocKind::PatientRecord { patient: JAMES }, &james, |doc, _| {
            let demographics = Demographics {
                family: Some("Whitfield".into()),
                given: Some("James".into()),
                birth_date: Some("1955-09-30".into()),
                phone: Some("+1 555 0177".into()),
                email: None,
            };
            record::set_demographics(doc, &demographics)
        })
        .await?;
    seeder
        .write(DocKind::ClinicalRecord { patient: JAMES, clinic: RIVERSIDE }, &okafor, |doc, p| {
            for year in 0..4u32 {
                let when = now - Months::new(46 - year * 12);
                add_panel(
                    doc,
                    p,
                    "57698-3",
                    when,
                    &[
                        round0(205.0 - f64::from(year) * 9.0),
                        round0(51.0 + rng.noise(3.0)),
                        round0(128.0 - f64::from(year) * 10.0),
                        round0(140.0 + rng.noise(15.0)),
                    ],
                )?;
                add_panel(
                    doc,
                    p,
                    "3016-3",
                    when,
                    &[round2(5.8 - f64::from(year) * 0.9 + rng.noise(0.2))],
                )?;
                add_panel(
                    doc,
                    p,
                    "51990-0",
                    when,
                    &[
                        round0(96.0 + rng.noise(5.0)),
                        round2(1.05 + rng.noise(0.05)),
                        round0(71.0 + rng.noise(3.0)),
                        round0(140.0 + rng.noise(2.0)),
                        round1(4.1 + rng.noise(0.3)),
                    ],
                )?;
            }
            record::add(
                doc,
                EntryId::mint(),
                &prescription(
                    p,
                    "314076",
                    90,
                    5,
                    now - Months::new(46),
                    PrescriptionStatus::Active,
                ),
            )?;
            record::add(
                doc,
                EntryId::mint(),
                &prescription(
                    p,
                    "966247",
                    90,
                    5,
                    now - Months::new(45),
                    PrescriptionStatus::Active,
                ),
            )?;
            let allergy = Allergy {
                substance_code: "10180".into(),
                substance: "Sulfamethoxazole".into(),
                reaction: "Rash".into(),
                severity: Severity::Mild,
                status: AllergyStatus::Active,
                provenance: p.provenance(now - Months::new(46)),
                status_reason: None,
                status_by: None,
                status_at: None,
            };
            record::add(doc, EntryId::mint(), &allergy)
        })
        .await?;
    seeder
        .write(DocKind::MessageThread { patient: JAMES, clinic: RIVERSIDE }, &okafor, |_, _| Ok(()))
        .await?;
    Ok(users)
}

/// The id of Maria's metformin prescription, which her refill request names.
fn metformin_id() -> EntryId {
    EntryId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0e01))
}

/// Writes documents as a given demo user, through the same write policy that
/// guards sync, and stores each as a snapshot.
struct Seeder<'a> {
    store: &'a Store,
}

/// Who is writing, for entry provenance.
struct Author {
    author: UserId,
    name: &'static str,
    clinic: Option<(ClinicId, &'static str)>,
}

impl Author {
    fn provenance(&self, recorded: DateTime<Utc>) -> Provenance {
        let (clinic, clinic_name) =
            self.clinic.expect("clinical entries are written by clinic staff");
        Provenance {
            clinic,
            clinic_name: clinic_name.to_owned(),
            recorder: self.author,
            recorder_name: self.name.to_owned(),
            recorded: stamp(recorded),
        }
    }
}

impl Seeder<'_> {
    async fn write(
        &mut self,
        kind: DocKind,
        user: &DemoUser,
        edit: impl FnOnce(&mut AutoCommit, &Author) -> Result<(), record::RecordError>,
    ) -> Result<(), Error> {
        let id = self.store.create_document(&kind).await?;
        let stored = self.store.load_document(id).await?.ok_or(Error::NotFound)?;
        let mut doc = AutoCommit::load(&stored.to_automerge()?.save())
            .map_err(|e| Error::BadRequest(format!("stored document is corrupt: {e}")))?;
        let before = doc.get_heads();
        // One actor per user and document: a server-side "device" of the demo user.
        let actor = ActorId::random();
        self.store.bind_actor(&actor.to_hex_string(), user.id).await?;
        doc.set_actor(actor);
        let clinic = match user.clinics.first() {
            Some(&c) => Some((c, clinic_name(c))),
            None => None,
        };
        let author = Author { author: user.id, name: user.name, clinic };
        edit(&mut doc, &author).map_err(|e| Error::BadRequest(format!("demo data: {e}")))?;
        let principal =
            self.store.user(user.id).await?.and_then(|u| u.principal()).ok_or(Error::NotFound)?;
        check_change(doc.document(), &before, &kind, &principal).map_err(|denial| {
            Error::BadRequest(format!("demo data breaks the write policy: {denial}"))
        })?;
        self.store.compact_document(id, &doc.save(), stored.seq).await?;
        Ok(())
    }
}

fn add_panel(
    doc: &mut AutoCommit,
    p: &Author,
    panel_loinc: &str,
    when: DateTime<Utc>,
    values: &[f64],
) -> Result<(), record::RecordError> {
    let panel = PANELS.iter().find(|panel| panel.loinc == panel_loinc).expect("panel in catalog");
    let when = at_time(when, 8, 15);
    let report_id = EntryId::mint();
    let report = Report {
        loinc: panel.loinc.into(),
        display: panel.display.into(),
        effective: stamp(when),
        status: ResultStatus::Final,
        provenance: p.provenance(when + Duration::hours(6)),
        status_reason: None,
        status_by: None,
        status_at: None,
    };
    record::add(doc, report_id, &report)?;
    for (loinc, value) in panel.tests.iter().zip(values) {
        let test = catalog::lab_test(loinc).expect("test in catalog");
        let observation = Observation {
            report: Some(report_id),
            loinc: test.loinc.into(),
            display: test.display.into(),
            value_quantity: Some(*value),
            value_string: None,
            unit: Some(test.unit.into()),
            reference_low: test.low,
            reference_high: test.high,
            effective: stamp(when),
            status: ResultStatus::Final,
            replaces: None,
            provenance: p.provenance(when + Duration::hours(6)),
            status_reason: None,
            status_by: None,
            status_at: None,
        };
        record::add(doc, EntryId::mint(), &observation)?;
    }
    Ok(())
}

fn prescription(
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
    }
}

fn add_immunization(
    doc: &mut AutoCommit,
    p: &Author,
    cvx: &str,
    when: DateTime<Utc>,
) -> Result<(), record::RecordError> {
    let vaccine = catalog::VACCINES.iter().find(|v| v.cvx == cvx).expect("vaccine in catalog");
    let immunization = Immunization {
        cvx: vaccine.cvx.into(),
        vaccine: vaccine.display.into(),
        occurrence: stamp(when),
        status: ImmunizationStatus::Completed,
        provenance: p.provenance(when),
        status_reason: None,
        status_by: None,
        status_at: None,
    };
    record::add(doc, EntryId::mint(), &immunization)
}

fn message(author: &DemoUser, side: Side, at: DateTime<Utc>, body: &str) -> Message {
    Message {
        author: author.id,
        author_name: author.name.into(),
        side,
        sent_at: stamp(at),
        body: body.into(),
        read_at: None,
        read_by: None,
    }
}

/// A plain glucose result, for benchmarks and tests that need many entries.
/// The name the demo data set gives one of its clinics.
pub fn clinic_name(clinic: ClinicId) -> &'static str {
    if clinic == RIVERSIDE {
        "Riverside Family Practice"
    } else {
        "Northgate Diabetes & Endocrine Clinic"
    }
}

/// A glucose result recorded by `recorder` at `clinic`; the names must be
/// the directory's (the write policy checks them).
pub fn glucose_result(
    clinic: (ClinicId, &str),
    recorder: UserId,
    recorder_name: &str,
    value: f64,
) -> Observation {
    let (clinic, clinic_name) = clinic;
    let test = catalog::lab_test("2345-7").expect("glucose in catalog");
    Observation {
        report: None,
        loinc: test.loinc.into(),
        display: test.display.into(),
        value_quantity: Some(value),
        value_string: None,
        unit: Some(test.unit.into()),
        reference_low: test.low,
        reference_high: test.high,
        effective: "2026-11-25T08:00:00Z".into(),
        status: ResultStatus::Final,
        replaces: None,
        provenance: Provenance {
            clinic,
            clinic_name: clinic_name.into(),
            recorder,
            recorder_name: recorder_name.into(),
            recorded: "2026-11-25T09:00:00Z".into(),
        },
        status_reason: None,
        status_by: None,
        status_at: None,
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn at_time(t: DateTime<Utc>, hour: u32, minute: u32) -> DateTime<Utc> {
    t.date_naive().and_time(NaiveTime::from_hms_opt(hour, minute, 0).expect("valid time")).and_utc()
}

fn round0(v: f64) -> f64 {
    v.round()
}
fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}
fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// A small deterministic generator, so every demo has the same values.
struct Rng(u64);

impl Rng {
    /// Uniform noise in [-scale, scale].
    fn noise(&mut self, scale: f64) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 % 2001) as f64 / 1000.0 - 1.0) * scale
    }
}

/// How much history [`add_history`] writes into Maria Santos's record.
#[derive(Clone, Copy, Debug)]
pub struct History {
    pub years: u32,
    /// Lab results (observations), grouped into panels as labs report them.
    pub results: usize,
    pub prescriptions: usize,
    pub messages: usize,
}

/// Adds a long history to Maria Santos's record on a running server, for
/// benchmarks: `results` lab results in panels spread over `years` (Riverside),
/// `prescriptions` prescriptions (all but a few stopped or completed), and
/// `messages` messages alternating between Maria and Dr. Okafor in her
/// Riverside thread. Each document gets one change per author, written
/// through the hub (so connected replicas receive it) and checked by the
/// write policy.
pub async fn add_history(hub: &crate::sync::Hub, history: History) -> Result<(), Error> {
    let users = users();
    let [_, okafor, _, maria, _] = [0, 1, 2, 3, 4].map(|i| users[i].clone());
    let now = Utc::now();
    let span = Duration::days(365 * i64::from(history.years));
    let start = now - span;
    let mut rng = Rng(0xb16);
    let clinical = DocKind::ClinicalRecord { patient: MARIA, clinic: RIVERSIDE };
    write_live(hub, clinical, &okafor, |doc, p| {
        // Metabolic, blood count, lipids and HbA1c in turn, one draw every few days.
        let rotation = ["51990-0", "58410-2", "57698-3", "4548-4"];
        let sizes: Vec<usize> = rotation
            .iter()
            .map(|l| PANELS.iter().find(|p| p.loinc == *l).expect("panel").tests.len())
            .collect();
        let per_round: usize = sizes.iter().sum();
        let draws = history.results.div_ceil(per_round) * rotation.len();
        let mut left = history.results;
        for draw in 0..draws {
            if left == 0 {
                break;
            }
            let loinc = rotation[draw % rotation.len()];
            let when = start
                + span * i32::try_from(draw).unwrap_or(i32::MAX)
                    / i32::try_from(draws).unwrap_or(i32::MAX);
            let values: Vec<f64> = match loinc {
                "51990-0" => vec![
                    round0(130.0 + rng.noise(25.0)),
                    round2(1.0 + rng.noise(0.2)),
                    round0(70.0 + rng.noise(10.0)),
                    round0(139.0 + rng.noise(3.0)),
                    round1(4.3 + rng.noise(0.5)),
                ],
                "58410-2" => vec![
                    round1(6.8 + rng.noise(1.5)),
                    round1(4.6 + rng.noise(0.3)),
                    round1(13.2 + rng.noise(1.0)),
                    round1(40.5 + rng.noise(2.5)),
                    round0(260.0 + rng.noise(50.0)),
                ],
                "57698-3" => vec![
                    round0(190.0 + rng.noise(30.0)),
                    round0(45.0 + rng.noise(5.0)),
                    round0(115.0 + rng.noise(25.0)),
                    round0(160.0 + rng.noise(40.0)),
                ],
                _ => vec![round1(7.2 + rng.noise(0.8))],
            };
            let n = values.len().min(left);
            left -= n;
            add_panel(doc, p, loinc, when, &values[..n])?;
        }
        let medications: Vec<&str> = [
            "861007", "617310", "314076", "197361", "198211", "310429", "313782", "310965",
            "966247",
        ]
        .into();
        for i in 0..history.prescriptions {
            let authored = start
                + span * i32::try_from(i).unwrap_or(i32::MAX)
                    / i32::try_from(history.prescriptions.max(1)).unwrap_or(1);
            let rx = prescription(
                p,
                medications[i % medications.len()],
                30,
                2,
                authored,
                PrescriptionStatus::Active,
            );
            let id = EntryId::mint();
            record::add(doc, id, &rx)?;
            // The newest few stay active; older ones ended one way or another.
            if i + 5 < history.prescriptions {
                let (status, reason) = if i % 3 == 0 {
                    ("stopped", "Switched to another medication")
                } else {
                    ("completed", "Course finished")
                };
                record::change_status(
                    doc,
                    Prescription::COLLECTION,
                    id,
                    status,
                    reason,
                    p.author,
                    &stamp(authored + Duration::days(30)),
                )?;
            }
        }
        Ok(())
    })
    .await?;
    let thread = DocKind::MessageThread { patient: MARIA, clinic: RIVERSIDE };
    let sent = |i: usize| {
        start
            + span * i32::try_from(i).unwrap_or(i32::MAX)
                / i32::try_from(history.messages.max(1)).unwrap_or(1)
    };
    write_live(hub, thread, &maria, |doc, _| {
        for i in (0..history.messages).step_by(2) {
            let body = format!("Question {}: my readings this week were a little higher than usual; should I change anything before the next visit?", i / 2 + 1);
            record::add(doc, EntryId::mint(), &message(&maria, Side::Patient, sent(i), &body))?;
        }
        Ok(())
    })
    .await?;
    write_live(hub, thread, &okafor, |doc, _| {
        for i in (1..history.messages).step_by(2) {
            let body = format!("Answer {}: thank you for the readings. Keep the current doses and bring your log to the next appointment.", i / 2 + 1);
            record::add(doc, EntryId::mint(), &message(&okafor, Side::Clinic, sent(i), &body))?;
        }
        Ok(())
    })
    .await
}

/// Writes one change to a document on a running server as a demo user, as a
/// sync connection would: checked by the write policy, stored as one chunk,
/// installed as the canonical copy and announced to connected replicas.
async fn write_live(
    hub: &crate::sync::Hub,
    kind: DocKind,
    user: &DemoUser,
    edit: impl FnOnce(&mut AutoCommit, &Author) -> Result<(), record::RecordError>,
) -> Result<(), Error> {
    let id = kind.doc_id();
    let store = hub.store();
    let mut locked: std::collections::BTreeMap<_, _> =
        hub.lock_all([id]).await?.into_iter().collect();
    let canonical = locked.get(&id).and_then(|guard| guard.as_ref()).ok_or(Error::NotFound)?;
    let mut doc = AutoCommit::load(&canonical.doc().save())
        .map_err(|e| Error::BadRequest(format!("stored document is corrupt: {e}")))?;
    let before = doc.get_heads();
    let actor = ActorId::random();
    store.bind_actor(&actor.to_hex_string(), user.id).await?;
    doc.set_actor(actor);
    let clinic = user.clinics.first().map(|&c| (c, clinic_name(c)));
    let author = Author { author: user.id, name: user.name, clinic };
    edit(&mut doc, &author).map_err(|e| Error::BadRequest(format!("demo data: {e}")))?;
    let principal =
        store.user(user.id).await?.and_then(|u| u.principal()).ok_or(Error::NotFound)?;
    check_change(doc.document(), &before, &kind, &principal).map_err(|denial| {
        Error::BadRequest(format!("demo data breaks the write policy: {denial}"))
    })?;
    let data = doc.save_after(&before);
    let accepted = crate::sync::Accepted { id, doc: doc.document().clone(), data, snapshot: false };
    hub.commit(&mut locked, vec![accepted], &[], None).await?;
    Ok(())
}

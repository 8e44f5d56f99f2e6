//! Maria Santos: type 2 diabetes followed at Northgate, primary care at
//! Riverside; five years of results, her medication, an allergy, a
//! vaccination each year, a refill request and a message answered.

use chrono::{DateTime, Duration, Months, Utc};
use shared::record::{self, Entry};
use shared::schema::{Demographics, DocKind, Message, Prescription};
use shared::status::{PrescriptionStatus, Severity, Side};
use shared::{EntryId, PatientId};
use uuid::Uuid;

use super::fixtures::{
    Rng, add_panel, allergy, appointment, clinic_time, immunization, message, prescription,
    refill_request, round0, round1, round2, stamp,
};
use super::{DemoUser, NORTHGATE, RIVERSIDE, Seeder};
use crate::Error;

pub const MARIA: PatientId =
    PatientId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0a01));

/// The id of Maria's metformin prescription, which her refill request names.
fn metformin_id() -> EntryId {
    EntryId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0e01))
}

/// The demo users who write Maria's record.
pub struct Writers<'a> {
    pub maria: &'a DemoUser,
    pub okafor: &'a DemoUser,
    pub brandt: &'a DemoUser,
}

/// Writes Maria's documents as of `now`.
pub async fn seed(
    seeder: &mut Seeder<'_>,
    who: Writers<'_>,
    now: DateTime<Utc>,
    rng: &mut Rng,
) -> Result<(), Error> {
    let Writers { maria, okafor, brandt } = who;
    seeder
        .write(DocKind::PatientRecord { patient: MARIA }, maria, |doc, p| {
            let demographics = Demographics {
                family: Some("Santos".into()),
                given: Some("Maria".into()),
                birth_date: Some("1968-04-12".into()),
                phone: Some("+1 555 0142".into()),
                email: Some("maria.santos@example.org".into()),
            };
            record::set_demographics(doc, &demographics)?;
            let note = "Down to my last week of tablets.";
            let request =
                refill_request(p, metformin_id(), NORTHGATE, now - Duration::days(1), note);
            record::add(doc, EntryId::mint(), &request)
        })
        .await?;
    seeder
        .write(DocKind::ClinicalRecord { patient: MARIA, clinic: NORTHGATE }, brandt, |doc, p| {
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
            let visit = appointment(
                p,
                clinic_time(super::NORTHGATE_ZONE, now + Duration::days(12), 9, 30),
                "Diabetes review and HbA1c",
                now - Duration::days(30),
            );
            record::add(doc, EntryId::mint(), &visit)
        })
        .await?;
    seeder
        .write(DocKind::ClinicalRecord { patient: MARIA, clinic: RIVERSIDE }, okafor, |doc, p| {
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
                let blood_count = [
                    round1(6.8 + rng.noise(1.0)),
                    round1(4.6 + rng.noise(0.2)),
                    round1(if year == 2 { 11.6 } else { 13.2 + rng.noise(0.4) }),
                    round1(40.5 + rng.noise(1.5)),
                    round0(260.0 + rng.noise(30.0)),
                ];
                add_panel(doc, p, "58410-2", when + Duration::days(1), &blood_count)?;
                record::add(doc, EntryId::mint(), &immunization(p, "140", when + Months::new(6)))?;
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
            let active = PrescriptionStatus::Active;
            let atorvastatin = prescription(p, "617310", 90, 3, now - Months::new(57), active);
            record::add(doc, EntryId::mint(), &atorvastatin)?;
            let lisinopril_id = EntryId::mint();
            let lisinopril = prescription(p, "314076", 90, 3, now - Months::new(59), active);
            record::add(doc, lisinopril_id, &lisinopril)?;
            record::change_status(
                doc,
                Prescription::COLLECTION,
                lisinopril_id,
                PrescriptionStatus::Stopped.code(),
                "Persistent dry cough",
                p.user,
                &stamp(now - Months::new(40)),
            )?;
            let amlodipine = prescription(p, "197361", 90, 5, now - Months::new(40), active);
            record::add(doc, EntryId::mint(), &amlodipine)?;
            let penicillin = allergy(
                p,
                "70618",
                "Penicillin",
                "Hives",
                Severity::Moderate,
                now - Months::new(59),
            );
            record::add(doc, EntryId::mint(), &penicillin)?;
            record::add(doc, EntryId::mint(), &immunization(p, "208", now - Months::new(14)))
        })
        .await?;
    let thread = DocKind::MessageThread { patient: MARIA, clinic: RIVERSIDE };
    let question_id = EntryId::mint();
    seeder
        .write(thread, maria, |doc, p| {
            let body =
                "Since the new blood pressure tablet my ankles swell by evening. Is that expected?";
            let question = Message {
                topic: Some("Ankle swelling since the new tablet".into()),
                ..message(p, Side::Patient, now - Duration::days(6), body)
            };
            record::add(doc, question_id, &question)
        })
        .await?;
    seeder
        .write(thread, okafor, |doc, p| {
            record::mark_read(doc, question_id, p.user, &stamp(now - Duration::days(5)))?;
            let body = "Ankle swelling is a known effect of amlodipine. Keep taking it for now; we will review it at your next visit, sooner if it gets worse.";
            let answer = Message {
                in_response_to: Some(question_id),
                ..message(p, Side::Clinic, now - Duration::days(5), body)
            };
            record::add(doc, EntryId::mint(), &answer)
        })
        .await?;
    seeder
        .write(DocKind::MessageThread { patient: MARIA, clinic: NORTHGATE }, brandt, |_, _| Ok(()))
        .await
}

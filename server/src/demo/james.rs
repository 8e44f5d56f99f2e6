//! James Whitfield: hypertension and hypothyroidism, Riverside only; four
//! years of results, his medication and an allergy.

use chrono::{DateTime, Months, Utc};
use shared::record;
use shared::schema::{Demographics, DocKind};
use shared::status::{PrescriptionStatus, Severity};
use shared::{EntryId, PatientId};
use uuid::Uuid;

use super::fixtures::{Rng, add_panel, allergy, prescription, round0, round1, round2};
use super::{DemoUser, RIVERSIDE, Seeder};
use crate::Error;

pub const JAMES: PatientId =
    PatientId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0a02));

/// Writes James's documents as of `now`, as himself and Dr. Okafor.
pub async fn seed(
    seeder: &mut Seeder<'_>,
    james: &DemoUser,
    okafor: &DemoUser,
    now: DateTime<Utc>,
    rng: &mut Rng,
) -> Result<(), Error> {
    seeder
        .write(DocKind::PatientRecord { patient: JAMES }, james, |doc, _| {
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
        .write(DocKind::ClinicalRecord { patient: JAMES, clinic: RIVERSIDE }, okafor, |doc, p| {
            for year in 0..4u32 {
                let when = now - Months::new(46 - year * 12);
                let lipids = [
                    round0(205.0 - f64::from(year) * 9.0),
                    round0(51.0 + rng.noise(3.0)),
                    round0(128.0 - f64::from(year) * 10.0),
                    round0(140.0 + rng.noise(15.0)),
                ];
                add_panel(doc, p, "57698-3", when, &lipids)?;
                let tsh = [round2(5.8 - f64::from(year) * 0.9 + rng.noise(0.2))];
                add_panel(doc, p, "3016-3", when, &tsh)?;
                let bmp = [
                    round0(96.0 + rng.noise(5.0)),
                    round2(1.05 + rng.noise(0.05)),
                    round0(71.0 + rng.noise(3.0)),
                    round0(140.0 + rng.noise(2.0)),
                    round1(4.1 + rng.noise(0.3)),
                ];
                add_panel(doc, p, "51990-0", when, &bmp)?;
            }
            let active = PrescriptionStatus::Active;
            let lisinopril = prescription(p, "314076", 90, 5, now - Months::new(46), active);
            record::add(doc, EntryId::mint(), &lisinopril)?;
            let levothyroxine = prescription(p, "966247", 90, 5, now - Months::new(45), active);
            record::add(doc, EntryId::mint(), &levothyroxine)?;
            let sulfa = allergy(
                p,
                "10180",
                "Sulfamethoxazole",
                "Rash",
                Severity::Mild,
                now - Months::new(46),
            );
            record::add(doc, EntryId::mint(), &sulfa)
        })
        .await?;
    seeder
        .write(DocKind::MessageThread { patient: JAMES, clinic: RIVERSIDE }, okafor, |_, _| Ok(()))
        .await
}

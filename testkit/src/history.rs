//! A long history for Maria Santos's record on a running server, for
//! benchmarks (thousands of results, prescriptions and messages).

use chrono::{Duration, Utc};
use shared::EntryId;
use shared::catalog::PANELS;
use shared::record::{self, Entry};
use shared::schema::{DocKind, Prescription};
use shared::status::{PrescriptionStatus, Side};

use server::Error;
use server::demo::fixtures::{
    Rng, add_panel, message, prescription, round0, round1, round2, stamp,
};
use server::demo::{users, write_live};
use server::sync::Hub;

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
pub async fn add_history(hub: &Hub, history: History) -> Result<(), Error> {
    let users = users();
    let [_, okafor, _, maria, _] = [0, 1, 2, 3, 4].map(|i| users[i].clone());
    let (patient, riverside) = (maria.patient.expect("Maria is a patient"), okafor.clinics[0]);
    let now = Utc::now();
    let span = Duration::days(365 * i64::from(history.years));
    let start = now - span;
    let mut rng = Rng(0xb16);
    let clinical = DocKind::ClinicalRecord { patient, clinic: riverside };
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
                    p.user,
                    &stamp(authored + Duration::days(30)),
                )?;
            }
        }
        Ok(())
    })
    .await?;
    let thread = DocKind::MessageThread { patient, clinic: riverside };
    let sent = |i: usize| {
        start
            + span * i32::try_from(i).unwrap_or(i32::MAX)
                / i32::try_from(history.messages.max(1)).unwrap_or(1)
    };
    write_live(hub, thread, &maria, |doc, p| {
        for i in (0..history.messages).step_by(2) {
            let body = format!("Question {}: my readings this week were a little higher than usual; should I change anything before the next visit?", i / 2 + 1);
            record::add(doc, EntryId::mint(), &message(p, Side::Patient, sent(i), &body))?;
        }
        Ok(())
    })
    .await?;
    write_live(hub, thread, &okafor, |doc, p| {
        for i in (1..history.messages).step_by(2) {
            let body = format!("Answer {}: thank you for the readings. Keep the current doses and bring your log to the next appointment.", i / 2 + 1);
            record::add(doc, EntryId::mint(), &message(p, Side::Clinic, sent(i), &body))?;
        }
        Ok(())
    })
    .await
}

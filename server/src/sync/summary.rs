//! What a document says for the patient list and the work queue of clinic
//! staff (`storage::IndexRow`): a patient record's name, birth date and
//! refill requests waiting per clinic; a thread's messages from the patient
//! side the clinic has not read; a clinical record's booked appointment
//! days and appointment requests waiting. `Hub::commit` stores them with the changes; the bulk loaders of
//! benchmarks and tests call `summarize` on the documents they load.

use std::collections::BTreeSet;

use automerge::Automerge;
use shared::DocKind;
use shared::read::{hydrate, hydrate_root_prop};
use shared::schema::{Appointment, Collection, Message, PatientRecord};
use shared::status::{AppointmentStatus, RefillStatus, Side};

use crate::storage::{IndexRow, WorkSource};

/// The index rows `doc` (of kind `kind`) implies, each replacing the row
/// it names. A document that does not hydrate says nothing.
pub fn summarize(kind: DocKind, doc: &Automerge) -> Vec<IndexRow> {
    match kind {
        DocKind::PatientRecord { patient } => {
            let Ok(record) = hydrate::<PatientRecord>(doc) else { return Vec::new() };
            let d = &record.demographics;
            let name = format!(
                "{} {}",
                d.given.as_deref().unwrap_or_default(),
                d.family.as_deref().unwrap_or_default()
            )
            .trim()
            .to_owned();
            let mut rows = vec![IndexRow::Name {
                patient,
                name,
                birth_date: d.birth_date.clone().unwrap_or_default(),
            }];
            // Every clinic a request names gets its count, zero clearing it.
            let mut counts: Vec<(shared::ClinicId, usize)> = Vec::new();
            for request in record.refill_requests.values() {
                let waiting = usize::from(request.status == RefillStatus::Requested);
                match counts.iter_mut().find(|(c, _)| *c == request.clinic) {
                    Some((_, n)) => *n += waiting,
                    None => counts.push((request.clinic, waiting)),
                }
            }
            rows.extend(counts.into_iter().map(|(clinic, n)| IndexRow::Work {
                clinic,
                patient,
                source: WorkSource::Requests,
                value: if n == 0 { String::new() } else { n.to_string() },
            }));
            rows
        }
        DocKind::MessageThread { patient, clinic } => {
            let Ok(messages) = hydrate_root_prop::<Message>(doc, Collection::Messages.code())
            else {
                return Vec::new();
            };
            let unread = messages
                .values()
                .filter(|m| m.side == Side::Patient && m.read_at.is_none())
                .count();
            vec![IndexRow::Work {
                clinic,
                patient,
                source: WorkSource::Messages,
                value: if unread == 0 { String::new() } else { unread.to_string() },
            }]
        }
        DocKind::ClinicalRecord { patient, clinic } => {
            let (days, requests) = appointment_work(doc).unwrap_or_default();
            let row = |source, value| IndexRow::Work { clinic, patient, source, value };
            vec![
                row(WorkSource::Appointments, days),
                row(WorkSource::AppointmentRequests, requests),
            ]
        }
    }
}

/// Days of booked appointments, sorted, space separated; and how many
/// requests wait for the clinic (empty for none).
fn appointment_work(doc: &Automerge) -> Option<(String, String)> {
    let appointments =
        hydrate_root_prop::<Appointment>(doc, Collection::Appointments.code()).ok()?;
    let mut days: Vec<&str> = appointments
        .values()
        .filter(|a| a.status == AppointmentStatus::Booked)
        .filter_map(|a| a.start.get(..10))
        .collect();
    days.sort_unstable();
    days.dedup();
    let waiting = appointments.values().filter(|a| a.status == AppointmentStatus::Proposed).count();
    let waiting = if waiting == 0 { String::new() } else { waiting.to_string() };
    Some((days.join(" "), waiting))
}

/// The rows to store for a committed document, given the collections its
/// changes wrote into (`None`: not known). A clinical record is written
/// most, by results and prescriptions, and its row says only appointment
/// days: it is read again only when appointments were written, so a
/// result's commit hydrates nothing here.
pub fn changed_rows(
    kind: DocKind,
    touched: Option<&BTreeSet<Collection>>,
    after: &Automerge,
) -> Vec<IndexRow> {
    if let (DocKind::ClinicalRecord { .. }, Some(touched)) = (kind, touched)
        && !touched.contains(&Collection::Appointments)
    {
        return Vec::new();
    }
    summarize(kind, after)
}

//! A large clinic for the staff benchmarks and browser tests (issue 17
//! part 2): thousands of consenting patients stored in bulk
//! (`Store::create_records`, a few statements per 500 rows), with their
//! patient list and work queue rows (`server::sync::summary`, as
//! `Hub::commit` writes them), not through thousands of sessions.

use automerge::{ActorId, Automerge};
use chrono::{DateTime, Days, NaiveDate, Utc};
use server::demo::fixtures::{Author, appointment, message, refill_request};
use server::storage::{IndexRow, NewRecord, Store, StoreError};
use server::sync::summary::summarize;
use shared::schema::{Demographics, DocKind};
use shared::status::Side;
use shared::{ClinicId, EntryId, PatientId, UserId, record};

const GIVEN: [&str; 16] = [
    "Ada", "Bruno", "Chen", "Dalia", "Emeka", "Fatima", "Goran", "Hana", "Ivan", "Jun", "Kofi",
    "Lena", "Mateo", "Noor", "Olga", "Priya",
];
const FAMILY: [&str; 23] = [
    "Abara", "Berg", "Costa", "Diallo", "Evans", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kowalski", "Lopez", "Moreau", "Nguyen", "Okoye", "Petrov", "Quinn", "Rossi", "Silva",
    "Tanaka", "Umar", "Varga", "Weber",
];

/// Every this-many patients, one has an appointment today, the next a
/// refill request waiting, the next an unread message (the clinic's work).
pub const WORK_EVERY: usize = 250;

/// One patient seeded.
pub struct Seeded {
    pub patient: PatientId,
    pub name: String,
    /// `YYYY-MM-DD`, different for every patient (a search finds one).
    pub birth_date: String,
    /// In the clinic's work today (appointment, request or message).
    pub work: bool,
}

/// Patient `i`'s name and birth date.
pub fn person(i: usize) -> (String, String) {
    let born = NaiveDate::from_ymd_opt(1940, 1, 1).expect("a date") + Days::new(i as u64);
    (format!("{} {}", GIVEN[i % GIVEN.len()], FAMILY[i % FAMILY.len()]), born.to_string())
}

/// Creates `count` patients consenting to `clinic` (name as the directory
/// has it), each with a patient record (demographics), a clinical record
/// and a thread with the clinic; every `WORK_EVERY`th has work today
/// (`now`'s day at the clinic, in its time zone): a booked appointment by
/// `provider`, a refill request or an unread message.
pub async fn seed_clinic(
    store: &Store,
    clinic: (ClinicId, &str),
    provider: (UserId, &str),
    count: usize,
    now: DateTime<Utc>,
) -> Result<Vec<Seeded>, StoreError> {
    let staff = Author {
        user: provider.0,
        name: provider.1.into(),
        clinic: Some((clinic.0, clinic.1.into())),
    };
    // Today's appointments are today where the clinic is: its wall time
    // (`server::zone`).
    let zone = store.clinic_time_zones(&[clinic.0]).await?.pop().map(|(_, z)| z);
    let zone = server::zone::parse(zone.as_deref().unwrap_or(server::zone::DEFAULT))
        .unwrap_or(chrono_tz::UTC);
    let at_clinic = now.with_timezone(&zone);
    let mut seeded = Vec::with_capacity(count);
    let mut index = Vec::new();
    let mut records = Vec::new();
    for i in 0..count {
        let patient = PatientId::mint();
        let (name, birth_date) = person(i);
        let (given, family) = name.split_once(' ').expect("two names");
        let side = Author { user: UserId::mint(), name: name.clone(), clinic: None };
        let mut patient_record = DocKind::PatientRecord { patient }.genesis();
        let mut clinical = DocKind::ClinicalRecord { patient, clinic: clinic.0 }.genesis();
        let mut thread = DocKind::MessageThread { patient, clinic: clinic.0 }.genesis();
        edit(&mut patient_record, |tx| {
            record::set_demographics(
                tx,
                &Demographics {
                    given: Some(given.into()),
                    family: Some(family.into()),
                    birth_date: Some(birth_date.clone()),
                    ..Demographics::default()
                },
            )
        });
        let work = match i % WORK_EVERY {
            0 => edit(&mut clinical, |tx| {
                record::add(tx, EntryId::mint(), &appointment(&staff, at_clinic, "Follow-up", now))
            }),
            1 => edit(&mut patient_record, |tx| {
                let request = refill_request(&side, EntryId::mint(), clinic.0, now, "Running low");
                record::add(tx, EntryId::mint(), &request)
            }),
            2 => edit(&mut thread, |tx| {
                let text = "A question about my results";
                record::add(tx, EntryId::mint(), &message(&side, Side::Patient, now, text))
            }),
            _ => false,
        };
        let docs = [
            (DocKind::PatientRecord { patient }, patient_record),
            (DocKind::ClinicalRecord { patient, clinic: clinic.0 }, clinical),
            (DocKind::MessageThread { patient, clinic: clinic.0 }, thread),
        ];
        for (kind, doc) in &docs {
            index.extend(summarize(*kind, doc).into_iter().filter(|row| match row {
                IndexRow::Name { .. } => true,
                IndexRow::Work { value, .. } => !value.is_empty(),
            }));
        }
        records.push(NewRecord {
            patient,
            consents: vec![clinic.0],
            documents: docs.iter().map(|(kind, doc)| (*kind, doc.save())).collect(),
        });
        seeded.push(Seeded { patient, name, birth_date, work });
        if records.len() == 2_000 {
            store.create_records(&std::mem::take(&mut records), now.timestamp_millis()).await?;
        }
    }
    store.create_records(&records, now.timestamp_millis()).await?;
    store.write_index(&index, now.timestamp_millis()).await?;
    Ok(seeded)
}

/// One change to `doc`, as a device writes it (its own actor id); true.
fn edit(
    doc: &mut Automerge,
    f: impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), record::RecordError>,
) -> bool {
    doc.set_actor(ActorId::random());
    let mut tx = doc.transaction();
    f(&mut tx).expect("a seeded entry");
    tx.commit();
    true
}

//! Appointments (issue 14): the patient side asks a clinic it consents to
//! for one (`proposed`, a reason, the times it would like, no time); the
//! clinic confirms it (`booked`), offers a time (`pending`) or declines it
//! with a reason (`cancelled`); the patient side takes an offered time,
//! asks for another or cancels. A time is written only with the change
//! that gives it; nothing else of an appointment changes.

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ROOT, ReadDoc};
use shared::record;
use shared::schema::{Appointment, Collection, DocKind, Provenance};
use shared::status::AppointmentStatus as A;
use shared::{ClinicId, EntryId, PatientId, Principal, Role, Rule, UserId, check_edit};

const TIME: &str = "2026-12-10T09:30:00Z";
const NOW: &str = "2026-12-04T10:00:00Z";

struct World {
    record: DocKind,
    clinic: ClinicId,
    patient: Principal,
    caregiver: Principal,
    reader: Principal,
    provider: Principal,
    admin: Principal,
    other_clinic: Principal,
    /// The patient of another clinic's record, consenting only to `other`.
    unconsented: Principal,
}

fn world() -> World {
    let patient = PatientId::mint();
    let clinic = ClinicId::mint();
    let other = ClinicId::mint();
    let person = |role, name: &str, clinics: Vec<(ClinicId, String)>| Principal {
        user: UserId::mint(),
        role,
        name: name.into(),
        clinic_names: clinics,
        colleagues: vec![],
    };
    let here = || vec![(clinic, "Northside Clinic".to_owned())];
    let there = || vec![(other, "Other Clinic".to_owned())];
    World {
        record: DocKind::ClinicalRecord { patient, clinic },
        clinic,
        patient: person(Role::Patient { patient }, "Maria Santos", here()),
        caregiver: person(Role::Caregiver { patient, may_message: true }, "Ana Santos", here()),
        reader: person(Role::Caregiver { patient, may_message: false }, "Read Only", here()),
        provider: person(Role::Provider { clinics: vec![clinic] }, "Dr Alice Adams", here()),
        admin: person(Role::ClinicAdmin { clinic }, "Front Desk", here()),
        other_clinic: person(Role::Provider { clinics: vec![other] }, "Dr Carol Cole", there()),
        unconsented: person(Role::Patient { patient }, "Maria Santos", there()),
    }
}

fn provenance(w: &World, by: &Principal) -> Provenance {
    Provenance {
        clinic: w.clinic,
        clinic_name: "Northside Clinic".into(),
        recorder: by.user,
        recorder_name: by.name.clone(),
        recorded: NOW.into(),
    }
}

fn edit(
    w: &World,
    base: &Automerge,
    who: &Principal,
    f: impl FnOnce(&mut automerge::transaction::Transaction<'_>),
) -> (Automerge, Result<(), Rule>) {
    let mut doc = base.fork().with_actor(ActorId::random());
    let mut tx = doc.transaction();
    f(&mut tx);
    tx.commit();
    let result = check_edit(base, &doc, &w.record, who).map_err(|d| d.rule);
    (doc, result)
}

/// The patient's request, accepted: the record with it, and its id.
fn requested(w: &World) -> (Automerge, EntryId) {
    let id = EntryId::mint();
    let p = provenance(w, &w.patient);
    let (doc, result) = edit(w, &w.record.genesis(), &w.patient, |tx| {
        record::request_appointment(tx, id, "Knee pain when walking", "Mornings, not Tuesday", &p)
            .unwrap()
    });
    assert_eq!(result, Ok(()));
    (doc, id)
}

fn appointment(doc: &Automerge, id: EntryId) -> Appointment {
    record::get::<Appointment, _>(doc, id).unwrap()
}

fn moved(
    w: &World,
    base: &Automerge,
    who: &Principal,
    id: EntryId,
    to: A,
    start: Option<&str>,
    reason: &str,
) -> (Automerge, Result<(), Rule>) {
    let user = who.user;
    edit(w, base, who, |tx| record::move_appointment(tx, id, to, start, reason, user, NOW).unwrap())
}

#[test]
fn a_request_offered_a_time_and_taken_is_booked() {
    let w = world();
    let (doc, id) = requested(&w);
    let request = appointment(&doc, id);
    assert_eq!(request.status, A::Proposed);
    assert_eq!(request.start, "");
    assert_eq!(request.preferred.as_deref(), Some("Mornings, not Tuesday"));
    // The patient may not give it a time or book it themselves.
    let (_, r) = moved(&w, &doc, &w.patient, id, A::Booked, Some(TIME), "");
    assert_eq!(r, Err(Rule::ImmutableField));
    let (_, r) = moved(&w, &doc, &w.patient, id, A::Booked, None, "");
    assert_eq!(r, Err(Rule::StatusTransition));
    // The clinic offers a time; the patient takes it.
    let (doc, r) = moved(&w, &doc, &w.provider, id, A::Pending, Some(TIME), "");
    assert_eq!(r, Ok(()));
    assert_eq!(appointment(&doc, id).start, TIME);
    let (doc, r) = moved(&w, &doc, &w.caregiver, id, A::Booked, None, "");
    assert_eq!(r, Ok(()));
    let booked = appointment(&doc, id);
    assert_eq!((booked.status, booked.start.as_str()), (A::Booked, TIME));
    assert_eq!(booked.status_by, Some(w.caregiver.user));
    // Then only cancelled (either side) or, by the clinic, fulfilled.
    let (_, r) = moved(&w, &doc, &w.patient, id, A::Fulfilled, None, "");
    assert_eq!(r, Err(Rule::StatusTransition));
    let (_, r) = moved(&w, &doc, &w.patient, id, A::Cancelled, None, "");
    assert_eq!(r, Ok(()));
    let (_, r) = moved(&w, &doc, &w.provider, id, A::Fulfilled, None, "");
    assert_eq!(r, Ok(()));
}

#[test]
fn the_clinic_confirms_or_declines_with_a_reason() {
    let w = world();
    let (doc, id) = requested(&w);
    for who in [&w.provider, &w.admin] {
        let (_, r) = moved(&w, &doc, who, id, A::Booked, Some(TIME), "");
        assert_eq!(r, Ok(()), "{}", who.name);
        // A time that is not a date and time.
        let (_, r) = moved(&w, &doc, who, id, A::Booked, Some("next week"), "");
        assert_eq!(r, Err(Rule::Schema));
        let (_, r) = moved(&w, &doc, who, id, A::Cancelled, None, "  ");
        assert_eq!(r, Err(Rule::MissingReason));
        let (declined, r) = moved(&w, &doc, who, id, A::Cancelled, None, "No knee clinic here");
        assert_eq!(r, Ok(()));
        let a = appointment(&declined, id);
        assert_eq!(a.status_reason.as_deref(), Some("No knee clinic here"));
        // Declined is final for the patient side too.
        let (_, r) = moved(&w, &declined, &w.patient, id, A::Proposed, None, "");
        assert_eq!(r, Err(Rule::StatusTransition));
    }
    // Another clinic's provider, a read-only caregiver.
    let (_, r) = moved(&w, &doc, &w.other_clinic, id, A::Booked, Some(TIME), "");
    assert_eq!(r, Err(Rule::ForeignClinic));
    let (_, r) = moved(&w, &doc, &w.reader, id, A::Cancelled, None, "");
    assert_eq!(r, Err(Rule::NotPermitted));
}

#[test]
fn the_patient_asks_for_another_time_and_the_clinic_offers_again() {
    let w = world();
    let (doc, id) = requested(&w);
    let (doc, _) = moved(&w, &doc, &w.provider, id, A::Pending, Some(TIME), "");
    let (doc, r) = moved(&w, &doc, &w.patient, id, A::Proposed, None, "Afternoons only");
    assert_eq!(r, Ok(()));
    let later = "2026-12-11T15:00:00Z";
    let (doc, r) = moved(&w, &doc, &w.provider, id, A::Pending, Some(later), "");
    assert_eq!(r, Ok(()));
    assert_eq!(appointment(&doc, id).start, later);
    // An offered time is not changed while it waits for the patient.
    let (_, r) = moved(&w, &doc, &w.provider, id, A::Pending, Some(TIME), "");
    assert_eq!(r, Err(Rule::ImmutableField));
    let (_, r) = moved(&w, &doc, &w.provider, id, A::Booked, Some(TIME), "");
    assert_eq!(r, Err(Rule::ImmutableField));
    // Taking it keeps the time offered.
    let (_, r) = moved(&w, &doc, &w.provider, id, A::Booked, None, "");
    assert_eq!(r, Ok(()));
}

#[test]
fn a_request_is_the_patient_sides_own_and_only_a_request() {
    let w = world();
    let base = w.record.genesis();
    let request = |p: Provenance| {
        move |tx: &mut automerge::transaction::Transaction<'_>| {
            record::request_appointment(tx, EntryId::mint(), "Check-up", "", &p).unwrap()
        }
    };
    // A read-only caregiver, or a clinic the patient does not consent to.
    let (_, r) = edit(&w, &base, &w.reader, request(provenance(&w, &w.reader)));
    assert_eq!(r, Err(Rule::NotPermitted));
    let (_, r) = edit(&w, &base, &w.unconsented, request(provenance(&w, &w.unconsented)));
    assert_eq!(r, Err(Rule::NotPermitted));
    // In someone else's name, or under another name for the clinic.
    let (_, r) = edit(&w, &base, &w.patient, request(provenance(&w, &w.caregiver)));
    assert_eq!(r, Err(Rule::ImpersonatedAuthor));
    let mut renamed = provenance(&w, &w.patient);
    renamed.clinic_name = "Best Clinic".into();
    let (_, r) = edit(&w, &base, &w.patient, request(renamed));
    assert_eq!(r, Err(Rule::ImpersonatedAuthor));
    // Forged fields: a time, a status stamp, no reason, a booked status.
    let forge = |field: &str, value: automerge::ScalarValue| {
        let p = provenance(&w, &w.patient);
        let field = field.to_owned();
        edit(&w, &base, &w.patient, move |tx| {
            let id = EntryId::mint();
            record::request_appointment(tx, id, "Check-up", "", &p).unwrap();
            let coll = tx.get(ROOT, Collection::Appointments.code()).unwrap().unwrap().1;
            let obj = tx.get(&coll, id.to_string()).unwrap().unwrap().1;
            tx.put(&obj, field.as_str(), value).unwrap();
        })
        .1
    };
    assert_eq!(forge("start", TIME.into()), Err(Rule::Schema));
    assert_eq!(forge("status", "booked".into()), Err(Rule::StatusTransition));
    assert_eq!(forge("status", "pending".into()), Err(Rule::StatusTransition));
    assert_eq!(forge("status_by", w.patient.user.to_string().into()), Err(Rule::Schema));
    assert_eq!(forge("status_reason", "approved by me".into()), Err(Rule::StatusTransition));
    assert_eq!(forge("reason", " ".into()), Err(Rule::Schema));
    assert_eq!(forge("preferred", "x".repeat(301).into()), Err(Rule::Limit));
    assert_eq!(forge("notes", "anything".into()), Err(Rule::Schema));
    // Nothing else of the clinical record.
    let (_, r) = edit(&w, &base, &w.patient, |tx| {
        let coll = tx.get(ROOT, Collection::Allergies.code()).unwrap().unwrap().1;
        let obj =
            tx.put_object(&coll, EntryId::mint().to_string(), automerge::ObjType::Map).unwrap();
        tx.put(&obj, "substance", "penicillin").unwrap();
    });
    assert_eq!(r, Err(Rule::NotPermitted));
}

#[test]
fn after_the_request_its_words_do_not_change() {
    let w = world();
    let (doc, id) = requested(&w);
    for field in ["reason", "preferred", "start"] {
        let (_, r) = edit(&w, &doc, &w.patient, |tx| {
            let coll = tx.get(ROOT, Collection::Appointments.code()).unwrap().unwrap().1;
            let obj = tx.get(&coll, id.to_string()).unwrap().unwrap().1;
            tx.put(&obj, field, "changed").unwrap();
        });
        assert_eq!(r, Err(Rule::ImmutableField), "{field}");
    }
    // Withdrawn: cancelled, without needing a reason.
    let (doc, r) = moved(&w, &doc, &w.patient, id, A::Cancelled, None, "");
    assert_eq!(r, Ok(()));
    // Nothing is deleted.
    let (_, r) = edit(&w, &doc, &w.patient, |tx| {
        let coll = tx.get(ROOT, Collection::Appointments.code()).unwrap().unwrap().1;
        tx.delete(&coll, id.to_string()).unwrap();
    });
    assert_eq!(r, Err(Rule::AppendOnly));
}

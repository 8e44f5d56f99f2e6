//! The clinic's work items (issue 14): a `tasks` collection in the message
//! thread, added by one deterministic change, written only by the clinic's
//! providers, assigned only to a provider of the clinic, append-only.

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ROOT, ReadDoc};
use shared::record;
use shared::schema::{Collection, DocKind, MessageThread, Provenance, Task};
use shared::status::TaskStatus;
use shared::{ClinicId, EntryId, PatientId, Principal, Role, Rule, UserId, check_edit};

struct World {
    thread: DocKind,
    clinic: ClinicId,
    provider_a: Principal,
    provider_b: Principal,
    other_clinic: Principal,
    patient: Principal,
    caregiver: Principal,
    admin: Principal,
}

fn world() -> World {
    let patient = PatientId::mint();
    let clinic = ClinicId::mint();
    let other = ClinicId::mint();
    let (a, b, c) = (UserId::mint(), UserId::mint(), UserId::mint());
    let colleagues = vec![
        (clinic, a, "Dr Alice Adams".to_owned()),
        (clinic, b, "Dr Bob Brown".to_owned()),
        (other, c, "Dr Carol Cole".to_owned()),
    ];
    let person = |user, role, name: &str| Principal {
        user,
        role,
        name: name.into(),
        clinic_names: vec![(clinic, "Clinic".into()), (other, "Other".into())],
        colleagues: colleagues.clone(),
    };
    World {
        thread: DocKind::MessageThread { patient, clinic },
        clinic,
        provider_a: person(a, Role::Provider { clinics: vec![clinic] }, "Dr Alice Adams"),
        provider_b: person(b, Role::Provider { clinics: vec![clinic] }, "Dr Bob Brown"),
        other_clinic: person(c, Role::Provider { clinics: vec![other] }, "Dr Carol Cole"),
        patient: person(UserId::mint(), Role::Patient { patient }, "Pat"),
        caregiver: person(UserId::mint(), Role::Caregiver { patient, may_message: true }, "Cg"),
        admin: person(UserId::mint(), Role::ClinicAdmin { clinic }, "Admin"),
    }
}

fn task(w: &World, by: &Principal, owner: Option<&Principal>) -> Task {
    Task {
        focus: EntryId::mint(),
        focus_kind: Collection::Messages,
        status: TaskStatus::Requested,
        owner: owner.map(|o| o.user),
        owner_name: owner.map(|o| o.name.clone()),
        provenance: Provenance {
            clinic: w.clinic,
            clinic_name: "Clinic".into(),
            recorder: by.user,
            recorder_name: by.name.clone(),
            recorded: "2026-12-04T10:00:00Z".into(),
        },
        status_by: None,
        status_at: None,
    }
}

/// A thread as it exists before work items: the genesis change alone.
fn old_thread(w: &World) -> Automerge {
    w.thread.genesis()
}

/// `who` edits `base` as the app does: adds the collection if missing, then `f`.
fn edit(
    w: &World,
    base: &Automerge,
    who: &Principal,
    f: impl FnOnce(&mut automerge::transaction::Transaction<'_>),
) -> (Automerge, Result<(), Rule>) {
    let mut doc = base.fork().with_actor(ActorId::random());
    w.thread.add_tasks_collection(&mut doc);
    let mut tx = doc.transaction();
    f(&mut tx);
    tx.commit();
    let result = check_edit(base, &doc, &w.thread, who).map_err(|d| d.rule);
    (doc, result)
}

fn add(
    w: &World,
    base: &Automerge,
    who: &Principal,
    t: &Task,
) -> (Automerge, EntryId, Result<(), Rule>) {
    let id = EntryId::mint();
    let (doc, result) = edit(w, base, who, |tx| record::add(tx, id, t).unwrap());
    (doc, id, result)
}

#[test]
fn the_tasks_collection_is_added_by_the_same_change_everywhere() {
    let w = world();
    let mut one = old_thread(&w);
    let mut two = old_thread(&w);
    assert!(w.thread.add_tasks_collection(&mut one));
    assert!(w.thread.add_tasks_collection(&mut two));
    assert!(!w.thread.add_tasks_collection(&mut one), "added once");
    assert_eq!(one.get_heads(), two.get_heads());
    // Two devices that each added it and a task merge with one collection.
    let (a, _, ok_a) = add(&w, &old_thread(&w), &w.provider_a, &task(&w, &w.provider_a, None));
    let (mut b, _, ok_b) = add(&w, &old_thread(&w), &w.provider_b, &task(&w, &w.provider_b, None));
    assert_eq!((ok_a, ok_b), (Ok(()), Ok(())));
    b.merge(&mut a.clone()).unwrap();
    assert_eq!(b.get_all(ROOT, "tasks").unwrap().len(), 1, "no conflict on the collection");
    let thread: MessageThread = shared::read::hydrate(&b).unwrap();
    assert_eq!(thread.tasks.len(), 2);
    // A thread without the collection still reads, with no tasks.
    let thread: MessageThread = shared::read::hydrate(&old_thread(&w)).unwrap();
    assert!(thread.tasks.is_empty());
    // Other kinds have no such change.
    assert!(DocKind::PatientRecord { patient: PatientId::mint() }.tasks_change().is_none());
}

#[test]
fn only_the_clinics_providers_write_work_items() {
    let w = world();
    let base = old_thread(&w);
    let t = task(&w, &w.provider_a, Some(&w.provider_b));
    assert_eq!(add(&w, &base, &w.provider_a, &t).2, Ok(()));
    for (who, rule) in [
        (&w.patient, Rule::NotPermitted),
        (&w.caregiver, Rule::NotPermitted),
        (&w.admin, Rule::NotPermitted),
        (&w.other_clinic, Rule::ForeignClinic),
    ] {
        let t = task(&w, who, None);
        assert_eq!(add(&w, &base, who, &t).2, Err(rule), "{:?}", who.role);
    }
    // Recorded as someone else.
    let t = task(&w, &w.provider_b, None);
    assert_eq!(add(&w, &base, &w.provider_a, &t).2, Err(Rule::ImpersonatedAuthor));
}

#[test]
fn a_work_item_is_assigned_only_to_a_provider_of_its_clinic() {
    let w = world();
    let base = old_thread(&w);
    let a = &w.provider_a;
    let bad = [
        (Some(w.other_clinic.user), Some(w.other_clinic.name.clone())),
        (Some(w.patient.user), Some(w.patient.name.clone())),
        (Some(UserId::mint()), Some("Dr Nobody".into())),
        (Some(w.provider_b.user), Some("Dr Someone Else".into())),
        (Some(w.provider_b.user), None),
    ];
    for (owner, owner_name) in bad.clone() {
        let t = Task { owner, owner_name, ..task(&w, a, None) };
        assert_eq!(add(&w, &base, a, &t).2, Err(Rule::Assignee));
    }
    // Reassigned later: the same rule.
    let (doc, id, ok) = add(&w, &base, a, &task(&w, a, None));
    assert_eq!(ok, Ok(()));
    let (_, ok) = edit(&w, &doc, a, |tx| {
        let owner = Some((w.provider_b.user, w.provider_b.name.as_str()));
        record::update_task(tx, id, TaskStatus::Requested, owner, a.user, "t").unwrap()
    });
    assert_eq!(ok, Ok(()));
    let (_, ok) = edit(&w, &doc, a, |tx| {
        let owner = Some((w.other_clinic.user, w.other_clinic.name.as_str()));
        record::update_task(tx, id, TaskStatus::Requested, owner, a.user, "t").unwrap()
    });
    assert_eq!(ok, Err(Rule::Assignee));
}

#[test]
fn work_items_move_forward_and_are_never_deleted() {
    let w = world();
    let a = &w.provider_a;
    let b = &w.provider_b;
    let (doc, id, ok) = add(&w, &old_thread(&w), a, &task(&w, a, Some(b)));
    assert_eq!(ok, Ok(()));
    let entry = |doc: &Automerge| {
        let coll = doc.get(ROOT, "tasks").unwrap().unwrap().1;
        doc.get(coll, id.to_string()).unwrap().unwrap().1
    };
    // B marks it handled.
    let (done, ok) = edit(&w, &doc, b, |tx| {
        record::update_task(tx, id, TaskStatus::Completed, None, b.user, "t").unwrap()
    });
    assert_eq!(ok, Ok(()));
    // Not reopened.
    let (_, ok) = edit(&w, &done, a, |tx| {
        record::update_task(tx, id, TaskStatus::Requested, None, a.user, "t").unwrap()
    });
    assert_eq!(ok, Err(Rule::StatusTransition));
    // Deleted: refused.
    let (_, ok) = edit(&w, &done, a, |tx| {
        let coll = tx.get(ROOT, "tasks").unwrap().unwrap().1;
        tx.delete(coll, id.to_string()).unwrap();
    });
    assert_eq!(ok, Err(Rule::AppendOnly));
    // Replaced: refused.
    let (_, ok) = edit(&w, &done, a, |tx| {
        let coll = tx.get(ROOT, "tasks").unwrap().unwrap().1;
        tx.put_object(coll, id.to_string(), automerge::ObjType::Map).unwrap();
    });
    assert_eq!(ok, Err(Rule::AppendOnly));
    // Its focus rewritten: refused.
    let (_, ok) = edit(&w, &done, a, |tx| {
        let obj = entry(&done);
        tx.put(obj, "focus", EntryId::mint().to_string()).unwrap();
    });
    assert_eq!(ok, Err(Rule::ImmutableField));
    // Marked handled in someone else's name: refused.
    let (_, ok) = edit(&w, &doc, a, |tx| {
        record::update_task(tx, id, TaskStatus::Completed, None, b.user, "t").unwrap()
    });
    assert_eq!(ok, Err(Rule::ImpersonatedAuthor));
    // The patient side may not touch it.
    let (_, ok) = edit(&w, &doc, &w.patient, |tx| {
        record::update_task(tx, id, TaskStatus::Completed, None, w.patient.user, "t").unwrap()
    });
    assert_eq!(ok, Err(Rule::NotPermitted));
}

#[test]
fn a_forged_collection_change_is_refused() {
    let w = world();
    let base = old_thread(&w);
    // The same content under another actor is an ordinary root write.
    let mut doc = base.fork().with_actor(ActorId::random());
    let mut tx = doc.transaction();
    tx.put_object(ROOT, "tasks", automerge::ObjType::Map).unwrap();
    tx.commit();
    let rule = check_edit(&base, &doc, &w.thread, &w.provider_a).map_err(|d| d.rule);
    assert_eq!(rule, Err(Rule::Schema));
    // The real change is accepted from anyone who writes the thread, also
    // the patient (whose device may add it before sending a message).
    let mut doc = base.fork();
    w.thread.add_tasks_collection(&mut doc);
    assert_eq!(check_edit(&base, &doc, &w.thread, &w.patient).map_err(|d| d.rule), Ok(()));
}

#[test]
fn nothing_else_is_accepted_under_the_collections_actor() {
    let w = world();
    let base = old_thread(&w);
    // Someone signs a message with the collection's actor: that would take
    // the sequence number the real change needs.
    let mut doc = base.fork().with_actor(w.thread.tasks_actor());
    let mut tx = doc.transaction();
    let m = shared::schema::Message::new(
        w.patient.user,
        w.patient.name.clone(),
        shared::status::Side::Patient,
        "t",
        "hi",
    );
    record::add(&mut tx, EntryId::mint(), &m).unwrap();
    tx.commit();
    assert_eq!(
        check_edit(&base, &doc, &w.thread, &w.patient).map_err(|d| d.rule),
        Err(Rule::Schema)
    );
}

#[test]
fn a_work_item_written_field_by_field_reads_back_whole() {
    let w = world();
    let t = Task {
        status_by: Some(w.provider_a.user),
        status_at: Some("2026-12-04T11:00:00Z".into()),
        ..task(&w, &w.provider_a, Some(&w.provider_b))
    };
    let id = EntryId::mint();
    let (doc, ok) = edit(&w, &old_thread(&w), &w.provider_a, |tx| record::add(tx, id, &t).unwrap());
    assert_eq!(ok, Ok(()));
    let thread: MessageThread = shared::read::hydrate(&doc).unwrap();
    assert_eq!(thread.tasks.get(&id.to_string()), Some(&t));
    let plain = task(&w, &w.provider_a, None);
    let (doc, ok) =
        edit(&w, &old_thread(&w), &w.provider_a, |tx| record::add(tx, id, &plain).unwrap());
    assert_eq!(ok, Ok(()));
    let thread: MessageThread = shared::read::hydrate(&doc).unwrap();
    assert_eq!(thread.tasks.get(&id.to_string()), Some(&plain));
}

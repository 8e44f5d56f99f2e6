//! Writes that produce no visible patch, or that step outside the schema, are
//! still judged: the policy reads every operation a change carries.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, Automerge, ObjType, ROOT, ReadDoc, ScalarValue};
use shared::record::{self, Entry};
use shared::schema::{DocKind, Message, Prescription, Provenance};
use shared::status::{PrescriptionStatus, Side};
use shared::{
    ClinicId, EntryId, PatientId, Principal, Role, Rule, UserId, check_entries, check_ops,
    check_quota,
};

struct World {
    patient: Principal,
    reader: Principal,
    provider: Principal,
    other_provider: Principal,
    clinical: DocKind,
    thread: DocKind,
    clinic: ClinicId,
}

fn world() -> World {
    let patient_id = PatientId::mint();
    let clinic = ClinicId::mint();
    World {
        patient: person(Role::Patient { patient: patient_id }, clinic),
        reader: person(Role::Caregiver { patient: patient_id, may_message: false }, clinic),
        provider: person(Role::Provider { clinics: vec![clinic] }, clinic),
        other_provider: person(Role::Provider { clinics: vec![clinic] }, clinic),
        clinical: DocKind::ClinicalRecord { patient: patient_id, clinic },
        thread: DocKind::MessageThread { patient: patient_id, clinic },
        clinic,
    }
}

fn person(role: Role, clinic: ClinicId) -> Principal {
    Principal {
        user: UserId::mint(),
        role,
        name: "Someone".into(),
        clinic_names: vec![(clinic, "Clinic".into())],
        colleagues: vec![],
    }
}

fn prescription(w: &World, by: &Principal) -> Prescription {
    Prescription {
        rxnorm: "861007".into(),
        display: "metformin".into(),
        dosage: "1 tablet twice daily".into(),
        quantity: 60,
        refills_allowed: 3,
        authored: "2026-01-05T09:00:00Z".into(),
        status: PrescriptionStatus::Active,
        provenance: Provenance {
            clinic: w.clinic,
            clinic_name: "Clinic".into(),
            recorder: by.user,
            recorder_name: by.name.clone(),
            recorded: "2026-01-05T09:00:00Z".into(),
        },
        status_reason: None,
        status_by: None,
        status_at: None,
        override_reason: None,
    }
}

fn message(by: &Principal, body: &str) -> Message {
    Message::new(by.user, by.name.clone(), by.side(), "2026-01-05T10:00:00Z", body)
}

/// The server's verdict on what `edit` adds to `base`.
fn verdict(
    base: &AutoCommit,
    kind: &DocKind,
    who: &Principal,
    edit: impl FnOnce(&mut AutoCommit),
) -> Option<Rule> {
    let mut base = base.clone();
    let mut doc = base.fork().with_actor(ActorId::random());
    edit(&mut doc);
    let changes = doc.document().get_changes(&base.get_heads());
    let mut server: Automerge = base.document().clone();
    let verdict = check_ops(&server, &changes, kind, who).and_then(|plan| {
        check_quota(&plan)?;
        server.apply_changes(changes).unwrap();
        check_entries(&server, &plan, kind, who)
    });
    verdict.err().map(|d| d.rule)
}

fn base(kind: &DocKind) -> AutoCommit {
    AutoCommit::load(&kind.genesis().save()).unwrap()
}

fn entry_obj(doc: &AutoCommit, collection: &str, id: EntryId) -> automerge::ObjId {
    let coll = doc.get(ROOT, collection).unwrap().unwrap().1;
    doc.get(coll, id.to_string()).unwrap().unwrap().1
}

#[test]
fn a_read_only_caregiver_writes_nothing_not_even_invisible_things() {
    let w = world();
    let thread = base(&w.thread);
    // An empty change with a message: no patch at all.
    let rule = verdict(&thread, &w.thread, &w.reader, |doc| {
        doc.empty_change(CommitOptions::default().with_message("smuggled".to_owned()));
    });
    assert_eq!(rule, Some(Rule::NotPermitted));
    let rule = verdict(&thread, &w.thread, &w.reader, |doc| {
        record::add(doc, EntryId::mint(), &message(&w.reader, "hi")).unwrap()
    });
    assert_eq!(rule, Some(Rule::NotPermitted));
}

#[test]
fn empty_changes_and_commit_messages_carry_no_data() {
    let w = world();
    let thread = base(&w.thread);
    let rule = verdict(&thread, &w.thread, &w.patient, |doc| {
        doc.empty_change(CommitOptions::default().with_message("x".repeat(1000)));
    });
    assert_eq!(rule, Some(Rule::Schema));
    let rule = verdict(&thread, &w.thread, &w.patient, |doc| {
        record::add(doc, EntryId::mint(), &message(&w.patient, "hi")).unwrap();
        doc.commit_with(CommitOptions::default().with_message("hidden".to_owned()));
    });
    assert_eq!(rule, Some(Rule::Schema));
}

#[test]
fn a_value_that_loses_on_an_already_conflicted_field_is_checked() {
    let w = world();
    let mut clinical = base(&w.clinical);
    let rx = EntryId::mint();
    record::add(&mut clinical, rx, &prescription(&w, &w.provider)).unwrap();
    // Two providers stop it concurrently: the field is now conflicted.
    let mut a = clinical.fork().with_actor(ActorId::from([0x10; 16].as_slice()));
    record::change_status(
        &mut a,
        Prescription::COLLECTION,
        rx,
        "stopped",
        "a",
        w.provider.user,
        "t",
    )
    .unwrap();
    let mut b = clinical.fork().with_actor(ActorId::from([0x20; 16].as_slice()));
    record::change_status(
        &mut b,
        Prescription::COLLECTION,
        rx,
        "completed",
        "b",
        w.other_provider.user,
        "t",
    )
    .unwrap();
    clinical.merge(&mut a).unwrap();
    clinical.merge(&mut b).unwrap();
    let obj = entry_obj(&clinical, "prescriptions", rx);
    assert_eq!(clinical.get_all(&obj, "status").unwrap().len(), 2);
    // A third, losing write (lowest actor) back to active: no visible patch.
    let rule = verdict(&clinical, &w.clinical, &w.provider, |doc| {
        doc.set_actor(ActorId::from([0x01; 16].as_slice()));
        let obj = entry_obj(doc, "prescriptions", rx);
        doc.put(&obj, "status", "active").unwrap();
        doc.put(&obj, "status_reason", "x").unwrap();
    });
    assert_eq!(rule, Some(Rule::StatusTransition));
}

#[test]
fn new_entries_hold_only_their_schema_fields() {
    let w = world();
    let clinical = base(&w.clinical);
    let add = |extra: &dyn Fn(&mut AutoCommit, &automerge::ObjId)| {
        verdict(&clinical, &w.clinical, &w.provider, |doc| {
            let id = EntryId::mint();
            record::add(doc, id, &prescription(&w, &w.provider)).unwrap();
            let obj = entry_obj(doc, "prescriptions", id);
            extra(doc, &obj);
        })
    };
    assert_eq!(add(&|_, _| {}), None);
    assert_eq!(
        add(&|doc, obj| {
            doc.put(obj, "notes", "anything").unwrap();
        }),
        Some(Rule::Schema)
    );
    assert_eq!(
        add(&|doc, obj| {
            let nested = doc.put_object(obj, "blob", ObjType::Map).unwrap();
            doc.put(&nested, "b", ScalarValue::Bytes(vec![0; 64])).unwrap();
        }),
        Some(Rule::Schema)
    );
    assert_eq!(
        add(&|doc, obj| {
            doc.put(obj, "quantity", ScalarValue::counter(5)).unwrap();
        }),
        Some(Rule::Schema)
    );
    // A value hidden by a later write in the same batch is checked too.
    assert_eq!(
        add(&|doc, obj| {
            doc.put(obj, "dosage", "2 tablets").unwrap();
        }),
        None
    );
    assert_eq!(
        add(&|doc, obj| {
            doc.put(obj, "dosage", "x".repeat(shared::fields::limits::NOTE + 1)).unwrap();
            doc.put(obj, "dosage", "2 tablets").unwrap();
        }),
        Some(Rule::Limit)
    );
    // Deep nesting is refused at the first level the schema does not have.
    assert_eq!(
        add(&|doc, obj| {
            let mut at = doc.put_object(obj, "provenance_2", ObjType::Map).unwrap();
            for _ in 0..50 {
                at = doc.put_object(&at, "x", ObjType::Map).unwrap();
            }
        }),
        Some(Rule::Schema)
    );
}

#[test]
fn entry_keys_must_be_canonical_ids() {
    let w = world();
    let thread = base(&w.thread);
    let rule = verdict(&thread, &w.thread, &w.patient, |doc| {
        let coll = doc.get(ROOT, "messages").unwrap().unwrap().1;
        let key = EntryId::mint().to_string().to_uppercase();
        autosurgeon::reconcile_prop(doc, coll, key.as_str(), message(&w.patient, "hi")).unwrap();
    });
    assert_eq!(rule, Some(Rule::Schema));
}

#[test]
fn fields_have_size_limits() {
    let w = world();
    let thread = base(&w.thread);
    let long = "x".repeat(shared::fields::limits::BODY + 1);
    let rule = verdict(&thread, &w.thread, &w.patient, |doc| {
        record::add(doc, EntryId::mint(), &message(&w.patient, &long)).unwrap()
    });
    assert_eq!(rule, Some(Rule::Limit));
}

#[test]
fn too_many_entries_in_one_change_are_refused() {
    let w = world();
    let thread = base(&w.thread);
    let rule = verdict(&thread, &w.thread, &w.patient, |doc| {
        for _ in 0..=shared::fields::limits::ENTRIES_PER_CHANGE {
            record::add(doc, EntryId::mint(), &message(&w.patient, "hi")).unwrap();
        }
    });
    assert_eq!(rule, Some(Rule::Limit));
}

#[test]
fn the_explanation_of_a_status_change_is_written_only_with_it() {
    let w = world();
    let mut clinical = base(&w.clinical);
    let rx = EntryId::mint();
    record::add(&mut clinical, rx, &prescription(&w, &w.provider)).unwrap();
    record::change_status(
        &mut clinical,
        Prescription::COLLECTION,
        rx,
        "entered-in-error",
        "wrong patient",
        w.provider.user,
        "t1",
    )
    .unwrap();
    // Another provider later rewrites the reason, author or time alone.
    for (field, value) in [("status_reason", "looked fine"), ("status_at", "t2")] {
        let rule = verdict(&clinical, &w.clinical, &w.other_provider, |doc| {
            let obj = entry_obj(doc, "prescriptions", rx);
            doc.put(&obj, field, value).unwrap();
        });
        assert_eq!(rule, Some(Rule::ImmutableField), "{field}");
    }
    let rule = verdict(&clinical, &w.clinical, &w.other_provider, |doc| {
        let obj = entry_obj(doc, "prescriptions", rx);
        doc.put(&obj, "status_by", w.other_provider.user.to_string()).unwrap();
    });
    assert_eq!(rule, Some(Rule::ImmutableField));
}

#[test]
fn a_message_is_marked_read_with_who_and_when_together() {
    let w = world();
    let mut thread = base(&w.thread);
    let id = EntryId::mint();
    record::add(&mut thread, id, &message(&w.provider, "Your results are in")).unwrap();
    assert_eq!(
        verdict(&thread, &w.thread, &w.patient, |doc| record::mark_read(
            doc,
            id,
            w.patient.user,
            "t"
        )
        .unwrap()),
        None
    );
    let rule = verdict(&thread, &w.thread, &w.patient, |doc| {
        let obj = entry_obj(doc, Message::COLLECTION.code(), id);
        doc.put(&obj, "read_at", "t").unwrap();
    });
    assert_eq!(rule, Some(Rule::Schema));
    let _ = Side::Patient;
}

/// The world's patient's own record.
fn patient_record(w: &World) -> DocKind {
    match w.patient.role {
        Role::Patient { patient } => DocKind::PatientRecord { patient },
        _ => unreachable!(),
    }
}

/// Demographics with only a phone number.
fn demographics(phone: &str) -> shared::schema::Demographics {
    shared::schema::Demographics { phone: Some(phone.into()), ..Default::default() }
}

/// A change must number its operations after those it depends on. Automerge
/// applies one numbered lower, but the document it makes no longer loads,
/// so no new device (and no restarted server) could open the record.
#[test]
fn a_change_numbered_below_its_dependencies_is_refused() {
    let w = world();
    let kind = patient_record(&w);
    let mut record = base(&kind);
    record::set_demographics(&mut record, &demographics("+1 555 0100")).unwrap();
    let before = record.document().clone();
    let mut doc = record.fork().with_actor(ActorId::random());
    record::set_demographics(&mut doc, &demographics("+1 555 0199")).unwrap();
    let honest = doc.document().get_changes(&before.get_heads());
    assert_eq!(honest.len(), 1);
    assert!(check_ops(&before, &honest, &kind, &w.patient).is_ok());

    // The same change, numbered one lower: level with the last operation it follows.
    let mut expanded = honest[0].decode();
    expanded.start_op = std::num::NonZeroU64::new(expanded.start_op.get() - 1).unwrap();
    let renumbered = automerge::Change::from(expanded);
    let denial =
        check_ops(&before, std::slice::from_ref(&renumbered), &kind, &w.patient).unwrap_err();
    assert_eq!(denial.rule, Rule::Schema);
    // What it would have done: applied, but the document does not load again.
    let mut applied = before.clone();
    applied.apply_changes([renumbered]).unwrap();
    assert!(
        Automerge::load(&applied.save()).is_err(),
        "Automerge 0.12 accepts it and cannot load the result"
    );
}

/// A device's changes number their operations one after another: a change
/// whose ids overlap an earlier change of the same actor (its previous
/// sequence number, made concurrent to it) would give two operations one
/// id. Automerge 0.12 applies it; the document is then not what any
/// device can agree on or load. The server's check (feature `peer-changes`,
/// on in every workspace build, as the server asks for it).
#[cfg(feature = "peer-changes")]
#[test]
fn a_change_reusing_its_own_actors_operation_ids_is_refused() {
    let w = world();
    let kind = patient_record(&w);
    let mut record = base(&kind);
    let genesis = record.document().clone();
    let mut device = record.fork().with_actor(ActorId::random());
    record::set_demographics(&mut device, &demographics("+1 555 0100")).unwrap();
    let first = device.document().get_changes(&genesis.get_heads());
    assert_eq!(first.len(), 1);
    let mut before = genesis.clone();
    before.apply_changes(first.clone()).unwrap();

    // Its next change, honestly made, follows the first.
    record::set_demographics(&mut device, &demographics("+1 555 0101")).unwrap();
    let honest = device.document().get_changes(&before.get_heads());
    assert!(check_ops(&before, &honest, &kind, &w.patient).is_ok());

    // The same actor's second change, numbered like its first and made
    // beside it (same dependencies), writing another value.
    let mut forged = first[0].decode();
    forged.seq = 2;
    for op in &mut forged.operations {
        if let automerge::legacy::OpType::Put(automerge::ScalarValue::Str(s)) = &mut op.action {
            *s = "+1 555 0666".into();
        }
    }
    let forged = automerge::Change::from(forged);
    assert_eq!(forged.start_op(), first[0].start_op());
    let denial = check_ops(&before, std::slice::from_ref(&forged), &kind, &w.patient).unwrap_err();
    assert_eq!(denial.rule, Rule::Schema);

    // A sequence number skipped is refused too.
    let mut skipping = honest[0].decode();
    skipping.seq = 3;
    let skipping = automerge::Change::from(skipping);
    let denial =
        check_ops(&before, std::slice::from_ref(&skipping), &kind, &w.patient).unwrap_err();
    assert_eq!(denial.rule, Rule::Schema);

    // And one numbered 0, before any first change (found by the fuzzer:
    // the check subtracted 1 from it).
    let mut zeroth = first[0].decode();
    zeroth.seq = 0;
    let zeroth = automerge::Change::from(zeroth);
    let denial = check_ops(&genesis, std::slice::from_ref(&zeroth), &kind, &w.patient).unwrap_err();
    assert_eq!(denial.rule, Rule::Schema);
}

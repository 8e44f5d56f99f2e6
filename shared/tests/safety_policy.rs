//! The safety rules as the write policy applies them to one clinic's record
//! (`shared::policy`'s safety step): impossible results and unmarked critical
//! ones are refused, marked ones kept; a prescription against an allergy or
//! interacting with another prescription of the same document needs a
//! reason; a stopped one does not count, nor does an entry already stored.

use automerge::legacy::Key;
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, Automerge, ObjId, ObjType, ROOT, ReadDoc};
use shared::record;
use shared::schema::{Allergy, DocKind, Observation, Prescription, Provenance};
use shared::status::{AllergyStatus, PrescriptionStatus, ResultStatus, Severity};
use shared::{
    ClinicId, EntryId, PatientId, Principal, Role, Rule, UserId, check_change, check_entries,
    check_ops,
};

struct Chart {
    kind: DocKind,
    doc: AutoCommit,
    who: Principal,
}

impl Chart {
    fn new() -> Self {
        let clinic = ClinicId::mint();
        let kind = DocKind::ClinicalRecord { patient: PatientId::mint(), clinic };
        let who = Principal {
            user: UserId::mint(),
            role: Role::Provider { clinics: vec![clinic] },
            name: "Dr Example".into(),
            clinic_names: vec![(clinic, "Clinic".into())],
            colleagues: vec![],
        };
        let mut doc = AutoCommit::load(&kind.genesis().save()).unwrap();
        doc.set_actor(automerge::ActorId::random());
        Self { kind, doc, who }
    }

    fn provenance(&self) -> Provenance {
        Provenance {
            clinic: self.kind.clinic().unwrap(),
            clinic_name: "Clinic".into(),
            recorder: self.who.user,
            recorder_name: "Dr Example".into(),
            recorded: "2026-12-01T09:00:00Z".into(),
        }
    }

    /// Adds `entry` and judges it; kept if allowed, undone if not.
    fn add<E: record::Entry>(&mut self, entry: &E) -> Result<(), Rule> {
        let before = self.doc.get_heads();
        record::add(&mut self.doc, EntryId::mint(), entry).unwrap();
        self.doc.commit();
        let verdict = check_change(self.doc.document(), &before, &self.kind, &self.who);
        if verdict.is_err() {
            let saved = self.doc.document().fork_at(&before).unwrap().save();
            self.doc = AutoCommit::load(&saved).unwrap();
            self.doc.set_actor(automerge::ActorId::random());
        }
        verdict.map_err(|d| d.rule)
    }

    fn potassium(&self, value: f64, interpretation: Option<&str>) -> Observation {
        Observation {
            report: None,
            loinc: "2823-3".into(),
            display: "Potassium".into(),
            value_quantity: Some(value),
            value_string: None,
            unit: Some("mmol/L".into()),
            reference_low: Some(3.5),
            reference_high: Some(5.1),
            effective: "2026-12-01T08:00:00Z".into(),
            status: ResultStatus::Final,
            replaces: None,
            provenance: self.provenance(),
            status_reason: None,
            status_by: None,
            status_at: None,
            interpretation: interpretation.map(Into::into),
        }
    }

    fn rx(&self, rxnorm: &str, status: PrescriptionStatus, reason: Option<&str>) -> Prescription {
        Prescription {
            rxnorm: rxnorm.into(),
            display: shared::catalog::medication(rxnorm).unwrap().display.into(),
            dosage: "as directed".into(),
            quantity: 30,
            refills_allowed: 0,
            authored: "2026-12-01T09:00:00Z".into(),
            status,
            provenance: self.provenance(),
            status_reason: None,
            status_by: None,
            status_at: None,
            override_reason: reason.map(Into::into),
        }
    }

    fn penicillin_allergy(&self) -> Allergy {
        Allergy {
            substance_code: "70618".into(),
            substance: "Penicillin".into(),
            reaction: "Hives".into(),
            severity: Severity::Moderate,
            status: AllergyStatus::Active,
            provenance: self.provenance(),
            status_reason: None,
            status_by: None,
            status_at: None,
        }
    }
}

const ACTIVE: PrescriptionStatus = PrescriptionStatus::Active;

#[test]
fn results_must_be_possible_and_marked_critical_exactly_when_critical() {
    let mut chart = Chart::new();
    assert_eq!(chart.add(&chart.potassium(58.0, None)), Err(Rule::Implausible));
    assert_eq!(chart.add(&chart.potassium(0.2, Some("LL"))), Err(Rule::Implausible));
    assert_eq!(chart.add(&chart.potassium(6.8, None)), Err(Rule::CriticalMark));
    assert_eq!(chart.add(&chart.potassium(6.8, Some("LL"))), Err(Rule::CriticalMark));
    assert_eq!(chart.add(&chart.potassium(5.0, Some("HH"))), Err(Rule::CriticalMark));
    assert_eq!(chart.add(&chart.potassium(6.8, Some("HH"))), Ok(()));
    assert_eq!(chart.add(&chart.potassium(2.1, Some("LL"))), Ok(()));
    assert_eq!(chart.add(&chart.potassium(5.0, None)), Ok(()));
}

#[test]
fn overriding_an_allergy_or_interaction_in_the_same_record_needs_a_reason() {
    let mut chart = Chart::new();
    assert_eq!(chart.add(&chart.rx("308191", ACTIVE, None)), Ok(()), "no allergy yet");
    chart.add(&chart.penicillin_allergy()).unwrap();
    assert_eq!(chart.add(&chart.rx("308191", ACTIVE, None)), Err(Rule::OverrideReason));
    assert_eq!(chart.add(&chart.rx("308191", ACTIVE, Some(" "))), Err(Rule::OverrideReason));
    // Recording a past prescription starts nothing.
    assert_eq!(chart.add(&chart.rx("308191", PrescriptionStatus::Stopped, None)), Ok(()));
    assert_eq!(chart.add(&chart.rx("308191", ACTIVE, Some("Tolerated in 2024"))), Ok(()));

    // Warfarin, then ibuprofen: an interaction in the same record.
    chart.add(&chart.rx("855332", ACTIVE, None)).unwrap();
    assert_eq!(chart.add(&chart.rx("310965", ACTIVE, None)), Err(Rule::OverrideReason));
    assert_eq!(chart.add(&chart.rx("310965", ACTIVE, Some("Short course, INR checked"))), Ok(()));
    // A stopped simvastatin does not interact with clarithromycin.
    chart.add(&chart.rx("198211", PrescriptionStatus::Stopped, None)).unwrap();
    assert_eq!(chart.add(&chart.rx("197517", ACTIVE, None)), Ok(()));
    // Duplicate therapy is a warning only.
    chart.add(&chart.rx("617310", ACTIVE, None)).unwrap();
    assert_eq!(chart.add(&chart.rx("617310", ACTIVE, None)), Ok(()));
}

// New entries are judged from the values their operations wrote where
// those are what the document shows, and read from the document where a
// key was written twice or a change was not applied. These judge the same
// entry both ways round: a wrong reading accepts one or refuses the other.

impl Chart {
    /// The object of the observation `id`.
    fn observation(&self, id: EntryId) -> ObjId {
        let (_, coll) = self.doc.get(ROOT, "observations").unwrap().unwrap();
        self.doc.get(&coll, id.to_string()).unwrap().unwrap().1
    }

    /// Judges every change since `before`, as the server judges a batch.
    fn judge_since(&mut self, before: &[automerge::ChangeHash]) -> Result<(), Rule> {
        check_change(self.doc.document(), before, &self.kind, &self.who).map_err(|d| d.rule)
    }
}

#[test]
fn a_result_written_twice_in_one_change_is_judged_as_the_document_shows_it() {
    for (first, last, verdict) in [(4.0, 58.0, Err(Rule::Implausible)), (58.0, 4.0, Ok(()))] {
        let mut chart = Chart::new();
        let before = chart.doc.get_heads();
        let id = EntryId::mint();
        let result = chart.potassium(first, None);
        record::add(&mut chart.doc, id, &result).unwrap();
        let obj = chart.observation(id);
        chart.doc.put(&obj, "value_quantity", last).unwrap();
        chart.doc.commit();
        let change = chart.doc.document().get_changes(&before).pop().unwrap();
        let written = change
            .decode()
            .operations
            .iter()
            .filter(|op| op.key == Key::Map("value_quantity".into()))
            .count();
        assert_eq!(written, 2, "one change writes the key twice");
        assert_eq!(chart.judge_since(&before), verdict, "{first} then {last}");
    }
}

#[test]
fn concurrent_results_for_a_new_entry_are_judged_by_the_one_that_shows() {
    for (low, high, verdict) in [(4.2, 58.0, Err(Rule::Implausible)), (58.0, 4.2, Ok(()))] {
        let mut chart = Chart::new();
        let before = chart.doc.get_heads();
        let id = EntryId::mint();
        let result = chart.potassium(4.0, None);
        record::add(&mut chart.doc, id, &result).unwrap();
        chart.doc.commit();
        let obj = chart.observation(id);
        // Two devices of the same batch write the value at once; the same
        // operation counter, so the greater actor's value shows.
        let mut writes = Vec::new();
        for (actor, value) in [(1u8, low), (2u8, high)] {
            let mut device = chart.doc.fork().with_actor(ActorId::from(vec![actor; 16]));
            device.put(&obj, "value_quantity", value).unwrap();
            device.commit();
            writes.push(device);
        }
        for device in &mut writes {
            chart.doc.merge(device).unwrap();
        }
        let shown = chart.doc.get(&obj, "value_quantity").unwrap().unwrap().0;
        assert_eq!(shown.as_f64(), Some(high));
        // Judged in either order: the value that shows is not the one
        // judged last.
        let base = chart.doc.document().fork_at(&before).unwrap();
        let mut changes = chart.doc.document().get_changes(&before);
        for _ in 0..2 {
            changes[1..].reverse();
            let plan = check_ops(&base, &changes, &chart.kind, &chart.who).unwrap();
            let judged = check_entries(chart.doc.document(), &plan, &chart.kind, &chart.who);
            assert_eq!(judged.map_err(|d| d.rule), verdict, "{low} and {high}");
        }
        assert_eq!(chart.judge_since(&before), verdict, "{low} and {high}");
    }
}

#[test]
fn new_entries_are_read_from_the_document_when_a_change_judged_is_not_in_it() {
    let mut chart = Chart::new();
    let before = chart.doc.get_heads();
    let base: Automerge = chart.doc.document().fork_at(&before).unwrap();
    // A critical potassium written without the `interpretation` key (as
    // entries from before it existed are), then marked critical in a
    // second change: accepted together, refused without the mark.
    let obs = chart.potassium(6.8, None);
    let (_, coll) = chart.doc.get(ROOT, "observations").unwrap().unwrap();
    let obj = chart.doc.put_object(&coll, EntryId::mint().to_string(), ObjType::Map).unwrap();
    for (key, value) in [
        ("loinc", obs.loinc.as_str()),
        ("display", &obs.display),
        ("unit", "mmol/L"),
        ("effective", &obs.effective),
        ("status", obs.status.code()),
    ] {
        chart.doc.put(&obj, key, value).unwrap();
    }
    for (key, value) in [("value_quantity", 6.8), ("reference_low", 3.5), ("reference_high", 5.1)] {
        chart.doc.put(&obj, key, value).unwrap();
    }
    for key in ["report", "value_string", "replaces", "status_reason", "status_by", "status_at"] {
        chart.doc.put(&obj, key, automerge::ScalarValue::Null).unwrap();
    }
    let p = &obs.provenance;
    let provenance = chart.doc.put_object(&obj, "provenance", ObjType::Map).unwrap();
    for (key, value) in [
        ("clinic", p.clinic.to_string()),
        ("clinic_name", p.clinic_name.clone()),
        ("recorder", p.recorder.to_string()),
        ("recorder_name", p.recorder_name.clone()),
        ("recorded", p.recorded.clone()),
    ] {
        chart.doc.put(&provenance, key, value).unwrap();
    }
    chart.doc.commit();
    chart.doc.put(&obj, "interpretation", "HH").unwrap();
    chart.doc.commit();
    let changes = chart.doc.document().get_changes(&before);
    assert_eq!(changes.len(), 2);
    let plan = check_ops(&base, &changes, &chart.kind, &chart.who).unwrap();
    let verdict = |applied: &[automerge::Change]| {
        let mut after = base.clone();
        after.apply_changes(applied.to_vec()).unwrap();
        check_entries(&after, &plan, &chart.kind, &chart.who).map_err(|d| d.rule)
    };
    assert_eq!(verdict(&changes), Ok(()));
    assert_eq!(verdict(&changes[..1]), Err(Rule::CriticalMark));
}

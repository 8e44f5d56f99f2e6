//! The safety rules as the write policy applies them to one clinic's record
//! (`shared::policy`'s safety step): impossible results and unmarked critical
//! ones are refused, marked ones kept; a prescription against an allergy or
//! interacting with another prescription of the same document needs a
//! reason; a stopped one does not count, nor does an entry already stored.

use automerge::AutoCommit;
use shared::record;
use shared::schema::{Allergy, DocKind, Observation, Prescription, Provenance};
use shared::status::{AllergyStatus, PrescriptionStatus, ResultStatus, Severity};
use shared::{ClinicId, EntryId, PatientId, Principal, Role, Rule, UserId, check_change};

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

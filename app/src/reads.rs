//! Reads for the views: a patient's documents hydrated into typed records
//! (`shared::read`), cached by heads; every value of a field two devices
//! changed at once; a clinic's name.

use crate::i18n::ts;
use std::cell::RefCell;
use std::rc::Rc;

use automerge::{Automerge, ChangeHash, ROOT, ReadDoc};
use leptos::prelude::*;
use shared::schema::Collection;
use shared::schema::{ClinicalRecord, Demographics, MessageThread, PatientRecord};
use shared::{ClinicId, DocId, DocKind, PatientId};

use crate::replicas::{self, with_core};
use crate::state::Ui;
use crate::{Page, Tab};

/// Everything on this device about one patient.
#[derive(Default)]
pub struct PatientData {
    pub clinical: Vec<(DocId, ClinicId, ClinicalRecord)>,
    pub record: Option<(DocId, PatientRecord)>,
    pub threads: Vec<(DocId, ClinicId, MessageThread)>,
}

impl PatientData {
    pub fn clinic_record(&self, clinic: ClinicId) -> Option<&ClinicalRecord> {
        self.clinical.iter().find(|c| c.1 == clinic).map(|c| &c.2)
    }
}

pub fn hydrate<T: autosurgeon::Hydrate>(doc: &Automerge) -> Option<T> {
    doc.get(ROOT, "kind").ok().flatten()?;
    shared::read::hydrate(doc).ok()
}

/// A patient record, tolerating demographics that were never filled in (the
/// genesis change creates an empty map, which autosurgeon will not hydrate
/// into `Option` fields).
fn hydrate_patient_record(doc: &Automerge) -> Option<PatientRecord> {
    doc.get(ROOT, "kind").ok().flatten()?;
    let refill_requests =
        shared::read::hydrate_root_prop(doc, Collection::RefillRequests.code()).ok()?;
    let mut demographics = Demographics::default();
    if let Some((_, obj)) = doc.get(ROOT, shared::schema::DEMOGRAPHICS).ok().flatten() {
        let field = |key: &str| -> Option<String> {
            match doc.get(&obj, key).ok().flatten()? {
                (automerge::Value::Scalar(s), _) => s.as_str().map(str::to_owned),
                _ => None,
            }
        };
        demographics = Demographics {
            family: field("family"),
            given: field("given"),
            birth_date: field("birth_date"),
            phone: field("phone"),
            email: field("email"),
        };
    }
    Some(PatientRecord { demographics, refill_requests })
}

/// The documents' heads a [`PatientData`] was read at.
type HeadsKey = (PatientId, Vec<(DocId, Vec<ChangeHash>)>);

thread_local! {
    /// The last patient data read, with the heads it was read at: every view
    /// of a page reads the same data, and hydrating a long record (years of
    /// results and messages) costs far more than sharing it. Shared, not
    /// cloned: a clone of every entry type's map cost the bundle about 2 KB.
    static LAST_READ: RefCell<Option<(HeadsKey, Rc<PatientData>)>> = const { RefCell::new(None) };
}

type First = (PatientId, Rc<PatientData>, RwSignal<Page>);

thread_local! {
    /// The patient's summary (`summary::show`), read until the documents load.
    static FIRST: RefCell<Option<First>> = const { RefCell::new(None) };
}

/// What the views of Results read of `patient` until the stored documents
/// load.
pub fn show_first(patient: PatientId, summary: Rc<PatientData>, page: RwSignal<Page>) {
    FIRST.set(Some((patient, summary, page)));
}

/// The summary, while Results reads it instead of the documents. Another
/// page (opened at once) reads the documents, which then load.
fn first(patient: PatientId) -> Option<Rc<PatientData>> {
    let on_results = |f: &First| f.2.get_untracked() == Page::Record(Tab::Results);
    if replicas::loaded() || !FIRST.with_borrow(|f| f.as_ref().is_some_and(on_results)) {
        FIRST.take();
    }
    FIRST.with_borrow(|f| f.as_ref().filter(|s| s.0 == patient).map(|s| s.1.clone()))
}

/// Whether the views read a summary, not the documents (yet).
pub fn first_only() -> bool {
    !replicas::loaded() && FIRST.with_borrow(Option::is_some)
}

pub fn patient_data(patient: PatientId) -> Rc<PatientData> {
    if let Some(data) = first(patient) {
        return data;
    }
    let key: HeadsKey = with_core(|core| {
        let heads = core
            .kinds
            .iter()
            .filter(|(_, kind)| kind.patient() == patient)
            .filter_map(|(id, _)| Some((*id, core.client.doc(*id)?.get_heads())))
            .collect();
        (patient, heads)
    });
    if let Some(data) = LAST_READ
        .with_borrow(|last| last.as_ref().filter(|(k, _)| *k == key).map(|(_, d)| d.clone()))
    {
        return data;
    }
    let data = Rc::new(read_patient_data(patient));
    LAST_READ.set(Some((key, data.clone())));
    data
}

/// The patient's data read afresh, to own (a download's export).
pub fn read_patient_data(patient: PatientId) -> PatientData {
    with_core(|core| {
        let mut data = PatientData::default();
        for (id, kind) in &core.kinds {
            if kind.patient() != patient {
                continue;
            }
            let Some(doc) = core.client.doc(*id) else { continue };
            match *kind {
                DocKind::ClinicalRecord { clinic, .. } => {
                    if let Some(r) = hydrate(doc) {
                        data.clinical.push((*id, clinic, r));
                    }
                }
                DocKind::PatientRecord { .. } => {
                    data.record = hydrate_patient_record(doc).map(|r| (*id, r))
                }
                DocKind::MessageThread { clinic, .. } => {
                    if let Some(t) = hydrate(doc) {
                        data.threads.push((*id, clinic, t));
                    }
                }
            }
        }
        data
    })
}

/// All values a field holds: more than one when two devices changed it
/// concurrently. Shown side by side for review instead of silently picking one.
pub fn field_values(doc: DocId, collection: Collection, entry: &str, field: &str) -> Vec<String> {
    with_core(|core| {
        core.client.doc(doc).map_or(Vec::new(), |doc| values_in(doc, collection, entry, field))
    })
}

/// `field_values` in a given copy of a document.
pub fn values_in(doc: &Automerge, collection: Collection, entry: &str, field: &str) -> Vec<String> {
    let Some((_, coll)) = doc.get(ROOT, collection.code()).ok().flatten() else {
        return Vec::new();
    };
    let Some((_, obj)) = doc.get(&coll, entry).ok().flatten() else { return Vec::new() };
    doc.get_all(&obj, field)
        .unwrap_or_default()
        .into_iter()
        .map(|(value, _)| match value.into_string().map_err(|v| v.to_string()) {
            Ok(s) | Err(s) => s,
        })
        .collect()
}

/// A clinic's name, from the user's clinics, consents or any entry's provenance.
pub fn clinic_name(ui: Ui, clinic: ClinicId, data: Option<&PatientData>) -> String {
    if let Some(c) = ui.me.with_untracked(|m| {
        m.as_ref().and_then(|m| m.clinics.iter().find(|c| c.id == clinic).cloned())
    }) {
        return c.name;
    }
    if let Some(c) =
        ui.consents.with_untracked(|cs| cs.iter().find(|c| c.clinic_id == clinic).cloned())
        && !c.clinic_name.is_empty()
    {
        return c.clinic_name;
    }
    if let Some(data) = data
        && let Some(record) = data.clinic_record(clinic)
    {
        let names = record
            .reports
            .values()
            .map(|r| &r.provenance)
            .chain(record.observations.values().map(|o| &o.provenance))
            .chain(record.prescriptions.values().map(|p| &p.provenance))
            .chain(record.allergies.values().map(|p| &p.provenance))
            .chain(record.appointments.values().map(|p| &p.provenance))
            .chain(record.immunizations.values().map(|p| &p.provenance));
        if let Some(p) = names.into_iter().next() {
            return p.clinic_name.clone();
        }
    }
    ts("Clinic")
}

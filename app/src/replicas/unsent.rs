//! What the person wrote that the server has not confirmed, in their own
//! words, for when it will not be delivered.

use automerge::{Automerge, ChangeHash, ROOT, ReadDoc};
use leptos::prelude::*;
use shared::schema::Collection;
use shared::{DocId, DocKind, PatientId};

use super::{Core, bump, ui, untrack_settled, with_core, with_core_mut};
use crate::persist;

/// The server refused this document's changes because the patient withdrew
/// consent: it will never take them. The document stops syncing and leaves
/// this device, but what the person wrote in it and the server never
/// confirmed is kept, described, in `Ui::undelivered` (and IndexedDB) until
/// they dismiss it.
pub fn undeliverable(id: DocId) {
    let ui = ui();
    let lines = with_core_mut(|core| {
        // Whose record, from their demographics if this device has them.
        let patient = core.kinds.remove(&id)?.patient();
        let name = patient_name(core, patient);
        let confirmed = core.confirmed.remove(&id);
        let doc = core.client.remove(id)?;
        let lines = unconfirmed_entries(&doc, confirmed.as_deref().unwrap_or_default());
        let lines: Vec<String> = match name {
            Some(name) => {
                lines.into_iter().map(|line| format!("{name}'s record · {line}")).collect()
            }
            None => lines,
        };
        // The patient's other documents, kept to name them, can go now too.
        let gone = untrack_settled(core, &ui.docs.get_untracked());
        Some((lines, gone))
    });
    let Some((lines, gone)) = lines else { return };
    persist::forget_docs(gone);
    ui.docs.update(|docs| docs.retain(|d| d.id != id));
    ui.undelivered.update(|list| list.extend(lines));
    persist::save_documents(&ui.docs.get_untracked());
    persist::save_undelivered(&ui.undelivered.get_untracked());
    persist::save_confirmed(&with_core(|core| core.confirmed.clone()));
    persist::forget_docs(vec![id]);
    bump();
}

/// Forgets the undelivered changes once the person has dealt with them.
pub fn dismiss_undelivered() {
    ui().undelivered.set(Vec::new());
    persist::save_undelivered(&[]);
}

/// A patient's name ("Maria Santos") from their record's demographics, if
/// this device has them.
fn patient_name(core: &Core, patient: PatientId) -> Option<String> {
    let doc = core.client.doc(DocKind::PatientRecord { patient }.doc_id())?;
    let (_, demographics) = doc.get(ROOT, shared::schema::DEMOGRAPHICS).ok().flatten()?;
    let part = |key| doc.get(&demographics, key).ok().flatten()?.0.into_string().ok();
    let name = [part("given"), part("family")].into_iter().flatten().collect::<Vec<_>>().join(" ");
    (!name.is_empty()).then_some(name)
}

/// Entries in `doc` that were not there at `confirmed` (what the server
/// last confirmed holding), as "Kind: text" in the person's own words.
fn unconfirmed_entries(doc: &Automerge, confirmed: &[ChangeHash]) -> Vec<String> {
    let known =
        !confirmed.is_empty() && confirmed.iter().all(|h| doc.get_change_by_hash(h).is_some());
    let mut lines = Vec::new();
    for collection in doc.keys(ROOT) {
        let Some((automerge::Value::Object(_), coll)) =
            doc.get(ROOT, collection.as_str()).ok().flatten()
        else {
            continue;
        };
        for entry in doc.keys(&coll) {
            let before =
                known && doc.get_at(&coll, entry.as_str(), confirmed).ok().flatten().is_some();
            let Some((automerge::Value::Object(_), obj)) =
                doc.get(&coll, entry.as_str()).ok().flatten().filter(|_| known && !before)
            else {
                continue;
            };
            let text = ["body", "note", "display", "substance", "vaccine", "reason"]
                .iter()
                .find_map(|field| doc.get(&obj, *field).ok().flatten()?.0.into_string().ok())
                .unwrap_or_default();
            let label = Collection::parse(&collection).map_or(collection.as_str(), |c| c.label());
            lines.push(format!("{label}: {text}"));
        }
    }
    if lines.is_empty() {
        lines.push("A change to a record (status or details)".into());
    }
    lines
}

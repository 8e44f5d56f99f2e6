//! What the person wrote that the server has not confirmed, in their own
//! words: for when it will not be delivered (consent withdrawn), when they
//! are about to sign out, and when the server refused it.

use crate::i18n::{t, tf, ts};
use automerge::{Automerge, ChangeHash, ROOT, ReadDoc};
use leptos::prelude::*;
use shared::schema::Collection;
use shared::status::RefillStatus;
use shared::{DocId, DocKind, PatientId};

use super::{Core, bump, remove_copies, ui, untrack_settled, waiting, with_core, with_core_mut};
use crate::persist;
use crate::state::Refusal;

/// The server refused this document's changes because the patient withdrew
/// consent: it will never take them. The document stops syncing and leaves
/// this device, but what the person wrote in it and the server never
/// confirmed is kept, described, in `Ui::undelivered` (and IndexedDB) until
/// they dismiss it.
pub fn undeliverable(id: DocId) {
    let ui = ui();
    let lines = with_core_mut(|core| {
        let lines = described(core, id)?;
        core.kinds.remove(&id);
        core.confirmed.remove(&id);
        core.client.remove(id);
        // The patient's other documents, kept to name them, can go now too.
        let gone = untrack_settled(core, &ui.docs.get_untracked());
        Some((lines, gone))
    });
    let Some((lines, gone)) = lines else { return };
    remove_copies(gone);
    ui.docs.update(|docs| docs.retain(|d| d.id != id));
    ui.undelivered.update(|list| list.extend(lines));
    persist::save_documents(&ui.docs.get_untracked());
    persist::save_undelivered(&ui.undelivered.get_untracked());
    persist::save_confirmed(&with_core(|core| core.confirmed.clone()));
    remove_copies(vec![id]);
    bump();
    // The session lists what is readable now and reports the removals.
    crate::sync::relist();
}

/// Everything on this device the server has not confirmed, in the
/// person's words ("Maria Santos's record · Message: Could I get..."), for
/// whoever is about to sign out.
pub fn unsent() -> Vec<String> {
    with_core(|core| {
        let ids = core.client.ids().filter(|id| waiting(core, *id) > 0);
        ids.filter_map(|id| described(core, id)).flatten().collect()
    })
}

/// What the server has not confirmed of a document, named by whose record
/// it is (from their demographics, if this device has them).
fn described(core: &Core, id: DocId) -> Option<Vec<String>> {
    let name = patient_name(core, core.kinds.get(&id)?.patient());
    let confirmed = core.confirmed.get(&id).map(Vec::as_slice).unwrap_or_default();
    let mut lines = unconfirmed_entries(core.client.doc(id)?, confirmed);
    if lines.is_empty() {
        lines.push(ts("A change to a record (status or details)"));
    }
    Some(match name {
        Some(name) => {
            lines.into_iter().map(|line| tf("{0}'s record · {1}", &[&name, &line])).collect()
        }
        None => lines,
    })
}

/// The server refused changes to a document of `kind`, which went back
/// from `before` to the server's `kept` heads: what was not saved, in plain
/// words, naming the patient and the item, with what the person wrote.
/// Read through `reads` (outside the core's borrow), so names and answers
/// come from the records as hydrated for the views: a refill request
/// answered on both sides by the answer each side holds, a new entry by
/// its text, anything else as a change to the record. `None` while the
/// other device's answer has not arrived, unless `settled`.
pub fn refused(
    kind: DocKind,
    before: &Automerge,
    kept: &[ChangeHash],
    settled: bool,
) -> Option<Vec<Refusal>> {
    let patient = kind.patient();
    let data = crate::reads::patient_data(patient);
    let record = data.record.as_ref().map(|r| &r.1);
    let whose = record
        .and_then(|r| {
            Some(format!("{} {}", r.demographics.given.as_ref()?, r.demographics.family.as_ref()?))
        })
        .unwrap_or_else(|| ts("This patient"));
    let refusal = |words, collection| Refusal { words, patient, collection };
    let mut refusals = Vec::new();
    // The answer and note this device gave: in the copy from before the
    // refusal, the values other than the server's (both sides' show there
    // as a conflict, and the server's may be the one that wins).
    let mine = |id: &str, field, now: &str| {
        let values = crate::reads::values_in(before, Collection::RefillRequests, id, field);
        values.into_iter().find(|v| v != now && !v.is_empty())
    };
    for (id, now) in record.iter().flat_map(|r| &r.refill_requests) {
        let Some(answer) = mine(id, "status", now.status.code()) else { continue };
        if now.status == RefillStatus::Requested && !settled {
            return None;
        }
        let rx = now.prescription.to_string();
        let drug = data
            .clinical
            .iter()
            .find_map(|c| Some(tf(" for {0}", &[&(c.2.prescriptions.get(&rx)?.display)])))
            .unwrap_or_default();
        let what = match RefillStatus::parse(&answer) {
            Some(RefillStatus::Approved) => t("approval"),
            Some(RefillStatus::Denied) => t("denial"),
            _ => t("change"),
        };
        let mut words = match now.status {
            RefillStatus::Requested => tf(
                "{0}'s refill request{1} was answered on another device; your {2} was not saved.",
                &[&whose, &drug, &what],
            ),
            RefillStatus::Approved => tf(
                "{0}'s refill request{1} had already been approved on another device; your {2} was not saved.",
                &[&whose, &drug, &what],
            ),
            RefillStatus::Denied => tf(
                "{0}'s refill request{1} had already been denied on another device; your {2} was not saved.",
                &[&whose, &drug, &what],
            ),
            RefillStatus::Cancelled => tf(
                "{0}'s refill request{1} had already been cancelled on another device; your {2} was not saved.",
                &[&whose, &drug, &what],
            ),
        };
        if let Some(note) =
            mine(id, "decision_note", now.decision_note.as_deref().unwrap_or_default())
        {
            words.push_str(&tf(" You wrote: “{0}”", &[&note]));
        }
        refusals.push(refusal(words, Collection::RefillRequests));
    }
    for line in unconfirmed_entries(before, kept) {
        refusals.push(refusal(
            tf("{0}'s record · {1}: not saved.", &[&whose, &line]),
            kind.collections()[0],
        ));
    }
    if refusals.is_empty() {
        let words = tf("{0}'s record: a change from this device was not saved.", &[&whose]);
        refusals.push(refusal(words, kind.collections()[0]));
    }
    Some(refusals)
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
            let label =
                Collection::parse(&collection).map_or(collection.as_str(), |c| t(c.label()));
            lines.push(format!("{label}: {text}"));
        }
    }
    lines
}

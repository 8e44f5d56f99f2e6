//! A long record's first screen, drawn before its documents load.
//!
//! Most of a cold open of a long record is Automerge loading it: years of
//! results are one large document, and loading and reading it took about
//! 250 ms of the 5-year record's 330 ms (docs/benchmarks.md). The Results
//! page a patient opens on needs little of it: the two latest results of
//! each test (the latest, and the one before for the direction) and, for
//! the navigation's count, the messages not yet read. Those are kept as a
//! small document of their own beside the copy (sealed like the rest),
//! made again a moment after the record changes, and read at start; the
//! documents load right after that screen shows, and the views then read
//! them. A summary lags the documents only by what the last second before
//! a tab closed brought, and only until they load.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use automerge::transaction::{Transactable, Transaction};
use automerge::{Automerge, ObjType, ROOT};
use leptos::prelude::*;
use shared::api::{Me, UserRole};
use shared::record::{self, RecordError};
use shared::schema::Collection::{
    Allergies, Appointments, Immunizations, Messages, Observations, Prescriptions, Reports,
};
use shared::schema::{ClinicalRecord, MessageThread};
use shared::status::Side;
use shared::{DocKind, PatientId};

use crate::persist::{self, Stored};
use crate::reads::{self, PatientData};
use crate::state::Ui;

/// Its name in the vault's store of documents.
pub const NAME: &str = "summary";

/// Results kept of each test: the latest and the one before it.
const PER_TEST: usize = 2;

thread_local! {
    /// Counts the record's changes: a summary is made once they pause.
    static CHANGES: Cell<u32> = const { Cell::new(0) };
}

/// Whose record is summarized: a patient's own. A caregiver's first screen
/// names whose record it is (from the patient record, not summarized), and
/// clinic staff open on their patient list.
fn patient(me: &Me) -> Option<PatientId> {
    me.patient_id.filter(|_| me.role == UserRole::Patient && me.caregiver.is_none())
}

/// Gives the views the summary kept with `stored`; false (and nothing
/// given) if there is none.
pub fn show(stored: &Stored, page: RwSignal<crate::Page>) -> bool {
    let Some(patient) = stored.me.as_ref().and_then(patient) else { return false };
    let Some(doc) = stored.bytes.get(NAME).and_then(|b| Automerge::load(b).ok()) else {
        return false;
    };
    // One document shaped as both a clinical record and a thread, read as
    // each, under the patient's first of each: the views the summary
    // serves show no document or clinic of an entry.
    let (Some(mut record), Some(mut thread)) =
        (reads::hydrate::<ClinicalRecord>(&doc), reads::hydrate::<MessageThread>(&doc))
    else {
        return false;
    };
    let mut data = PatientData::default();
    for info in &stored.docs {
        match info.kind {
            DocKind::ClinicalRecord { clinic, .. } if data.clinical.is_empty() => {
                data.clinical.push((info.id, clinic, std::mem::take(&mut record)));
            }
            DocKind::MessageThread { clinic, .. } if data.threads.is_empty() => {
                data.threads.push((info.id, clinic, std::mem::take(&mut thread)));
            }
            _ => {}
        }
    }
    reads::show_first(patient, Rc::new(data), page);
    true
}

/// Makes the summary again a moment after the record stops changing (a
/// sync brings many changes in a row).
pub fn save_soon(ui: Ui) {
    let change = CHANGES.get() + 1;
    CHANGES.set(change);
    set_timeout(
        move || {
            let me = ui.me.get_untracked();
            if let Some(patient) = me.as_ref().and_then(patient)
                && CHANGES.get() == change
                && crate::replicas::loaded()
            {
                let mut doc = Automerge::new();
                let mut tx = doc.transaction();
                if write(&mut tx, &reads::patient_data(patient)).is_ok() {
                    tx.commit();
                    persist::save_summary(doc.save());
                }
            }
        },
        Duration::from_secs(1),
    );
}

/// The entries the first screen shows, in a document shaped as both a
/// clinical record and a message thread. Results are keyed by their place
/// in each test's list, newest first, so that the Results page finds the
/// same latest result where two share a time.
fn write(tx: &mut Transaction<'_>, data: &PatientData) -> Result<(), RecordError> {
    tx.put(ROOT, "kind", NAME)?;
    for collection in [Reports, Prescriptions, Allergies, Immunizations, Appointments] {
        tx.put_object(ROOT, collection.code(), ObjType::Map)?;
    }
    let map = tx.put_object(ROOT, Observations.code(), ObjType::Map)?;
    let mut n = 0;
    for results in crate::patient::by_test(data).values() {
        for obs in results.iter().take(PER_TEST) {
            record::add_at(tx, &map, &format!("{n:06}"), obs)?;
            n += 1;
        }
    }
    let map = tx.put_object(ROOT, Messages.code(), ObjType::Map)?;
    for (_, _, thread) in &data.threads {
        for (entry, message) in thread.messages.iter() {
            if message.side == Side::Clinic && message.read_at.is_none() {
                record::add_at(tx, &map, entry, message)?;
            }
        }
    }
    Ok(())
}

//! The safety rules (`crate::safety`) on entries as they are created: a
//! result must be possible and marked critical exactly when it is; a
//! prescription against an allergy or interacting with another prescription
//! must say why.
//!
//! The server holds only the document being written, one clinic's record of
//! the patient, so here a prescription is judged against that clinic's
//! allergies and prescriptions alone. Other clinics' records are checked on
//! the device, which holds every clinic's records of the patient and warns
//! before anything is written (app `safety_view`).

use automerge::ROOT;
use autosurgeon::ReadDoc;

use super::{Denial, Rule, deny, hydrate_entry};
use crate::read::MapCache;
use crate::safety::{self, ResultProblem};
use crate::schema::{
    Allergy, Appointment, Collection, Immunization, Observation, Prescription, Report,
};
use crate::status::PrescriptionStatus;

/// The safety rules of an entry's type, checked on an entry as it is
/// created (`entries::check_created`, which has hydrated it already).
pub(super) trait SafetyRules {
    fn check_created(
        &self,
        _doc: &MapCache<'_>,
        _id: &str,
        _path: &[String],
    ) -> Result<(), Denial> {
        Ok(())
    }
}

impl SafetyRules for Report {}
impl SafetyRules for Allergy {}
impl SafetyRules for Immunization {}
impl SafetyRules for Appointment {}

impl SafetyRules for Observation {
    fn check_created(&self, _doc: &MapCache<'_>, _id: &str, path: &[String]) -> Result<(), Denial> {
        match safety::check_result(self) {
            Ok(()) => Ok(()),
            Err(ResultProblem::Impossible) => deny(Rule::Implausible, path),
            Err(ResultProblem::CriticalMark) => deny(Rule::CriticalMark, path),
        }
    }
}

impl SafetyRules for Prescription {
    fn check_created(&self, doc: &MapCache<'_>, id: &str, path: &[String]) -> Result<(), Denial> {
        // Recording a past (stopped or completed) prescription starts
        // no therapy.
        if self.status != PrescriptionStatus::Active || safety::has_reason(self) {
            return Ok(());
        }
        let allergies: Vec<Allergy> = entries(doc, Collection::Allergies, None);
        let others: Vec<Prescription> = entries(doc, Collection::Prescriptions, Some(id));
        if safety::needs_reason(self, &allergies, &others) {
            return deny(Rule::OverrideReason, path);
        }
        Ok(())
    }
}

/// Every well-formed entry of `collection` but `except`.
fn entries<T: autosurgeon::Hydrate>(
    doc: &MapCache<'_>,
    collection: Collection,
    except: Option<&str>,
) -> Vec<T> {
    let Some((_, coll)) = doc.get(&ROOT, collection.code()).ok().flatten() else {
        return Vec::new();
    };
    let ids: Vec<String> = doc.map_range(&coll, ..).map(|item| item.key.into_owned()).collect();
    ids.iter()
        .filter(|key| Some(key.as_str()) != except)
        .filter_map(|key| hydrate_entry(doc, collection, key).ok())
        .collect()
}

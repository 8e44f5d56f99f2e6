//! The record as HL7 FHIR R4, aligned with US Core where it has a profile,
//! and back. No I/O: the server's export, import and read API and (later)
//! the app's offline download all build on this.
//!
//! | portal entry | FHIR R4 resource |
//! |---|---|
//! | demographics | `Patient` (US Core Patient) |
//! | `Observation` | `Observation` (US Core Laboratory Result): LOINC `code`, UCUM `valueQuantity` or `valueString`, `referenceRange`, `interpretation` (`HH`/`LL` when recorded critical, else `H`/`L`/`N` from the range), `performer` the clinic and the recorder |
//! | `Report` (a panel) | `DiagnosticReport` (US Core Laboratory Report), `result` its observations |
//! | `Prescription` | `MedicationRequest` (RxNorm, `dosageInstruction.text`, `dispenseRequest.numberOfRepeatsAllowed` and `quantity`, `requester` and `recorder`; an override reason as its `note`) |
//! | `Allergy` | `AllergyIntolerance` (RxNorm substance, clinical and verification status) |
//! | `Immunization` | `Immunization` (CVX) |
//! | `Appointment` | `Appointment` (`start`; `end` marked unknown with the data-absent-reason extension: the portal records no length; a patient's request is `proposed` with neither, as app-3 allows, and the times they would like in `comment`) |
//! | `Message` | `Communication` (a conversation's subject as `topic.text` on its first message, each reply's `inResponseTo` that first message, a comment on a result `about` its `Observation`) |
//! | `RefillRequest` | `Task` with `focus` the `MedicationRequest` (see [`export`]) |
//! | who recorded, corrected or decided, when | `Provenance` |
//!
//! Choices, each made once here:
//! - **Source clinic:** every resource from a clinic's document carries
//!   `meta.source = urn:uuid:<clinic id>`, the clinic's `Organization`
//!   identifier (the Bundle holds that `Organization`); its `Provenance`
//!   names the clinic again as the agent's `onBehalfOf`. Resources from
//!   the patient's own document (`Patient`, `Task`) carry
//!   `urn:uuid:<patient id>`: the patient is their source.
//! - **Ids are stable across exports:** a resource's id is UUIDv5 of its
//!   document and entry ([`resource_id`]); the Patient, Organization and
//!   Practitioner ids are the portal's own patient, clinic and user ids.
//!   Every entry also carries its entry id as `identifier`
//!   (`urn:ietf:rfc:3986`, `urn:uuid:<entry id>`), which is what the
//!   import matches on.
//! - **People:** clinic staff are `Practitioner/<user id>` references;
//!   people on the patient side (the patient or a caregiver writing a
//!   message or a request) are logical references by identifier
//!   (`urn:uuid:<user id>`), since a portal user is not itself a FHIR
//!   resource.
//! - **Provenance:** each entry gets one `Provenance` for its recording
//!   (activity `CREATE`, agent the recorder on behalf of the clinic,
//!   `recorded` the time; an amendment names the entry it replaces as a
//!   `revision` entity) and one for its last status change (`UPDATE`, or
//!   `NULLIFY` for entered-in-error, with the reason as `reason.text`), a
//!   refill decision or a message read.
//! - FHIR has no empty strings: an empty text is left out, and reads back
//!   as empty (or absent).
//! - **What the portal does not record but FHIR requires:** `Patient.gender`
//!   is `unknown` (US Core's rule for a required coded element: the value
//!   set's own unknown code); `Appointment.end` has no value and HL7's
//!   `data-absent-reason` extension `unknown` (what FHIR offers for a
//!   required element with no code of its own), never a made-up time.

pub mod export;
pub mod import;
pub mod json;
pub mod read;

use uuid::Uuid;

use crate::ids::DocId;
pub use json::Value;

/// The FHIR version the portal speaks.
pub const FHIR_VERSION: &str = "4.0.1";

pub const LOINC: &str = "http://loinc.org";
pub const UCUM: &str = "http://unitsofmeasure.org";
pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
pub const CVX: &str = "http://hl7.org/fhir/sid/cvx";
/// Identifiers that are URIs: the portal's ids as `urn:uuid:...`.
pub const URI: &str = "urn:ietf:rfc:3986";
pub const INTERPRETATION: &str =
    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
pub const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
pub const DIAGNOSTIC_SERVICE: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
pub const ALLERGY_CLINICAL: &str =
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
pub const ALLERGY_VERIFICATION: &str =
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";
pub const DATA_OPERATION: &str = "http://terminology.hl7.org/CodeSystem/v3-DataOperation";
pub const PARTICIPANT_TYPE: &str =
    "http://terminology.hl7.org/CodeSystem/provenance-participant-type";
pub const DATA_ABSENT_REASON: &str = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";
pub const TASK_CODE: &str = "http://hl7.org/fhir/CodeSystem/task-code";
pub const US_CORE: &str = "http://hl7.org/fhir/us/core/StructureDefinition/";

/// Namespace of resource ids (a fixed random UUID; never change it, or
/// every exported id changes).
const RESOURCE_NAMESPACE: Uuid = Uuid::from_u128(0x3b8e_51c2_9d0f_4e6a_a7c4_1f62_0d9b_e835);

/// The id of the resource for entry `entry` of document `doc`, or (with a
/// suffix such as `/created`) of one of its `Provenance` resources: the
/// same in every export, on the server and on every device.
pub fn resource_id(doc: DocId, entry: &str) -> String {
    Uuid::new_v5(&RESOURCE_NAMESPACE, format!("{doc}/{entry}").as_bytes()).to_string()
}

/// `urn:uuid:<id>`.
pub fn urn(id: impl std::fmt::Display) -> String {
    format!("urn:uuid:{id}")
}

/// The UUID of a `urn:uuid:` in canonical spelling.
pub(crate) fn parse_urn<T: std::str::FromStr>(text: &str) -> Option<T> {
    text.strip_prefix("urn:uuid:")?.parse().ok()
}

/// One problem with a resource, as an `OperationOutcome` issue names it:
/// where (a FHIRPath expression) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// `invalid`, `required`, `value`, `not-supported`, `business-rule`,
    /// `too-costly` (FHIR `IssueType`).
    pub code: &'static str,
    pub expression: String,
    pub diagnostics: String,
}

impl Issue {
    pub fn new(code: &'static str, expression: &str, diagnostics: impl Into<String>) -> Self {
        Self { code, expression: expression.to_owned(), diagnostics: diagnostics.into() }
    }
}

/// An `OperationOutcome` of error issues (or one `information` issue
/// saying all is well when there are none).
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let issue: Vec<Value> = if issues.is_empty() {
        vec![Value::object([
            ("severity", "information".into()),
            ("code", "informational".into()),
            ("diagnostics", "All OK".into()),
        ])]
    } else {
        issues
            .iter()
            .map(|i| {
                let mut v = Value::object([
                    ("severity", "error".into()),
                    ("code", i.code.into()),
                    ("diagnostics", i.diagnostics.as_str().into()),
                ]);
                if !i.expression.is_empty() {
                    v.set("expression", vec![Value::str(&i.expression)].into());
                }
                v
            })
            .collect()
    };
    Value::object([("resourceType", "OperationOutcome".into()), ("issue", issue.into())])
}

#[cfg(test)]
mod tests;

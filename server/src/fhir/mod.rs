//! FHIR R4 on the server: the record as a Bundle from the stored documents
//! (`portal export`, the read API) and a clinic system's transaction Bundle
//! into the record (`portal import`, `import.rs`). The mapping itself is
//! `shared::fhir`; this module reads documents and speaks JSON at the edge.

pub mod import;
pub mod search;

use std::collections::BTreeMap;

use shared::fhir::Value;
use shared::fhir::export::PatientData;
use shared::schema::{ClinicalRecord, DocKind, MessageThread, PatientRecord};
use shared::vec_map::VecMap;
use shared::{DocId, PatientId};

use crate::sync::Hub;
use crate::{Error, storage::DocumentRow};

/// The largest Bundle read, in bytes: axum's default body limit, which
/// every JSON route of the server has; the CLI holds files to the same.
/// Nesting is bounded by serde_json's recursion limit (128) while parsing.
pub const MAX_BUNDLE_BYTES: usize = 2 * 1024 * 1024;

/// The content type of FHIR JSON.
pub const CONTENT_TYPE: &str = "application/fhir+json";

/// serde_json's value as `shared::fhir`'s (members keep their order).
pub fn from_serde(value: serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => n.as_f64().map_or(Value::Null, Value::Number),
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(items) => {
            Value::Array(items.into_iter().map(from_serde).collect())
        }
        serde_json::Value::Object(members) => {
            Value::Object(members.into_iter().map(|(k, v)| (k, from_serde(v))).collect())
        }
    }
}

/// Parses a Bundle's bytes, bounded before parsing.
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(format!("the Bundle is larger than {MAX_BUNDLE_BYTES} bytes"));
    }
    serde_json::from_slice(bytes).map(from_serde).map_err(|e| format!("not JSON: {e}"))
}

/// What `docs` (documents of `patient`, as stored) hold, hydrated for
/// export, with the names of their clinics. Copies are read through the
/// hub, so they are the canonical ones sync serves; they are taken under
/// its locks and hydrated after, off the async runtime, since a five-year
/// record takes a good part of a second to hydrate. Hydrated through
/// `shared::read` (each map read whole, once): field-by-field autosurgeon
/// reads were most of `$everything`'s time on a five-year record.
pub async fn patient_data(
    hub: &Hub,
    patient: PatientId,
    docs: &[DocumentRow],
) -> Result<PatientData, Error> {
    let kinds: BTreeMap<DocId, DocKind> =
        docs.iter().filter(|d| d.kind.patient() == patient).map(|d| (d.id, d.kind)).collect();
    let mut copies = Vec::with_capacity(kinds.len());
    for (id, guard) in hub.lock_all(kinds.keys().copied()).await? {
        if let Some(canonical) = guard.as_ref() {
            copies.push((kinds[&id], canonical.doc().clone()));
        }
    }
    let mut clinic_names = VecMap::new();
    for clinic in kinds.values().filter_map(DocKind::clinic) {
        if let Some(name) = hub.store().clinic_name(clinic).await? {
            clinic_names.insert(clinic, name);
        }
    }
    off_runtime(move || hydrate_all(patient, &copies, clinic_names)).await?
}

fn hydrate_all(
    patient: PatientId,
    copies: &[(DocKind, automerge::Automerge)],
    clinic_names: VecMap<shared::ClinicId, String>,
) -> Result<PatientData, Error> {
    let mut data = PatientData {
        patient,
        own: PatientRecord::default(),
        clinical: VecMap::new(),
        threads: VecMap::new(),
        clinic_names,
    };
    let corrupt = |e: autosurgeon::HydrateError| {
        Error::Store(crate::storage::StoreError::Corrupt(format!("a record does not hydrate: {e}")))
    };
    for (kind, doc) in copies {
        match *kind {
            DocKind::PatientRecord { .. } => {
                data.own = shared::read::hydrate(doc).map_err(corrupt)?
            }
            DocKind::ClinicalRecord { clinic, .. } => {
                let record: ClinicalRecord = shared::read::hydrate(doc).map_err(corrupt)?;
                data.clinical.insert(clinic, record);
            }
            DocKind::MessageThread { clinic, .. } => {
                let thread: MessageThread = shared::read::hydrate(doc).map_err(corrupt)?;
                data.threads.insert(clinic, thread);
            }
        }
    }
    Ok(data)
}

/// Runs CPU-heavy work (parsing a Bundle, judging an import, hydrating,
/// building and writing a long record) on tokio's blocking pool, so the
/// runtime's workers keep serving sync.
pub async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Conflict(format!("the work could not finish: {e}")))
}

/// The whole record of `patient` as stored, as a `collection` Bundle
/// (what `portal export` prints).
pub async fn export(hub: &Hub, patient: PatientId, base: &str) -> Result<Value, Error> {
    let docs = hub.store().patient_documents(patient).await?;
    if docs.is_empty() {
        return Err(Error::NotFound);
    }
    let data = patient_data(hub, patient, &docs).await?;
    Ok(shared::fhir::export::bundle("collection", base, shared::fhir::export::resources(&data)))
}

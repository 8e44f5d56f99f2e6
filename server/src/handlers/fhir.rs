//! `/fhir/R4`: the patient-access read API. A signed-in person reads a
//! patient's record as FHIR with exactly the read rules of sync
//! (`Store::readable_documents`: a caregiver or provider gets the
//! resources of the documents they may sync, nothing more), and each read
//! is in the patient's access log. Answers are `application/fhir+json`;
//! errors are OperationOutcomes, and a patient the reader may not see
//! answers 404 like one that does not exist.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use shared::PatientId;
use shared::api::AuditAction;
use shared::fhir::export::{bundle, resources};
use shared::fhir::{Issue, Value, operation_outcome};

use crate::auth::AuthUser;
use crate::fhir::search::{Criteria, SEARCHABLE, capability_statement};
use crate::fhir::{CONTENT_TYPE, patient_data};
use crate::{AppState, Error};

/// A FHIR answer: a resource with its status.
pub struct Fhir(pub StatusCode, pub Value);

impl IntoResponse for Fhir {
    fn into_response(self) -> Response {
        (self.0, [(header::CONTENT_TYPE, CONTENT_TYPE)], self.1.to_json_string()).into_response()
    }
}

impl Fhir {
    fn problem(status: StatusCode, code: &'static str, text: &str) -> Self {
        Self(status, operation_outcome(&[Issue::new(code, "", text)]))
    }
}

/// The server's errors as OperationOutcomes (server faults logged, not shown).
impl From<Error> for Fhir {
    fn from(error: Error) -> Self {
        match error {
            Error::Unauthorized => {
                Self::problem(StatusCode::UNAUTHORIZED, "login", &error.to_string())
            }
            Error::Forbidden => {
                Self::problem(StatusCode::FORBIDDEN, "forbidden", &error.to_string())
            }
            Error::NotFound => {
                Self::problem(StatusCode::NOT_FOUND, "not-found", "no such resource")
            }
            Error::BadRequest(text) => Self::problem(StatusCode::BAD_REQUEST, "invalid", &text),
            error => {
                tracing::error!(%error, "FHIR request failed");
                Self::problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "exception",
                    "the server could not complete the request",
                )
            }
        }
    }
}

fn base(state: &AppState) -> String {
    format!("{}/fhir/R4", state.public_url)
}

/// `GET /fhir/R4/metadata` (no session needed, as FHIR expects).
pub async fn metadata(State(state): State<AppState>) -> Fhir {
    Fhir(StatusCode::OK, capability_statement(&base(&state)))
}

/// Every resource of `patient` the user may read (404 if none), with the
/// read in the patient's access log.
async fn readable(
    state: &AppState,
    auth: &AuthUser,
    patient: PatientId,
    what: &str,
) -> Result<Vec<Value>, Error> {
    let docs: Vec<_> = state
        .store
        .readable_documents(&auth.user)
        .await?
        .into_iter()
        .filter(|d| d.kind.patient() == patient)
        .collect();
    if docs.is_empty() {
        return Err(Error::NotFound);
    }
    let data = patient_data(&state.hub, patient, &docs).await?;
    auth.audit(state, AuditAction::RecordRead, Some(patient), what).await?;
    Ok(resources(&data))
}

fn patient_id(text: &str) -> Result<PatientId, Error> {
    text.strip_prefix("Patient/").unwrap_or(text).parse().map_err(|_| Error::NotFound)
}

/// `GET /fhir/R4/Patient/{id}`.
pub async fn patient(
    State(state): State<AppState>,
    auth: Result<AuthUser, Error>,
    Path(id): Path<String>,
) -> Result<Fhir, Fhir> {
    let auth = auth?;
    let patient = patient_id(&id)?;
    let all = readable(&state, &auth, patient, "FHIR Patient read").await?;
    let found = all.into_iter().find(|r| r.str_at(&["resourceType"]) == Some("Patient"));
    Ok(Fhir(StatusCode::OK, found.ok_or(Error::NotFound)?))
}

/// `GET /fhir/R4/Patient/{id}/$everything`: a searchset of every resource
/// of the record the user may read.
pub async fn everything(
    State(state): State<AppState>,
    auth: Result<AuthUser, Error>,
    Path(id): Path<String>,
) -> Result<Fhir, Fhir> {
    let auth = auth?;
    let patient = patient_id(&id)?;
    let all = readable(&state, &auth, patient, "FHIR $everything").await?;
    Ok(Fhir(StatusCode::OK, bundle("searchset", &base(&state), all)))
}

/// `GET /fhir/R4/{type}?patient=...`: a search of one patient's resources
/// of one type (`search::SEARCHABLE`). Without `patient`, a patient or
/// caregiver searches their own patient's record.
pub async fn search(
    State(state): State<AppState>,
    auth: Result<AuthUser, Error>,
    Path(resource_type): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Fhir, Fhir> {
    let auth = auth?;
    let Some((kind, _)) = SEARCHABLE.iter().find(|(kind, _)| *kind == resource_type) else {
        return Err(Fhir::problem(
            StatusCode::NOT_FOUND,
            "not-supported",
            "this resource type is not searched here; see /fhir/R4/metadata",
        ));
    };
    let named = params.iter().find(|(name, _)| name == "patient" || name == "subject");
    let patient = match (named, auth.patient()) {
        (Some((_, value)), _) => patient_id(value)?,
        (None, Some(own)) => own,
        (None, None) => {
            return Err(Error::BadRequest("the patient parameter is required".into()).into());
        }
    };
    let criteria = Criteria::parse(kind, &params).map_err(Error::BadRequest)?;
    let all = readable(&state, &auth, patient, &format!("FHIR {kind} search")).await?;
    let found: Vec<Value> = all
        .into_iter()
        .filter(|r| r.str_at(&["resourceType"]) == Some(kind) && criteria.matches(r))
        .collect();
    Ok(Fhir(StatusCode::OK, bundle("searchset", &base(&state), found)))
}

/// Anything else under `/fhir`.
pub async fn unknown() -> Fhir {
    Fhir::problem(
        StatusCode::NOT_FOUND,
        "not-supported",
        "no such FHIR interaction here; see /fhir/R4/metadata",
    )
}

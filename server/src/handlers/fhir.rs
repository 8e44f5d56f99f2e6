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
use shared::api::{AuditAction, UserRole};
use shared::fhir::export::{bundle, resources};
use shared::fhir::{Issue, Value, operation_outcome};
use shared::{ClinicId, PatientId};

use crate::auth::AuthUser;
use crate::fhir::import::{self, Refused};
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

/// `POST /fhir/R4`: a transaction Bundle of one patient's Observations,
/// DiagnosticReports, MedicationRequests and AllergyIntolerances into the
/// record of the poster's clinic (a provider of several names it with
/// `?clinic=`), exactly as `portal import` does (`fhir::import`): one
/// change through the write policy and safety rules, attributed to the
/// clinic's import account, idempotent by identifier, all or nothing.
/// Answers a `transaction-response` Bundle (201 per entry added, 200 per
/// entry already held), or an OperationOutcome naming every problem.
/// The body is bounded by the server's body limit before it is parsed.
pub async fn transaction(
    State(state): State<AppState>,
    auth: Result<AuthUser, Error>,
    Query(params): Query<Vec<(String, String)>>,
    body: axum::body::Bytes,
) -> Result<Fhir, Fhir> {
    let auth = auth?;
    if !matches!(auth.user.role, UserRole::Provider | UserRole::Admin) {
        return Err(Error::Forbidden.into());
    }
    let named =
        params.iter().find(|(name, _)| name == "clinic").map(|(_, c)| c.parse::<ClinicId>());
    let clinic = match (named, auth.user.clinics.as_slice()) {
        (Some(Ok(clinic)), clinics) if clinics.contains(&clinic) => clinic,
        (Some(_), _) => return Err(Error::Forbidden.into()),
        (None, [only]) => *only,
        (None, _) => {
            return Err(Error::BadRequest("name the clinic: ?clinic=<id>".into()).into());
        }
    };
    let _turn = import::turn().await;
    let parsed = tokio::task::spawn_blocking(move || crate::fhir::parse(&body))
        .await
        .map_err(|e| Error::Conflict(format!("parsing failed: {e}")))?;
    let bundle = parsed.map_err(|problem| {
        Fhir(StatusCode::BAD_REQUEST, operation_outcome(&[Issue::new("structure", "", problem)]))
    })?;
    let sent_by = Some((auth.user.id, auth.session_id.as_str()));
    let outcome = match import::import(&state.hub, clinic, &bundle, sent_by).await {
        Ok(outcome) => outcome,
        Err(refused) => {
            let status = match &refused {
                Refused::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                Refused::NotFound => StatusCode::NOT_FOUND,
                Refused::Server(error) => {
                    tracing::error!(%error, "FHIR import failed");
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            return Err(Fhir(status, refused.outcome()));
        }
    };
    let mut responses = vec![Value::Null; bundle.items("entry").len()];
    for (index, id, created) in &outcome.entries {
        let kind =
            bundle.items("entry")[*index].str_at(&["resource", "resourceType"]).unwrap_or_default();
        let location =
            format!("{kind}/{}", shared::fhir::resource_id(outcome.doc, &id.to_string()));
        let status = if *created { "201 Created" } else { "200 OK" };
        responses[*index] = Value::object([(
            "response",
            Value::object([("status", status.into()), ("location", location.into())]),
        )]);
    }
    Ok(Fhir(
        StatusCode::OK,
        Value::object([
            ("resourceType", "Bundle".into()),
            ("type", "transaction-response".into()),
            ("entry", responses.into()),
        ]),
    ))
}

/// Anything else under `/fhir`.
pub async fn unknown() -> Fhir {
    Fhir::problem(
        StatusCode::NOT_FOUND,
        "not-supported",
        "no such FHIR interaction here; see /fhir/R4/metadata",
    )
}

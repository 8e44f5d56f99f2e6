//! `/fhir/R4`: the patient-access read API. A signed-in person reads a
//! patient's record as FHIR with exactly the read rules of sync
//! (`Store::readable_documents`: a caregiver or provider gets the
//! resources of the documents they may sync, nothing more), and each read
//! is in the patient's access log. Answers are `application/fhir+json`;
//! errors are OperationOutcomes, and a patient the reader may not see
//! answers 404 like one that does not exist.
//!
//! A SMART app reads with `Authorization: Bearer` instead of the cookie
//! (`Reader::App`): as the person who approved it, only the patient of the
//! grant and only the resource types of its scopes, and the access log
//! names the app. A request with an Authorization header is judged by it
//! alone, never by a cookie it also carries. A clinic system's token
//! (`Writer::System`) only posts transactions into its clinic's record.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shared::api::{AuditAction, UserRole};
use shared::fhir::export::{bundle, resources};
use shared::fhir::{Issue, Value, operation_outcome};
use shared::{ClinicId, PatientId};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::auth::{AuthUser, hash_secret};
use crate::fhir::import::{self, Refused, SentBy};
use crate::fhir::search::{Criteria, SEARCHABLE, capability_statement};
use crate::fhir::{CONTENT_TYPE, off_runtime, patient_data};
use crate::smart::Scopes;
use crate::storage::{AuditEvent, TokenRow, UserRecord};
use crate::{AppState, Error};

/// A FHIR answer: a resource with its status.
pub struct Fhir(pub StatusCode, pub Value);

impl IntoResponse for Fhir {
    fn into_response(self) -> Response {
        let mut response =
            (self.0, [(header::CONTENT_TYPE, CONTENT_TYPE)], self.1.to_json_string())
                .into_response();
        // RFC 6750 section 3: a 401 from a resource server names the
        // scheme it takes, so an app knows to get (or renew) a token.
        if self.0 == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(BEARER_CHALLENGE));
        }
        response
    }
}

/// The `WWW-Authenticate` challenge of every 401 under `/fhir/R4`.
pub const BEARER_CHALLENGE: &str = "Bearer realm=\"fhir\"";

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

/// The live token an `Authorization: Bearer` header names; `None` without
/// the header; 401 for any other Authorization or an unknown, expired or
/// revoked token (checked for shape before any lookup).
async fn bearer(state: &AppState, parts: &Parts) -> Result<Option<TokenRow>, Error> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| crate::smart::is_token(t))
        .ok_or(Error::Unauthorized)?;
    let row = state.store.token(&hash_secret(token), state.now()).await?;
    row.map(Some).ok_or(Error::Unauthorized)
}

/// A patient app reading for the person who approved it.
pub struct AppAccess {
    user: UserRecord,
    patient: PatientId,
    scopes: Scopes,
    grant: String,
    app: String,
}

/// Who reads: a signed-in person, or an app they approved.
pub enum Reader {
    Person(AuthUser),
    App(AppAccess),
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = Fhir;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Fhir> {
        let Some(token) = bearer(state, parts).await? else {
            return Ok(Self::Person(AuthUser::from_request_parts(parts, state).await?));
        };
        // A clinic system's token reads nothing.
        let Some((grant, user, patient)) = token.grant else { return Err(Error::Forbidden.into()) };
        let user = state.store.user(user).await.map_err(Error::from)?.ok_or(Error::Unauthorized)?;
        Ok(Self::App(AppAccess {
            user,
            patient,
            scopes: Scopes::new(&token.scope),
            grant,
            app: token.client_name,
        }))
    }
}

impl Reader {
    fn user(&self) -> &UserRecord {
        match self {
            Self::Person(auth) => &auth.user,
            Self::App(app) => &app.user,
        }
    }

    /// Whether resources of this type may be read (an app: by its scopes).
    fn reads(&self, kind: &str) -> bool {
        match self {
            Self::Person(_) => true,
            Self::App(app) => app.scopes.reads(kind),
        }
    }

    /// Refuses (403) a type the app's scopes do not cover.
    fn require(&self, kind: &str) -> Result<(), Fhir> {
        if self.reads(kind) {
            Ok(())
        } else {
            Err(Fhir::problem(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the app's access does not include this resource type",
            ))
        }
    }

    /// The patient searched when none is named.
    fn own_patient(&self) -> Option<PatientId> {
        match self {
            Self::Person(auth) => auth.patient(),
            Self::App(app) => Some(app.patient),
        }
    }
}

/// Every resource of `patient` the reader may read (404 if none), with the
/// read in the patient's access log: the read rules of sync for the user
/// (for an app, the user who approved it, only for its patient and the
/// types of its scopes).
async fn readable(
    state: &AppState,
    reader: &Reader,
    patient: PatientId,
    what: &str,
) -> Result<Vec<Value>, Error> {
    if matches!(reader, Reader::App(app) if app.patient != patient) {
        return Err(Error::NotFound);
    }
    let docs: Vec<_> = state
        .store
        .readable_documents(reader.user())
        .await?
        .into_iter()
        .filter(|d| d.kind.patient() == patient)
        .collect();
    if docs.is_empty() {
        return Err(Error::NotFound);
    }
    let data = patient_data(&state.hub, patient, &docs).await?;
    match reader {
        Reader::Person(auth) => {
            auth.audit(state, AuditAction::RecordRead, Some(patient), what).await?
        }
        Reader::App(app) => {
            let detail = format!("{what} by the app \"{}\"", app.app);
            let device = format!("smart:{}", app.grant);
            let event = AuditEvent {
                user: Some(app.user.id),
                session: Some(&device),
                action: AuditAction::RecordRead,
                patient: Some(patient),
                doc: None,
                detail: &detail,
            };
            state.store.audit(&event, state.now()).await?;
        }
    }
    Ok(off_runtime(move || resources(&data))
        .await?
        .into_iter()
        .filter(|r| reader.reads(r.str_at(&["resourceType"]).unwrap_or_default()))
        .collect())
}

fn patient_id(text: &str) -> Result<PatientId, Error> {
    text.strip_prefix("Patient/").unwrap_or(text).parse().map_err(|_| Error::NotFound)
}

/// `GET /fhir/R4/Patient/{id}`.
pub async fn patient(
    State(state): State<AppState>,
    auth: Result<Reader, Fhir>,
    Path(id): Path<String>,
) -> Result<Fhir, Fhir> {
    let auth = auth?;
    auth.require("Patient")?;
    let patient = patient_id(&id)?;
    let all = readable(&state, &auth, patient, "FHIR Patient read").await?;
    let found = all.into_iter().find(|r| r.str_at(&["resourceType"]) == Some("Patient"));
    Ok(Fhir(StatusCode::OK, found.ok_or(Error::NotFound)?))
}

/// `GET /fhir/R4/Patient/{id}/$everything`: a searchset of every resource
/// of the record the user may read.
pub async fn everything(
    State(state): State<AppState>,
    auth: Result<Reader, Fhir>,
    Path(id): Path<String>,
) -> Result<Response, Fhir> {
    let auth = auth?;
    let patient = patient_id(&id)?;
    let all = readable(&state, &auth, patient, "FHIR $everything").await?;
    // Megabytes for a long record: written off the runtime too.
    let base = base(&state);
    let body = off_runtime(move || bundle("searchset", &base, all).to_json_string()).await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response())
}

/// `GET /fhir/R4/{type}?patient=...`: a search of one patient's resources
/// of one type (`search::SEARCHABLE`). Without `patient`, a patient or
/// caregiver searches their own patient's record.
pub async fn search(
    State(state): State<AppState>,
    auth: Result<Reader, Fhir>,
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
    auth.require(kind)?;
    let named = params.iter().find(|(name, _)| name == "patient" || name == "subject");
    let patient = match (named, auth.own_patient()) {
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
/// `?clinic=`; a clinic system's token is its clinic's, each resource
/// type within its scopes), exactly as `portal import` does (`fhir::import`): one
/// change through the write policy and safety rules, attributed to the
/// clinic's import account, idempotent by identifier, all or nothing.
/// Answers a `transaction-response` Bundle (201 per entry added, 200 per
/// entry already held), or an OperationOutcome naming every problem.
/// The body is bounded by the server's body limit before it is parsed.
pub async fn transaction(
    State(state): State<AppState>,
    writer: Result<Writer, Fhir>,
    Query(params): Query<Vec<(String, String)>>,
    body: axum::body::Bytes,
) -> Result<Fhir, Fhir> {
    let writer = writer?;
    let named =
        params.iter().find(|(name, _)| name == "clinic").map(|(_, c)| c.parse::<ClinicId>());
    let clinics = match &writer {
        Writer::Staff(auth) => {
            if !matches!(auth.user.role, UserRole::Provider | UserRole::Admin) {
                return Err(Error::Forbidden.into());
            }
            auth.user.clinics.clone()
        }
        Writer::System { clinic, .. } => vec![*clinic],
    };
    let clinic = match (named, clinics.as_slice()) {
        (Some(Ok(clinic)), clinics) if clinics.contains(&clinic) => clinic,
        (Some(_), _) => return Err(Error::Forbidden.into()),
        (None, [only]) => *only,
        (None, _) => {
            return Err(Error::BadRequest("name the clinic: ?clinic=<id>".into()).into());
        }
    };
    let _turn = import::turn().await;
    let parsed = off_runtime(move || crate::fhir::parse(&body)).await?;
    let bundle = parsed.map_err(|problem| {
        Fhir(StatusCode::BAD_REQUEST, operation_outcome(&[Issue::new("structure", "", problem)]))
    })?;
    let sent_by = match &writer {
        Writer::Staff(auth) => SentBy::Staff(auth.user.id, auth.session_id.as_str()),
        Writer::System { client, name, scopes, .. } => {
            let kinds = bundle
                .items("entry")
                .iter()
                .map(|e| e.str_at(&["resource", "resourceType"]).unwrap_or_default().to_owned());
            if let Some(kind) = kinds.into_iter().find(|k| !scopes.creates(k)) {
                return Err(Fhir::problem(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    &format!("the system's scopes do not include creating {kind}"),
                ));
            }
            SentBy::System { client, name }
        }
    };
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

/// Who posts a transaction: a signed-in provider or admin, or a clinic
/// system with a Backend Services token (a patient app's token may not).
pub enum Writer {
    Staff(AuthUser),
    System { client: String, name: String, clinic: ClinicId, scopes: Scopes },
}

impl FromRequestParts<AppState> for Writer {
    type Rejection = Fhir;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Fhir> {
        match bearer(state, parts).await? {
            None => Ok(Self::Staff(AuthUser::from_request_parts(parts, state).await?)),
            Some(TokenRow { client, client_name, scope, grant: None, clinic: Some(clinic) }) => {
                Ok(Self::System { client, name: client_name, clinic, scopes: Scopes::new(&scope) })
            }
            Some(_) => Err(Error::Forbidden.into()),
        }
    }
}

/// Anything else under `/fhir`.
pub async fn unknown() -> Fhir {
    Fhir::problem(
        StatusCode::NOT_FOUND,
        "not-supported",
        "no such FHIR interaction here; see /fhir/R4/metadata",
    )
}

//! Every route the server answers, in one place.
//!
//! Authentication: routes marked "session" take the `AuthUser` extractor
//! (401 without a live session). Every POST/PUT/PATCH/DELETE must carry the
//! portal's own `Origin` header (403 otherwise), checked by middleware,
//! except where no cookie counts: `/oauth/token` and FHIR requests with
//! an `Authorization` header (SMART apps and clinic systems).

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{any, delete, get, patch, post, put};
use tower_http::trace::TraceLayer;

use crate::auth::require_same_origin;
use crate::handlers::{
    appointments, audit, caregivers, clinics, consents, documents, fallback, fhir, health,
    invitations, oauth, passkeys, session, web,
};
use crate::ratelimit::limit_anonymous;
use crate::{AppState, sync};

pub fn router(state: AppState) -> Router {
    // Anonymous ceremony work is bounded per client and in total (`ratelimit`).
    let limited = || middleware::from_fn_with_state(state.clone(), limit_anonymous);
    Router::new()
        .route("/healthz", get(health::get))
        // Automerge sync (session and Origin checked on upgrade).
        .route("/sync", get(sync::upgrade))
        // Sign-in (anonymous): usernameless passkey ceremony.
        .route("/api/login/start", post(session::login_start).layer(limited()))
        .route("/api/login/finish", post(session::login_finish).layer(limited()))
        // Enrollment (anonymous, with a one-time token from the link's fragment).
        .route("/api/enroll/invitation", post(session::enroll_invitation).layer(limited()))
        .route("/api/enroll/start", post(session::enroll_start).layer(limited()))
        .route("/api/enroll/finish", post(session::enroll_finish).layer(limited()))
        // Session.
        .route("/api/logout", post(session::logout))
        .route("/api/logout-all", post(session::logout_all))
        .route("/api/me", get(session::me))
        // Use a passkey again: adding a passkey, inviting a caregiver and
        // issuing enrollment links need one used within a few minutes.
        .route("/api/reauth/start", post(session::reauth_start))
        .route("/api/reauth/finish", post(session::reauth_finish))
        // Open enrollment links for the signed-in person's own account.
        .route("/api/enrollments", get(session::open_links).delete(session::cancel_links))
        // The user's own passkeys (session).
        .route("/api/passkeys", get(passkeys::list))
        .route("/api/passkeys/register/start", post(passkeys::register_start))
        .route("/api/passkeys/register/finish", post(passkeys::register_finish))
        .route("/api/passkeys/{id}", patch(passkeys::rename).delete(passkeys::revoke))
        // Access (session).
        .route("/api/clinics", get(clinics::list))
        .route("/api/clinic", get(clinics::page))
        .route("/api/clinic/details", put(clinics::set_details))
        .route("/api/clinic/appointments", get(appointments::list).post(appointments::answer))
        .route("/api/consents", get(consents::list))
        .route("/api/consents/{clinic_id}", post(consents::grant).delete(consents::revoke))
        .route("/api/caregivers", get(caregivers::list).post(caregivers::invite))
        .route("/api/caregivers/{user_id}", delete(caregivers::revoke))
        .route("/api/caregivers/{user_id}/enrollment", post(caregivers::reissue))
        .route("/api/documents", get(documents::list))
        .route(
            "/api/documents/removed",
            post(documents::removed).layer(DefaultBodyLimit::max(documents::MAX_REPORT_BYTES)),
        )
        .route(
            "/api/documents/offline",
            post(documents::offline).layer(DefaultBodyLimit::max(documents::MAX_OFFLINE_BYTES)),
        )
        .route("/api/patients/search", post(documents::patients))
        .route("/api/audit", get(audit::list))
        .route("/api/audit/downloads", post(audit::download))
        // Clinic admins (session, admin role).
        .route("/api/invitations", post(invitations::invite))
        .route("/api/users/{user_id}/enrollment", post(invitations::reissue))
        // FHIR R4 (session): the record with the read rules of sync; every
        // read audited. The capability statement is public. Imports run
        // `fhir::import`, as `portal import` does.
        .route("/fhir/R4/metadata", get(fhir::metadata))
        // A clinic's transaction Bundle (session, provider or admin).
        .route("/fhir/R4", post(fhir::transaction))
        .route("/fhir/R4/Patient/{id}", get(fhir::patient))
        .route("/fhir/R4/Patient/{id}/$everything", get(fhir::everything))
        .route("/fhir/R4/{resource_type}", get(fhir::search))
        .route("/fhir/{*rest}", any(fhir::unknown))
        // SMART on FHIR (`smart`, `handlers/oauth.rs`): discovery; the
        // standalone launch's consent page (session; its POST is a form
        // bound to the session); the token endpoint (anonymous: codes with
        // PKCE, clinic systems' signed JWTs), rate limited like sign-in.
        // FHIR routes above also take the tokens it issues.
        // SMART App Launch 2.0 puts discovery under the FHIR base (apps
        // append it to the `iss`/base they were given); also at the root.
        .route("/fhir/R4/.well-known/smart-configuration", get(oauth::configuration))
        .route("/.well-known/smart-configuration", get(oauth::configuration))
        .route(
            "/oauth/authorize",
            get(oauth::authorize)
                .post(oauth::decide)
                .layer(DefaultBodyLimit::max(crate::smart::MAX_FORM_BYTES)),
        )
        .route(
            "/oauth/token",
            post(oauth::token)
                .layer(DefaultBodyLimit::max(crate::smart::MAX_FORM_BYTES))
                .layer(limited()),
        )
        // The person's authorized apps (session).
        .route("/api/smart/apps", get(oauth::apps))
        .route("/api/smart/apps/{id}", delete(oauth::revoke_app))
        // Clinic systems (session, admin role, recent passkey).
        .route(
            "/api/system-clients",
            post(oauth::register_system)
                .layer(DefaultBodyLimit::max(2 * crate::smart::MAX_JWKS_BYTES)),
        )
        // Unknown API paths answer a JSON 404.
        .route("/api/{*rest}", any(fallback::no_such_route))
        // The web app: index.html, JS glue, WASM, service worker. Any other
        // path gets index.html so the client-side router can take it.
        .method_not_allowed_fallback(fallback::wrong_method)
        .fallback_service(web::service(&state.static_dir))
        .layer(middleware::from_fn_with_state(state.clone(), require_same_origin))
        // Paths and statuses only: no path carries patient data or secrets,
        // and query strings (FHIR search terms) are left out.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::extract::Request| {
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state)
}

//! `/api/clinic/appointments`: a clinic admin's appointment list and
//! answers (issue 14). Admins read no clinical record (`read_access.rs`),
//! so they have no replica to answer from: the server reads, for the
//! patients consenting to the admin's clinic with an appointment asked for
//! or booked there (`Store::appointment_patients`), only the appointments
//! of that clinic's record, audited as a read of each record; and writes
//! an answer as the admin's own change, judged by the same write policy as
//! every change (`check_edit`: admins may move their clinic's appointments
//! on as the clinic) and stored by `Hub::commit`. Online only.

use std::collections::BTreeMap;

use automerge::ActorId;
use automerge::transaction::CommitOptions;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{SecondsFormat, TimeZone, Utc};
use shared::api::{AppointmentAnswer, AuditAction, ClinicAppointment};
use shared::record::{self, RecordError};
use shared::schema::{Appointment, Collection, DocKind};
use shared::status::AppointmentStatus;

use super::invitations::admin_clinic;
use super::json::Json as Body;
use crate::auth::AuthUser;
use crate::storage::{AuditEvent, Author, StoreError};
use crate::sync::Accepted;
use crate::{AppState, Error};

fn stamp(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `GET /api/clinic/appointments`: the admin's clinic's appointments still
/// to come (asked for, offered, booked from the clinic's today), soonest
/// first.
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<ClinicAppointment>>, Error> {
    let clinic = admin_clinic(&auth)?;
    // The clinic's date: `start` is its wall time, whose first ten
    // characters are the day at the clinic (`zone`), so an appointment
    // booked for today stays listed all of the clinic's day.
    let zone = state.store.clinic_time_zones(&[clinic]).await?.pop().map(|(_, z)| z);
    let today = crate::zone::today(state.now(), zone.as_deref().unwrap_or(crate::zone::DEFAULT));
    let mut out = Vec::new();
    for part in state.store.appointment_patients(&auth.user).await?.chunks(50) {
        let docs: BTreeMap<_, _> = part
            .iter()
            .map(|(p, name)| (DocKind::ClinicalRecord { patient: *p, clinic }.doc_id(), (*p, name)))
            .collect();
        // Copies of the appointments only, then the locks are let go.
        let mut read = Vec::new();
        for (id, guard) in state.hub.lock_all(docs.keys().copied()).await? {
            let Some(canonical) = guard.as_ref() else { continue };
            let appointments = shared::read::hydrate_root_prop::<Appointment>(
                canonical.doc(),
                Collection::Appointments.code(),
            );
            if let (Ok(appointments), Some(&(patient, name))) = (appointments, docs.get(&id)) {
                read.push((patient, name, appointments));
            }
        }
        for (patient, name, appointments) in read {
            let patient = &patient;
            let before = out.len();
            for (id, a) in &appointments {
                let open = match a.status {
                    AppointmentStatus::Proposed | AppointmentStatus::Pending => true,
                    AppointmentStatus::Booked => a.start.get(..10) >= Some(today.as_str()),
                    _ => false,
                };
                let Ok(entry) = id.parse() else { continue };
                if open {
                    out.push(ClinicAppointment {
                        patient: *patient,
                        patient_name: name.clone(),
                        entry,
                        reason: a.reason.clone(),
                        preferred: a.preferred.clone(),
                        status: a.status,
                        start: a.start.clone(),
                    });
                }
            }
            if out.len() > before {
                auth.audit(&state, AuditAction::DocumentRead, Some(*patient), "appointments")
                    .await?;
            }
        }
    }
    out.sort_by(|a, b| (a.start.is_empty(), &a.start).cmp(&(b.start.is_empty(), &b.start)));
    Ok(Json(out))
}

/// `POST /api/clinic/appointments`: the admin confirms a request, offers a
/// time or declines, as their own change under the write policy.
pub async fn answer(
    State(state): State<AppState>,
    auth: AuthUser,
    Body(answer): Body<AppointmentAnswer>,
) -> Result<StatusCode, Error> {
    let clinic = admin_clinic(&auth)?;
    if !state.store.consenting_clinics(answer.patient).await?.contains(&clinic) {
        return Err(Error::NotFound);
    }
    let principal = auth.user.principal().ok_or(Error::Forbidden)?;
    let kind = DocKind::ClinicalRecord { patient: answer.patient, clinic };
    let id = kind.doc_id();
    // Another writer may commit between judging and storing: judge again.
    for _ in 0..3 {
        let mut locked: BTreeMap<_, _> = state.hub.lock_all([id]).await?.into_iter().collect();
        let base = locked.get(&id).and_then(|g| g.as_ref()).ok_or(Error::NotFound)?.doc().clone();
        let actor = ActorId::random();
        let mut doc = base.clone().with_actor(actor.clone());
        let mut tx = doc.transaction();
        let moved = record::move_appointment(
            &mut tx,
            answer.entry,
            answer.status,
            answer.start.as_deref(),
            answer.reason.trim(),
            auth.user.id,
            &stamp(state.now()),
        );
        match moved {
            Ok(()) => {}
            Err(RecordError::NoEntry) => return Err(Error::NotFound),
            Err(e) => return Err(Error::BadRequest(e.to_string())),
        }
        tx.commit_with(CommitOptions::default().with_time(state.now()));
        shared::check_edit(&base, &doc, &kind, &principal).map_err(|denial| {
            Error::Conflict(format!("Not saved: {}", denial.rule.explanation()))
        })?;
        let data = doc.save_after(&base.get_heads());
        let accepted = Accepted { id, kind, doc, data, snapshot: false, touched: None };
        let events = [AuditEvent {
            user: Some(auth.user.id),
            session: Some(&auth.session_id),
            action: AuditAction::ChangeAccepted,
            patient: Some(answer.patient),
            doc: Some(id),
            detail: "appointment answered",
        }];
        let (patients, entries, actors) =
            ([(id, answer.patient)], [(id, 0)], [actor.to_hex_string()]);
        let author =
            Author { user: &auth.user, patients: &patients, entries: &entries, actors: &actors };
        match state.hub.commit(&mut locked, vec![accepted], &events, Some(author), None).await {
            Ok(()) => return Ok(StatusCode::NO_CONTENT),
            Err(StoreError::Stale(_)) => continue,
            Err(StoreError::AccessEnded(_)) => return Err(Error::NotFound),
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::Conflict("The record kept changing; try again.".into()))
}

//! Appointments (issue 14). The patient side asks a clinic it consents to
//! for one, offline too (kept and sent like a message), and cancels it,
//! takes a time the clinic offers or asks for another; the clinic confirms
//! a request, offers a time or declines it with a reason, in the chart and
//! in To do (`Answer`). Each is a status change of the appointment entry in
//! the clinic's record of the patient, judged by `shared::policy` here and
//! on the server alike. Times are shown as stored, like every time here.

use leptos::prelude::*;
use shared::api::{AppointmentAnswer, ClinicAppointment};
use shared::record;
use shared::schema::{Appointment, Collection, DocKind, Provenance};
use shared::status::AppointmentStatus as A;
use shared::{ClinicId, EntryId, PatientId, UserId};

use crate::drafts::Draft;
use crate::logic::{self, Order};
use crate::patient::StaffClinic;
use crate::reads::PatientData;
use crate::replicas;
use crate::state::Ui;

/// Moves appointment `id` of `clinic`'s record of `patient` on.
fn write(
    patient: PatientId,
    clinic: ClinicId,
    id: EntryId,
    to: A,
    start: Option<String>,
    reason: &str,
) -> Result<(), String> {
    let doc = DocKind::ClinicalRecord { patient, clinic }.doc_id();
    replicas::edit(doc, |tx, who, at| {
        record::move_appointment(tx, id, to, start.as_deref(), reason, who.user, at)
    })
}

/// Where an appointment stands, in words.
fn state(a: &Appointment, me: Option<UserId>, sent: bool) -> String {
    let reason = a.status_reason.as_deref().filter(|r| !r.trim().is_empty());
    match a.status {
        A::Proposed if !sent => "Requested, waiting to be sent".into(),
        A::Proposed => "Requested, waiting for the clinic".into(),
        A::Pending => format!("The clinic offers {}", logic::date_time(&a.start)),
        A::Booked => format!("Booked for {}", logic::date_time(&a.start)),
        A::Cancelled if a.status_by.is_some() && a.status_by == me => "Cancelled by you".into(),
        A::Cancelled => match reason {
            Some(r) if a.start.is_empty() => format!("Declined by the clinic: {r}"),
            Some(r) => format!("Cancelled by the clinic: {r}"),
            None => "Cancelled".into(),
        },
        A::Fulfilled => "Attended".into(),
        A::Noshow => "Missed".into(),
        A::EnteredInError => "Entered in error".into(),
    }
}

/// The patient's appointments to come, requests and those cancelled in
/// the last 30 days; the request form on the patient side; the clinic's
/// answers in its chart.
pub fn section(
    ui: Ui,
    data: &PatientData,
    patient: PatientId,
    staff: StaffClinic,
) -> impl IntoView + use<> {
    let me = ui.me.get_untracked();
    let user = me.as_ref().map(|m| m.user_id);
    let may_ask =
        me.as_ref().is_some_and(|m| m.role == shared::api::UserRole::Patient || m.may_message())
            && staff.is_none();
    let today = replicas::now();
    let cutoff = logic::minutes(&today).unwrap_or(0) - 30 * 1440;
    let mut list = Vec::new();
    for (doc, clinic, record) in &data.clinical {
        for (id, a) in &record.appointments {
            let shown = match a.status {
                A::Booked => a.start >= today,
                A::Proposed | A::Pending => true,
                A::Cancelled => {
                    logic::minutes(a.status_at.as_deref().unwrap_or_default()).unwrap_or(0)
                        >= cutoff
                }
                _ => false,
            };
            let key = if a.start.is_empty() { &a.provenance.recorded } else { &a.start };
            if shown {
                list.push((key.clone(), *doc, *clinic, id.clone(), a.clone()));
            }
        }
    }
    logic::sort_by_key(&mut list, Order::Ascending, |a| a.0.clone());
    let none = list.is_empty();
    let items = list
        .into_iter()
        .map(|(_, doc, clinic, id, a)| {
            let entry: EntryId = id.parse().expect("entry ids are UUIDs");
            let words =
                state(&a, user, replicas::entry_confirmed(doc, Collection::Appointments, &id));
            let actions = if staff == Some(clinic) && a.status == A::Proposed {
                Some(view! { <Answer patient clinic id=entry/> }.into_any())
            } else if may_ask && a.status.is_open() {
                Some(view! { <Choices patient clinic id=entry status=a.status/> }.into_any())
            } else {
                None
            };
            view! {
                <li class="appt">
                    <strong>{a.reason.clone()}</strong> " · " {a.provenance.clinic_name.clone()}
                    {a.preferred.clone().map(|p| format!(" · Preferred: {p}"))}
                    <p class="state">{words}</p>
                    {actions}
                </li>
            }
        })
        .collect_view();
    view! {
        <section class="card" aria-labelledby="appt-h">
            <h2 id="appt-h">"Appointments"</h2>
            {none.then(|| view! { <p class="muted">"None coming up."</p> })}
            <ul>{items}</ul>
            {may_ask.then(|| view! { <RequestForm patient/> })}
        </section>
    }
}

/// The patient side's answers: take an offered time, ask for another, or
/// cancel (asked once more before it is done).
#[component]
fn Choices(patient: PatientId, clinic: ClinicId, id: EntryId, status: A) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let sure = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let go = move |to: A, said: &'static str| match write(patient, clinic, id, to, None, "") {
        Ok(()) => {
            sure.set(false);
            error.set(None);
            ui.say(said.into());
        }
        Err(e) => error.set(Some(e)),
    };
    let what = if status == A::Proposed { "Cancel request" } else { "Cancel appointment" };
    view! {
        <div class="inline-form">
            {(status == A::Pending).then(|| view! {
                <button type="button" on:click=move |_| go(A::Booked, "Appointment booked")>"Accept this time"</button>
                <button type="button" class="secondary" on:click=move |_| go(A::Proposed, "Asked the clinic for another time")>"Ask for another time"</button>
            })}
            {move || if sure.get() {
                view! {
                    <span role="alert">{format!("{what}?")}</span>
                    <button type="button" on:click=move |_| go(A::Cancelled, "Cancelled")>"Yes, cancel"</button>
                    <button type="button" class="secondary" on:click=move |_| sure.set(false)>"Keep it"</button>
                }.into_any()
            } else {
                view! { <button type="button" class="secondary" on:click=move |_| sure.set(true)>{what}</button> }.into_any()
            }}
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </div>
    }
}

/// The clinic's answers to a request: confirm it at a time, offer a time
/// for the patient to take, or decline it saying why. Written to the
/// replica (offline too), or for an admin, who has none, through the server
/// (`done` is then moved on once it answered).
#[component]
pub fn Answer(
    patient: PatientId,
    clinic: ClinicId,
    id: EntryId,
    #[prop(optional)] done: Option<RwSignal<u32>>,
) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let (time_id, why_id) = (format!("when-{id}"), format!("why-{id}"));
    let when = Draft::new(time_id.clone());
    let why = Draft::new(why_id.clone());
    let error = RwSignal::new(None::<String>);
    let act = move |to: A| {
        let (t, r) = (when.get_untracked(), why.get_untracked().trim().to_owned());
        let missing = if to == A::Cancelled {
            r.is_empty().then_some("Say why it is declined: the patient reads it.")
        } else {
            (t.len() < 16).then_some("Choose the date and time first.")
        };
        if let Some(m) = missing {
            error.set(Some(m.into()));
            return;
        }
        let start = (to != A::Cancelled).then(|| format!("{}:00Z", &t[..16]));
        let finish = move |result: Result<(), String>| match result {
            Ok(()) => {
                when.clear();
                why.clear();
                error.set(None);
                let said = match to {
                    A::Booked => "Appointment confirmed",
                    A::Pending => "Time offered to the patient",
                    _ => "Request declined",
                };
                ui.say(said.into());
            }
            Err(e) => error.set(Some(e)),
        };
        let Some(done) = done else { return finish(write(patient, clinic, id, to, start, &r)) };
        let answer = AppointmentAnswer { patient, entry: id, status: to, start, reason: r };
        leptos::task::spawn_local(async move {
            finish(crate::api::answer_appointment(&answer).await.map_err(|e| e.to_string()));
            done.update(|n| *n += 1);
        });
    };
    view! {
        <div class="inline-form">
            <label for=time_id.clone()>"Time"</label>
            <input id=time_id type="datetime-local" prop:value=move || when.get() on:input=move |ev| when.set(event_target_value(&ev))/>
            <button type="button" on:click=move |_| act(A::Booked)>"Confirm"</button>
            <button type="button" class="secondary" on:click=move |_| act(A::Pending)>"Offer this time"</button>
            <label for=why_id.clone()>"Reason to decline"</label>
            <input id=why_id type="text" prop:value=move || why.get() on:input=move |ev| why.set(event_target_value(&ev))/>
            <button type="button" class="secondary" on:click=move |_| act(A::Cancelled)>"Decline"</button>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </div>
    }
}

/// Asks a clinic the patient consents to for an appointment.
#[component]
fn RequestForm(patient: PatientId) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let clinics: Vec<(ClinicId, String)> = ui.me.with_untracked(|m| {
        m.iter().flat_map(|m| &m.care).map(|c| (c.id, c.name.clone())).collect()
    });
    let chosen = RwSignal::new(clinics.first().map(|c| c.0));
    let reason = Draft::new("appt-reason".into());
    let when = Draft::new("appt-when".into());
    let error = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (text, preferred) = (reason.get_untracked(), when.get_untracked());
        let (text, preferred) = (text.trim(), preferred.trim());
        let Some(clinic) = chosen.get_untracked() else { return };
        if text.is_empty() {
            error.set(Some("Say what the appointment is for.".into()));
            return;
        }
        let doc = DocKind::ClinicalRecord { patient, clinic }.doc_id();
        let result = replicas::edit(doc, |tx, who, at| {
            let provenance = Provenance {
                clinic,
                clinic_name: who.clinic_name(clinic).unwrap_or_default().to_owned(),
                recorder: who.user,
                recorder_name: who.name.clone(),
                recorded: at.to_owned(),
            };
            record::request_appointment(tx, EntryId::mint(), text, preferred, &provenance)
        });
        match result {
            Ok(()) => {
                reason.clear();
                when.clear();
                error.set(None);
                ui.say(if ui.online_untracked() {
                    "Appointment requested".into()
                } else {
                    "Appointment request kept on this device; it is sent when you are online".into()
                });
            }
            Err(e) => error.set(Some(e)),
        }
    };
    (!clinics.is_empty()).then(|| view! {
        <form class="stack" on:submit=submit>
            <h3>"Request an appointment"</h3>
            {(clinics.len() > 1).then(|| view! {
                <label for="appt-clinic">"Clinic"</label>
                <select id="appt-clinic" on:change=move |ev| chosen.set(event_target_value(&ev).parse().ok())>
                    {clinics.iter().map(|(id, name)| view! { <option value=id.to_string()>{name.clone()}</option> }).collect_view()}
                </select>
            })}
            <label for="appt-reason">"What is it for?"</label>
            <input id="appt-reason" type="text" maxlength="2000" prop:value=move || reason.get() on:input=move |ev| reason.set(event_target_value(&ev))/>
            <label for="appt-when">"When would suit you? (optional)"</label>
            <input id="appt-when" type="text" maxlength="300" prop:value=move || when.get() on:input=move |ev| when.set(event_target_value(&ev))/>
            <button type="submit">"Request an appointment"</button>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </form>
    })
}

/// A clinic admin's list (`GET /api/clinic/appointments`): admins read no
/// clinical record, so the server reads their clinic's appointments for
/// them; requests are answered with the same form as in To do.
#[component]
pub fn ClinicAppointments(clinic: ClinicId) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let list = RwSignal::new(None::<Vec<ClinicAppointment>>);
    let error = RwSignal::new(None::<String>);
    let done = RwSignal::new(0u32);
    let load = crate::account::loader(ui, list, error, crate::api::clinic_appointments);
    Effect::new(move |first: Option<()>| {
        done.track();
        if first.is_some() {
            load();
        }
    });
    let item = move |a: ClinicAppointment| {
        let state = match a.status {
            A::Proposed => "Requested".to_owned(),
            A::Pending => {
                format!("Offered {}, waiting for the patient", logic::date_time(&a.start))
            }
            _ => format!("Booked for {}", logic::date_time(&a.start)),
        };
        let answer = (a.status == A::Proposed)
            .then(|| view! { <Answer patient=a.patient clinic id=a.entry done/> });
        view! {
            <li class="appt">
                <strong>{a.patient_name}</strong> " · " {a.reason}
                {a.preferred.map(|p| format!(" · Preferred: {p}"))}
                <p class="state">{state}</p>
                {answer}
            </li>
        }
    };
    view! {
        <section class="card" aria-labelledby="clinic-appt-h">
            <h2 id="clinic-appt-h">"Appointments"</h2>
            {move || list.get().map(|l| if l.is_empty() {
                view! { <p class="muted">"No requests or appointments coming up."</p> }.into_any()
            } else {
                view! { <ul>{l.into_iter().map(item).collect_view()}</ul> }.into_any()
            })}
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </section>
    }
}

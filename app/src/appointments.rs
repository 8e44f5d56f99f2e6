//! Appointments (issue 14). The patient side asks a clinic it consents to
//! for one, offline too (kept and sent like a message), and cancels it,
//! takes a time the clinic offers or asks for another; the clinic confirms
//! a request, offers a time or declines it with a reason, in the chart and
//! in To do (`Answer`). Each is a status change of the appointment entry in
//! the clinic's record of the patient, judged by `shared::policy` here and
//! on the server alike. Times are shown as stored, like every time here.

use crate::i18n::{Tr, t, tf, ts};
use leptos::prelude::*;
use shared::api::{AppointmentAnswer, ClinicAppointment};
use shared::record::{self, RecordError};
use shared::schema::{Collection, DocKind};
use shared::status::AppointmentStatus as A;
use shared::{ClinicId, EntryId, PatientId};

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

/// Where an appointment stands, in words; `by_me`: its last change was the
/// reader's own.
fn state(status: A, start: &str, reason: Option<&str>, by_me: bool, sent: bool) -> String {
    let reason = reason.filter(|r| !r.trim().is_empty());
    match status {
        A::Proposed if !sent => ts("Requested, waiting to be sent"),
        A::Proposed => ts("Requested, waiting for the clinic"),
        A::Pending => tf("The clinic offers {0}", &[&crate::when::clinic_time(start)]),
        A::Booked => tf("Booked for {0}", &[&crate::when::clinic_time(start)]),
        A::Cancelled if by_me => ts("Cancelled by you"),
        A::Cancelled => match reason {
            Some(r) if start.is_empty() => tf("Declined by the clinic: {0}", &[&r]),
            Some(r) => tf("Cancelled by the clinic: {0}", &[&r]),
            None => ts("Cancelled"),
        },
        A::Fulfilled => ts("Attended"),
        A::Noshow => ts("Missed"),
        A::EnteredInError => ts("Entered in error"),
    }
}

/// One appointment in a list, the patient's and the clinic admin's alike
/// (`first` is the reason or the patient's name, `then` the other detail).
fn row(
    first: String,
    then: String,
    preferred: Option<String>,
    state: String,
    actions: Option<AnyView>,
) -> AnyView {
    view! {
        <li class="appt">
            <strong>{first}</strong> " · " {then}
            {preferred.map(|p| tf(" · Preferred: {0}", &[&p]))}
            <p class="state">{state}</p>
            {actions}
        </li>
    }
    .into_any()
}

/// A list of appointments, or `none` when there are none.
fn rows(items: Vec<AnyView>, none: &'static str) -> impl IntoView + use<> {
    view! {
        {items.is_empty().then(|| view! { <p class="muted">{none}</p> })}
        <ul>{items}</ul>
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
    let cutoff = logic::minutes(&replicas::now()).unwrap_or(0) - 30 * 1440;
    // A booked time is the clinic's wall clock (not an instant): it stays
    // listed through its whole day on the person's calendar, which is the
    // clinic's for anyone who goes there.
    let today = crate::when::today();
    let mut list = Vec::new();
    for (doc, clinic, record) in &data.clinical {
        for (id, a) in &record.appointments {
            let shown = match a.status {
                A::Booked => logic::date(&a.start) >= today.as_str(),
                A::Proposed | A::Pending => true,
                A::Cancelled => {
                    logic::minutes(a.status_at.as_deref().unwrap_or_default()).unwrap_or(0)
                        >= cutoff
                }
                _ => false,
            };
            if shown {
                list.push((*doc, *clinic, id, a));
            }
        }
    }
    logic::sort_by_key(&mut list, Order::Ascending, |(_, _, _, a)| {
        if a.start.is_empty() { a.provenance.recorded.clone() } else { a.start.clone() }
    });
    let items = list
        .into_iter()
        .map(|(doc, clinic, id, a)| {
            let entry: EntryId = id.parse().expect("entry ids are UUIDs");
            let sent = replicas::entry_confirmed(doc, Collection::Appointments, id);
            let words = state(
                a.status,
                &a.start,
                a.status_reason.as_deref(),
                a.status_by.is_some() && a.status_by == user,
                sent,
            );
            let clinic_side = staff == Some(clinic) && a.status == A::Proposed;
            let actions = (clinic_side || may_ask && a.status.is_open()).then(|| {
                view! { <Answer patient clinic id=entry status=a.status clinic_side/> }.into_any()
            });
            row(
                a.reason.clone(),
                a.provenance.clinic_name.clone(),
                a.preferred.clone(),
                words,
                actions,
            )
        })
        .collect();
    view! {
        <section class="card" aria-labelledby="appt-h">
            <h2 id="appt-h">{Tr("Appointments")}</h2>
            {rows(items, t("None coming up."))}
            {may_ask.then(|| view! { <RequestForm patient/> })}
        </section>
    }
}

/// The error a form shows, if any.
fn error_line(error: RwSignal<Option<String>>) -> impl IntoView {
    move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })
}

/// A button of [`Answer`]'s: one view for all of them.
fn button(label: &'static str, class: &'static str, act: Callback<A>, to: A) -> impl IntoView {
    view! { <button type="button" class=class on:click=move |_| act.run(to)>{label}</button> }
}

/// What can be done with an appointment. The clinic (`clinic_side`) answers
/// a request: confirm it at a time, offer a time for the patient to take,
/// or decline it saying why. The patient side takes a time offered, asks
/// for another, or cancels (asked once more before it is done). Written to
/// the replica (offline too), or for an admin, who has none, through the
/// server (`done` then runs once it answered).
#[component]
pub fn Answer(
    patient: PatientId,
    clinic: ClinicId,
    id: EntryId,
    status: A,
    #[prop(optional)] clinic_side: bool,
    #[prop(optional)] done: Option<Callback<()>>,
) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let (time_id, why_id) = (format!("when-{id}"), format!("why-{id}"));
    let when = Draft::choice(time_id.clone());
    let why = Draft::new(why_id.clone());
    let error = RwSignal::new(None::<String>);
    let sure = RwSignal::new(false);
    let act = Callback::new(move |to: A| {
        // "Keep it": the patient side does not cancel after all.
        if to == status {
            return sure.set(false);
        }
        if !clinic_side && to == A::Cancelled && !sure.get_untracked() {
            return sure.set(true);
        }
        let (time, r) = (when.get_untracked(), why.get_untracked().trim().to_owned());
        let missing = if !clinic_side {
            None
        } else if to == A::Cancelled {
            r.is_empty().then_some(t("Say why it is declined: the patient reads it."))
        } else {
            (time.len() < 16).then_some(t("Choose the date and time first."))
        };
        if let Some(m) = missing {
            return error.set(Some(m.into()));
        }
        let start = (clinic_side && to != A::Cancelled).then(|| format!("{}:00Z", &time[..16]));
        let said = match (clinic_side, to) {
            (true, A::Booked) => t("Appointment confirmed"),
            (true, A::Pending) => t("Time offered to the patient"),
            (true, _) => t("Request declined"),
            (false, A::Booked) => t("Appointment booked"),
            (false, A::Proposed) => t("Asked the clinic for another time"),
            _ => t("Cancelled"),
        };
        let finish = move |result: Result<(), String>| match result {
            Ok(()) => {
                when.clear();
                why.clear();
                sure.set(false);
                error.set(None);
                ui.say(said.into());
            }
            Err(e) => error.set(Some(e)),
        };
        let Some(done) = done else { return finish(write(patient, clinic, id, to, start, &r)) };
        let answer = AppointmentAnswer { patient, entry: id, status: to, start, reason: r };
        leptos::task::spawn_local(async move {
            finish(crate::api::answer_appointment(&answer).await.map_err(|e| e.to_string()));
            done.run(());
        });
    });
    if clinic_side {
        return view! {
            <div class="inline-form">
                <label for=time_id.clone()>{Tr("Time")}</label>
                <input id=time_id type="datetime-local" prop:value=move || when.get() on:input=move |ev| when.set(event_target_value(&ev))/>
                {button(t("Confirm"), "", act, A::Booked)}
                {button(t("Offer this time"), "secondary", act, A::Pending)}
                <label for=why_id.clone()>{Tr("Reason to decline")}</label>
                <input id=why_id type="text" prop:value=move || why.get() on:input=move |ev| why.set(event_target_value(&ev))/>
                {button(t("Decline"), "secondary", act, A::Cancelled)}
                {error_line(error)}
            </div>
        }
        .into_any();
    }
    let (what, question) = if status == A::Proposed {
        (t("Cancel request"), t("Cancel request?"))
    } else {
        (t("Cancel appointment"), t("Cancel appointment?"))
    };
    view! {
        <div class="inline-form">
            {move || {
                let asking = sure.get();
                let mut buttons = Vec::new();
                if status == A::Pending {
                    buttons.push((t("Accept this time"), "", A::Booked));
                    buttons.push((t("Ask for another time"), "secondary", A::Proposed));
                }
                if asking {
                    buttons.push((t("Yes, cancel"), "", A::Cancelled));
                    buttons.push((t("Keep it"), "secondary", status));
                } else {
                    buttons.push((what, "secondary", A::Cancelled));
                }
                view! {
                    {asking.then(|| view! { <span role="alert">{question}</span> })}
                    {buttons.into_iter().map(|(label, class, to)| button(label, class, act, to)).collect_view()}
                }
            }}
            {error_line(error)}
        </div>
    }
    .into_any()
}

/// Asks a clinic the patient consents to for an appointment.
#[component]
fn RequestForm(patient: PatientId) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let clinics: Vec<(ClinicId, String)> = ui.me.with_untracked(|m| {
        m.iter().flat_map(|m| &m.care).map(|c| (c.id, c.name.clone())).collect()
    });
    // Kept like the text (a rebuild on sync must not switch the clinic).
    let first = clinics.first().map(|c| c.0);
    let chosen = Draft::choice("appt-clinic".into());
    let clinic_now = move || chosen.get_untracked().parse().ok().or(first);
    let reason = Draft::new("appt-reason".into());
    let when = Draft::choice("appt-when".into());
    let error = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (text, preferred) = (reason.get_untracked(), when.get_untracked());
        let (text, preferred) = (text.trim(), preferred.trim());
        let Some(clinic) = clinic_now() else { return };
        if text.is_empty() {
            error.set(Some(ts("Say what the appointment is for.")));
            return;
        }
        let doc = DocKind::ClinicalRecord { patient, clinic }.doc_id();
        let result = replicas::edit(doc, |tx, who, at| {
            let provenance =
                crate::staff::provenance(who, clinic, at).ok_or(RecordError::NoEntry)?;
            record::request_appointment(tx, EntryId::mint(), text, preferred, &provenance)
        });
        match result {
            Ok(()) => {
                reason.clear();
                when.clear();
                error.set(None);
                ui.say(if ui.online_untracked() {
                    ts("Appointment requested")
                } else {
                    t("Appointment request kept on this device; it is sent when you are online")
                        .into()
                });
            }
            Err(e) => error.set(Some(e)),
        }
    };
    (!clinics.is_empty()).then(|| view! {
        <form class="stack" on:submit=submit>
            <h3>{Tr("Request an appointment")}</h3>
            {(clinics.len() > 1).then(|| view! {
                <label for="appt-clinic">{Tr("Clinic")}</label>
                <select id="appt-clinic" on:change=move |ev| chosen.set(event_target_value(&ev))>
                    {clinics.iter().map(|(id, name)| view! {
                        <option value=id.to_string() selected=clinic_now() == Some(*id)>{name.clone()}</option>
                    }).collect_view()}
                </select>
            })}
            <label for="appt-reason">{Tr("What is it for?")}</label>
            <input id="appt-reason" type="text" maxlength="2000" prop:value=move || reason.get() on:input=move |ev| reason.set(event_target_value(&ev))/>
            <label for="appt-when">{Tr("When would suit you? (optional)")}</label>
            <input id="appt-when" type="text" maxlength="300" prop:value=move || when.get() on:input=move |ev| when.set(event_target_value(&ev))/>
            <button type="submit">{Tr("Request an appointment")}</button>
            {error_line(error)}
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
    let load = crate::account::loader(ui, list, error, crate::api::clinic_appointments);
    let done = Callback::new(move |()| load());
    let item = move |a: ClinicAppointment| {
        let words = state(a.status, &a.start, None, false, true);
        let answer = (a.status == A::Proposed).then(|| {
            view! { <Answer patient=a.patient clinic id=a.entry status=a.status clinic_side=true done/> }
                .into_any()
        });
        row(a.patient_name, a.reason, a.preferred, words, answer)
    };
    view! {
        <section class="card" aria-labelledby="clinic-appt-h">
            <h2 id="clinic-appt-h">{Tr("Appointments")}</h2>
            {move || list.get().map(|l| rows(l.into_iter().map(item).collect(), t("No requests or appointments coming up.")))}
            {error_line(error)}
        </section>
    }
}

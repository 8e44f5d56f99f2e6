//! A clinic admin's page (issue 14): what patients read about the clinic
//! (phone, how soon messages are answered), the clinic's appointments to
//! come with its requests to answer (`appointments::ClinicAppointments`),
//! inviting providers and patients, and new sign-in links for the clinic's
//! people. Admins read no clinical record, so they get this page and their
//! account, never a chart.
//! Everything here needs the network: it is the server's directory.

use crate::i18n::{Tr, t, tf, ts};
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::api::{ClinicDetails, ClinicPage, ClinicPerson, Invitation, UserRole};

use crate::account::{issued_link, loader, report};
use crate::api;
use crate::state::Ui;

#[component]
pub fn ClinicAdmin() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let page = RwSignal::new(None::<ClinicPage>);
    let error = RwSignal::new(None::<String>);
    let load = loader(ui, page, error, api::clinic_page);
    // The last link issued, with whom it is for.
    let issued = RwSignal::new(None::<(String, Invitation)>);
    let show_link = move |who: String, result: Result<Invitation, api::ApiError>| match result {
        Ok(invitation) => {
            error.set(None);
            ui.say(tf("Sign-in link made for {0}", &[&who]));
            issued.set(Some((who, invitation)));
            load();
        }
        Err(e) => report(ui, error, e),
    };
    let clinic = ui.me.with_untracked(|m| m.as_ref().and_then(|m| m.clinics.first().map(|c| c.id)));
    view! {
        <Details page error/>
        {clinic.map(|clinic| view! { <crate::appointments::ClinicAppointments clinic/> })}
        <Invite show_link/>
        {move || issued.get().map(|it| issued_link("issued-link", "notice card", it))}
        <section class="card" aria-labelledby="people-h">
            <h2 id="people-h">{Tr("People")}</h2>
            {move || page.get().map(|p| view! {
                <ul class="people">{p.people.into_iter().map(|person| person_item(person, show_link)).collect_view()}</ul>
            })}
        </section>
        {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
    }
}

fn person_item(
    person: ClinicPerson,
    show_link: impl Fn(String, Result<Invitation, api::ApiError>) + Copy + 'static,
) -> impl IntoView {
    let role = t(match person.role {
        UserRole::Admin => "admin",
        UserRole::Provider => "provider",
        _ => "patient",
    });
    let state = if person.enrolled { "" } else { t(" · has not created a passkey yet") };
    let (user, who) = (person.user_id, person.display_name.clone());
    view! {
        <li class="inline-form">
            <strong>{person.display_name}</strong>
            <span>{format!(" {role}{state}")}</span>
            <button type="button" class="secondary" aria-label=tf("New sign-in link for {0}", &[&who]) on:click=move |_| {
                let who = who.clone();
                spawn_local(async move { show_link(who, api::with_reauth(|| api::user_link(user)).await) })
            }>{Tr("New sign-in link")}</button>
        </li>
    }
}

/// The clinic's name and what patients read above each conversation.
#[component]
fn Details(page: RwSignal<Option<ClinicPage>>, error: RwSignal<Option<String>>) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let phone = RwSignal::new(String::new());
    let days = RwSignal::new(String::new());
    let wrong = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        page.with(|p| {
            if let Some(p) = p {
                phone.set(p.contact.phone.clone());
                days.set(p.contact.reply_days.to_string());
            }
        })
    });
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let details = ClinicDetails {
            phone: phone.get_untracked().trim().to_owned(),
            reply_days: days.get_untracked().trim().parse().unwrap_or(0),
        };
        if let Err(e) = details.check() {
            wrong.set(Some(e.into()));
            return;
        }
        wrong.set(None);
        spawn_local(async move {
            match api::set_clinic_details(&details).await {
                Ok(()) => {
                    error.set(None);
                    ui.say(ts("Clinic details saved"));
                }
                Err(e) => report(ui, error, e),
            }
        })
    };
    let name =
        move || page.with(|p| p.as_ref().map(|p| p.contact.name.clone())).unwrap_or_default();
    view! {
        <section class="card" aria-labelledby="clinic-h">
            <h2 id="clinic-h">{name}</h2>
            <p class="muted">{Tr("Patients read these above every conversation with the clinic, with the notice that messages are not for emergencies.")}</p>
            <form class="stack" novalidate on:submit=save>
                <label for="clinic-phone">{Tr("Phone number for patients")}</label>
                <input id="clinic-phone" type="tel" autocomplete="off" prop:value=move || phone.get()
                    on:input=move |ev| { wrong.set(None); phone.set(event_target_value(&ev)) }
                    aria-invalid=crate::patient::invalid(wrong) aria-describedby="clinic-error"/>
                <label for="clinic-days">{Tr("Messages are answered within (working days)")}</label>
                <input id="clinic-days" type="number" min="1" max="14" prop:value=move || days.get()
                    on:input=move |ev| { wrong.set(None); days.set(event_target_value(&ev)) }
                    aria-invalid=crate::patient::invalid(wrong) aria-describedby="clinic-error"/>
                <button type="submit">{Tr("Save")}</button>
            </form>
            {move || wrong.get().map(|e| view! { <p class="error" role="alert" id="clinic-error">{e}</p> })}
        </section>
    }
}

/// Adds a patient (who consents to the clinic) or a provider.
#[component]
fn Invite(
    show_link: impl Fn(String, Result<Invitation, api::ApiError>) + Copy + 'static,
) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let provider = RwSignal::new(false);
    let missing = RwSignal::new(None::<String>);
    let invite = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let who = name.get_untracked().trim().to_owned();
        missing.set(who.is_empty().then(|| ts("Give the person's name.")));
        if who.is_empty() {
            return;
        }
        let role = if provider.get_untracked() { UserRole::Provider } else { UserRole::Patient };
        spawn_local(async move {
            let result = api::with_reauth(|| api::invite(role, &who)).await;
            // What was typed stays in the form if the invitation failed.
            if result.is_ok() {
                name.set(String::new());
            }
            show_link(who, result);
        })
    };
    view! {
        <section class="card" aria-labelledby="invite-h">
            <h2 id="invite-h">{Tr("Invite a patient or a provider")}</h2>
            <form class="inline-form" on:submit=invite>
                <label for="invite-name">{Tr("Name")}</label>
                <input id="invite-name" type="text" autocomplete="off" prop:value=move || name.get()
                    aria-invalid=crate::patient::invalid(missing) aria-describedby="invite-name-error"
                    on:input=move |ev| name.set(event_target_value(&ev))/>
                <fieldset class="choice">
                    <legend class="sr-only">{Tr("Who they are")}</legend>
                    <label><input type="radio" name="invite-role" prop:checked=move || !provider.get()
                        on:change=move |_| provider.set(false)/>{Tr(" Patient")}</label>
                    <label><input type="radio" name="invite-role" prop:checked=move || provider.get()
                        on:change=move |_| provider.set(true)/>{Tr(" Provider")}</label>
                </fieldset>
                <button type="submit">{Tr("Invite")}</button>
            </form>
            {move || missing.get().map(|e| view! { <p class="error" role="alert" id="invite-name-error">{e}</p> })}
        </section>
    }
}

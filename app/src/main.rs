//! The portal's web app. Architecture invariant: only this crate touches
//! web-sys and browser storage.
//!
//! Navigation is state (`Page`) mirrored in the address bar (`route`): each
//! view has its own path, and no patient id or name ever appears in it. An
//! enrollment link (`/enroll#<token>`) is removed from the address bar at once.

mod account;
mod admin;
mod api;
mod appointments;
mod download;
mod drafts;
mod i18n;
mod json;
mod logic;
mod messages;
mod patient;
mod persist;
mod reads;
mod replicas;
mod route;
mod safety_view;
mod session;
mod staff;
mod state;
mod status;
mod summary;
mod sync;
mod todo;
mod vault;
mod webauthn;
mod when;

use crate::i18n::{Tr, t, tf, ts};
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::PatientId;
use shared::api::UserRole;
use shared::schema::Collection;
use wasm_bindgen::JsCast;

use crate::state::Ui;

// No panic hook: the release build aborts on panic without running one
// (`-Cpanic=immediate-abort`, scripts/build-app), so a hook would be bytes
// in the bundle that never run.
fn main() {
    leptos::mount::mount_to_body(App);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Results,
    Medications,
    Messages,
    Health,
    /// Staff only: record results and prescribe.
    Write,
    /// One test's results over time (the test in `Ui::trend`), reached
    /// from Results.
    Trend,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Record(Tab),
    Account,
    /// The record in words, to print, with "Download my record".
    Summary,
    Patients,
    Chart(PatientId, Tab),
    /// A clinic admin's page: the clinic, its people, invitations.
    Clinic,
    /// A provider's work queue.
    Todo,
}

fn register_service_worker() {
    let Some(window) = web_sys::window() else { return };
    let navigator = window.navigator();
    if js_sys::Reflect::has(&navigator, &"serviceWorker".into()).unwrap_or(false) {
        let _ = navigator.service_worker().register("/sw.js");
    }
}

/// An enrollment token from `/enroll#<token>`, removed from the address bar.
fn take_enrollment_token() -> Option<String> {
    let window = web_sys::window()?;
    let location = window.location();
    if location.pathname().ok()? != "/enroll" {
        return None;
    }
    let token = location.hash().ok()?.trim_start_matches('#').to_owned();
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some("/"));
    }
    (!token.is_empty()).then_some(token)
}

thread_local! {
    /// The element in the view that last had the keyboard focus, and its
    /// containers; none once the person clicks or taps in the view.
    static FOCUSED: std::cell::RefCell<Vec<web_sys::Element>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[component]
fn App() -> impl IntoView {
    let ui = Ui::create();
    provide_context(ui);
    let (first, trend) = route::current().unwrap_or((Page::Record(Tab::Results), None));
    let page = ui.page;
    page.set(first);
    ui.trend.set(trend.unwrap_or_default());
    let enrollment = RwSignal::new(take_enrollment_token());
    register_service_worker();
    spawn_local(session::start(ui));
    // In another language, online: its pack again (a release may bring new
    // words); nothing happens unless it changed.
    let lang = ui.language.get_untracked();
    if lang != "en" && ui.online_untracked() {
        spawn_local(async move {
            let _ = i18n::choose(ui, lang).await;
        });
    }
    // After signing out, whoever signs in next starts on their own home
    // page, not on the previous user's last page.
    Effect::new(move |was_in: Option<bool>| {
        let signed_in = ui.me.with(Option::is_some);
        if was_in == Some(true) && !signed_in {
            page.set(route::home(None));
        }
        signed_in
    });
    // Each role on a page it has: providers start on their patient list,
    // admins on their clinic, and an address not for this role goes home.
    let role = move || ui.me.with(|m| m.as_ref().map(|m| m.role));
    Effect::new(move |_| {
        if let Some(r) = role()
            && !route::allowed(page.get_untracked(), r)
        {
            page.set(route::home(Some(r)));
        }
    });
    // The address bar and title follow the page; Back and Forward move it.
    Effect::new(move |first: Option<()>| {
        ui.language.track();
        ui.trend.with(|trend| route::show(page.get(), trend, first.is_none()))
    });
    let _ = window_event_listener(leptos::ev::popstate, move |_| {
        let (to, trend) = route::current().unwrap_or_else(|| (route::home(role()), None));
        ui.trend.set(trend.unwrap_or_default());
        page.set(to);
    });
    // "Sign out once sent": once the server has confirmed every change.
    // A refused change also leaves nothing waiting, but was not sent: the
    // person reads what was not saved (and dismisses it) before sign-out.
    Effect::new(move |_| {
        if ui.sign_out_when_sent.get()
            && ui.connection.get() == state::Connection::Online
            && ui.progress.get().pending_changes == 0
            && !ui.notice.with(|n| matches!(n, Some(state::Notice::Refused(..))))
        {
            spawn_local(session::sign_out(ui));
        }
    });
    // Move focus to the new page's heading (else its content) for keyboard
    // and screen reader users, once the view shows it; the header and
    // navigation stay where they are.
    Effect::new(move |prev: Option<()>| {
        page.track();
        if prev.is_some() {
            request_animation_frame(|| {
                let doc = document();
                let heading = doc.query_selector("main h2").ok().flatten();
                if let Some(el) = heading.or_else(|| doc.get_element_by_id("main")) {
                    let _ = el.set_attribute("tabindex", "-1");
                    let _ = el.unchecked_ref::<web_sys::HtmlElement>().focus();
                }
            });
        }
    });
    // Views are built again when the record changes, and the element with
    // the keyboard focus may go with them: the focus then goes to the
    // element of the same id, or of its nearest container with one (a
    // medication card once its refill form is gone, else the view), so it
    // is never lost to the page.
    Effect::new(move |_| {
        ui.version.track();
        spawn_local(async {
            let doc = document();
            // Still focused, or the person clicked elsewhere: nothing to do.
            if doc.active_element() != doc.body().map(Into::into) {
                return;
            }
            let chain = FOCUSED.with_borrow(Clone::clone);
            if let Some(new) = chain.iter().find_map(|old| doc.get_element_by_id(&old.id())) {
                let _ = new.unchecked_into::<web_sys::HtmlElement>().focus();
            }
        });
    });
    // Built anew in another language when the person picks one (what they
    // are typing is kept in `drafts`).
    move || {
        ui.language.track();
        view! {
        <a class="skip" href="#main">{Tr("Skip to content")}</a>
        <header class="topbar">
            <h1>{Tr("Patient portal")}</h1>
            <status::SyncStatus/>
        </header>
        <Show when=move || ui.me.with(Option::is_some)>
            <Nav page/>
        </Show>
        <Whose/>
        <status::NoticeBanner page/>
        {move || (ui.session_expired.get() && ui.me.with(Option::is_some)).then(|| view! {
            <div class="banner" role="alert">
                {move || if ui.online() {
                    view! {
                        <p>{Tr("Your session has ended. Your changes are kept on this device; sign in again to send them.")}</p>
                        <SignIn/>
                    }.into_any()
                } else {
                    view! { <p>{Tr("Your session has ended. Keep working: your changes stay on this device until you sign in again online.")}</p> }.into_any()
                }}
            </div>
        })}
        <p class="sr-only" role="status">{move || ui.said.get()}</p>
        <main id="main" tabindex="-1" on:focusin=|ev| {
            let mut chain = Vec::new();
            let mut node = ev.target().map(JsCast::unchecked_into::<web_sys::Element>);
            while let Some(el) = node {
                node = el.parent_element();
                chain.push(el);
            }
            FOCUSED.set(chain);
        } on:pointerdown=|_| drop(FOCUSED.take())>
            {move || {
                if let Some(token) = enrollment.get() {
                    return view! { <Enroll token done=enrollment/> }.into_any();
                }
                if !ui.started.get() {
                    return view! { <p class="muted">{Tr("Opening your record…")}</p> }.into_any();
                }
                match ui.me.get() {
                    // A copy sealed under a passkey: the same card asks for it.
                    None => {
                        let sealed = ui.sealed.get();
                        view! {
                            <section class="card">
                                <h2>{if sealed { Tr("Unlock your record") } else { Tr("Your health record, with you offline") }}</h2>
                                <p>{if sealed { Tr("The copy of your record on this device is locked with your passkey.") } else { Tr("Results, prescriptions and messages from every clinic you visit, readable and writable without a network.") }}</p>
                                <SignIn/>
                                <details>
                                    <summary>{Tr("Lost your phone, or no passkey on this device?")}</summary>
                                    <p>{Tr("Ask your clinic for a new sign-in link (a caregiver asks the patient who invited them). With it you create a passkey on this device; it replaces your old passkeys and signs out every device that used them, so a lost phone no longer opens your record.")}</p>
                                </details>
                            </section>
                        }.into_any()
                    }
                    Some(me) => content(ui, page, me).into_any(),
                }
            }}
        </main>
        }
    }
}

fn content(ui: Ui, page: RwSignal<Page>, me: shared::api::Me) -> impl IntoView {
    let staff_clinic = move |patient| staff::clinic_for(ui, &me, patient);
    move || match page.get() {
        Page::Account => view! { <account::Account/> }.into_any(),
        Page::Summary => match ui.me.get_untracked().and_then(|m| m.patient_id) {
            Some(patient) => view! { <download::Summary patient/> }.into_any(),
            None => ().into_any(),
        },
        Page::Patients => view! { <staff::PatientList page/> }.into_any(),
        Page::Clinic => view! { <admin::ClinicAdmin/> }.into_any(),
        Page::Todo => view! { <todo::Todo page/> }.into_any(),
        Page::Chart(patient, tab) => {
            let clinic = staff_clinic(patient);
            // Reactive: a record opened on demand arrives after the page.
            let name = move || {
                ui.version.track();
                reads::patient_data(patient).record.as_ref().map(|r| {
                    let d = r.1.demographics.clone();
                    format!(
                        "{} {}{}",
                        d.given.unwrap_or_default(),
                        d.family.unwrap_or_default(),
                        d.birth_date.map(|b| tf(", born {0}", &[&b])).unwrap_or_default()
                    )
                })
            };
            view! {
                <div class="chart-head">
                    <button type="button" class="link" on:click=move |_| page.set(Page::Patients)>{Tr("← All patients")}</button>
                    <h2>{move || name().unwrap_or_else(|| ts("Patient"))}</h2>
                    {move || (!staff::on_device(ui, patient)).then(|| view! {
                        <p class="banner" role="status">{if ui.online() { Tr("Opening this patient's record…") } else { Tr(staff::NEEDS_NETWORK) }}</p>
                    })}
                    {safety_view::chart_banner(patient)}
                </div>
                <Tabs page patient=Some(patient) tab/>
                {record_tab(patient, tab, clinic)}
            }
            .into_any()
        }
        Page::Record(tab) => match ui.me.get_untracked().and_then(|m| m.patient_id) {
            Some(patient) => record_tab(patient, tab, None).into_any(),
            None => view! { <p class="muted">{Tr("This account has no record of its own.")}</p> }
                .into_any(),
        },
    }
}

fn record_tab(patient: PatientId, tab: Tab, staff: Option<shared::ClinicId>) -> impl IntoView {
    match tab {
        Tab::Results => view! { <patient::Results patient staff/> }.into_any(),
        Tab::Trend => view! { <patient::Trend patient staff/> }.into_any(),
        Tab::Medications => view! { <patient::Medications patient staff/> }.into_any(),
        Tab::Messages => view! { <messages::Messages patient staff/> }.into_any(),
        Tab::Health => view! { <patient::Health patient staff/> }.into_any(),
        Tab::Write => match staff {
            Some(clinic) => view! {
                <staff::RecordResult patient clinic/>
                <staff::Prescribe patient clinic/>
            }
            .into_any(),
            None => {
                view! { <p class="muted">{Tr("Only clinic staff record results and prescriptions.")}</p> }
                    .into_any()
            }
        },
    }
}

/// Where an entry of `collection` of `patient`'s record shows: the tab of
/// the patient's own record, or of a staff member's chart.
pub fn item_page(ui: Ui, patient: PatientId, collection: Collection) -> Page {
    let tab = match collection {
        Collection::Reports | Collection::Observations => Tab::Results,
        Collection::Prescriptions | Collection::RefillRequests => Tab::Medications,
        Collection::Messages => Tab::Messages,
        _ => Tab::Health,
    };
    if ui.me.with_untracked(|m| m.as_ref().is_some_and(|m| m.is_staff())) {
        Page::Chart(patient, tab)
    } else {
        Page::Record(tab)
    }
}

/// The tabs of a staff member's open chart.
#[component]
fn Tabs(page: RwSignal<Page>, patient: Option<PatientId>, tab: Tab) -> impl IntoView {
    let patient = patient.expect("chart tabs need a patient");
    view! {
        <nav class="tabs" aria-label=t("Chart sections")>
            {route::TABS.iter().map(|&(to, _, label)| view! {
                <button type="button" aria-current=(to == tab || (to, tab) == (Tab::Results, Tab::Trend)).then_some("page") on:click=move |_| page.set(Page::Chart(patient, to))>{t(label)}</button>
            }).collect_view()}
        </nav>
    }
}

#[component]
fn Nav(page: RwSignal<Page>) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let item = move |target: Page, label: &'static str| {
        let current = move || {
            let p = page.get();
            let trend = Page::Record(Tab::Trend);
            (p == target
                || matches!((p, target), (Page::Chart(..), Page::Patients))
                || (p == trend && target == Page::Record(Tab::Results)))
            .then_some("page")
        };
        // Results counts what is new since the person last opened it;
        // Messages, what the clinics wrote that is not read yet.
        let new = move || {
            let patient = ui.me.with(|m| m.as_ref().and_then(|m| m.patient_id))?;
            let n = match target {
                Page::Record(Tab::Results) => patient::new_results(ui, patient),
                Page::Record(Tab::Messages) => messages::unread(ui, patient),
                _ => return None,
            };
            let new = target == Page::Record(Tab::Results);
            (n > 0).then(|| if new { tf(" ({0} new)", &[&n]) } else { tf(" ({0} unread)", &[&n]) })
        };
        view! { <button type="button" aria-current=current on:click=move |_| page.set(target)>{label}{new}</button> }
    };
    view! {
        <nav class="tabs main-nav" aria-label=t("Main")>
            {move || {
                let role = ui.me.with(|m| m.as_ref().map(|m| m.role));
                if role == Some(UserRole::Admin) {
                    view! { {item(Page::Clinic, t("Clinic"))} {item(Page::Account, t("Account"))} }.into_any()
                } else if role == Some(UserRole::Provider) {
                    // Only the count is redrawn as the queue changes.
                    let current = move || (page.get() == Page::Todo).then_some("page");
                    let count = move || tf("To do ({0})", &[&todo::items(ui).len()]);
                    view! {
                        <button type="button" id="nav-todo" aria-current=current on:click=move |_| page.set(Page::Todo)>{count}</button>
                        {item(Page::Patients, t("Patients"))} {item(Page::Account, t("Account"))}
                    }.into_any()
                } else {
                    view! {
                        {route::TABS[..4].iter().map(|&(to, _, label)| item(Page::Record(to), t(label))).collect_view()}
                        {item(Page::Summary, t("Summary & download"))}
                        {item(Page::Account, t("Account"))}
                    }
                    .into_any()
                }
            }}
        </nav>
    }
}

/// A caregiver always sees whose record they are reading and writing in.
#[component]
fn Whose() -> impl IntoView {
    let ui = expect_context::<Ui>();
    move || {
        let me = ui.me.get().filter(|m| m.caregiver.is_some())?;
        ui.version.track();
        let d = reads::patient_data(me.patient_id?).record.as_ref()?.1.demographics.clone();
        let name = [d.given, d.family].into_iter().flatten().collect::<Vec<_>>().join(" ");
        Some(
            view! { <p class="whose">{tf("You are viewing {0}'s record, as their caregiver", &[&name])}</p> },
        )
    }
}

#[component]
fn SignIn() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let sign_in = move |_| {
        busy.set(true);
        spawn_local(async move {
            error.set(session::sign_in(ui).await.err());
            busy.set(false);
        });
    };
    view! {
        <div class="signin">
            <button type="button" class="primary" on:click=sign_in disabled=move || busy.get() || !(ui.online() || ui.sealed.get())>
                {move || if ui.sealed.get() { Tr("Unlock with your passkey") } else { Tr("Sign in with a passkey") }}
            </button>
            {move || (!ui.online() && !ui.sealed.get()).then(|| view! { <p class="muted">{Tr("Signing in needs the network.")}</p> })}
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            // The passkey that sealed this copy may be gone for good.
            {move || (error.with(Option::is_some) && ui.sealed.get()).then(|| view! {
                <button type="button" on:click=move |_| spawn_local(session::discard_sealed(ui))>{Tr("Remove this device's locked copy (anything not sent from it is lost)")}</button>
            })}
        </div>
    }
}

#[component]
fn Enroll(token: String, done: RwSignal<Option<String>>) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    // Who sent the link, and for a caregiver whose record it opens: read
    // before anything is created, so nobody makes a passkey for the wrong
    // person's record.
    let invited = RwSignal::new(None::<String>);
    let link = token.clone();
    spawn_local(async move {
        let Ok(i) = api::enroll_invitation(&link).await else { return };
        let by = i.str("invited_by").unwrap_or_else(|| ts("Your clinic"));
        let name = i.str("display_name").unwrap_or_default();
        invited.set(Some(match i.str("patient_name") {
            Some(patient) => tf(
                "{0} invited you, {1}, to see {2}'s health record as a caregiver.",
                &[&by, &name, &patient],
            ),
            None => tf("{0} invited you, {1}, to the patient portal.", &[&by, &name]),
        }));
    });
    let enroll = move |_| {
        let token = token.clone();
        busy.set(true);
        spawn_local(async move {
            let result = async {
                let started = api::enroll_start(&token).await.map_err(|e| e.to_string())?;
                let credential = webauthn::create_credential(started.options).await?;
                api::enroll_finish(&started.ceremony, &credential).await.map_err(|e| e.to_string())
            };
            match result.await {
                Ok(_) => {
                    done.set(None);
                    session::signed_in(ui).await;
                }
                Err(e) => error.set(Some(e)),
            }
            busy.set(false);
        });
    };
    view! {
        <section class="card">
            <h2>{Tr("Create your passkey")}</h2>
            <p class="invited">{move || invited.get().unwrap_or_else(|| ts("You are invited to the patient portal."))}</p>
            <p>{Tr("A passkey signs you in with this device's screen lock: no password.")}</p>
            <p class="muted">{Tr("If your account already has passkeys, the one you create here replaces them: the old ones stop working and every device signed in with them is signed out.")}</p>
            <button type="button" class="primary" on:click=enroll disabled=move || busy.get() || !ui.online()>{Tr("Create a passkey")}</button>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </section>
    }
}

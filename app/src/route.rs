//! Each view's address, so Back, Forward and reload work and a view can be
//! bookmarked. No patient data is ever in an address or a title (both go
//! into the browser's history, which may sync to other devices): a chart's
//! patient travels in its history entry's state, which stays in this tab.

use crate::i18n::{n, t, tf};
use leptos::prelude::*;
use shared::PatientId;
use shared::api::UserRole;
use wasm_bindgen::JsValue;

use crate::{Page, Tab};

/// Each tab of a record: its path and its name, in the order shown (the
/// last, writing, is staff's only).
pub const TABS: [(Tab, &str, &str); 5] = [
    (Tab::Results, "results", n("Results")),
    (Tab::Medications, "medications", n("Medications")),
    (Tab::Messages, "messages", n("Messages")),
    (Tab::Health, "health", n("Allergies & visits")),
    (Tab::Write, "write", n("Record & prescribe")),
];

const PAGES: [(Page, &str, &str); 5] = [
    (Page::Account, "account", n("Account")),
    (Page::Summary, "summary", n("Summary & download")),
    (Page::Patients, "patients", n("Patients")),
    (Page::Clinic, "clinic", n("Clinic")),
    (Page::Todo, "todo", n("To do")),
];

/// A tab by its path; a trend is `results/trend/{code}`, its test's code
/// (a LOINC code, not the patient's data) in the address.
fn tab_of(name: &str) -> Option<(Tab, Option<String>)> {
    if let Some(code) = name.strip_prefix("results/trend/") {
        return Some((Tab::Trend, Some(code.to_owned())));
    }
    TABS.iter().find(|t| t.1 == name).map(|t| (t.0, None))
}

/// The path and title of a page (and of the test a trend shows).
fn address(page: Page, trend: &str) -> (String, &'static str) {
    let tab = |tab: Tab| match tab {
        Tab::Trend => (format!("results/trend/{trend}"), n("Trend")),
        _ => {
            TABS.iter().find(|t| t.0 == tab).map_or((String::new(), ""), |t| (t.1.to_owned(), t.2))
        }
    };
    match page {
        Page::Record(t) => (format!("/{}", tab(t).0), tab(t).1),
        Page::Chart(_, t) => (format!("/chart/{}", tab(t).0), tab(t).1),
        other => PAGES
            .iter()
            .find(|p| p.0 == other)
            .map_or(("/".into(), ""), |p| (format!("/{}", p.1), p.2)),
    }
}

/// The page the address bar names, if any, and the test of a trend.
pub fn current() -> Option<(Page, Option<String>)> {
    let window = window();
    let path = window.location().pathname().ok()?;
    let path = path.trim_start_matches('/');
    if let Some(tab) = path.strip_prefix("chart/") {
        let patient =
            window.history().ok()?.state().ok()?.as_string()?.parse::<PatientId>().ok()?;
        let (tab, trend) = tab_of(tab)?;
        return Some((Page::Chart(patient, tab), trend));
    }
    tab_of(path)
        .map(|(tab, trend)| (Page::Record(tab), trend))
        .or_else(|| PAGES.iter().find(|p| p.1 == path).map(|p| (p.0, None)))
}

/// The page a person in `role` starts on.
pub fn home(role: Option<UserRole>) -> Page {
    match role {
        Some(UserRole::Provider) => Page::Patients,
        Some(UserRole::Admin) => Page::Clinic,
        _ => Page::Record(Tab::Results),
    }
}

/// Whether `role` has the page: an address typed or kept from someone
/// else's session opens the person's own home page instead.
pub fn allowed(page: Page, role: UserRole) -> bool {
    let patient_side = matches!(role, UserRole::Patient | UserRole::Caregiver);
    match page {
        Page::Account => true,
        Page::Record(tab) => tab != Tab::Write && patient_side,
        Page::Summary => patient_side,
        Page::Patients | Page::Chart(..) | Page::Todo => role == UserRole::Provider,
        Page::Clinic => role == UserRole::Admin,
    }
}

/// Puts `page` in the title and, unless it is the first page shown, in the
/// address bar as a new history entry (nothing to do when Back or Forward
/// brought it: its address is there already). The first page keeps the
/// address the browser loaded: rewriting it while the page is still loading
/// left a test's wait for the load event hanging now and then.
pub fn show(page: Page, trend: &str, first: bool) {
    let (path, title) = address(page, trend);
    let window = window();
    document().set_title(&tf("{0} · Patient portal", &[&t(title)]));
    let Ok(history) = window.history() else { return };
    let here = current().is_some_and(|(p, _)| p == page);
    if first || (here && window.location().pathname().ok().as_deref() == Some(&*path)) {
        return;
    }
    let state = match page {
        Page::Chart(patient, _) => JsValue::from_str(&patient.to_string()),
        _ => JsValue::NULL,
    };
    let _ = history.push_state_with_url(&state, "", Some(&path));
}

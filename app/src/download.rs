//! "Download my record": the whole record as a FHIR R4 Bundle, built on
//! the device from its own copy (so offline too) by the same
//! `shared::fhir::export` the server's `portal export` runs; and a summary
//! page that prints well.
//!
//! The server hears of a download when the device is next online: the
//! times owed are kept on the device (`persist`, key `downloads`) until
//! `POST /api/audit/downloads` takes them.

use crate::i18n::{Tr, t, tf};
use shared::vec_map::VecMap;
use std::cell::RefCell;

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::PatientId;
use shared::catalog;
use shared::fhir::export::{self, PatientData};
use shared::schema::RangeFlag;
use shared::status::ResultStatus;
use wasm_bindgen::{JsCast, JsValue};

use crate::api::{self, ApiError};
use crate::logic::{self, Order};
use crate::state::Ui;
use crate::{persist, reads};

thread_local! {
    /// Download times (ms) the server has not been told of yet.
    static OWED: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    /// A report is being sent: one sender at a time.
    static SENDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What a previous visit left owed (`persist::load`).
pub fn restore(owed: Vec<f64>) {
    OWED.set(owed);
}

/// Signed out, or someone else signed in: the list went with the copy.
pub fn forget() {
    OWED.take();
}

/// The record on this device as `shared::fhir::export` takes it, with the
/// clinic names this device knows from the directory (the server's export
/// uses the directory's too).
fn export_data(ui: Ui, patient: PatientId) -> PatientData {
    let data = reads::read_patient_data(patient);
    let mut clinic_names = VecMap::new();
    ui.consents.with_untracked(|cs| {
        for c in cs.iter().filter(|c| !c.clinic_name.is_empty()) {
            clinic_names.insert(c.clinic_id, c.clinic_name.clone());
        }
    });
    // Inserted one by one: collecting into a map would sort first, with a
    // sort compiled for each entry type.
    let mut export = PatientData {
        patient,
        own: data.record.map(|r| r.1).unwrap_or_default(),
        clinical: VecMap::new(),
        threads: VecMap::new(),
        clinic_names,
    };
    for (_, clinic, record) in data.clinical {
        export.clinical.insert(clinic, record);
    }
    for (_, clinic, thread) in data.threads {
        export.threads.insert(clinic, thread);
    }
    export
}

/// Today as YYYY-MM-DD, in the person's time zone.
fn today() -> String {
    let now = js_sys::Date::new_0();
    let (y, m, d) = (now.get_full_year(), now.get_month() + 1, now.get_date());
    format!("{y:04}-{m:02}-{d:02}")
}

/// Builds the Bundle and hands it to the browser as
/// `health-record-YYYY-MM-DD.json`; the download is owed to the access log.
fn download(ui: Ui, patient: PatientId) -> Option<()> {
    let window = web_sys::window()?;
    let base = format!("{}/fhir/R4", window.location().origin().ok()?);
    let json = export::bundle("collection", &base, export::resources(&export_data(ui, patient)))
        .to_json_string();
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/fhir+json");
    let parts = js_sys::Array::of1(&JsValue::from_str(&json));
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options).ok()?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).ok()?;
    let link: web_sys::HtmlAnchorElement = document().create_element("a").ok()?.unchecked_into();
    link.set_href(&url);
    link.set_download(&format!("health-record-{}.json", today()));
    link.click();
    // The browser has taken the file once the click is handled.
    spawn_local(async move {
        let _ = web_sys::Url::revoke_object_url(&url);
    });
    OWED.with_borrow_mut(|owed| owed.push(js_sys::Date::now()));
    persist::save_downloads(&OWED.with_borrow(Clone::clone));
    if ui.online_untracked() {
        spawn_local(send_owed());
    }
    Some(())
}

/// Tells the server of every download owed, oldest first. A report the
/// server refuses (a device clock far ahead) is dropped: it would be
/// refused forever; offline or a failure keeps it for next time.
pub async fn send_owed() {
    if SENDING.replace(true) {
        return;
    }
    while let Some(at) = OWED.with_borrow(|owed| owed.first().copied()) {
        match api::report_download(at as i64).await {
            Ok(()) | Err(ApiError::Failed(400, _)) => {
                OWED.with_borrow_mut(|owed| owed.retain(|t| *t != at));
                persist::save_downloads(&OWED.with_borrow(Clone::clone));
            }
            Err(_) => break,
        }
    }
    SENDING.set(false);
}

/// Not marked entered in error (every status type spells it alike).
fn kept(code: &str) -> bool {
    code != ResultStatus::EnteredInError.code()
}

/// `text` into HTML: people's words may hold `<` or `&`.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// One table of the summary, as HTML: a heading, column names and rows of
/// text (escaped). Written as text rather than as views: a summary of years
/// holds thousands of cells that never change once shown, and a view of
/// them cost the app's bundle three times the bytes.
fn table(out: &mut String, id: &str, title: &str, columns: &[&str], rows: &[Vec<String>]) {
    out.push_str(&format!(
        "<section class=\"summary-part\" aria-labelledby=\"{id}\"><h3 id=\"{id}\">{title}</h3>"
    ));
    if rows.is_empty() {
        out.push_str(&format!("<p class=\"muted\">{}</p></section>", t("None recorded.")));
        return;
    }
    out.push_str("<div class=\"table-wrap\"><table><thead><tr>");
    for column in columns {
        out.push_str(&format!("<th scope=\"col\">{column}</th>"));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        // Each cell names its column, for the phone layout (style.css).
        for (cell, column) in row.iter().zip(columns) {
            out.push_str(&format!("<td data-label=\"{column}\">"));
            escape_into(out, cell);
            out.push_str("</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div></section>");
}

/// Sorted by the first column, then as found.
fn sorted(mut rows: Vec<Vec<String>>, order: Order) -> Vec<Vec<String>> {
    logic::sort_by_key(&mut rows, order, |r| r[0].clone());
    rows
}

/// Newest first by the stamp in the first column, which is then written
/// for people by `show` (`when::day`, or `when::clinic_time` for a visit).
fn newest(rows: Vec<Vec<String>>, show: fn(&str) -> String) -> Vec<Vec<String>> {
    let mut rows = sorted(rows, Order::Descending);
    for row in &mut rows {
        row[0] = show(&row[0]);
    }
    rows
}

/// The record's tables in words, as HTML. Entries marked entered in error
/// are left out.
fn summary_tables(data: &reads::PatientData) -> String {
    let (mut results, mut meds, mut allergies, mut shots, mut visits) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (_, _, record) in &data.clinical {
        for o in record.observations.values().filter(|o| kept(o.status.code())) {
            let unit = crate::patient::unit_words(o.unit.as_deref().unwrap_or_default());
            let value = match (o.value_quantity, &o.value_string) {
                (Some(v), _) => format!("{} {unit}", logic::number(v)),
                (None, Some(s)) => s.clone(),
                _ => String::new(),
            };
            let range = if o.reference_low.is_some() || o.reference_high.is_some() {
                format!("{} {unit}", logic::range(o.reference_low, o.reference_high))
            } else {
                String::new()
            };
            let test = catalog::plain_name(&o.loinc)
                .map_or_else(|| o.display.clone(), |name| t(name).to_owned());
            // The words of the results view's flags (`safety_view::flag`).
            let flag = match (o.critical(), o.out_of_range()) {
                (Some(RangeFlag::High), _) => t("Critical high"),
                (Some(RangeFlag::Low), _) => t("Critical low"),
                (None, Some(RangeFlag::High)) => t("High"),
                (None, Some(RangeFlag::Low)) => t("Low"),
                (None, None) => "",
            };
            let flag = flag.to_owned();
            results.push(vec![o.effective.clone(), test, value, range, flag]);
        }
        let clinic = |p: &shared::schema::Provenance| p.clinic_name.clone();
        for m in record.prescriptions.values().filter(|m| kept(m.status.code())) {
            let date = m.authored.clone();
            let status = t(m.status.code()).to_owned();
            meds.push(vec![
                date,
                m.display.clone(),
                m.dosage.clone(),
                status,
                clinic(&m.provenance),
            ]);
        }
        for a in record.allergies.values().filter(|a| kept(a.status.code())) {
            let what = format!("{} ({})", a.reaction, t(a.severity.code()));
            let status = t(a.status.code()).to_owned();
            allergies.push(vec![a.substance.clone(), what, status, clinic(&a.provenance)]);
        }
        for i in record.immunizations.values().filter(|i| kept(i.status.code())) {
            let date = i.occurrence.clone();
            let status = t(i.status.code()).to_owned();
            shots.push(vec![date, i.vaccine.clone(), status, clinic(&i.provenance)]);
        }
        for a in record.appointments.values().filter(|a| kept(a.status.code())) {
            let status = t(a.status.code()).to_owned();
            visits.push(vec![a.start.clone(), a.reason.clone(), status, clinic(&a.provenance)]);
        }
    }
    let mut html = String::new();
    let results = newest(results, crate::when::day);
    table(
        &mut html,
        "sum-results",
        t("Results"),
        &[t("Date"), t("Test"), t("Result"), t("Reference range"), t("Flag")],
        &results,
    );
    let meds = newest(meds, crate::when::day);
    table(
        &mut html,
        "sum-meds",
        t("Medications"),
        &[t("Prescribed"), t("Medication"), t("Dosage"), t("Status"), t("Clinic")],
        &meds,
    );
    let allergies = sorted(allergies, Order::Ascending);
    table(
        &mut html,
        "sum-allergies",
        t("Allergies"),
        &[t("Substance"), t("Reaction"), t("Status"), t("Clinic")],
        &allergies,
    );
    let shots = newest(shots, crate::when::day);
    table(
        &mut html,
        "sum-imm",
        t("Immunizations"),
        &[t("Date"), t("Vaccine"), t("Status"), t("Clinic")],
        &shots,
    );
    let visits = newest(visits, crate::when::clinic_time);
    table(
        &mut html,
        "sum-appt",
        t("Appointments"),
        &[t("When"), t("Reason"), t("Status"), t("Clinic")],
        &visits,
    );
    html
}

/// The summary page: the record in words, for reading and printing, with
/// the Bundle download.
#[component]
pub fn Summary(patient: PatientId) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let may_download = ui.me.with_untracked(|m| m.as_ref().is_some_and(|m| !m.is_staff()));
    let data = move || {
        ui.version.track();
        reads::patient_data(patient)
    };
    let who = move || {
        let d = data().record.as_ref().map(|r| r.1.demographics.clone()).unwrap_or_default();
        let born = d.birth_date.map(|b| tf(", born {0}", &[&b])).unwrap_or_default();
        format!("{} {}{born}", d.given.unwrap_or_default(), d.family.unwrap_or_default())
    };
    let copy = move || {
        let synced =
            ui.last_synced.get().map(|s| tf(" (last synced {0})", &[&crate::when::moment(&s)]));
        tf("From this device's copy, {0}{1}", &[&today(), &synced.unwrap_or_default()])
    };
    view! {
        <section class="card summary" aria-labelledby="summary-h">
            <h2 id="summary-h">{Tr("Health record summary")}</h2>
            <p><strong>{who}</strong></p>
            <p class="muted">{copy}</p>
            <div class="no-print actions">
                {may_download.then(|| view! {
                    <button type="button" class="primary" on:click=move |_| { download(ui, patient); }>{Tr("Download my record (FHIR)")}</button>
                })}
                <button type="button" class="secondary" on:click=move |_| { let _ = window().print(); }>{Tr("Print")}</button>
            </div>
            <div inner_html=move || summary_tables(&data())></div>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_cells_are_text_never_markup() {
        let rows = vec![vec!["2026-01-02".into(), "<img src=x onerror=alert(1)> & \"co\"".into()]];
        let mut html = String::new();
        table(&mut html, "t", "Tests", &["Date", "Test"], &rows);
        assert!(html.contains(
            "<td data-label=\"Test\">&lt;img src=x onerror=alert(1)&gt; &amp; &quot;co&quot;</td>"
        ));
        assert!(!html.contains("<img"));
        let mut empty = String::new();
        table(&mut empty, "t", "Tests", &["Date"], &[]);
        assert!(empty.contains("None recorded."));
    }
}

//! The record views, shared by patients (their own record) and clinic staff
//! (a patient's chart, with their clinic's write controls).

use crate::i18n::{Tr, n, t, tf, ts};
use leptos::prelude::*;
use shared::catalog;
use shared::record::{self};
use shared::schema::{Collection, DocKind, Observation, Prescription, RefillRequest};
use shared::status::{AllergyStatus, PrescriptionStatus, RefillStatus, ResultStatus};
use shared::{ClinicId, DocId, EntryId, PatientId};

use crate::drafts::{self, Draft};
use crate::logic::{self, Group, Order};
use crate::reads::{self, PatientData};
use crate::replicas;
use crate::state::Ui;
use crate::when;
use shared::vec_map::VecMap;

/// Where staff write: `Some(clinic)` in a chart opened by that clinic's staff.
pub type StaffClinic = Option<ClinicId>;

fn status_conflict(doc: DocId, collection: Collection, id: &str) -> impl IntoView + use<> {
    let values = reads::field_values(doc, collection, id, "status");
    (values.len() > 1).then(|| {
        view! {
            <p class="conflict" role="note">
                {Tr("Changed on two devices at the same time; both values are kept for review: ")}
                <strong>{values.join(" | ")}</strong>
            </p>
        }
    })
}

/// `aria-invalid` of a form's field while the form shows `error`, which the
/// field names in its `aria-describedby` (the error's id: the field's id
/// and `-error`).
pub fn invalid(
    error: RwSignal<Option<String>>,
) -> impl Fn() -> Option<&'static str> + Copy + Send + Sync + 'static {
    move || error.with(Option::is_some).then_some("true")
}

/// Marks an entry of the staff's own clinic entered-in-error, with a reason;
/// `what` names the entry to assistive technology.
#[component]
fn ErrorMarker(doc: DocId, collection: Collection, id: String, what: String) -> impl IntoView {
    let input_id = format!("eie-{id}");
    let button_id = format!("{input_id}-open");
    let error_id = format!("{input_id}-error");
    // Open while a reason is being written, also across rebuilds.
    let reason = Draft::new(input_id.clone());
    let open = RwSignal::new(!reason.get_untracked().is_empty());
    let what_said = StoredValue::new(what.clone());
    let error = RwSignal::new(None::<String>);
    let entry: EntryId = id.parse().expect("entry ids are UUIDs");
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let why = reason.get_untracked().trim().to_owned();
        if why.is_empty() {
            error.set(Some(ts("Give a reason: it stays in the record.")));
            return;
        }
        let code = ResultStatus::EnteredInError.code();
        let result = replicas::edit(doc, |tx, who, at| {
            record::change_status(tx, collection, entry, code, &why, who.user, at)
        });
        match result {
            Ok(()) => {
                open.set(false);
                reason.clear();
                error.set(None);
                expect_context::<Ui>()
                    .say(what_said.with_value(|w| tf("{0} marked entered in error", &[&w])));
            }
            Err(e) => error.set(Some(e)),
        }
    };
    let to_input = input_id.clone();
    let to_button = StoredValue::new(button_id.clone());
    let cancel = move |_| {
        open.set(false);
        reason.clear();
        error.set(None);
        drafts::focus_soon(to_button.get_value());
    };
    view! {
        <Show when=move || open.get() fallback=move || {
            let to_input = to_input.clone();
            view! {
                <button type="button" class="link" id=button_id.clone() aria-label=tf("Mark entered in error: {0}", &[&what])
                    on:click=move |_| { open.set(true); drafts::focus_soon(to_input.clone()); }>{Tr("Mark entered in error")}</button>
            }
        }>
            <form class="inline-form" on:submit=submit>
                <label for=input_id.clone()>{Tr("Reason (kept in the record)")}</label>
                <input id=input_id.clone() type="text" required prop:value=move || reason.get()
                    aria-invalid=invalid(error) aria-describedby=error_id.clone()
                    on:input=move |ev| reason.set(event_target_value(&ev))/>
                <button type="submit">{Tr("Mark entered in error")}</button>
                <button type="button" class="secondary" on:click=cancel>{Tr("Cancel")}</button>
                {let id = error_id.clone(); move || error.get().map(|e| view! { <p class="error" role="alert" id=id.clone()>{e}</p> })}
            </form>
        </Show>
    }
}

fn observation_row(doc: DocId, id: String, obs: Observation, editable: bool) -> impl IntoView {
    let error = obs.status == ResultStatus::EnteredInError;
    let value = value_text(&obs);
    let reason = obs.status_reason.clone().unwrap_or_default();
    let what = format!("{} {value}", test_name(&obs));
    view! {
        <tr class:struck=error>
            <th scope="row">{name_cell(&obs)}
                {(obs.status == ResultStatus::Amended).then(|| view! { <span class="tag">{Tr("amended")}</span> })}
            </th>
            <td class="value">{value}</td>
            <td>{(!error).then(|| crate::safety_view::flag(&obs))}</td>
            <td class="range" data-label=t("Range")>{range_text(&obs)}</td>
            <td>
                {error.then(|| view! { <span class="tag error-tag">{tf("Entered in error: {0}", &[&reason])}</span> })}
                {status_conflict(doc, Collection::Observations, &id)}
                {(editable && !error).then(|| view! { <ErrorMarker doc collection=Collection::Observations id=id.clone() what=what.clone()/> })}
            </td>
        </tr>
    }
}

fn group_view(doc: DocId, clinic_name: String, group: Group, editable: bool) -> impl IntoView {
    let status = group.report.as_ref().map(|r| r.status);
    view! {
        <article class="panel">
            <h3>{group.title.clone()}</h3>
            <p class="meta">
                {when::day(&group.effective)} " · " {clinic_name}
                {(status == Some(ResultStatus::EnteredInError)).then(|| view! { " · " <span class="tag error-tag">{Tr("Entered in error")}</span> })}
            </p>
            <div class="table-wrap">
            <table>
                <thead><tr><th scope="col">{Tr("Test")}</th><th scope="col">{Tr("Result")}</th><th scope="col">{Tr("Flag")}</th><th scope="col">{Tr("Reference range")}</th><th scope="col"><span class="sr-only">{Tr("Status")}</span></th></tr></thead>
                <tbody>
                    {group.observations.into_iter().map(|(id, obs)| observation_row(doc, id, obs, editable)).collect_view()}
                </tbody>
            </table>
            </div>
        </article>
    }
}

/// How many result panels the results list shows at first, and adds per "Show older results".
const RESULTS_PAGE: usize = 25;

/// Sets the `record-rendered` performance mark (milliseconds since navigation
/// start) once per page load, when the results list first shows entries: the
/// cold-open benchmark (e2e `open-bench`) reads it. Set in a task after the
/// current render, so the rows are in the document by then.
fn mark_record_rendered() {
    thread_local! { static MARKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) }; }
    if MARKED.replace(true) {
        return;
    }
    leptos::task::spawn_local(async { mark("record-rendered") });
}

/// Sets a performance mark (the cold-open benchmark reads them).
pub fn mark(name: &str) {
    if let Some(performance) = web_sys::window().and_then(|w| w.performance()) {
        let _ = performance.mark(name);
    }
}

/// The name patients know for a test, else its coded name.
fn test_name(obs: &Observation) -> String {
    catalog::plain_name(&obs.loinc).map_or_else(|| obs.display.clone(), |name| t(name).to_owned())
}

/// The name patients know, with the coded one beside it for the record.
fn name_cell(obs: &Observation) -> impl IntoView + use<> {
    let coded = catalog::plain_name(&obs.loinc)
        .map(|_| view! { <span class="coded">{obs.display.clone()}</span> });
    (test_name(obs), coded)
}

/// Each test's results from every clinic, newest first; entered-in-error
/// left out. The summary's rows and the trend's points.
pub fn by_test(data: &PatientData) -> VecMap<String, Vec<Observation>> {
    let mut out: VecMap<String, Vec<Observation>> = VecMap::new();
    for (_, _, record) in &data.clinical {
        for obs in record.observations.values().filter(|o| o.status != ResultStatus::EnteredInError)
        {
            out.get_or_insert_with(obs.loinc.clone(), Vec::new).push(obs.clone());
        }
    }
    for results in out.values_mut() {
        logic::sort_by_key(results, Order::Descending, |o| o.effective.clone());
    }
    out
}

/// The test whose trend matters most for this patient: the most recent
/// out-of-range result, else the test measured most often.
fn main_test(tests: &VecMap<String, Vec<Observation>>) -> String {
    let numeric = || tests.iter().filter(|(_, r)| r[0].value_quantity.is_some());
    numeric()
        .filter(|(_, r)| r[0].out_of_range().is_some())
        .max_by_key(|(_, r)| r[0].effective.clone())
        .or_else(|| numeric().max_by_key(|(_, r)| r.len()))
        .map(|(code, _)| code.clone())
        .unwrap_or_default()
}

/// How the latest value moved since the one before, in words.
fn direction(results: &[Observation]) -> String {
    let value = |i: usize| results.get(i).and_then(|o| o.value_quantity);
    match (value(0), value(1)) {
        (Some(now), Some(before)) if now != before => {
            let from = logic::number(before);
            if now > before { tf("up from {0}", &[&from]) } else { tf("down from {0}", &[&from]) }
        }
        (Some(_), Some(_)) => ts("unchanged"),
        _ => String::new(),
    }
}

/// A unit as people write it, in their language ("thousand/µL").
pub fn unit_words(ucum: &str) -> &str {
    match catalog::readable_unit(ucum) {
        "thousand/µL" => t("thousand/µL"),
        "million/µL" => t("million/µL"),
        other => other,
    }
}

/// A result's value and unit in words ("6.6 %", "negative").
fn value_text(obs: &Observation) -> String {
    let unit = unit_words(obs.unit.as_deref().unwrap_or_default());
    match (obs.value_quantity, &obs.value_string) {
        (Some(v), _) => format!("{} {unit}", logic::number(v)),
        (None, Some(s)) => s.clone(),
        _ => "—".into(),
    }
}

/// A result's reference range with its unit, or nothing.
fn range_text(obs: &Observation) -> String {
    if obs.reference_low.is_none() && obs.reference_high.is_none() {
        return String::new();
    }
    let unit = unit_words(obs.unit.as_deref().unwrap_or_default());
    format!("{} {unit}", logic::range(obs.reference_low, obs.reference_high))
}

/// Results not yet seen on this device: recorded by someone else after
/// the person last opened Results.
fn is_new(obs: &Observation, seen: &str) -> bool {
    !seen.is_empty() && obs.provenance.recorded.as_str() > seen
}

/// How many results are new since the person last opened Results (for the
/// navigation).
pub fn new_results(ui: Ui, patient: PatientId) -> usize {
    ui.version.track();
    let seen = ui.seen_results.get();
    let data = reads::patient_data(patient);
    data.clinical
        .iter()
        .flat_map(|(_, _, r)| r.observations.values())
        .filter(|o| o.status != ResultStatus::EnteredInError && is_new(o, &seen))
        .count()
}

/// Opens the trend of `code` in the view the person is in (their record or
/// a chart).
pub fn open_trend(ui: Ui, code: String) {
    ui.trend.set(code);
    ui.page.update(|p| {
        *p = match *p {
            crate::Page::Chart(patient, _) => crate::Page::Chart(patient, crate::Tab::Trend),
            _ => crate::Page::Record(crate::Tab::Trend),
        }
    });
}

/// The latest result of each test: value, flag, the move since the one
/// before, when, and a way to its trend. Newest first.
fn latest_results(
    ui: Ui,
    tests: &VecMap<String, Vec<Observation>>,
    seen: &str,
) -> impl IntoView + use<> {
    let mut rows: Vec<(&String, &Vec<Observation>)> = tests.iter().collect();
    logic::sort_by_key(&mut rows, Order::Descending, |r| r.1[0].effective.clone());
    let rows = rows
        .into_iter()
        .map(|(code, results)| {
            let latest = &results[0];
            let name = test_name(latest);
            let label = tf("View trend of {0}", &[&name]);
            let code = code.clone();
            let numeric = latest.value_quantity.is_some();
            view! {
                <tr data-n=results.len()>
                    <th scope="row">{name_cell(latest)}{is_new(latest, seen).then(|| view! { <span class="tag new">{Tr("new")}</span> })}</th>
                    <td class="value">{value_text(latest)}</td>
                    <td>{crate::safety_view::flag(latest)}</td>
                    <td class="range" data-label=t("Range")>{range_text(latest)}</td>
                    <td>{direction(results)}</td>
                    <td>{when::day(&latest.effective)}</td>
                    <td>{numeric.then(|| view! {
                        <button type="button" class="link" aria-label=label on:click=move |_| open_trend(ui, code.clone())>{Tr("View trend")}</button>
                    })}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <article class="panel">
            <div class="table-wrap">
            <table>
                <thead><tr><th scope="col">{Tr("Test")}</th><th scope="col">{Tr("Latest")}</th><th scope="col">{Tr("Flag")}</th><th scope="col">{Tr("Reference range")}</th><th scope="col">{Tr("Since the one before")}</th><th scope="col">{Tr("Date")}</th><th scope="col"><span class="sr-only">{Tr("Trend")}</span></th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
            </div>
        </article>
    }
}

#[component]
pub fn Results(patient: PatientId, staff: StaffClinic) -> impl IntoView {
    let ui = expect_context::<Ui>();
    // What was new when the person came is marked for this visit; what
    // arrives while they look is marked too. Seen once they leave.
    // A first visit on this device marks what arrives during it.
    let seen = Some(ui.seen_results.get_untracked())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(replicas::now);
    if staff.is_none() {
        let looked = move || {
            ui.seen_results.set(replicas::now());
            crate::persist::save_seen_results(&ui.seen_results.get_untracked());
        };
        looked();
        on_cleanup(looked);
    }
    // Newest first, a page at a time: a long record (years of results) would
    // otherwise build tens of thousands of elements before anything shows.
    let shown = RwSignal::new(RESULTS_PAGE);
    let search = RwSignal::new(String::new());
    // Every panel comes a frame after the summary: the first screen of a
    // long record shows without building them.
    let panels_now = RwSignal::new(false);
    request_animation_frame(move || panels_now.set(true));
    view! {
        <section class="card" aria-labelledby="results-h">
            <h2 id="results-h">{Tr("Results")}</h2>
            {move || {
                ui.version.track();
                let data = reads::patient_data(patient);
                let tests = by_test(&data);
                if tests.is_empty() {
                    return view! { <p class="muted">{Tr("No results on this device yet.")}</p> }.into_any();
                }
                mark_record_rendered();
                view! {
                    <h3>{Tr("Latest results")}</h3>
                    {latest_results(ui, &tests, &seen)}
                }
                .into_any()
            }}
        </section>
        <section class="card" aria-labelledby="history-h">
            <h2 id="history-h">{Tr("All results")}</h2>
            <div class="filters">
                <label for="results-search">{Tr("Find results by test, clinic or date")}</label>
                <input id="results-search" type="search" placeholder=t("e.g. potassium, Northgate, 2026-03") prop:value=search on:input=move |ev| search.set(event_target_value(&ev))/>
            </div>
            {move || {
                ui.version.track();
                // Not from a summary: it holds only the latest results.
                if !panels_now.get() || reads::first_only() {
                    return ().into_any();
                }
                let data = reads::patient_data(patient);
                let words = search.get().to_lowercase();
                // Every word must match the panel's test names, its clinic or its date.
                let wanted = |g: &Group, clinic: &str| {
                    if words.is_empty() {
                        return true;
                    }
                    let mut text = format!("{} {} {}", g.title, clinic, g.effective);
                    for (_, o) in &g.observations {
                        text.push(' ');
                        text.push_str(&test_name(o));
                    }
                    let text = text.to_lowercase();
                    words.split_whitespace().all(|w| text.contains(w))
                };
                let mut groups: Vec<(DocId, String, Group)> = data
                    .clinical
                    .iter()
                    .flat_map(|(doc, clinic, record)| {
                        let name = reads::clinic_name(ui, *clinic, Some(&data));
                        logic::group_results(record).into_iter().map(move |g| (*doc, name.clone(), g))
                    })
                    .filter(|g| wanted(&g.2, &g.1))
                    .collect();
                logic::sort_by_key(&mut groups, Order::Descending, |g| g.2.effective.clone());
                if groups.is_empty() {
                    return view! { <p class="muted">{Tr("No results match.")}</p> }.into_any();
                }
                let hidden = groups.len().saturating_sub(shown.get());
                let panels = groups
                    .into_iter()
                    .take(shown.get())
                    .map(|(doc, clinic, g)| {
                        let editable = staff.is_some_and(|c| data.clinical.iter().any(|x| x.0 == doc && x.1 == c));
                        group_view(doc, clinic, g, editable)
                    })
                    .collect_view();
                view! {
                    {panels}
                    {(hidden > 0).then(|| view! {
                        <button type="button" class="secondary" on:click=move |_| shown.update(|n| *n += RESULTS_PAGE)>
                            {tf("Show older results ({0} more)", &[&hidden])}
                        </button>
                    })}
                }
                .into_any()
            }}
        </section>
    }
}

/// One test's results over time: its chart with the reference band, the
/// latest value and its direction in words, and the same as a table.
#[component]
pub fn Trend(patient: PatientId, staff: StaffClinic) -> impl IntoView {
    let ui = expect_context::<Ui>();
    view! {
        <section class="card" aria-labelledby="trend-h">
            <button type="button" class="link" on:click=move |_| {
                ui.page.update(|p| *p = match *p {
                    crate::Page::Chart(patient, _) => crate::Page::Chart(patient, crate::Tab::Results),
                    _ => crate::Page::Record(crate::Tab::Results),
                });
            }>{Tr("← All results")}</button>
            {move || {
                ui.version.track();
                let data = reads::patient_data(patient);
                let tests = by_test(&data);
                let wanted = ui.trend.get();
                let code = if tests.get(&wanted).is_some_and(|r| r[0].value_quantity.is_some()) { wanted } else { main_test(&tests) };
                let Some(results) = tests.get(&code) else {
                    return view! { <h2 id="trend-h">{Tr("Trend")}</h2><p class="muted">{Tr("No numeric results to chart yet.")}</p> }.into_any();
                };
                let points: Vec<&Observation> = results.iter().rev().filter(|o| o.value_quantity.is_some()).collect();
                let name = test_name(&results[0]);
                let options = tests
                    .iter()
                    .filter(|(_, r)| r[0].value_quantity.is_some())
                    .map(|(c, r)| view! { <option value=c.clone() selected=*c == code>{format!("{} ({})", test_name(&r[0]), r.len())}</option> })
                    .collect_view();
                let latest = points[points.len() - 1];
                let said =  tf("Latest {0} on {1}{2}", &[&value_text(latest), &when::day(&latest.effective), &(match direction(results).as_str() { "" => String::new(), d => format!(", {d}") })]);
                view! {
                    <h2 id="trend-h">{tf("{0} over time", &[&name])}</h2>
                    <label for="trend-test">{Tr("Test")}</label>
                    <select id="trend-test" on:change=move |ev| open_trend(ui, event_target_value(&ev))>{options}</select>
                    <p class="latest"><strong>{said.clone()}</strong></p>
                    {trend_chart(&name, &points, &said)}
                    <details class="as-table">
                        <summary>{Tr("Show as table")}</summary>
                        <div class="table-wrap"><table>
                            <thead><tr><th scope="col">{Tr("Date")}</th><th scope="col">{Tr("Result")}</th><th scope="col">{Tr("Flag")}</th></tr></thead>
                            <tbody>{results.iter().map(|o| view! { <tr><td>{when::day(&o.effective)}</td><td class="value">{value_text(o)}</td><td>{crate::safety_view::flag(o)}</td></tr> }).collect_view()}</tbody>
                        </table></div>
                    </details>
                    {crate::messages::result_comments(ui, &data, &code, staff)}
                    {catalog::about(&code).map(|about| view! {
                        <details class="about">
                            <summary>{Tr("About this test")}</summary>
                            <p>{t(about)}</p>
                            <p class="muted">{Tr("Your clinician can tell you what your results mean for you.")}</p>
                        </details>
                    })}
                }
                .into_any()
            }}
        </section>
    }
}

/// The chart: dates left to right, values bottom to top with both ends
/// labelled, the reference range as a band with its edges drawn, results
/// out of range as diamonds (not only another colour), the latest labelled.
fn trend_chart(name: &str, points: &[&Observation], said: &str) -> impl IntoView + use<> {
    const W: f64 = 600.0;
    const H: f64 = 220.0;
    let first = points[0];
    let unit = unit_words(first.unit.as_deref().unwrap_or_default()).to_owned();
    let samples: Vec<(i64, f64)> = points
        .iter()
        .filter_map(|o| Some((logic::minutes(&o.effective)?, o.value_quantity?)))
        .collect();
    let (low, high) = (first.reference_low, first.reference_high);
    let Some(chart) = logic::chart(&samples, low, high, W, H) else { return ().into_any() };
    let line: String =
        chart.points.iter().map(|p| format!("{:.1},{:.1}", p.0, p.1)).collect::<Vec<_>>().join(" ");
    let summary = tf(
        "{0}: {1} results from {2} to {3}. {4}",
        &[
            &name,
            &points.len(),
            &when::day(&first.effective),
            &when::day(&points[points.len() - 1].effective),
            &said,
        ],
    );
    let band = chart.band.map(|(top, bottom)| {
        view! { <rect class="band" x=chart.pad y=top width=W - 2.0 * chart.pad height=(bottom - top).max(0.0)/> }
    });
    let dots = chart
        .points
        .iter()
        .enumerate()
        .map(|(i, &(x, y, _, out))| {
            let last = i + 1 == chart.points.len();
            if out {
                view! { <path class="dot out" d=format!("M{x:.1} {:.1}l6 6-6 6-6-6z", y - 6.0)/> }
                    .into_any()
            } else {
                view! { <circle class="dot" cx=x cy=y r=if last { 6 } else { 4 }/> }.into_any()
            }
        })
        .collect_view();
    view! {
        <figure class="trend">
            <div class="axis">
                <span>{format!("{} {unit}", logic::number(chart.y_max))}</span>
                <span>{if low.is_some() || high.is_some() { tf("Range {0}", &[&logic::range(low, high)]) } else { String::new() }}</span>
                <span>{format!("{} {unit}", logic::number(chart.y_min))}</span>
            </div>
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label=summary preserveAspectRatio="none">
                {band}
                <polyline class="line" points=line/>
                {dots}
            </svg>
            <figcaption>
                <span>{when::day(&first.effective)}</span>
                <span>{when::day(&points[points.len() - 1].effective)}</span>
            </figcaption>
        </figure>
    }
    .into_any()
}

/// A refill request's state in words. The clinic's note reaches the patient
/// with every decision, not only a denial.
fn refill_state(request: &RefillRequest, synced: bool) -> String {
    let decided = match request.status {
        RefillStatus::Requested if !synced => return ts("requested, waiting to be sent"),
        RefillStatus::Requested => return ts("requested, waiting for the clinic"),
        RefillStatus::Approved => n("approved {0}"),
        RefillStatus::Denied => n("denied {0}"),
        RefillStatus::Cancelled => n("cancelled {0}"),
    };
    let on = request.decided_at.as_deref().map(when::day).unwrap_or_default();
    match request.decision_note.as_deref().filter(|n| !n.is_empty()) {
        Some(note) => format!("{}: {note}", tf(decided, &[&on])),
        None => tf(decided, &[&on]),
    }
}

#[component]
fn RefillRequestForm(
    patient: PatientId,
    prescription: EntryId,
    clinic: ClinicId,
    drug: String,
) -> impl IntoView {
    let input_id = format!("refill-note-{prescription}");
    let note = Draft::new(input_id.clone());
    let said = drug.clone();
    let error = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let doc = DocKind::PatientRecord { patient }.doc_id();
        let text = note.get_untracked();
        let result = replicas::edit(doc, |tx, who, at| {
            let request = RefillRequest {
                prescription,
                clinic,
                requested_by: who.user,
                requested_at: at.to_owned(),
                note: text.trim().to_owned(),
                status: RefillStatus::Requested,
                decided_by: None,
                decided_at: None,
                decision_note: None,
            };
            record::add(tx, EntryId::mint(), &request)
        });
        match result {
            Ok(()) => {
                note.clear();
                error.set(None);
                expect_context::<Ui>().say(tf("Refill requested for {0}", &[&said]));
            }
            Err(e) => error.set(Some(e)),
        }
    };
    view! {
        <form class="inline-form" on:submit=submit>
            <label for=input_id.clone()>{Tr("Note for the clinic (optional)")}<span class="sr-only">{tf(" with the refill of {0}", &[&drug])}</span></label>
            <input id=input_id.clone() type="text" prop:value=move || note.get() on:input=move |ev| note.set(event_target_value(&ev))/>
            <button type="submit" aria-label=tf("Request a refill of {0}", &[&drug])>{Tr("Request a refill")}</button>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </form>
    }
}

#[component]
fn RefillDecision(patient: PatientId, request: EntryId, drug: String) -> impl IntoView {
    let input_id = format!("decision-{request}");
    let note = Draft::new(input_id.clone());
    let said = StoredValue::new(drug.clone());
    let error = RwSignal::new(None::<String>);
    let error_id = format!("{input_id}-error");
    let decide = move |status: RefillStatus| {
        let doc = DocKind::PatientRecord { patient }.doc_id();
        let text = note.get_untracked();
        if status == RefillStatus::Denied && text.trim().is_empty() {
            error.set(Some(ts("Say why the refill is denied: the patient sees this note.")));
            return;
        }
        match replicas::edit(doc, |tx, who, at| {
            record::decide_refill(tx, request, status, who.user, at, text.trim())
        }) {
            Ok(()) => {
                note.clear();
                error.set(None);
                let done = if status == RefillStatus::Approved {
                    n("Refill of {0} approved")
                } else {
                    n("Refill of {0} denied")
                };
                expect_context::<Ui>().say(said.with_value(|d| tf(done, &[&d])));
            }
            Err(e) => error.set(Some(e)),
        }
    };
    view! {
        <div class="inline-form">
            <label for=input_id.clone()>{Tr("Note to the patient")}</label>
            <input id=input_id.clone() type="text" prop:value=move || note.get() on:input=move |ev| note.set(event_target_value(&ev))
                aria-invalid=invalid(error) aria-describedby=error_id.clone()/>
            <button type="button" aria-label=tf("Approve the refill of {0}", &[&drug]) on:click=move |_| decide(RefillStatus::Approved)>{Tr("Approve")}</button>
            <button type="button" class="secondary" aria-label=tf("Deny the refill of {0}", &[&drug]) on:click=move |_| decide(RefillStatus::Denied)>{Tr("Deny")}</button>
            {move || error.get().map(|e| view! { <p class="error" role="alert" id=error_id.clone()>{e}</p> })}
        </div>
    }
}

fn prescription_card(
    data: &PatientData,
    patient: PatientId,
    doc: DocId,
    clinic: ClinicId,
    id: String,
    rx: Prescription,
    staff: StaffClinic,
) -> impl IntoView + use<> {
    let is_patient_side = staff.is_none();
    let record = data.record.as_ref().map(|r| &r.1);
    let left = logic::refills_left(&id, &rx, record);
    let entry: EntryId = id.parse().expect("entry ids are UUIDs");
    let requests: Vec<(String, RefillRequest)> = record
        .map(|r| {
            r.refill_requests
                .iter()
                .filter(|(_, q)| q.prescription == entry)
                .map(|(k, q)| (k.clone(), q.clone()))
                .collect()
        })
        .unwrap_or_default();
    let pending = requests.iter().any(|(_, q)| q.status == RefillStatus::Requested);
    let active = rx.status == PrescriptionStatus::Active;
    // Refills mean something only for an active prescription that allows
    // them: not once stopped or completed, nor for a fixed course.
    let refillable = active && rx.refills_allowed > 0;
    let editable = staff == Some(clinic);
    let reason = rx.status_reason.clone();
    let request_rows = requests
        .into_iter()
        .map(|(rid, q)| {
            let sent = data.record.as_ref().is_some_and(|r| replicas::entry_confirmed(r.0, Collection::RefillRequests, &rid));
            let state = refill_state(&q, sent);
            let can_decide = editable && q.status == RefillStatus::Requested && q.clinic == clinic;
            let rid_entry: EntryId = rid.parse().expect("entry ids are UUIDs");
            let conflict = data.record.as_ref().map(|r| {
                let values = reads::field_values(r.0, Collection::RefillRequests, &rid, "status");
                (values.len() > 1).then(|| view! { <p class="conflict" role="note">{Tr("Answered on two devices at once; both answers are kept for review: ")} <strong>{values.join(" | ")}</strong></p> })
            });
            view! {
                <li>
                    {tf("Refill requested {0}", &[&when::day(&q.requested_at)])}
                    {(!q.note.is_empty()).then(|| format!(" (“{}”)", q.note))}
                    ": " <strong>{state}</strong>
                    {conflict}
                    {can_decide.then(|| view! { <RefillDecision patient request=rid_entry drug=rx.display.clone()/> })}
                </li>
            }
        })
        .collect_view();
    let status_text = t(rx.status.code());
    view! {
        <article class="med" id=format!("rx-{id}") tabindex="-1" class:struck=rx.status == PrescriptionStatus::EnteredInError>
            <h3>{rx.display.clone()}</h3>
            <dl class="facts">
                <dt>{Tr("Dosage")}</dt><dd>{rx.dosage.clone()}</dd>
                <dt>{Tr("Quantity")}</dt><dd>{rx.quantity}</dd>
                {refillable.then(|| view! { <dt>{Tr("Refills left")}</dt><dd>{tf("{0} of {1}", &[&left, &rx.refills_allowed])}</dd> })}
                <dt>{Tr("Prescriber")}</dt><dd>{rx.provenance.recorder_name.clone()}</dd>
                <dt>{Tr("Clinic")}</dt><dd>{rx.provenance.clinic_name.clone()}</dd>
                <dt>{Tr("Prescribed")}</dt><dd>{when::day(&rx.authored)}</dd>
                <dt>{Tr("Status")}</dt><dd>{status_text}{reason.map(|r| format!(" ({r})"))}</dd>
            </dl>
            {rx.override_reason.clone().map(|r| view! { <p class="override">{Tr("Prescribed despite a warning: ")} {r}</p> })}
            {status_conflict(doc, Collection::Prescriptions, &id)}
            <ul class="requests">{request_rows}</ul>
            {(is_patient_side && active && left > 0 && !pending).then(|| view! { <RefillRequestForm patient prescription=entry clinic drug=rx.display.clone()/> })}
            {(is_patient_side && refillable && left == 0).then(|| view! { <p class="muted">{Tr("No refills left: message the clinic for a new prescription.")}</p> })}
            {(editable && rx.status != PrescriptionStatus::EnteredInError).then(|| view! { <ErrorMarker doc collection=Collection::Prescriptions id=id.clone() what=rx.display.clone()/> })}
        </article>
    }
}

#[component]
pub fn Medications(patient: PatientId, staff: StaffClinic) -> impl IntoView {
    let ui = expect_context::<Ui>();
    move || {
        ui.version.track();
        let data = reads::patient_data(patient);
        let mut active = Vec::new();
        let mut past = Vec::new();
        for (doc, clinic, record) in &data.clinical {
            for (id, rx) in &record.prescriptions {
                let item = (rx.authored.clone(), *doc, *clinic, id.clone(), rx.clone());
                if rx.status == PrescriptionStatus::Active {
                    active.push(item)
                } else {
                    past.push(item)
                }
            }
        }
        logic::sort_by_key(&mut active, Order::Descending, |rx| rx.0.clone());
        logic::sort_by_key(&mut past, Order::Descending, |rx| rx.0.clone());
        let render = |items: Vec<(String, DocId, ClinicId, String, Prescription)>| {
            items
                .into_iter()
                .map(|(_, doc, clinic, id, rx)| {
                    prescription_card(&data, patient, doc, clinic, id, rx, staff)
                })
                .collect_view()
        };
        let (n_active, n_past) = (active.len(), past.len());
        view! {
            <section class="card" aria-labelledby="active-h">
                <h2 id="active-h">{Tr("Active prescriptions")}</h2>
                {(n_active == 0).then(|| view! { <p class="muted">{Tr("None.")}</p> })}
                {render(active)}
            </section>
            <section class="card" aria-labelledby="past-h">
                <details>
                    <summary><h2 id="past-h" class="inline">{tf("Past prescriptions ({0})", &[&n_past])}</h2></summary>
                    {render(past)}
                </details>
            </section>
        }
    }
}

#[component]
pub fn Health(patient: PatientId, staff: StaffClinic) -> impl IntoView {
    let ui = expect_context::<Ui>();
    move || {
        ui.version.track();
        let data = reads::patient_data(patient);
        let mut allergies = Vec::new();
        let mut shots = Vec::new();
        for (doc, clinic, record) in &data.clinical {
            for (id, a) in &record.allergies {
                allergies.push((*doc, *clinic, id.clone(), a.clone()));
            }
            for (id, i) in &record.immunizations {
                shots.push((*doc, *clinic, id.clone(), i.clone()));
            }
        }
        logic::sort_by_key(&mut shots, Order::Descending, |shot| shot.3.occurrence.clone());
        let allergy_items = allergies
            .into_iter()
            .map(|(doc, clinic, id, a)| {
                let editable = staff == Some(clinic) && a.status != AllergyStatus::EnteredInError;
                view! {
                    <li class:struck=a.status != AllergyStatus::Active>
                        <strong>{a.substance.clone()}</strong> ": " {a.reaction.clone()} " (" {t(a.severity.code())} ", " {t(a.status.code())} ") · " {a.provenance.clinic_name.clone()}
                        {status_conflict(doc, Collection::Allergies, &id)}
                        {editable.then(|| view! { <ErrorMarker doc collection=Collection::Allergies id=id.clone() what=a.substance.clone()/> })}
                    </li>
                }
            })
            .collect_view();
        let shot_items = shots
            .into_iter()
            .map(|(_, _, _, i)| view! { <li>{i.vaccine.clone()} " · " {when::day(&i.occurrence)} " · " {i.provenance.clinic_name.clone()} {format!(" ({})", t(i.status.code()))}</li> })
            .collect_view();
        view! {
            <section class="card" aria-labelledby="allergy-h"><h2 id="allergy-h">{Tr("Allergies")}</h2><ul>{allergy_items}</ul></section>
            {crate::appointments::section(ui, &data, patient, staff)}
            <section class="card" aria-labelledby="imm-h"><h2 id="imm-h">{Tr("Immunizations")}</h2><ul>{shot_items}</ul></section>
        }
    }
}

//! Clinic staff: the patients who granted the clinic access, and the forms
//! that write into the clinic's part of a chart.

use crate::i18n::{Tr, n, t, tf, ts};
use leptos::prelude::*;
use shared::catalog::{self, LAB_TESTS, MEDICATIONS};
use shared::policy::Principal;
use shared::record;
use shared::schema::{DocKind, Observation, Prescription, Provenance};
use shared::status::{PrescriptionStatus, ResultStatus};
use shared::{ClinicId, EntryId, PatientId};

use crate::logic::{self, Order};
use crate::replicas;
use crate::safety_view;
use crate::state::Ui;
use crate::{Page, Tab};
use crate::{api, persist, reads, session};
use leptos::task::spawn_local;
use shared::api::{Me, PatientRow};

/// The clinic a staff member writes for in a patient's chart: the first of
/// theirs whose clinical record of this patient is on the device.
pub fn clinic_for(ui: Ui, me: &Me, patient: PatientId) -> Option<ClinicId> {
    let ids: Vec<ClinicId> = me.clinics.iter().map(|c| c.id).collect();
    let on_device = ui.docs.with_untracked(|docs| {
        docs.iter()
            .filter_map(|d| match d.kind {
                DocKind::ClinicalRecord { patient: p, clinic }
                    if p == patient && ids.contains(&clinic) =>
                {
                    Some(clinic)
                }
                _ => None,
            })
            .next()
    });
    on_device.or_else(|| ids.first().copied())
}

/// Recently opened patients kept on the device.
const RECENT: usize = 30;

/// Whether the patient's record is on this device (tracked).
pub fn on_device(ui: Ui, patient: PatientId) -> bool {
    ui.docs.with(|docs| docs.iter().any(|d| d.kind == DocKind::PatientRecord { patient }))
}

/// Where a record not on the device is asked for, in plain words.
pub const NEEDS_NETWORK: &str =
    n("This patient's record is not on this device. Connect to the network to open it.");

/// Opens `target` in `p`'s chart, keeping `p` among the recent patients;
/// false if their record is not on the device and there is no network.
pub fn open_patient(ui: Ui, page: RwSignal<Page>, p: PatientId, target: Page) -> bool {
    let here = on_device(ui, p);
    if !here && !ui.online_untracked() {
        return false;
    }
    ui.recent.update(|r| {
        r.retain(|x| *x != p);
        r.insert(0, p);
        r.truncate(RECENT);
    });
    persist::save_patients(persist::RECENT, &ui.recent.get_untracked());
    if !here {
        spawn_local(session::keep(ui));
    }
    page.set(target);
    true
}

/// The patient list: from the server when online (`/api/patients`, which
/// searches every patient the user may read), from the patients on this
/// device offline. Says which are on the device, and pins patients to stay
/// on it (issue 17 part 2).
#[component]
pub fn PatientList(page: RwSignal<Page>) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let query = RwSignal::new(String::new());
    let found = RwSignal::new(None::<Vec<PatientRow>>);
    let said = RwSignal::new(None::<&str>);
    Effect::new(move |_| {
        let q = query.get();
        if ui.online() {
            spawn_local(async move {
                // Kept when the network drops: it still says who is here.
                if let (Ok(rows), true) = (api::patients(&q).await, query.get_untracked() == q) {
                    found.set(Some(rows));
                }
            });
        }
    });
    let open = move |p: PatientId| {
        if !open_patient(ui, page, p, Page::Chart(p, Tab::Results)) {
            said.set(Some(t(NEEDS_NETWORK)));
        }
    };
    let pin = move |p: PatientId| {
        ui.pins.update(|pins| {
            if pins.contains(&p) {
                pins.retain(|x| *x != p);
            } else {
                pins.push(p);
            }
        });
        persist::save_patients(persist::PINS, &ui.pins.get_untracked());
        spawn_local(session::keep(ui));
    };
    view! {
        <section class="card" aria-labelledby="patients-h">
            <h2 id="patients-h">{Tr("Patients")}</h2>
            <p class="muted">{Tr("Patients who gave your clinic access to their record. Today's appointments, open requests and messages, and patients you pinned or opened recently stay on this device for use offline.")}</p>
            <label for="patient-search">{Tr("Search by name or birth date (YYYY-MM-DD)")}</label>
            <input id="patient-search" type="search" autocomplete="off" prop:value=move || query.get()
                on:input=move |ev| query.set(event_target_value(&ev))/>
            {move || said.get().map(|s| view! { <p class="error" role="alert">{s}</p> })}
            {move || {
                ui.version.track();
                let q = query.get();
                // Offline, the last answer from the server still says which
                // patients are on this device; after a reload offline, the
                // patients on this device are listed (one patient record each).
                let mut rows = found.get().unwrap_or_else(|| {
                    let mut rows: Vec<PatientRow> = ui.docs.with(|docs| {
                        docs.iter().filter(|d| matches!(d.kind, DocKind::PatientRecord { .. })).map(|d| d.kind.patient()).collect::<Vec<_>>()
                    })
                    .into_iter()
                    .map(|patient| {
                        let demo = reads::patient_data(patient).record.as_ref().map(|r| r.1.demographics.clone()).unwrap_or_default();
                        let name = format!("{} {}", demo.given.unwrap_or_default(), demo.family.unwrap_or_default()).trim().to_owned();
                        PatientRow { patient, name, birth_date: demo.birth_date.unwrap_or_default() }
                    })
                    .collect();
                    // By name, then birth date (one sort: each costs the bundle).
                    logic::sort_by_key(&mut rows, Order::Ascending, |r| format!("{}\t{}", r.name, r.birth_date));
                    rows
                });
                rows.retain(|r| logic::matches(&q, &r.name, &r.birth_date));
                let todo = crate::todo::items(ui);
                if rows.is_empty() {
                    return view! { <p class="muted">{Tr("No patients match.")}</p> }.into_any();
                }
                view! {
                    {(!ui.online()).then_some(view! { <p class="muted">{Tr("Offline: patients not on this device need the network.")}</p> })}
                    <ul class="patients">
                        {rows.into_iter().map(|PatientRow { patient: p, name, birth_date }| {
                            let pinned = ui.pins.with(|pins| pins.contains(&p));
                            let todo = todo.iter().filter(|i| i.patient == p).count();
                            view! {
                                <li>
                                    <button type="button" class="patient" on:click=move |_| open(p)>
                                        <strong>{if name.is_empty() { ts("(name not synced yet)") } else { name }}</strong>
                                        <span class="muted">{if birth_date.is_empty() { String::new() } else { tf(" born {0}", &[&birth_date]) }}</span>
                                        {on_device(ui, p).then_some(view! { <span class="tag">{Tr("On this device")}</span> })}
                                        {(todo > 0).then(|| view! { <span class="tag">{tf("To do: {0}", &[&todo])}</span> })}
                                    </button>
                                    <button type="button" class="link" on:click=move |_| pin(p)>
                                        {if pinned { Tr("Unpin") } else { Tr("Pin for offline") }}
                                    </button>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
        </section>
    }
}

/// Who records an entry, as the write policy knows them (`who`, given to
/// `replicas::edit`'s closure).
pub fn provenance(who: &Principal, clinic: ClinicId, at: &str) -> Option<Provenance> {
    Some(Provenance {
        clinic,
        clinic_name: who.clinic_name(clinic).unwrap_or_default().to_owned(),
        recorder: who.user,
        recorder_name: who.name.clone(),
        recorded: at.to_owned(),
    })
}

/// Ties a form's error to the field it is about (`bad`, one of `fields`;
/// "" for none): that field gets `aria-invalid` and the error's id in
/// `aria-describedby`, the others lose them.
fn tie_error(fields: &[&str], bad: &str, error_id: &str) {
    for field in fields {
        let Some(el) = document().get_element_by_id(field) else { continue };
        for (name, value) in [("aria-invalid", "true"), ("aria-describedby", error_id)] {
            let _ = if *field == bad {
                el.set_attribute(name, value)
            } else {
                el.remove_attribute(name)
            };
        }
    }
}

fn today() -> String {
    logic::date(&replicas::now()).to_owned()
}

/// Records one lab result: the test is picked from the LOINC catalog, which
/// fills in its unit and reference range.
#[component]
pub fn RecordResult(patient: PatientId, clinic: ClinicId) -> impl IntoView {
    let search = RwSignal::new(String::new());
    let loinc = RwSignal::new(String::new());
    let value = RwSignal::new(String::new());
    let unit = RwSignal::new(String::new());
    let low = RwSignal::new(String::new());
    let high = RwSignal::new(String::new());
    let date = RwSignal::new(today());
    let error = RwSignal::new(None::<String>);
    let saved = RwSignal::new(None::<String>);
    let confirm = RwSignal::new(None::<String>);
    // The field the error is about.
    let fail = move |id: &str, e: Option<String>| {
        let fields = ["lab-test", "lab-value", "lab-low", "lab-high", "lab-date"];
        tie_error(&fields, if e.is_some() { id } else { "" }, "lab-error");
        error.set(e)
    };
    let pick = move |code: String| {
        confirm.set(None);
        if let Some(t) = catalog::lab_test(&code) {
            unit.set(t.unit.to_owned());
            low.set(t.low.map(logic::number).unwrap_or_default());
            high.set(t.high.map(logic::number).unwrap_or_default());
        }
        loinc.set(code);
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        saved.set(None);
        let Some(test) = catalog::lab_test(&loinc.get_untracked()) else {
            return fail("lab-test", Some(ts("Pick a test from the list.")));
        };
        let v = match logic::parse_value(&value.get_untracked()) {
            Ok(v) => v,
            Err(e) => return fail("lab-value", Some(e.into())),
        };
        let bound = |s: String| {
            if s.trim().is_empty() { Ok(None) } else { logic::parse_value(&s).map(Some) }
        };
        let (lo, hi) = (bound(low.get_untracked()), bound(high.get_untracked()));
        let (Ok(lo), Ok(hi)) = (lo, hi) else {
            let id = if lo.is_err() { "lab-low" } else { "lab-high" };
            return fail(id, Some(ts("The reference range must be numbers (or empty).")));
        };
        let when = date.get_untracked();
        if logic::minutes(&when).is_none() {
            return fail("lab-date", Some(ts("Enter the date the sample was taken.")));
        }
        let unit_text = unit.get_untracked().trim().to_owned();
        let interpretation = match safety_view::judge_result(test, v, &unit_text, confirm) {
            Ok(i) => i,
            Err(e) => return fail("lab-value", e),
        };
        let doc = DocKind::ClinicalRecord { patient, clinic }.doc_id();
        let result = replicas::edit(doc, |tx, who, at| {
            let obs = Observation {
                report: None,
                loinc: test.loinc.into(),
                display: test.display.into(),
                value_quantity: Some(v),
                value_string: None,
                unit: (!unit_text.is_empty()).then_some(unit_text.clone()),
                reference_low: lo,
                reference_high: hi,
                effective: format!("{when}T12:00:00Z"),
                status: ResultStatus::Final,
                replaces: None,
                provenance: provenance(who, clinic, at).ok_or(record::RecordError::NoEntry)?,
                status_reason: None,
                status_by: None,
                status_at: None,
                interpretation: interpretation.clone(),
            };
            record::add(tx, EntryId::mint(), &obs)
        });
        match result {
            Ok(()) => {
                saved.set(Some(tf(
                    "Saved {0} {1} {2}.",
                    &[&test.display, &logic::number(v), &unit_text],
                )));
                value.set(String::new());
                confirm.set(None);
                fail("", None);
            }
            Err(e) => fail("", Some(e)),
        }
    };
    view! {
        <section class="card" aria-labelledby="record-h">
            <h2 id="record-h">{Tr("Record a lab result")}</h2>
            <form class="grid-form" on:submit=submit>
                <label for="lab-search">{Tr("Find a test (name or LOINC code)")}</label>
                <input id="lab-search" type="search" autocomplete="off" prop:value=move || search.get() on:input=move |ev| search.set(event_target_value(&ev))/>
                <label for="lab-test">{Tr("Test")}</label>
                <select id="lab-test" required on:change=move |ev| pick(event_target_value(&ev))>
                    <option value="" selected=move || loinc.get().is_empty()>{Tr("Choose a test")}</option>
                    {move || catalog::search(LAB_TESTS, &search.get(), |t| [t.display, t.loinc]).into_iter().map(|t| {
                        let code = t.loinc;
                        view! { <option value=code selected=move || loinc.get() == code>{format!("{} ({})", t.display, t.loinc)}</option> }
                    }).collect_view()}
                </select>
                <label for="lab-value">{Tr("Value")}</label>
                <input id="lab-value" type="text" inputmode="decimal" required prop:value=move || value.get() on:input=move |ev| { confirm.set(None); value.set(event_target_value(&ev)) }/>
                <label for="lab-unit">{Tr("Unit (UCUM)")}</label>
                <input id="lab-unit" type="text" prop:value=move || unit.get() on:input=move |ev| unit.set(event_target_value(&ev))/>
                <label for="lab-low">{Tr("Reference low")}</label>
                <input id="lab-low" type="text" inputmode="decimal" prop:value=move || low.get() on:input=move |ev| low.set(event_target_value(&ev))/>
                <label for="lab-high">{Tr("Reference high")}</label>
                <input id="lab-high" type="text" inputmode="decimal" prop:value=move || high.get() on:input=move |ev| high.set(event_target_value(&ev))/>
                <label for="lab-date">{Tr("Sample date")}</label>
                <input id="lab-date" type="date" required prop:value=move || date.get() on:input=move |ev| date.set(event_target_value(&ev))/>
                {safety_view::confirm_view(confirm)}
                <button type="submit">{Tr("Save result")}</button>
            </form>
            {move || error.get().map(|e| view! { <p class="error" role="alert" id="lab-error">{e}</p> })}
            {move || saved.get().map(|s| view! { <p class="ok" role="status">{s}</p> })}
        </section>
    }
}

/// Prescribes from the RxNorm catalog, warning on an active allergy, an
/// interaction or duplicate therapy recorded by any clinic
/// (`safety_view::warnings`).
#[component]
pub fn Prescribe(patient: PatientId, clinic: ClinicId) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let search = RwSignal::new(String::new());
    let rxnorm = RwSignal::new(String::new());
    let dosage = RwSignal::new(String::new());
    let quantity = RwSignal::new("30".to_owned());
    let refills = RwSignal::new("0".to_owned());
    let reason = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let saved = RwSignal::new(None::<String>);
    let fail = move |id: &str, e: Option<String>| {
        let fields = ["rx-med", "rx-dosage", "rx-qty", "rx-refills", "rx-reason"];
        tie_error(&fields, if e.is_some() { id } else { "" }, "rx-error");
        error.set(e)
    };
    let found = move || {
        ui.version.track();
        safety_view::warnings(patient, &rxnorm.get())
    };
    let pick = move |code: String| {
        if let Some(m) = catalog::medication(&code) {
            dosage.set(m.usual_dosage.to_owned());
        }
        reason.set(String::new());
        rxnorm.set(code);
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        saved.set(None);
        let Some(med) = catalog::medication(&rxnorm.get_untracked()) else {
            return fail("rx-med", Some(ts("Pick a medication from the list.")));
        };
        if dosage.get_untracked().trim().is_empty() {
            return fail("rx-dosage", Some(ts("Enter the dosage instructions.")));
        }
        let Ok(qty) = quantity.get_untracked().trim().parse::<u32>() else {
            return fail("rx-qty", Some(ts("Quantity must be a whole number.")));
        };
        let Ok(refill_count) = refills.get_untracked().trim().parse::<u32>() else {
            return fail("rx-refills", Some(ts("Refills must be a whole number (0 for none).")));
        };
        let mut why = reason.get_untracked().trim().to_owned();
        if found().reasoned.is_empty() {
            why.clear();
        } else if why.is_empty() {
            return fail(
                "rx-reason",
                Some(ts("Give the reason for prescribing despite the warning.")),
            );
        }
        let doc = DocKind::ClinicalRecord { patient, clinic }.doc_id();
        let dose = dosage.get_untracked().trim().to_owned();
        let result = replicas::edit(doc, |tx, who, at| {
            let rx = Prescription {
                rxnorm: med.rxnorm.into(),
                display: med.display.into(),
                dosage: dose.clone(),
                quantity: qty,
                refills_allowed: refill_count,
                authored: at.to_owned(),
                status: PrescriptionStatus::Active,
                provenance: provenance(who, clinic, at).ok_or(record::RecordError::NoEntry)?,
                status_reason: None,
                status_by: None,
                status_at: None,
                override_reason: (!why.is_empty()).then(|| why.clone()),
            };
            record::add(tx, EntryId::mint(), &rx)
        });
        match result {
            Ok(()) => {
                saved.set(Some(tf("Prescribed {0}.", &[&med.display])));
                rxnorm.set(String::new());
                reason.set(String::new());
                fail("", None);
            }
            Err(e) => fail("", Some(e)),
        }
    };
    view! {
        <section class="card" aria-labelledby="rx-h">
            <h2 id="rx-h">{Tr("Prescribe")}</h2>
            <form class="grid-form" on:submit=submit>
                <label for="rx-search">{Tr("Find a medication (name or RxNorm code)")}</label>
                <input id="rx-search" type="search" autocomplete="off" prop:value=move || search.get() on:input=move |ev| search.set(event_target_value(&ev))/>
                <label for="rx-med">{Tr("Medication")}</label>
                <select id="rx-med" required on:change=move |ev| pick(event_target_value(&ev))>
                    <option value="" selected=move || rxnorm.get().is_empty()>{Tr("Choose a medication")}</option>
                    {move || catalog::search(MEDICATIONS, &search.get(), |m| [m.display, m.rxnorm]).into_iter().map(|m| {
                        let code = m.rxnorm;
                        view! { <option value=code selected=move || rxnorm.get() == code>{format!("{} ({})", m.display, m.rxnorm)}</option> }
                    }).collect_view()}
                </select>
                <label for="rx-dosage">{Tr("Dosage")}</label>
                <input id="rx-dosage" type="text" required prop:value=move || dosage.get() on:input=move |ev| dosage.set(event_target_value(&ev))/>
                <label for="rx-qty">{Tr("Quantity")}</label>
                <input id="rx-qty" type="number" min="1" required prop:value=move || quantity.get() on:input=move |ev| quantity.set(event_target_value(&ev))/>
                <label for="rx-refills">{Tr("Refills")}</label>
                <input id="rx-refills" type="number" min="0" required prop:value=move || refills.get() on:input=move |ev| refills.set(event_target_value(&ev))/>
                {move || safety_view::warnings_view(found(), reason)}
                <button type="submit">{Tr("Prescribe")}</button>
            </form>
            {move || error.get().map(|e| view! { <p class="error" role="alert" id="rx-error">{e}</p> })}
            {move || saved.get().map(|s| view! { <p class="ok" role="status">{s}</p> })}
        </section>
    }
}

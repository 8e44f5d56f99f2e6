//! What the safety rules (`shared::safety`) show where clinicians write: the
//! chart banner (age and allergies), the critical-value confirmation, and
//! the prescribing warnings (allergy, interaction, duplicate therapy) with
//! the override reason they ask for. The device holds every clinic's
//! records of the patient, so these warnings see all of them; the server
//! can only check the clinic's own record.

use crate::i18n::{Tr, t, tf, ts};
use leptos::prelude::*;
use shared::PatientId;
use shared::catalog::{self, LabTest};
use shared::safety;
use shared::schema::{Observation, RangeFlag};
use shared::status::AllergyStatus;

use crate::logic;
use crate::state::Ui;
use crate::{reads, replicas};

/// The patient's age and active allergies (from every clinic), on every
/// screen of a staff member's open chart.
pub fn chart_banner(patient: PatientId) -> impl IntoView {
    let ui = expect_context::<Ui>();
    move || {
        ui.version.track();
        let data = reads::patient_data(patient);
        let age = data
            .record
            .as_ref()
            .and_then(|r| r.1.demographics.birth_date.as_deref())
            .and_then(|b| safety::age(b, &replicas::now()))
            .map_or(ts("Age unknown"), |a| tf("{0} years", &[&a]));
        let allergies: Vec<String> = data
            .clinical
            .iter()
            .flat_map(|c| c.2.allergies.values())
            .filter(|a| a.status == AllergyStatus::Active)
            .map(|a| format!("{} ({})", a.substance, a.reaction))
            .collect();
        let none = allergies.is_empty();
        view! {
            <p class="chart-banner">
                <strong>{age}</strong>
                <span class:alert=!none>{if none { ts("No allergies recorded") } else { tf("Allergies: {0}", &[&allergies.join(", ")]) }}</span>
            </p>
        }
    }
}

/// The critical mark of a result, or its reference-range flag.
pub fn flag(obs: &Observation) -> impl IntoView + use<> {
    let (class, text) = match (obs.critical(), obs.out_of_range()) {
        (Some(RangeFlag::High), _) => ("flag critical", t("▲▲ Critical high")),
        (Some(RangeFlag::Low), _) => ("flag critical", t("▼▼ Critical low")),
        (None, Some(RangeFlag::High)) => ("flag high", t("▲ High")),
        (None, Some(RangeFlag::Low)) => ("flag low", t("▼ Low")),
        (None, None) => return None,
    };
    Some(view! { <span class=class>{text}</span> })
}

/// Judges a value about to be recorded: `Err` with what to tell the
/// clinician when it is impossible, or `Err(None)` when it is critical and
/// not yet confirmed (`confirm` then asks); `Ok` with the interpretation to
/// store.
pub fn judge_result(
    test: &LabTest,
    value: f64,
    unit: &str,
    confirm: RwSignal<Option<String>>,
) -> Result<Option<String>, Option<String>> {
    let shown = tf("{0} {1} for {2}", &[&logic::number(value), &unit, &test.display]);
    let judgement = safety::judge(test.loinc, value);
    match judgement {
        safety::Judgement::Impossible => Err(Some(tf(
            "Not saved: {0} is physiologically impossible. Check the number (a missing decimal point?) and the unit.",
            &[&shown],
        ))),
        safety::Judgement::Critical(_) if confirm.get_untracked().is_none() => {
            confirm.set(Some(tf("{0} is a critical value.", &[&shown])));
            Err(None)
        }
        _ => Ok(judgement.interpretation().map(Into::into)),
    }
}

/// Asks to confirm a critical value; the confirming button submits the form.
pub fn confirm_view(confirm: RwSignal<Option<String>>) -> impl IntoView {
    move || {
        confirm.get().map(|text| view! {
            <div class="allergy-warning" role="alert">
                <p><strong>{Tr("Critical value: ")}</strong>{text}{Tr(" Check it with the laboratory report; once saved it is marked critical for staff and the patient.")}</p>
                <button type="submit">{Tr("Confirm and save as critical")}</button>
            </div>
        })
    }
}

/// The prescribing warnings for `rxnorm` against the patient's records from
/// every clinic: allergies and interactions (which need a reason), and
/// duplicate therapy (a warning only).
#[derive(Clone, Default, PartialEq)]
pub struct Warnings {
    pub reasoned: Vec<String>,
    pub duplicates: Vec<String>,
}

pub fn warnings(patient: PatientId, rxnorm: &str) -> Warnings {
    let Some(med) = catalog::medication(rxnorm) else { return Warnings::default() };
    let data = reads::patient_data(patient);
    let records = || data.clinical.iter().map(|c| &c.2);
    let prescriptions: Vec<_> = records().flat_map(|r| r.prescriptions.values()).collect();
    let mut reasoned: Vec<String> =
        catalog::allergy_conflicts(med, records().flat_map(|r| r.allergies.values()))
            .into_iter()
            .map(|a| {
                tf(
                    "Allergy: {0} ({1}, {2}) recorded by {3}",
                    &[&a.substance, &a.reaction, &t(a.severity.code()), &a.provenance.clinic_name],
                )
            })
            .collect();
    for (rx, risk) in safety::interactions(med, prescriptions.iter().copied()) {
        reasoned.push(tf(
            "Interaction: {0} with {1} ({2}): {3}",
            &[&med.display, &rx.display, &rx.provenance.clinic_name, &risk],
        ));
    }
    let duplicates = safety::duplicates(med, prescriptions.iter().copied())
        .into_iter()
        .map(|(rx, class)| {
            tf(
                "Already taking {0} ({1}){2}",
                &[
                    &rx.display,
                    &rx.provenance.clinic_name,
                    &class.map(|c| tf(": the same class, {0}", &[&c])).unwrap_or_default(),
                ],
            )
        })
        .collect();
    Warnings { reasoned, duplicates }
}

/// The warnings, and the reason field when an override needs one.
pub fn warnings_view(found: Warnings, reason: RwSignal<String>) -> impl IntoView {
    let list = |items: Vec<String>| view! { <ul>{items.into_iter().map(|f| view! { <li>{f}</li> }).collect_view()}</ul> };
    let needs = !found.reasoned.is_empty();
    view! {
        {(!found.duplicates.is_empty()).then(|| view! {
            <div class="allergy-warning dup-warning" role="status">
                <p><strong>{Tr("Duplicate therapy: ")}</strong>{Tr("check this is intended.")}</p>
                {list(found.duplicates)}
            </div>
        })}
        {needs.then(|| view! {
            <div class="allergy-warning" role="alert">
                <p><strong>{Tr("Warning: ")}</strong>{Tr("prescribing anyway needs a reason, kept on the prescription (the patient sees it).")}</p>
                {list(found.reasoned)}
                <label for="rx-reason">{Tr("Reason for prescribing anyway")}</label>
                <input id="rx-reason" type="text" prop:value=move || reason.get() on:input=move |ev| reason.set(event_target_value(&ev))/>
            </div>
        })}
    }
}

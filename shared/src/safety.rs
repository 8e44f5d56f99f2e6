//! Safety rules where clinicians write: plausibility and critical values of
//! lab results, allergy and interaction overrides, duplicate therapy, and the
//! patient's age for the chart banner.
//!
//! Pure functions over the schema's entries, next to the catalog they read,
//! so the app (which sees every clinic's records on the device), the write
//! policy (which sees one document) and any future import judge alike.

use crate::catalog::{self, Medication};
use crate::schema::{Allergy, Observation, Prescription, RangeFlag};
use crate::schema::{CRITICAL_HIGH, CRITICAL_LOW};
use crate::status::PrescriptionStatus;

/// Limits per LOINC test in the catalog's units: `[impossible below,
/// critical below, critical above, impossible above]`.
///
/// Critical limits are the mean limits of US medical centres in Kost GJ,
/// "Critical limits for urgent clinician notification at US medical
/// centers", JAMA 1990;263(5):704-707. Wagar EA et al., "Critical values
/// comparison: a College of American Pathologists Q-Probes survey of 163
/// clinical laboratories", Arch Pathol Lab Med 2007;131:1769-1775, shows
/// that each laboratory sets its own list: a clinic whose laboratory uses
/// other limits changes this table.
///
/// Impossible limits lie beyond the most extreme values reported in
/// survivors (or outside the quantity's definition, like a fraction over
/// 100 %), so they only catch slips: a missed decimal point (K 58 for 5.8)
/// or a value in another unit. Any catalog test refuses a negative value.
const LIMITS: &[(&str, [f64; 4])] = &[
    ("2345-7", [0.0, 46.0, 484.0, 3000.0]),  // glucose, mg/dL
    ("2823-3", [0.5, 2.8, 6.2, 15.0]),       // potassium, mmol/L
    ("2951-2", [80.0, 120.0, 158.0, 200.0]), // sodium, mmol/L
    ("2160-0", [0.0, f64::NEG_INFINITY, 7.4, 40.0]), // creatinine, mg/dL
    ("718-7", [1.0, 6.6, 19.9, 26.0]),       // hemoglobin, g/dL
    ("4544-3", [3.0, 18.0, 61.0, 90.0]),     // hematocrit, %
    ("777-3", [0.0, 37.0, 910.0, 10_000.0]), // platelets, 10*3/uL
    ("6690-2", [0.0, 2.0, 37.0, 1_000.0]),   // leukocytes, 10*3/uL
];

/// How a lab value stands against its test's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    Plausible,
    Critical(RangeFlag),
    /// Physiologically impossible: never stored.
    Impossible,
}

impl Judgement {
    /// The interpretation code an observation with this value must carry.
    pub fn interpretation(self) -> Option<&'static str> {
        match self {
            Self::Critical(RangeFlag::High) => Some(CRITICAL_HIGH),
            Self::Critical(RangeFlag::Low) => Some(CRITICAL_LOW),
            _ => None,
        }
    }
}

/// Judges `value` of the test `loinc`. Tests outside the catalog are not
/// judged: the portal cannot know their units. Limits go by the LOINC code
/// alone, whatever unit is typed beside the value: the code fixes what is
/// measured and how (glucose in mmol/L is another LOINC code), so a unit
/// cannot be used to slip a value past them.
pub fn judge(loinc: &str, value: f64) -> Judgement {
    if catalog::lab_test(loinc).is_none() {
        return Judgement::Plausible;
    }
    let [impossible_low, low, high, impossible_high] = LIMITS
        .iter()
        .find(|l| l.0 == loinc)
        .map_or([0.0, f64::NEG_INFINITY, f64::INFINITY, f64::INFINITY], |l| l.1);
    if value.is_nan() || value < impossible_low || value > impossible_high {
        Judgement::Impossible
    } else if value < low {
        Judgement::Critical(RangeFlag::Low)
    } else if value > high {
        Judgement::Critical(RangeFlag::High)
    } else {
        Judgement::Plausible
    }
}

/// What is wrong with a result as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultProblem {
    Impossible,
    /// In the critical range but not marked critical, or marked critical
    /// when it is not: the mark must say what the value says.
    CriticalMark,
}

/// A result may be stored if its value is possible and it is marked
/// critical exactly when the value is critical.
pub fn check_result(obs: &Observation) -> Result<(), ResultProblem> {
    let judgement = obs.value_quantity.map_or(Judgement::Plausible, |v| judge(&obs.loinc, v));
    if judgement == Judgement::Impossible {
        return Err(ResultProblem::Impossible);
    }
    if obs.interpretation.as_deref() != judgement.interpretation() {
        return Err(ResultProblem::CriticalMark);
    }
    Ok(())
}

/// The catalog's NSAIDs (ingredients): ibuprofen.
const NSAIDS: &[&str] = &["5640"];
/// Drugs with a known risk of torsades de pointes (CredibleMeds QTdrugs
/// list, "known risk"): clarithromycin, citalopram.
const QT_PROLONGING: &[&str] = &["21212", "2556"];

/// Therapeutic classes by member ingredients, for duplicate therapy.
const CLASSES: &[(&str, &[&str])] = &[
    ("statin", &["83367", "36567"]), // atorvastatin, simvastatin
    ("NSAID", NSAIDS),
    ("ACE inhibitor", &["29046"]), // lisinopril
];

/// High-priority drug-drug interactions, by ingredients: two groups and the
/// risk. Chosen after Phansalkar S et al., "High-priority drug-drug
/// interactions for use in electronic health records", JAMIA
/// 2012;19(5):735-743 (interactions that warrant an interruptive alert),
/// restricted to the catalog's drugs:
/// - warfarin + NSAIDs: gastrointestinal bleeding;
/// - methotrexate + trimethoprim: additive antifolate effect, bone marrow
///   suppression (both labels);
/// - clarithromycin + simvastatin: contraindicated, myopathy and
///   rhabdomyolysis (FDA Drug Safety Communication on simvastatin, 2011);
/// - two QT-prolonging drugs: torsades de pointes (QT pairs are in
///   Phansalkar's list).
const INTERACTIONS: &[(&[&str], &[&str], &str)] = &[
    (&["11289"], NSAIDS, "bleeding risk"),
    (&["6851"], &["10829"], "methotrexate toxicity (bone marrow suppression)"),
    (&["21212"], &["36567"], "myopathy and rhabdomyolysis"),
    (QT_PROLONGING, QT_PROLONGING, "QT prolongation (torsades de pointes)"),
];

/// The active prescriptions of `prescriptions`, with their catalog drugs.
fn active<'a>(
    prescriptions: impl IntoIterator<Item = &'a Prescription>,
) -> impl Iterator<Item = (&'a Prescription, &'static Medication)> {
    prescriptions
        .into_iter()
        .filter(|p| p.status == PrescriptionStatus::Active)
        .filter_map(|p| Some((p, catalog::medication(&p.rxnorm)?)))
}

/// Whether one drug holds an ingredient of `a` and the other a different
/// one of `b`.
fn pair(x: &Medication, y: &Medication, a: &[&str], b: &[&str]) -> bool {
    x.ingredients
        .iter()
        .any(|i| a.contains(i) && y.ingredients.iter().any(|j| b.contains(j) && j != i))
}

/// The interactions prescribing `med` would start with the patient's active
/// `prescriptions` (from every clinic on the device): each prescription it
/// interacts with and the risk.
pub fn interactions<'a>(
    med: &Medication,
    prescriptions: impl IntoIterator<Item = &'a Prescription>,
) -> Vec<(&'a Prescription, &'static str)> {
    active(prescriptions)
        .filter_map(|(p, other)| {
            let (_, _, risk) = INTERACTIONS
                .iter()
                .find(|(a, b, _)| pair(med, other, a, b) || pair(other, med, a, b))?;
            Some((p, *risk))
        })
        .collect()
}

/// Active `prescriptions` of the same ingredient as `med` (`None`) or of the
/// same therapeutic class (`Some(class)`): duplicate therapy, a warning only.
pub fn duplicates<'a>(
    med: &Medication,
    prescriptions: impl IntoIterator<Item = &'a Prescription>,
) -> Vec<(&'a Prescription, Option<&'static str>)> {
    active(prescriptions)
        .filter_map(|(p, other)| {
            if med.ingredients.iter().any(|i| other.ingredients.contains(i)) {
                return Some((p, None));
            }
            let (class, _) = CLASSES.iter().find(|(_, members)| {
                [med, other].iter().all(|m| m.ingredients.iter().any(|i| members.contains(i)))
            })?;
            Some((p, Some(*class)))
        })
        .collect()
}

/// Whether prescribing `rx` against `allergies` and the other active
/// `prescriptions` is an override that must give its reason: it conflicts
/// with an active allergy or interacts with an active prescription. Drugs
/// outside the catalog are not judged.
pub fn needs_reason<'a>(
    rx: &Prescription,
    allergies: impl IntoIterator<Item = &'a Allergy>,
    prescriptions: impl IntoIterator<Item = &'a Prescription>,
) -> bool {
    let Some(med) = catalog::medication(&rx.rxnorm) else { return false };
    !catalog::allergy_conflicts(med, allergies).is_empty()
        || !interactions(med, prescriptions).is_empty()
}

/// Whether a prescription that needs one gives a reason.
pub fn has_reason(rx: &Prescription) -> bool {
    rx.override_reason.as_deref().is_some_and(|r| !r.trim().is_empty())
}

/// Age in whole years on `today`, both `YYYY-MM-DD` (longer RFC 3339 times
/// are cut to their date).
pub fn age(birth_date: &str, today: &str) -> Option<u32> {
    let parse = |s: &str| -> Option<(u32, u32)> {
        let year = s.get(..4)?.parse().ok()?;
        let month_day =
            s.get(5..7)?.parse::<u32>().ok()? * 100 + s.get(8..10)?.parse::<u32>().ok()?;
        Some((year, month_day))
    };
    let (born, born_day) = parse(birth_date)?;
    let (now, now_day) = parse(today)?;
    let years = now.checked_sub(born)?;
    if now_day < born_day { years.checked_sub(1) } else { Some(years) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ClinicId, UserId};
    use crate::schema::Provenance;
    use crate::status::{AllergyStatus, ResultStatus, Severity};

    fn provenance() -> Provenance {
        Provenance {
            clinic: ClinicId::mint(),
            clinic_name: "C".into(),
            recorder: UserId::mint(),
            recorder_name: "R".into(),
            recorded: "2026-12-01T00:00:00Z".into(),
        }
    }

    fn rx(rxnorm: &str, status: PrescriptionStatus) -> Prescription {
        Prescription {
            rxnorm: rxnorm.into(),
            display: catalog::medication(rxnorm).map_or("?", |m| m.display).into(),
            dosage: "d".into(),
            quantity: 1,
            refills_allowed: 0,
            authored: "2026-12-01T00:00:00Z".into(),
            status,
            provenance: provenance(),
            status_reason: None,
            status_by: None,
            status_at: None,
            override_reason: None,
        }
    }

    fn obs(loinc: &str, value: f64, interpretation: Option<&str>) -> Observation {
        Observation {
            report: None,
            loinc: loinc.into(),
            display: "d".into(),
            value_quantity: Some(value),
            value_string: None,
            unit: None,
            reference_low: None,
            reference_high: None,
            effective: "2026-12-01T00:00:00Z".into(),
            status: ResultStatus::Final,
            replaces: None,
            provenance: provenance(),
            status_reason: None,
            status_by: None,
            status_at: None,
            interpretation: interpretation.map(Into::into),
        }
    }

    fn allergy(code: &str, status: AllergyStatus) -> Allergy {
        Allergy {
            substance_code: code.into(),
            substance: "s".into(),
            reaction: "r".into(),
            severity: Severity::Severe,
            status,
            provenance: provenance(),
            status_reason: None,
            status_by: None,
            status_at: None,
        }
    }

    const K: &str = "2823-3";
    const ACTIVE: PrescriptionStatus = PrescriptionStatus::Active;

    #[test]
    fn impossible_values_are_judged_impossible() {
        for v in [58.0, 15.01, 0.49, -1.0, f64::NAN] {
            assert_eq!(judge(K, v), Judgement::Impossible, "K {v}");
        }
        assert_eq!(judge("2951-2", 1400.0), Judgement::Impossible);
        assert_eq!(judge("718-7", 133.7), Judgement::Impossible);
        // Any catalog test refuses a negative value, even without limits.
        assert_eq!(judge("4548-4", -0.1), Judgement::Impossible);
        assert_eq!(judge("4548-4", 14.0), Judgement::Plausible);
        // Tests outside the catalog are not judged.
        assert_eq!(judge("99999-9", -5.0), Judgement::Plausible);
    }

    #[test]
    fn critical_low_and_high_and_their_boundaries() {
        let high = Judgement::Critical(RangeFlag::High);
        let low = Judgement::Critical(RangeFlag::Low);
        assert_eq!(judge(K, 6.8), high);
        assert_eq!(judge(K, 2.1), low);
        // The limits themselves are not critical; just past them is;
        // the impossible limits themselves are still possible.
        assert_eq!(judge(K, 6.2), Judgement::Plausible);
        assert_eq!(judge(K, 6.21), high);
        assert_eq!(judge(K, 2.8), Judgement::Plausible);
        assert_eq!(judge(K, 2.79), low);
        assert_eq!(judge(K, 15.0), high);
        assert_eq!(judge(K, 0.5), low);
        assert_eq!(judge("2345-7", 40.0), low);
        assert_eq!(judge("2345-7", 600.0), high);
        assert_eq!(judge("2160-0", 0.1), Judgement::Plausible, "no critical low creatinine");
        assert_eq!(high.interpretation(), Some(CRITICAL_HIGH));
        assert_eq!(low.interpretation(), Some(CRITICAL_LOW));
        assert_eq!(Judgement::Plausible.interpretation(), None);
    }

    #[test]
    fn every_limit_is_a_catalog_test_in_order() {
        for (loinc, [a, b, c, d]) in LIMITS {
            assert!(catalog::lab_test(loinc).is_some(), "{loinc}");
            assert!((a <= b || b.is_infinite()) && b < c && c < d, "{loinc}");
        }
    }

    #[test]
    fn a_result_is_marked_critical_exactly_when_it_is() {
        assert_eq!(check_result(&obs(K, 58.0, None)), Err(ResultProblem::Impossible));
        assert_eq!(check_result(&obs(K, 58.0, Some("HH"))), Err(ResultProblem::Impossible));
        assert_eq!(check_result(&obs(K, 6.8, None)), Err(ResultProblem::CriticalMark));
        assert_eq!(check_result(&obs(K, 6.8, Some("LL"))), Err(ResultProblem::CriticalMark));
        assert_eq!(check_result(&obs(K, 6.8, Some("HH"))), Ok(()));
        assert_eq!(check_result(&obs(K, 2.0, Some("LL"))), Ok(()));
        assert_eq!(check_result(&obs(K, 4.2, Some("HH"))), Err(ResultProblem::CriticalMark));
        assert_eq!(check_result(&obs(K, 4.2, None)), Ok(()));
        let text = Observation { value_quantity: None, ..obs(K, 0.0, None) };
        assert_eq!(check_result(&text), Ok(()));
    }

    #[test]
    fn an_allergy_conflict_needs_a_reason() {
        let amoxicillin = rx("308191", ACTIVE);
        let penicillin = [allergy("70618", AllergyStatus::Active)];
        assert!(needs_reason(&amoxicillin, &penicillin, []));
        assert!(!needs_reason(&amoxicillin, &[allergy("70618", AllergyStatus::Inactive)], []));
        assert!(!needs_reason(&rx("861007", ACTIVE), &penicillin, []));
        let given =
            Prescription { override_reason: Some("tolerated before".into()), ..amoxicillin };
        assert!(has_reason(&given));
        assert!(!has_reason(&Prescription { override_reason: Some("  ".into()), ..given }));
    }

    #[test]
    fn each_interaction_warns_in_both_orders() {
        let pairs = [
            ("855332", "310965"), // warfarin, ibuprofen
            ("105585", "198405"), // methotrexate, sulfamethoxazole/trimethoprim
            ("197517", "198211"), // clarithromycin, simvastatin
            ("197517", "200371"), // clarithromycin, citalopram (QT)
        ];
        for (a, b) in pairs {
            for (new, old) in [(a, b), (b, a)] {
                let existing = [rx(old, ACTIVE)];
                let med = catalog::medication(new).unwrap();
                let found = interactions(med, &existing);
                assert_eq!(found.len(), 1, "{new} with {old}");
                assert!(needs_reason(&rx(new, ACTIVE), [], &existing));
                // Stopped or completed prescriptions do not count.
                for status in [PrescriptionStatus::Stopped, PrescriptionStatus::Completed] {
                    assert!(interactions(med, &[rx(old, status)]).is_empty());
                }
            }
        }
        // No interaction with itself through the QT group, nor between
        // unrelated drugs.
        let clarithromycin = catalog::medication("197517").unwrap();
        assert!(interactions(clarithromycin, &[rx("197517", ACTIVE)]).is_empty());
        assert!(interactions(clarithromycin, &[rx("861007", ACTIVE)]).is_empty());
    }

    #[test]
    fn duplicate_therapy_by_ingredient_and_by_class() {
        let atorvastatin = catalog::medication("617310").unwrap();
        let existing = [rx("617310", ACTIVE), rx("198211", ACTIVE), rx("861007", ACTIVE)];
        let found = duplicates(atorvastatin, &existing);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].0.rxnorm.as_str(), found[0].1), ("617310", None));
        assert_eq!((found[1].0.rxnorm.as_str(), found[1].1), ("198211", Some("statin")));
        let stopped = [rx("198211", PrescriptionStatus::Stopped)];
        assert!(duplicates(atorvastatin, &stopped).is_empty());
        assert!(duplicates(catalog::medication("314076").unwrap(), &existing).is_empty());
    }

    #[test]
    fn age_in_whole_years() {
        assert_eq!(age("1968-04-12", "2026-12-03"), Some(58));
        assert_eq!(age("1968-12-03", "2026-12-03T10:00:00Z"), Some(58));
        assert_eq!(age("1968-12-04", "2026-12-03"), Some(57));
        assert_eq!(age("2030-01-01", "2026-12-03"), None);
        assert_eq!(age("unknown", "2026-12-03"), None);
    }
}

//! The coded terms staff pick from: LOINC lab tests and panels, RxNorm
//! medications, CVX vaccines. A small curated subset for primary care; codes
//! and names are the official ones so entries export to FHIR unchanged.

use crate::schema::Allergy;
use crate::status::AllergyStatus;

/// A LOINC-coded lab test with its UCUM unit and an adult reference range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LabTest {
    pub loinc: &'static str,
    pub display: &'static str,
    pub unit: &'static str,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

/// A LOINC-coded panel (what a DiagnosticReport is "of").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Panel {
    pub loinc: &'static str,
    pub display: &'static str,
    pub tests: &'static [&'static str],
}

/// An RxNorm clinical drug. `ingredients` lists the RxNorm codes of its
/// ingredients and drug classes, matched against allergy substance codes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Medication {
    pub rxnorm: &'static str,
    pub display: &'static str,
    pub ingredients: &'static [&'static str],
    pub usual_dosage: &'static str,
}

/// A CVX-coded vaccine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Vaccine {
    pub cvx: &'static str,
    pub display: &'static str,
}

/// An allergy substance, coded in RxNorm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Substance {
    pub rxnorm: &'static str,
    pub display: &'static str,
}

const fn test(
    loinc: &'static str,
    display: &'static str,
    unit: &'static str,
    low: Option<f64>,
    high: Option<f64>,
) -> LabTest {
    LabTest { loinc, display, unit, low, high }
}

pub const LAB_TESTS: &[LabTest] = &[
    test("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", Some(4.0), Some(5.6)),
    test("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", None, Some(200.0)),
    test("2085-9", "HDL cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", Some(40.0), None),
    test(
        "13457-7",
        "LDL cholesterol [Mass/volume] in Serum or Plasma by calculation",
        "mg/dL",
        None,
        Some(100.0),
    ),
    test("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", None, Some(150.0)),
    test(
        "62238-1",
        "Glomerular filtration rate/1.73 sq M.predicted (CKD-EPI)",
        "mL/min/{1.73_m2}",
        Some(60.0),
        None,
    ),
    test("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", Some(0.6), Some(1.3)),
    test("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", Some(70.0), Some(99.0)),
    test("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", Some(135.0), Some(145.0)),
    test("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", Some(3.5), Some(5.1)),
    test(
        "6690-2",
        "Leukocytes [#/volume] in Blood by Automated count",
        "10*3/uL",
        Some(4.5),
        Some(11.0),
    ),
    test(
        "789-8",
        "Erythrocytes [#/volume] in Blood by Automated count",
        "10*6/uL",
        Some(4.2),
        Some(5.9),
    ),
    test("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", Some(12.0), Some(17.5)),
    test(
        "4544-3",
        "Hematocrit [Volume Fraction] of Blood by Automated count",
        "%",
        Some(36.0),
        Some(50.0),
    ),
    test(
        "777-3",
        "Platelets [#/volume] in Blood by Automated count",
        "10*3/uL",
        Some(150.0),
        Some(400.0),
    ),
    test(
        "3016-3",
        "Thyrotropin [Units/volume] in Serum or Plasma",
        "m[IU]/L",
        Some(0.4),
        Some(4.0),
    ),
];

pub const PANELS: &[Panel] = &[
    Panel { loinc: "4548-4", display: "Hemoglobin A1c", tests: &["4548-4"] },
    Panel {
        loinc: "57698-3",
        display: "Lipid panel with direct LDL - Serum or Plasma",
        tests: &["2093-3", "2085-9", "13457-7", "2571-8"],
    },
    Panel {
        loinc: "51990-0",
        display: "Basic metabolic panel - Blood",
        tests: &["2345-7", "2160-0", "62238-1", "2951-2", "2823-3"],
    },
    Panel {
        loinc: "58410-2",
        display: "CBC panel - Blood by Automated count",
        tests: &["6690-2", "789-8", "718-7", "4544-3", "777-3"],
    },
    Panel { loinc: "3016-3", display: "Thyrotropin", tests: &["3016-3"] },
];

/// Penicillins as a class, so an allergy to penicillin warns on amoxicillin.
const PENICILLINS: &str = "70618";

pub const MEDICATIONS: &[Medication] = &[
    Medication {
        rxnorm: "861007",
        display: "metformin hydrochloride 500 MG Oral Tablet",
        ingredients: &["6809"],
        usual_dosage: "1 tablet by mouth twice daily with meals",
    },
    Medication {
        rxnorm: "617310",
        display: "atorvastatin 20 MG Oral Tablet",
        ingredients: &["83367"],
        usual_dosage: "1 tablet by mouth once daily",
    },
    Medication {
        rxnorm: "314076",
        display: "lisinopril 10 MG Oral Tablet",
        ingredients: &["29046"],
        usual_dosage: "1 tablet by mouth once daily",
    },
    Medication {
        rxnorm: "197361",
        display: "amlodipine 5 MG Oral Tablet",
        ingredients: &["17767"],
        usual_dosage: "1 tablet by mouth once daily",
    },
    Medication {
        rxnorm: "308191",
        display: "amoxicillin 500 MG Oral Capsule",
        ingredients: &["723", PENICILLINS],
        usual_dosage: "1 capsule by mouth three times daily for 7 days",
    },
    Medication {
        rxnorm: "198211",
        display: "simvastatin 40 MG Oral Tablet",
        ingredients: &["36567"],
        usual_dosage: "1 tablet by mouth at bedtime",
    },
    Medication {
        rxnorm: "310429",
        display: "furosemide 20 MG Oral Tablet",
        ingredients: &["4603"],
        usual_dosage: "1 tablet by mouth each morning",
    },
    Medication {
        rxnorm: "313782",
        display: "acetaminophen 325 MG Oral Tablet",
        ingredients: &["161"],
        usual_dosage: "2 tablets by mouth every 6 hours as needed",
    },
    Medication {
        rxnorm: "310965",
        display: "ibuprofen 200 MG Oral Tablet",
        ingredients: &["5640"],
        usual_dosage: "1 to 2 tablets by mouth every 6 hours as needed",
    },
    Medication {
        rxnorm: "966247",
        display: "levothyroxine sodium 0.05 MG Oral Tablet",
        ingredients: &["10582"],
        usual_dosage: "1 tablet by mouth every morning before breakfast",
    },
    Medication {
        rxnorm: "198405",
        display: "sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet",
        ingredients: &["10180", "10829"],
        usual_dosage: "1 tablet by mouth twice daily",
    },
    // For the interaction checks (`safety`).
    Medication {
        rxnorm: "855332",
        display: "warfarin sodium 5 MG Oral Tablet",
        ingredients: &["11289"],
        usual_dosage: "1 tablet by mouth once daily, dose adjusted to INR",
    },
    Medication {
        rxnorm: "105585",
        display: "methotrexate 2.5 MG Oral Tablet",
        ingredients: &["6851"],
        usual_dosage: "3 tablets by mouth once weekly, on the same day each week",
    },
    Medication {
        rxnorm: "197517",
        display: "clarithromycin 500 MG Oral Tablet",
        ingredients: &["21212"],
        usual_dosage: "1 tablet by mouth twice daily for 7 days",
    },
    Medication {
        rxnorm: "200371",
        display: "citalopram 20 MG Oral Tablet",
        ingredients: &["2556"],
        usual_dosage: "1 tablet by mouth once daily",
    },
];

pub const SUBSTANCES: &[Substance] = &[
    Substance { rxnorm: PENICILLINS, display: "Penicillin" },
    Substance { rxnorm: "10180", display: "Sulfamethoxazole" },
    Substance { rxnorm: "1191", display: "Aspirin" },
    Substance { rxnorm: "5640", display: "Ibuprofen" },
    Substance { rxnorm: "29046", display: "Lisinopril" },
];

pub const VACCINES: &[Vaccine] = &[
    Vaccine { cvx: "140", display: "Influenza, seasonal, injectable, preservative free" },
    Vaccine { cvx: "208", display: "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose" },
    Vaccine { cvx: "115", display: "Tdap" },
    Vaccine { cvx: "133", display: "Pneumococcal conjugate PCV 13" },
    Vaccine { cvx: "43", display: "Hepatitis B, adult dosage" },
];

/// The names patients know tests and panels by, after the plain-language
/// names patient portals and lab-test guides use (LOINC's own names stay the
/// coded ones, shown beside these, and exported), each with a sentence or two
/// on what it measures, for "About this test". General words only: what a
/// result means for the person is their clinician's to say, and the app
/// says so under them.
pub const FOR_PEOPLE: &[(&str, &str, &str)] = &[
    (
        "4548-4",
        "Hemoglobin A1c",
        "Your average blood sugar over the past 2 to 3 months. It is used to find diabetes and to see how well it is controlled.",
    ),
    (
        "2093-3",
        "Total cholesterol",
        "All the cholesterol in your blood. Read together with HDL, LDL and triglycerides, it helps judge the risk of heart disease and stroke.",
    ),
    (
        "2085-9",
        "HDL cholesterol (\"good\")",
        "Cholesterol that carries extra cholesterol away from your arteries: a higher level is usually better.",
    ),
    (
        "13457-7",
        "LDL cholesterol (\"bad\")",
        "Cholesterol that can build up in the walls of your arteries: a lower level is usually better.",
    ),
    (
        "2571-8",
        "Triglycerides",
        "A kind of fat in your blood. High levels add to the risk of heart disease; they rise after a meal, so this test is often taken fasting.",
    ),
    (
        "62238-1",
        "eGFR (kidney function)",
        "An estimate of how well your kidneys filter your blood, worked out from creatinine and your age. A lower number means the kidneys filter less.",
    ),
    (
        "2160-0",
        "Creatinine",
        "A waste product of your muscles that healthy kidneys remove. A high level can mean the kidneys are not filtering well.",
    ),
    (
        "2345-7",
        "Glucose",
        "The sugar in your blood at the time of the test. It is used to find and follow diabetes; eating beforehand raises it.",
    ),
    (
        "2951-2",
        "Sodium",
        "A salt that keeps the balance of water in your body. It can change with some medicines, with fluids and with illness.",
    ),
    (
        "2823-3",
        "Potassium",
        "A mineral your heart and muscles need to work. A level too high or too low can affect the heart's rhythm.",
    ),
    (
        "6690-2",
        "White blood cells",
        "The cells that fight infection. A high count can come with an infection or inflammation; a low count makes infections more likely.",
    ),
    (
        "789-8",
        "Red blood cells",
        "The cells that carry oxygen around your body. A low count can mean anemia.",
    ),
    (
        "718-7",
        "Hemoglobin",
        "The protein in red blood cells that carries oxygen. A low level, called anemia, can make you feel tired or short of breath.",
    ),
    (
        "4544-3",
        "Hematocrit",
        "How much of your blood is made of red blood cells. A low level can mean anemia.",
    ),
    (
        "777-3",
        "Platelets",
        "Small cells that help your blood clot. Too few can cause bleeding or bruising; too many can cause clots.",
    ),
    (
        "3016-3",
        "TSH (thyroid)",
        "A hormone that tells your thyroid how hard to work. A high level often means an underactive thyroid, a low one an overactive thyroid.",
    ),
    (
        "57698-3",
        "Lipid panel (cholesterol)",
        "The fats in your blood: total, HDL and LDL cholesterol, and triglycerides.",
    ),
    (
        "51990-0",
        "Basic metabolic panel",
        "Blood sugar, salts and kidney function, from one blood sample.",
    ),
    (
        "58410-2",
        "Complete blood count (CBC)",
        "The cells in your blood: red and white blood cells and platelets.",
    ),
];

/// The plain name of a LOINC-coded test or panel, if the catalog has one.
pub fn plain_name(loinc: &str) -> Option<&'static str> {
    FOR_PEOPLE.iter().find(|t| t.0 == loinc).map(|t| t.1)
}

/// What a LOINC-coded test or panel measures, in a sentence or two, if the
/// catalog says.
pub fn about(loinc: &str) -> Option<&'static str> {
    FOR_PEOPLE.iter().find(|t| t.0 == loinc).map(|t| t.2)
}

/// A UCUM unit as people write it ("10*3/uL" is "thousand/µL"); units
/// that already read well come back unchanged.
pub fn readable_unit(ucum: &str) -> &str {
    match ucum {
        "10*3/uL" => "thousand/µL",
        "10*6/uL" => "million/µL",
        "mL/min/{1.73_m2}" => "mL/min/1.73 m²",
        "m[IU]/L" => "mIU/L",
        "uL" => "µL",
        other => other,
    }
}

pub fn lab_test(loinc: &str) -> Option<&'static LabTest> {
    LAB_TESTS.iter().find(|t| t.loinc == loinc)
}

pub fn medication(rxnorm: &str) -> Option<&'static Medication> {
    MEDICATIONS.iter().find(|m| m.rxnorm == rxnorm)
}

/// Case-insensitive search over display names and codes, for pickers.
pub fn search<'a, T>(
    items: &'a [T],
    query: &str,
    key: impl Fn(&T) -> [&'static str; 2],
) -> Vec<&'a T> {
    let query = query.trim().to_lowercase();
    items
        .iter()
        .filter(|item| key(item).iter().any(|field| field.to_lowercase().contains(&query)))
        .collect()
}

/// The active allergies a medication would trigger, for the prescribing warning.
pub fn allergy_conflicts<'a>(
    medication: &Medication,
    allergies: impl IntoIterator<Item = &'a Allergy>,
) -> Vec<&'a Allergy> {
    allergies
        .into_iter()
        .filter(|a| {
            a.status == AllergyStatus::Active
                && medication.ingredients.contains(&a.substance_code.as_str())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_panel_test_is_in_the_catalog() {
        for panel in PANELS {
            for loinc in panel.tests {
                assert!(lab_test(loinc).is_some(), "{} lists unknown test {loinc}", panel.loinc);
            }
        }
    }

    #[test]
    fn every_test_and_panel_has_a_plain_name_and_a_readable_unit() {
        for test in LAB_TESTS {
            let name = plain_name(test.loinc)
                .unwrap_or_else(|| panic!("{} has no plain name", test.loinc));
            assert!(name.len() < test.display.len(), "{name} is not shorter than {}", test.display);
            let unit = readable_unit(test.unit);
            assert!(!unit.contains(['{', '*', '[', '_']), "{} reads as {unit}", test.unit);
        }
        for panel in PANELS.iter().filter(|p| p.tests.len() > 1) {
            assert!(plain_name(panel.loinc).is_some(), "{} has no plain name", panel.loinc);
        }
        assert_eq!(readable_unit("mmol/L"), "mmol/L");
        assert_eq!(plain_name("0000-0"), None);
    }

    #[test]
    fn every_test_and_panel_says_what_it_measures_in_a_sentence_or_two() {
        let codes = LAB_TESTS.iter().map(|t| t.loinc).chain(PANELS.iter().map(|p| p.loinc));
        for code in codes {
            let about = about(code).unwrap_or_else(|| panic!("{code} has no About text"));
            assert!((20..=200).contains(&about.len()), "{code}: {} bytes", about.len());
            assert!(about.ends_with('.'), "{code}: a sentence");
        }
        assert_eq!(about("0000-0"), None);
    }

    #[test]
    fn search_matches_names_and_codes() {
        let by_name = search(MEDICATIONS, "AMOX", |m| [m.display, m.rxnorm]);
        assert_eq!(by_name.len(), 1);
        let by_code = search(LAB_TESTS, "4548", |t| [t.display, t.loinc]);
        assert_eq!(by_code[0].loinc, "4548-4");
    }
}

//! The read API's searches over a patient's resources, and what the
//! server says it can do (`CapabilityStatement`).

use shared::fhir::{FHIR_VERSION, Value};

/// Resource types the API searches, with the parameters each takes
/// beside `patient`.
pub const SEARCHABLE: &[(&str, &[(&str, &str)])] = &[
    ("Observation", &[("code", "token"), ("date", "date"), ("category", "token")]),
    ("MedicationRequest", &[]),
    ("AllergyIntolerance", &[]),
    ("Immunization", &[]),
    ("Appointment", &[]),
];

/// A search's criteria beside the patient; each must hold (parameters
/// repeated are all applied, as FHIR ANDs them).
#[derive(Debug, Default)]
pub struct Criteria {
    codes: Vec<Token>,
    categories: Vec<Token>,
    dates: Vec<(Prefix, String)>,
}

/// `[system|]code`.
#[derive(Debug)]
struct Token {
    system: Option<String>,
    code: String,
}

#[derive(Clone, Copy, Debug)]
enum Prefix {
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
}

impl Criteria {
    /// The criteria of the query's parameters for `resource_type`, or the
    /// problem with one. Parameters the server does not know are ignored
    /// (FHIR's lenient handling), except these named for the wrong type.
    pub fn parse(resource_type: &str, params: &[(String, String)]) -> Result<Self, String> {
        let mut criteria = Self::default();
        let observation = resource_type == "Observation";
        for (name, value) in params {
            match name.as_str() {
                "code" | "category" | "date" if !observation => {
                    return Err(format!("{resource_type} is not searched by {name}"));
                }
                "code" => criteria.codes.push(token(value)),
                "category" => criteria.categories.push(token(value)),
                "date" => {
                    let (prefix, rest) = match value.get(..2) {
                        Some("eq") => (Prefix::Eq, &value[2..]),
                        Some("ge") => (Prefix::Ge, &value[2..]),
                        Some("gt") => (Prefix::Gt, &value[2..]),
                        Some("le") => (Prefix::Le, &value[2..]),
                        Some("lt") => (Prefix::Lt, &value[2..]),
                        _ => (Prefix::Eq, value.as_str()),
                    };
                    let date = shared::fhir::import::to_utc(rest)
                        .or_else(|| partial_date(rest).then(|| rest.to_owned()))
                        .ok_or_else(|| format!("date {value:?} is not a FHIR date"))?;
                    criteria.dates.push((prefix, date));
                }
                _ => {}
            }
        }
        Ok(criteria)
    }

    /// Whether `resource` meets every criterion.
    pub fn matches(&self, resource: &Value) -> bool {
        let coded = |key: &str, t: &Token| {
            let concepts: Vec<&Value> = match resource.get(key) {
                Some(Value::Array(items)) => items.iter().collect(),
                Some(concept) => vec![concept],
                None => Vec::new(),
            };
            concepts.iter().flat_map(|c| c.items("coding")).any(|c| {
                c.str_at(&["code"]) == Some(t.code.as_str())
                    && t.system.as_deref().is_none_or(|s| c.str_at(&["system"]) == Some(s))
            })
        };
        let effective = resource.str_at(&["effectiveDateTime"]).unwrap_or_default();
        self.codes.iter().all(|t| coded("code", t))
            && self.categories.iter().all(|t| coded("category", t))
            && self.dates.iter().all(|(prefix, date)| {
                // Compared at the parameter's precision: `2025-03` is all of March.
                let value = effective.get(..date.len().min(effective.len())).unwrap_or_default();
                match prefix {
                    Prefix::Eq => value == date,
                    Prefix::Ge => value >= date.as_str(),
                    Prefix::Gt => value > date.as_str(),
                    Prefix::Le => value <= date.as_str(),
                    Prefix::Lt => value < date.as_str(),
                }
            })
    }
}

fn token(value: &str) -> Token {
    match value.split_once('|') {
        Some((system, code)) => {
            Token { system: (!system.is_empty()).then(|| system.to_owned()), code: code.to_owned() }
        }
        None => Token { system: None, code: value.to_owned() },
    }
}

/// `YYYY` or `YYYY-MM`.
fn partial_date(s: &str) -> bool {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('-') {
        None => s.len() == 4 && digits(s),
        Some((y, m)) => y.len() == 4 && digits(y) && m.len() == 2 && digits(m),
    }
}

/// The CapabilityStatement of `GET /fhir/R4/metadata`.
pub fn capability_statement(base: &str) -> Value {
    let search = |kind: &str, params: &[(&str, &str)]| {
        let mut all =
            vec![Value::object([("name", "patient".into()), ("type", "reference".into())])];
        all.extend(params.iter().map(|(name, kind)| {
            Value::object([("name", (*name).into()), ("type", (*kind).into())])
        }));
        Value::object([
            ("type", kind.into()),
            ("interaction", vec![Value::object([("code", "search-type".into())])].into()),
            ("searchParam", all.into()),
        ])
    };
    let mut resources = vec![Value::object([
        ("type", "Patient".into()),
        ("interaction", vec![Value::object([("code", "read".into())])].into()),
        (
            "operation",
            vec![Value::object([
                ("name", "everything".into()),
                ("definition", "http://hl7.org/fhir/OperationDefinition/Patient-everything".into()),
            ])]
            .into(),
        ),
    ])];
    resources.extend(SEARCHABLE.iter().map(|(kind, params)| search(kind, params)));
    Value::object([
        ("resourceType", "CapabilityStatement".into()),
        ("status", "active".into()),
        ("date", "2026-12-03".into()),
        ("kind", "instance".into()),
        ("software", Value::object([("name", "portal".into()), ("version", env!("CARGO_PKG_VERSION").into())])),
        (
            "implementation",
            Value::object([("description", "Offline-first patient portal".into()), ("url", base.into())]),
        ),
        ("fhirVersion", FHIR_VERSION.into()),
        ("format", vec![Value::str("json"), Value::str(super::CONTENT_TYPE)].into()),
        (
            "rest",
            vec![Value::object([
                ("mode", "server".into()),
                ("interaction", vec![Value::object([("code", "transaction".into())])].into()),
                (
                    "security",
                    Value::object([(
                        "description",
                        "A portal session (passkey sign-in) with the same read rules as sync; every read is in the patient's access log. SMART App Launch is not offered yet."
                            .into(),
                    )]),
                ),
                ("resource", resources.into()),
            ])]
            .into(),
        ),
    ])
}

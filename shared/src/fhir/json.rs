//! A small JSON value for FHIR resources, with members in the order they
//! were added and a compact writer.
//!
//! The app builds the same Bundle offline, and serde_json would add tens of
//! kilobytes to its bundle; this type costs an enum and a writer. The server
//! converts to and from `serde_json::Value` at its edges (`server::fhir`).

/// A JSON value. Objects keep their members in insertion order, so a
/// resource is written with `resourceType` first and in the order the
/// FHIR specification lists its elements.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// An object of `members`, in order.
    pub fn object<const N: usize>(members: [(&str, Value); N]) -> Self {
        Self::from_members(&mut members.into_iter())
    }

    /// Apart from [`Value::object`], which is compiled once per length:
    /// only the array's iterator is, not the building of the object (the
    /// web app carries this code).
    fn from_members(members: &mut dyn Iterator<Item = (&str, Value)>) -> Self {
        Self::Object(members.map(|(k, v)| (k.to_owned(), v)).collect())
    }

    pub fn str(text: &str) -> Self {
        Self::String(text.to_owned())
    }

    /// The member `key` of an object (the first, if repeated).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Self::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Adds (or replaces) the member `key` of an object; anything else is
    /// left alone.
    pub fn set(&mut self, key: &str, value: Value) {
        if let Self::Object(members) = self {
            match members.iter_mut().find(|(k, _)| k == key) {
                Some((_, old)) => *old = value,
                None => members.push((key.to_owned(), value)),
            }
        }
    }

    /// Adds `key` only when there is a value (FHIR has no nulls or empty
    /// strings: an element is present with a value or absent).
    pub fn set_some(&mut self, key: &str, value: Option<Value>) {
        if let Some(value) = value {
            self.set(key, value);
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Self::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn members(&self) -> Option<&[(String, Value)]> {
        match self {
            Self::Object(members) => Some(members),
            _ => None,
        }
    }

    /// The value at a path of member names.
    pub fn at(&self, path: &[&str]) -> Option<&Value> {
        path.iter().try_fold(self, |v, key| v.get(key))
    }

    /// The string at a path of member names.
    pub fn str_at(&self, path: &[&str]) -> Option<&str> {
        self.at(path)?.as_str()
    }

    /// The items of the array at `key`; none if absent or not an array.
    pub fn items(&self, key: &str) -> &[Value] {
        self.get(key).and_then(Value::as_array).unwrap_or_default()
    }

    /// Compact JSON text (RFC 8259).
    pub fn to_json_string(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Self::Null => out.push_str("null"),
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            // Rust writes finite floats in plain decimal (never an exponent),
            // and whole numbers without a fraction: valid JSON numbers.
            Self::Number(n) if n.is_finite() => out.push_str(&n.to_string()),
            Self::Number(_) => out.push_str("null"),
            Self::String(s) => write_string(s, out),
            Self::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Self::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(key, out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Self::str(text)
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Self::String(text)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Self::Number(n)
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Self {
        Self::Number(f64::from(n))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Self::Array(items)
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::Value;

    #[test]
    fn writes_compact_json_in_member_order() {
        let mut v = Value::object([
            ("resourceType", "Observation".into()),
            ("value", 5.0.into()),
            ("low", 0.25.into()),
            ("tiny", 0.000_000_1.into()),
            ("text", "a \"quoted\"\n\u{1}line\\".into()),
            ("list", vec![Value::Bool(true), Value::Null].into()),
        ]);
        v.set("value", 4.5.into());
        v.set_some("absent", None);
        assert_eq!(
            v.to_json_string(),
            r#"{"resourceType":"Observation","value":4.5,"low":0.25,"tiny":0.0000001,"text":"a \"quoted\"\n\u0001line\\","list":[true,null]}"#
        );
        assert_eq!(Value::Number(f64::NAN).to_json_string(), "null");
        assert_eq!(v.str_at(&["resourceType"]), Some("Observation"));
    }
}

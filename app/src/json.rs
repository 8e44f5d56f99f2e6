//! JSON through the browser's own `JSON` object.
//!
//! The API's shapes are few and flat (api.rs lists them), so the app reads
//! fields off what `JSON.parse` returns and builds objects for
//! `JSON.stringify`. serde_json with derived deserializers cost about
//! 14 KiB of the brotli bundle for the same job.

use js_sys::{Array, JSON, Object, Reflect};
use shared::api::{JsonBuild, JsonValue};
use wasm_bindgen::{JsCast, JsValue};

/// A JSON value, held as the JavaScript value it parses to.
#[derive(Clone, Debug)]
pub struct Json(JsValue);

impl Json {
    pub fn parse(text: &str) -> Option<Json> {
        JSON::parse(text).ok().map(Json)
    }

    pub fn null() -> Json {
        Json(JsValue::NULL)
    }

    /// An object with these members; `undefined` ones are left out.
    pub fn object(members: &[(&str, JsValue)]) -> Json {
        let object = Object::new();
        for (key, value) in members {
            if !value.is_undefined() {
                let _ = Reflect::set(&object, &JsValue::from_str(key), value);
            }
        }
        Json(object.into())
    }

    pub fn array(items: impl IntoIterator<Item = Json>) -> Json {
        Json(items.into_iter().map(|item| item.0).collect::<Array>().into())
    }

    pub fn stringify(&self) -> String {
        JSON::stringify(&self.0).ok().and_then(|s| s.as_string()).unwrap_or_default()
    }

    /// The member `key`, or `undefined`.
    pub fn get(&self, key: &str) -> Json {
        Json(if self.0.is_object() {
            Reflect::get(&self.0, &JsValue::from_str(key)).unwrap_or_default()
        } else {
            JsValue::UNDEFINED
        })
    }

    pub fn str(&self, key: &str) -> Option<String> {
        self.get(key).0.as_string()
    }

    /// The items of an array (none if this is not one).
    pub fn items(&self) -> Vec<Json> {
        self.0.dyn_ref::<Array>().map(|array| array.iter().map(Json).collect()).unwrap_or_default()
    }

    /// The members of an object, in order.
    pub fn members(&self) -> Vec<(String, Json)> {
        let Some(object) = self.0.dyn_ref::<Object>() else { return Vec::new() };
        Object::keys(object)
            .iter()
            .filter_map(|key| Some((key.as_string()?, self.get(&key.as_string()?))))
            .collect()
    }

    pub fn js(&self) -> &JsValue {
        &self.0
    }
}

impl From<JsValue> for Json {
    fn from(value: JsValue) -> Self {
        Json(value)
    }
}

/// The app reads `shared::api`'s bodies through this layer.
impl JsonValue for Json {
    fn member(&self, key: &str) -> Self {
        self.get(key)
    }
    fn is_null(&self) -> bool {
        self.0.is_null() || self.0.is_undefined()
    }
    fn text(&self) -> Option<String> {
        self.0.as_string()
    }
    fn number(&self) -> Option<f64> {
        self.0.as_f64()
    }
    fn boolean(&self) -> Option<bool> {
        self.0.as_bool()
    }
    fn items(&self) -> Option<Vec<Self>> {
        self.0.dyn_ref::<Array>().map(|array| array.iter().map(Json).collect())
    }
}

impl JsonBuild for Json {
    fn text(text: &str) -> Self {
        Json(JsValue::from_str(text))
    }
    fn boolean(value: bool) -> Self {
        Json(JsValue::from_bool(value))
    }
    fn number(value: f64) -> Self {
        Json(JsValue::from_f64(value))
    }
    fn null() -> Self {
        Json(JsValue::NULL)
    }
    fn list(items: Vec<Self>) -> Self {
        Json::array(items)
    }
    fn object(members: Vec<(&'static str, Self)>) -> Self {
        let members: Vec<(&str, JsValue)> = members.into_iter().map(|(k, v)| (k, v.0)).collect();
        Json::object(&members)
    }
}

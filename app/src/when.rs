//! Dates and times as a person reads them: in the page's language and the
//! device's time zone, through the browser's `Intl` (`vault.js`, `when`),
//! which knows every locale's order, month names and clock without the
//! app carrying any of them. Stored stamps stay RFC 3339 (`logic::date`
//! cuts them for comparing and for the download's tables).

#[wasm_bindgen::prelude::wasm_bindgen(module = "/src/vault.js")]
extern "C" {
    #[wasm_bindgen(js_name = when)]
    fn format(stamp: &str, time: bool, wall: bool) -> String;
    /// Today on this device's calendar, `YYYY-MM-DD`.
    pub fn today() -> String;
}

/// The day of a stamp ("Sep 3, 2026"), in this device's time zone.
pub fn day(stamp: &str) -> String {
    format(stamp, false, false)
}

/// The day and time of an instant ("Sep 3, 2026, 10:45 AM"), in this
/// device's time zone.
pub fn moment(stamp: &str) -> String {
    format(stamp, true, false)
}

/// An appointment's time: the clinic's wall clock, stored with a "Z" but
/// not an instant, so shown as written wherever the device is.
pub fn clinic_time(stamp: &str) -> String {
    format(stamp, true, true)
}

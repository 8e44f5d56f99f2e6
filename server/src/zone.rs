//! Clinic time zones (issue 17 part 2): "today" for a clinic's work queue,
//! the offline set of its staff's devices and its admin's appointment list
//! is the clinic's day, in the clinic's IANA time zone (`clinics.time_zone`,
//! `migrations/*/0011`), never the server's UTC date.
//!
//! Appointment times (`Appointment::start`) are the clinic's wall time:
//! their first ten characters (`YYYY-MM-DD`) are the appointment's day at
//! the clinic, as the clinic's staff gave it (the app's form sends what was
//! typed into a `datetime-local` field; the demo and test seeds write the
//! clinic's offset, `2026-12-07T09:30:00+13:00`). That day is never
//! converted: it is compared with `today` in the clinic's zone
//! (`sync::summary` keeps the days, `Store::work_patients` compares them),
//! so an appointment is "today" where the clinic is, whatever the server's
//! zone.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The zone of clinics that never set one (the server's former "today").
pub const DEFAULT: &str = "UTC";

/// The longest zone name accepted (IANA names are at most ~30 bytes).
const MAX_NAME_BYTES: usize = 64;

/// `name` as an IANA time zone (`Pacific/Auckland`, `America/Chicago`,
/// `UTC`), exactly as the tz database spells it; `None` for anything else.
pub fn parse(name: &str) -> Option<Tz> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return None;
    }
    name.parse().ok()
}

/// Why a zone is refused, in words for a clinic's admin.
pub fn check(name: &str) -> Result<Tz, String> {
    parse(name).ok_or_else(|| {
        "The time zone must be an IANA time zone name, such as America/Chicago or Pacific/Auckland."
            .to_owned()
    })
}

/// The date (`YYYY-MM-DD`) at `now_ms` in the zone named `name`. A stored
/// name this server does not know (checked when set, so only from an older
/// tz database) counts as UTC.
pub fn today(now_ms: i64, name: &str) -> String {
    let now = DateTime::<Utc>::from_timestamp_millis(now_ms).unwrap_or_default();
    match parse(name) {
        Some(zone) => now.with_timezone(&zone).format("%Y-%m-%d").to_string(),
        None => now.format("%Y-%m-%d").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iana_names_only() {
        assert!(parse("Pacific/Auckland").is_some());
        assert!(parse("America/Chicago").is_some());
        assert!(parse("UTC").is_some());
        for bad in ["", "Mars/Olympus_Mons", "pacific/auckland", "+13:00", "Pacific/Auckland "] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
        assert!(check("Nowhere").unwrap_err().contains("IANA"));
    }

    #[test]
    fn today_is_the_clinic_s_date() {
        // 2026-12-04 12:00 UTC: 01:00 on the 5th in Auckland (UTC+13 in
        // summer), 02:00 on the 4th in Honolulu (UTC-10).
        let noon = DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z").unwrap().timestamp_millis();
        assert_eq!(today(noon, "Pacific/Auckland"), "2026-12-05");
        assert_eq!(today(noon, "UTC"), "2026-12-04");
        let early = noon - 6 * 3_600_000;
        assert_eq!(today(early, "Pacific/Honolulu"), "2026-12-03");
        assert_eq!(today(early, "an unknown name"), "2026-12-04");
    }
}

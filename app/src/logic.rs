//! Pure view logic: no web-sys, so it is unit-tested on the host
//! (`cargo test -p app`). Grouping results into panels, refills left, trend
//! chart geometry, dates.

use crate::i18n::{t, tf, ts};
use shared::EntryId;
use shared::schema::{
    ClinicalRecord, Message, MessageThread, Observation, PatientRecord, Prescription, Report,
};
use shared::status::RefillStatus;
use shared::status::Side;

use shared::vec_map::VecMap;

/// One panel of results (a Report and its Observations), or a lone result.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub report_id: Option<String>,
    pub report: Option<Report>,
    pub title: String,
    pub effective: String,
    pub observations: Vec<(String, Observation)>,
}

/// Results grouped by panel, newest first; within a panel, in the order of
/// their display names. Observations whose report is missing (not yet
/// synced) or absent form groups of their own.
pub fn group_results(record: &ClinicalRecord) -> Vec<Group> {
    let mut groups: VecMap<String, Group> = VecMap::new();
    for (id, report) in &record.reports {
        groups.insert(
            id.clone(),
            Group {
                report_id: Some(id.clone()),
                report: Some(report.clone()),
                title: shared::catalog::plain_name(&report.loinc)
                    .map_or_else(|| report.display.clone(), |name| t(name).to_owned()),
                effective: report.effective.clone(),
                observations: Vec::new(),
            },
        );
    }
    for (id, obs) in &record.observations {
        let key = obs
            .report
            .map(|r| r.to_string())
            .filter(|r| groups.contains_key(r))
            .unwrap_or_else(|| format!("obs:{id}"));
        groups
            .get_or_insert_with(key, || Group {
                report_id: None,
                report: None,
                title: shared::catalog::plain_name(&obs.loinc)
                    .map_or_else(|| obs.display.clone(), |name| t(name).to_owned()),
                effective: obs.effective.clone(),
                observations: Vec::new(),
            })
            .observations
            .push((id.clone(), obs.clone()));
    }
    let mut groups: Vec<Group> = groups.into_values().collect();
    for group in &mut groups {
        // Ids are the tie-break: the observations come in id order.
        sort_by_key(&mut group.observations, Order::Ascending, |o| o.1.display.clone());
    }
    // Newest first; panels of one day by title.
    sort_by_key(&mut groups, Order::Ascending, |g| g.title.clone());
    sort_by_key(&mut groups, Order::Descending, |g| g.effective.clone());
    groups
}

/// Refills still available: allowed minus approved requests for it.
pub fn refills_left(
    prescription_id: &str,
    prescription: &Prescription,
    patient: Option<&PatientRecord>,
) -> u32 {
    let approved = patient
        .map(|p| {
            p.refill_requests
                .values()
                .filter(|r| {
                    r.prescription.to_string() == prescription_id
                        && r.status == RefillStatus::Approved
                })
                .count() as u32
        })
        .unwrap_or(0);
    prescription.refills_allowed.saturating_sub(approved)
}

/// Minutes since 1970-01-01 of an RFC 3339 / ISO date (`YYYY-MM-DD` with an
/// optional `THH:MM`), ignoring the offset; `None` if it does not parse.
pub fn minutes(stamp: &str) -> Option<i64> {
    let b = stamp.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = stamp.get(0..4)?.parse().ok()?;
    let m: i64 = stamp.get(5..7)?.parse().ok()?;
    let d: i64 = stamp.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let (mut hh, mut mm) = (0, 0);
    if b.len() >= 16 && (b[10] == b'T' || b[10] == b' ') {
        hh = stamp.get(11..13)?.parse().ok()?;
        mm = stamp.get(14..16)?.parse().ok()?;
    }
    Some(days * 1440 + hh * 60 + mm)
}

/// How long ago `then` was at `now` (both RFC 3339), for the work queue:
/// "just now", "5 min", "3 h", "2 days".
pub fn age(now: &str, then: &str) -> String {
    let m = minutes(now).zip(minutes(then)).map_or(0, |(n, t)| (n - t).max(0));
    match m {
        0 => ts("just now"),
        1..60 => tf("{0} min", &[&m]),
        60..2880 => tf("{0} h", &[&(m / 60)]),
        _ => tf("{0} days", &[&(m / 1440)]),
    }
}

/// The date part of a stamp, for comparing days (people read dates
/// through `when`).
pub fn date(stamp: &str) -> &str {
    stamp.get(0..10).unwrap_or(stamp)
}

/// A trend chart laid out in a `width` x `height` box (SVG user units).
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// Points in chart coordinates, oldest first, with their value and flag.
    pub points: Vec<(f64, f64, f64, bool)>,
    /// The reference band as (y_top, y_bottom), clipped to the plot.
    pub band: Option<(f64, f64)>,
    pub y_min: f64,
    pub y_max: f64,
    pub pad: f64,
}

/// Scales `(time, value)` samples into the box: time left to right, value
/// bottom to top; the value axis covers the samples and the reference range
/// with 10 % headroom, so the band is always visible.
pub fn chart(
    samples: &[(i64, f64)],
    low: Option<f64>,
    high: Option<f64>,
    width: f64,
    height: f64,
) -> Option<Chart> {
    if samples.is_empty() {
        return None;
    }
    let pad = 8.0;
    let mut sorted = samples.to_vec();
    sort_by_key(&mut sorted, Order::Ascending, |s| s.0);
    let values = sorted.iter().map(|s| s.1).chain(low).chain(high);
    let (mut y_min, mut y_max) =
        values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let span = if y_max > y_min { y_max - y_min } else { y_min.abs().max(1.0) };
    y_min -= span * 0.1;
    y_max += span * 0.1;
    let (t0, t1) = (sorted[0].0, sorted[sorted.len() - 1].0);
    let x = |t: i64| {
        if t1 == t0 {
            width / 2.0
        } else {
            pad + (t - t0) as f64 / (t1 - t0) as f64 * (width - 2.0 * pad)
        }
    };
    let y = |v: f64| pad + (y_max - v) / (y_max - y_min) * (height - 2.0 * pad);
    let points = sorted
        .iter()
        .map(|&(t, v)| {
            let out = low.is_some_and(|l| v < l) || high.is_some_and(|h| v > h);
            (x(t), y(v), v, out)
        })
        .collect();
    let band = (low.is_some() || high.is_some())
        .then(|| (y(high.unwrap_or(y_max)), y(low.unwrap_or(y_min))));
    Some(Chart { points, band, y_min, y_max, pad })
}

/// A value without trailing zeros (`5.60` -> `5.6`).
pub fn number(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    // Spanish writes a decimal comma ("6,6 %").
    if crate::i18n::decimal_comma() { s.replace('.', ",") } else { s.to_owned() }
}

/// "low–high", "< high", "> low" or "".
pub fn range(low: Option<f64>, high: Option<f64>) -> String {
    match (low, high) {
        (Some(l), Some(h)) => format!("{}–{}", number(l), number(h)),
        (None, Some(h)) => format!("≤ {}", number(h)),
        (Some(l), None) => format!("≥ {}", number(l)),
        (None, None) => String::new(),
    }
}

/// Hex (the actor id from /api/me) to bytes.
pub fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Whether a patient matches a staff search: every word of `query` appears in
/// the name or the birth date.
pub fn matches(query: &str, name: &str, birth_date: &str) -> bool {
    let hay = format!("{} {}", name.to_lowercase(), birth_date);
    query.split_whitespace().all(|w| hay.contains(&w.to_lowercase()))
}

/// Validates a lab value typed by staff.
pub fn parse_value(text: &str) -> Result<f64, &'static str> {
    let typed = text.trim().replace(',', ".");
    if typed.is_empty() {
        return Err(t("Enter a value."));
    }
    match is_decimal(&typed).then(|| decimal(&typed)) {
        Some(v) if v.is_finite() => Ok(v),
        _ => Err(t("The value must be a number, like 5.4.")),
    }
}

/// Whether `t` is a decimal number as Rust's `f64::from_str` reads one:
/// a sign, digits with at most one point (at least one digit), and an
/// exponent with digits. (Rust also reads `inf` and `nan`, which are no
/// lab value.)
fn is_decimal(t: &str) -> bool {
    fn unsigned(s: &str) -> &str {
        s.strip_prefix(['+', '-']).unwrap_or(s)
    }
    fn digits(s: &str) -> bool {
        s.bytes().all(|c| c.is_ascii_digit())
    }
    let t = unsigned(t);
    let (mantissa, exponent) = match t.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(unsigned(e))),
        None => (t, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    digits(int)
        && digits(frac)
        && !(int.is_empty() && frac.is_empty())
        && exponent.is_none_or(|e| !e.is_empty() && digits(e))
}

/// The number an `is_decimal` text stands for. In the browser, its own
/// parser: it rounds a decimal to the nearest double exactly as Rust's does,
/// and Rust's (its code and its 10 KB table of powers of five) cost the
/// bundle about 12 KB brotli.
#[cfg(target_arch = "wasm32")]
fn decimal(t: &str) -> f64 {
    js_sys::Number::parse_float(t)
}

#[cfg(not(target_arch = "wasm32"))]
fn decimal(t: &str) -> f64 {
    t.parse().unwrap_or(f64::NAN)
}

/// Which way [`sort_by_key`] orders.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

/// Sorts `items` by a key; equal keys keep their order. The views sort
/// through this one function because every `sort_by` over another element
/// type carries its own copy of the sort algorithm (several KiB each) into
/// the WASM bundle; here only the `(key, index)` sort is compiled, once per
/// key type.
pub fn sort_by_key<T, K: Ord>(items: &mut Vec<T>, order: Order, key: impl Fn(&T) -> K) {
    let mut keyed: Vec<(K, usize)> = items.iter().map(key).zip(0..).collect();
    sort_keyed(&mut keyed, order);
    let mut slots: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(keyed.into_iter().map(|(_, i)| slots[i].take().expect("each index appears once")));
}

fn sort_keyed<K: Ord>(keyed: &mut [(K, usize)], order: Order) {
    keyed.sort_unstable_by(|a, b| {
        let by_key = if order == Order::Descending { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) };
        by_key.then(a.1.cmp(&b.1))
    });
}

/// One conversation of a thread: its first message's id (`None` for the
/// messages from before conversations), and its messages in the order
/// written (by time sent, then id).
pub struct Conversation<'a> {
    pub first: Option<String>,
    pub messages: Vec<(&'a str, &'a Message)>,
}

impl<'a> Conversation<'a> {
    /// What it is about: its subject, else the start of its first message.
    pub fn title(&self) -> String {
        match self.head() {
            Some(Message { topic: Some(topic), .. }) if !topic.trim().is_empty() => {
                topic.trim().to_owned()
            }
            Some(first) => opening(&first.body),
            None => String::new(),
        }
    }

    /// The result its first message is about, if any.
    pub fn about(&self) -> Option<EntryId> {
        self.head()?.about
    }

    /// Its first message, if this device has it (sync brings it before its
    /// replies, but a view need not count on that).
    fn head(&self) -> Option<&'a Message> {
        match &self.first {
            Some(first) => self.messages.iter().find(|(id, _)| id == first).map(|(_, m)| *m),
            None => self.messages.first().map(|(_, m)| *m),
        }
    }

    /// Messages from the other side of `reader` no one of theirs has read.
    pub fn unread(&self, reader: Side) -> usize {
        self.messages.iter().filter(|(_, m)| m.side != reader && m.read_at.is_none()).count()
    }

    pub fn last_at(&self) -> &str {
        self.messages.last().map_or("", |(_, m)| m.sent_at.as_str())
    }
}

/// The conversations of a thread, the one with the latest message first.
pub fn conversations(thread: &MessageThread) -> Vec<Conversation<'_>> {
    let mut messages: Vec<_> = thread.messages.iter().map(|(id, m)| (id.as_str(), m)).collect();
    // The map lists ids in order and the sort keeps ties in order.
    sort_by_key(&mut messages, Order::Ascending, |m| m.1.sent_at.clone());
    let mut all: Vec<Conversation<'_>> = Vec::new();
    for (id, m) in messages {
        let key = m.conversation(id);
        match all.iter_mut().find(|c| c.first == key) {
            Some(c) => c.messages.push((id, m)),
            None => all.push(Conversation { first: key, messages: vec![(id, m)] }),
        }
    }
    sort_by_key(&mut all, Order::Descending, |c| c.last_at().to_owned());
    all
}

/// The first words of a message, as the title of a conversation that has
/// no subject: at most about 60 characters, cut between words.
pub fn opening(body: &str) -> String {
    let line = body.lines().find(|l| !l.trim().is_empty()).unwrap_or_default().trim();
    if line.chars().count() <= 60 {
        return line.to_owned();
    }
    let cut: String = line.chars().take(60).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{}…", cut.trim_end_matches([',', ';', ':', '.']))
}

#[cfg(test)]
mod tests {
    use shared::schema::{Provenance, RefillRequest};
    use shared::status::{PrescriptionStatus, ResultStatus};
    use shared::{ClinicId, EntryId, UserId};

    use super::*;

    #[test]
    fn ages_read_as_people_say_them() {
        let now = "2026-12-04T18:00:00.000Z";
        assert_eq!(age(now, "2026-12-04T17:55:10Z"), "5 min");
        assert_eq!(age(now, "2026-12-04T15:00:00Z"), "3 h");
        assert_eq!(age(now, "2026-12-03T10:00:00Z"), "32 h");
        assert_eq!(age(now, "2026-12-02T18:00:00Z"), "2 days");
        assert_eq!(age(now, "2026-12-04T18:00:10Z"), "just now");
        assert_eq!(age(now, "garbage"), "just now");
    }

    #[test]
    fn sort_by_key_orders_both_ways_and_keeps_ties_in_order() {
        let mut items = vec![("b", 1), ("a", 2), ("b", 3), ("c", 4)];
        sort_by_key(&mut items, Order::Ascending, |i| i.0);
        assert_eq!(items, [("a", 2), ("b", 1), ("b", 3), ("c", 4)]);
        sort_by_key(&mut items, Order::Descending, |i| i.0);
        assert_eq!(items, [("c", 4), ("b", 1), ("b", 3), ("a", 2)]);
    }

    fn provenance() -> Provenance {
        Provenance {
            clinic: ClinicId::mint(),
            clinic_name: "Riverside".into(),
            recorder: UserId::mint(),
            recorder_name: "Dr. A".into(),
            recorded: "2024-01-01T00:00:00Z".into(),
        }
    }

    fn obs(report: Option<EntryId>, display: &str, effective: &str, value: f64) -> Observation {
        Observation {
            report,
            // A local code: titles then come from the display names.
            loinc: "local-1".into(),
            display: display.into(),
            value_quantity: Some(value),
            value_string: None,
            unit: Some("%".into()),
            reference_low: Some(4.0),
            reference_high: Some(5.6),
            effective: effective.into(),
            status: ResultStatus::Final,
            replaces: None,
            provenance: provenance(),
            status_reason: None,
            status_by: None,
            status_at: None,
            interpretation: None,
        }
    }

    fn report(effective: &str, display: &str) -> Report {
        Report {
            loinc: "local-2".into(),
            display: display.into(),
            effective: effective.into(),
            status: ResultStatus::Final,
            provenance: provenance(),
            status_reason: None,
            status_by: None,
            status_at: None,
        }
    }

    #[test]
    fn results_group_by_panel_newest_first() {
        let mut record = ClinicalRecord::default();
        let (old, new) = (EntryId::mint(), EntryId::mint());
        record.reports.insert(old.to_string(), report("2023-01-01T09:00:00Z", "Lipid panel"));
        record.reports.insert(new.to_string(), report("2024-06-01T09:00:00Z", "CBC panel"));
        record.observations.insert(
            EntryId::mint().to_string(),
            obs(Some(old), "LDL", "2023-01-01T09:00:00Z", 1.0),
        );
        record.observations.insert(
            EntryId::mint().to_string(),
            obs(Some(old), "HDL", "2023-01-01T09:00:00Z", 1.0),
        );
        record.observations.insert(
            EntryId::mint().to_string(),
            obs(Some(new), "Hemoglobin", "2024-06-01T09:00:00Z", 1.0),
        );
        record
            .observations
            .insert(EntryId::mint().to_string(), obs(None, "A1c", "2024-03-01T09:00:00Z", 6.1));
        // A result whose panel has not arrived yet stands alone.
        record.observations.insert(
            EntryId::mint().to_string(),
            obs(Some(EntryId::mint()), "TSH", "2022-01-01", 1.0),
        );
        let groups = group_results(&record);
        let titles: Vec<_> = groups.iter().map(|g| g.title.as_str()).collect();
        assert_eq!(titles, ["CBC panel", "A1c", "Lipid panel", "TSH"]);
        let lipid: Vec<_> = groups[2].observations.iter().map(|o| o.1.display.as_str()).collect();
        assert_eq!(lipid, ["HDL", "LDL"]);
        assert!(groups[1].report.is_none());
    }

    #[test]
    fn results_of_catalog_tests_are_titled_by_their_plain_names() {
        let mut record = ClinicalRecord::default();
        let panel = EntryId::mint();
        let mut lipids =
            report("2024-06-01T09:00:00Z", "Lipid panel with direct LDL - Serum or Plasma");
        lipids.loinc = "57698-3".into();
        record.reports.insert(panel.to_string(), lipids);
        let mut a1c = obs(None, "Hemoglobin A1c/Hemoglobin.total in Blood", "2024-03-01", 6.1);
        a1c.loinc = "4548-4".into();
        record.observations.insert(EntryId::mint().to_string(), a1c);
        let titles: Vec<_> = group_results(&record).into_iter().map(|g| g.title).collect();
        assert_eq!(titles, ["Lipid panel (cholesterol)", "Hemoglobin A1c"]);
    }

    #[test]
    fn refills_left_counts_only_approved_requests_for_that_prescription() {
        let rx = Prescription {
            rxnorm: "861007".into(),
            display: "metformin".into(),
            dosage: "1 tablet".into(),
            quantity: 60,
            refills_allowed: 3,
            authored: "2024-01-01".into(),
            status: PrescriptionStatus::Active,
            provenance: provenance(),
            status_reason: None,
            status_by: None,
            status_at: None,
            override_reason: None,
        };
        let id = EntryId::mint();
        let mut patient = PatientRecord::default();
        let request = |prescription, status| RefillRequest {
            prescription,
            clinic: ClinicId::mint(),
            requested_by: UserId::mint(),
            requested_at: "2024-02-01".into(),
            note: String::new(),
            status,
            decided_by: None,
            decided_at: None,
            decision_note: None,
        };
        assert_eq!(refills_left(&id.to_string(), &rx, None), 3);
        for status in [
            RefillStatus::Approved,
            RefillStatus::Approved,
            RefillStatus::Denied,
            RefillStatus::Requested,
        ] {
            patient.refill_requests.insert(EntryId::mint().to_string(), request(id, status));
        }
        patient
            .refill_requests
            .insert(EntryId::mint().to_string(), request(EntryId::mint(), RefillStatus::Approved));
        assert_eq!(refills_left(&id.to_string(), &rx, Some(&patient)), 1);
        for _ in 0..3 {
            patient
                .refill_requests
                .insert(EntryId::mint().to_string(), request(id, RefillStatus::Approved));
        }
        assert_eq!(refills_left(&id.to_string(), &rx, Some(&patient)), 0);
    }

    #[test]
    fn dates_parse_to_minutes() {
        assert_eq!(minutes("1970-01-01"), Some(0));
        assert_eq!(minutes("1970-01-02T01:30:00Z"), Some(1440 + 90));
        assert_eq!(minutes("2000-03-01").unwrap() - minutes("2000-02-28").unwrap(), 2 * 1440);
        assert_eq!(minutes("garbage"), None);
        assert_eq!(minutes("2024-13-01"), None);
    }

    #[test]
    fn chart_scales_time_and_value_and_draws_the_band() {
        let c =
            chart(&[(100, 6.0), (0, 5.0), (200, 7.0)], Some(4.0), Some(5.6), 300.0, 100.0).unwrap();
        // Oldest first, spread over the width between the paddings.
        let xs: Vec<f64> = c.points.iter().map(|p| p.0).collect();
        assert_eq!(xs, [8.0, 150.0, 292.0]);
        // Higher values are higher up (smaller y).
        assert!(c.points[2].1 < c.points[1].1 && c.points[1].1 < c.points[0].1);
        // The axis covers the range 4..7 with headroom.
        assert!(c.y_min < 4.0 && c.y_max > 7.0);
        let (top, bottom) = c.band.unwrap();
        assert!(top < bottom && top > c.points[2].1 && bottom > c.points[0].1);
        assert_eq!(c.points.iter().map(|p| p.3).collect::<Vec<_>>(), [false, true, true]);
        // Everything is inside the box.
        assert!(
            c.points.iter().all(|p| (0.0..=300.0).contains(&p.0) && (0.0..=100.0).contains(&p.1))
        );
    }

    #[test]
    fn chart_of_one_sample_or_one_sided_range() {
        let c = chart(&[(5, 150.0)], None, Some(200.0), 300.0, 100.0).unwrap();
        assert_eq!(c.points[0].0, 150.0);
        let (top, bottom) = c.band.unwrap();
        assert!(top < bottom);
        assert!(chart(&[], None, None, 1.0, 1.0).is_none());
        let flat = chart(&[(0, 3.0), (1, 3.0)], None, None, 100.0, 100.0).unwrap();
        assert!(flat.points.iter().all(|p| p.1.is_finite()));
        assert!(flat.band.is_none());
    }

    #[test]
    fn small_helpers() {
        assert_eq!(hex("00ff10").unwrap(), [0, 255, 16]);
        assert!(hex("0").is_none());
        assert_eq!(number(5.60), "5.6");
        assert_eq!(number(200.0), "200");
        assert_eq!(range(Some(4.0), Some(5.6)), "4–5.6");
        assert!(matches("santos 1980", "Maria Santos", "1980-04-02"));
        assert!(!matches("james", "Maria Santos", "1980-04-02"));
        assert_eq!(parse_value(" 5,4 "), Ok(5.4));
        assert!(parse_value("abc").is_err());
        assert!(parse_value("").is_err());
        // The texts Rust's own parser takes as a finite number, exactly.
        let texts = "5|+5|-5|5.|.5|-.5|5.4e2|5E-2|1e+3|007|.|+|-|e5|5e|5e+|.e1|1.2.3|1e2e3|--5|+-5|\
                     5-|0x10|inf|-Infinity|NaN|1e400|1_000|5 4|٣";
        for text in texts.split('|') {
            let rust = text.replace(',', ".").parse::<f64>().ok().filter(|v| v.is_finite());
            assert_eq!(parse_value(text).ok(), rust, "{text}");
        }
    }

    fn message(side: Side, at: &str, body: &str) -> Message {
        Message::new(UserId::mint(), "Maria Santos", side, at, body)
    }

    #[test]
    fn messages_group_into_conversations_latest_first() {
        let mut thread = MessageThread::default();
        let knee = EntryId::mint();
        let old = message(Side::Patient, "2026-01-01T10:00:00Z", "Before conversations");
        thread.messages.insert(EntryId::mint().to_string(), old);
        let first = Message {
            topic: Some("My knee".into()),
            ..message(Side::Patient, "2026-02-01T10:00:00Z", "It hurts")
        };
        thread.messages.insert(knee.to_string(), first);
        let answer = Message {
            in_response_to: Some(knee),
            ..message(Side::Clinic, "2026-02-02T10:00:00Z", "Come in")
        };
        thread.messages.insert(EntryId::mint().to_string(), answer);
        let untitled = Message {
            topic: Some(" ".into()),
            ..message(
                Side::Clinic,
                "2026-01-15T10:00:00Z",
                "Your flu shot is due, and the clinic has it in stock now for everyone",
            )
        };
        thread.messages.insert(EntryId::mint().to_string(), untitled);

        let all = conversations(&thread);
        let titles: Vec<String> = all.iter().map(Conversation::title).collect();
        assert_eq!(
            titles,
            [
                "My knee",
                "Your flu shot is due, and the clinic has it in stock now…",
                "Before conversations"
            ]
        );
        assert_eq!(all[0].messages.len(), 2);
        assert_eq!(all[0].messages[1].1.body, "Come in");
        assert_eq!((all[0].unread(Side::Patient), all[0].unread(Side::Clinic)), (1, 1));
        assert_eq!(all[2].first, None);
    }
}

//! Hostile Bundles posted to the FHIR import (`POST /fhir/R4`) by a
//! signed-in provider: bounded before parsing (body limit, nesting limit),
//! refused with an answer, nothing stored or logged, memory and `/healthz`
//! within the bounds every attack here meets.

use serde_json::json;

use super::portal::under_attack;
use super::{MARKER, SERIAL, World};

/// Posts of each body at once.
const AT_ONCE: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_fhir_bundles_are_bounded_and_change_nothing() {
    let _serial = SERIAL.lock().await;
    let mut world = World::new().await;
    let before = world.stored().await;
    let limit = server::fhir::MAX_BUNDLE_BYTES;
    let patient = world.maria.patient();
    let envelope = |entries: &str| {
        format!(r#"{{"resourceType":"Bundle","type":"transaction","entry":[{entries}]}}"#)
    };
    // Just under the body limit each.
    let nested = "[".repeat(limit - 1);
    let tiny = envelope(&vec!["{}"; (limit - 100) / 3].join(","));
    let long_note = envelope(
        &json!({
            "request": { "method": "POST", "url": "MedicationRequest" },
            "resource": {
                "resourceType": "MedicationRequest",
                "identifier": [{ "system": "urn:oid:1.2.3", "value": "M-1" }],
                "status": "active", "intent": "order",
                "medicationCodeableConcept": { "coding": [{ "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361" }] },
                "subject": { "reference": format!("Patient/{patient}") },
                "authoredOn": "2026-11-30",
                "note": [{ "text": MARKER.repeat((limit - 2_000) / MARKER.len()) }]
            }
        })
        .to_string(),
    );
    let over = vec![b' '; limit + 1];
    let bodies: Vec<(&str, Vec<u8>, u16)> = vec![
        ("nested two million deep", nested.into_bytes(), 400),
        ("seven hundred thousand empty resources", tiny.into_bytes(), 422),
        ("a note of two megabytes", long_note.into_bytes(), 422),
        ("over the body limit", over, 413),
    ];
    let url = format!("{}/fhir/R4", world.portal.base);
    let headers = world.okafor.headers();
    let http = reqwest::Client::new();
    let mut posts = Vec::new();
    for (name, body, _) in &bodies {
        for _ in 0..AT_ONCE {
            let mut request = http.post(&url).body(body.clone());
            for (header, value) in &headers {
                request = request.header(*header, value);
            }
            posts.push(async move { (*name, request.send().await.map(|r| r.status().as_u16())) });
        }
    }
    let (statuses, _) =
        under_attack(&world.portal, "hostile FHIR bundles", futures::future::join_all(posts)).await;
    for (name, status) in statuses {
        let expected = bodies.iter().find(|(n, _, _)| *n == name).unwrap().2;
        assert_eq!(status.expect("an answer"), expected, "{name}");
    }
    world.unharmed(&before, "hostile FHIR bundles").await;
}

//! The patient's experience (issue 15), in real Chromium against a real
//! server with the demo data set.

use e2e::demo::DemoPortal;

/// Results read as a patient would say them; and on a phone (390 and 320
/// CSS px) no view of Maria's record drags sideways and no column is cut
/// off: results become cards. Screenshots of each view
/// at 1280, 390 and 320 px are left in e2e/screenshots to look at.
#[tokio::test]
async fn results_read_plainly_and_nothing_scrolls_sideways_on_a_phone() {
    let portal = DemoPortal::start().await;
    portal
        .browser
        .scenario("phones", async {
            let maria = portal.enroll("Maria").await;
            maria.wait_for("main", "Hemoglobin A1c").await;
            // Tests by the names patients know, the coded name beside them,
            // and units as people write them.
            let egfr = maria.wait_for("main th", "eGFR (kidney function)").await;
            maria
                .check(egfr.contains("Glomerular filtration rate"), "the LOINC name is beside it")
                .await;
            maria.wait_for("main", "mL/min/1.73 m²").await;
            maria.never_shows("main", "{1.73_m2}", std::time::Duration::from_millis(300)).await;
            for (width, mobile) in [(1280, false), (390, true), (320, true)] {
                maria.set_width(width, mobile).await;
                for (view, shows) in [
                    ("Results", "Hemoglobin A1c"),
                    ("Medications", "Refill"),
                    ("Messages", "Send"),
                    ("Allergies & visits", "Allerg"),
                    ("Account", "Passkeys"),
                ] {
                    maria.tab(view).await;
                    maria.wait_for("main", shows).await;
                    maria.screenshot(&format!("{view} at {width}px")).await;
                    let over = maria.sideways_overflow().await;
                    maria
                        .check(
                            over.is_empty(),
                            &format!("{view} at {width}px sticks out sideways: {over:?}"),
                        )
                        .await;
                }
                // A trend, reached from its result, with its table.
                maria.tab("Results").await;
                maria.click("main button", "View trend").await;
                maria.wait_for("main h2", "over time").await;
                maria.click("main summary", "Show as table").await;
                maria.wait_for(".as-table[open] table", "Date").await;
                maria.screenshot(&format!("Trend at {width}px")).await;
                let over = maria.sideways_overflow().await;
                maria
                    .check(
                        over.is_empty(),
                        &format!("the trend at {width}px sticks out sideways: {over:?}"),
                    )
                    .await;
            }
            // The trend of the test that matters most for Maria (her latest
            // out-of-range result), with its latest value and direction in
            // words; the view's own address survives a reload.
            let latest = maria.wait_for("main .latest", "Latest").await;
            // The date as the browser writes it in English ("Sep 14, 2026").
            maria.check(latest.contains(", 20") && latest.contains(" on "), &latest).await;
            let title: String =
                maria.page.evaluate("document.title").await.unwrap().into_value().unwrap();
            maria.check(title == "Trend · Patient portal", &title).await;
            maria.page.reload().await.expect("reload");
            maria.wait_for("main h2", "over time").await;
        })
        .await;
    portal.stop().await;
}

/// Maria approved a patient app (SMART on FHIR) earlier; her account page
/// lists it with what it reads, and "Take away Health Diary's access" ends
/// its grant on the server at once.
#[tokio::test]
async fn an_app_with_access_is_listed_and_its_access_taken_away() {
    use server::storage::{NewGrant, SmartClient};
    let portal = DemoPortal::start().await;
    portal
        .browser
        .scenario("apps", async {
            let maria = portal.enroll("Maria").await;
            maria.wait_for("main", "Hemoglobin A1c").await;
            let (store, now) = (&portal.app.store, portal.app.clock.now_ms());
            let user = portal.user("Maria");
            let client = SmartClient {
                id: "health-diary".into(),
                name: "Health Diary".into(),
                redirect_uri: Some("https://diary.example/callback".into()),
                system: None,
            };
            store.create_smart_client(&client, now).await.expect("register the app");
            let grant = NewGrant {
                id: "grant-1",
                client: &client.id,
                user: user.id,
                patient: user.patient.expect("a patient"),
                scope: "launch/patient patient/Observation.rs",
                code_hash: "unused",
                redirect_uri: "https://diary.example/callback",
                code_challenge: "unused",
                code_expires_at: now,
            };
            store.create_grant(&grant, now).await.expect("her approval");

            maria.tab("Account").await;
            let apps = "section[aria-labelledby=\"apps-h\"]";
            maria.wait_for(apps, "Health Diary reads part of your record").await;
            for (width, mobile) in [(390, true), (1280, false)] {
                maria.set_width(width, mobile).await;
                let scroll = format!("document.querySelector('{apps}').scrollIntoView()");
                maria.page.evaluate(scroll).await.expect("scroll to the apps");
                maria.screenshot(&format!("apps at {width}px")).await;
            }
            maria.click(&format!("{apps} button"), "Take away Health Diary's access").await;
            maria.wait_for(apps, "No apps").await;
            let left = store.user_grants(user.id).await.expect("grants");
            maria
                .check(left.is_empty(), &format!("the grant is gone on the server: {left:?}"))
                .await;
        })
        .await;
    portal.stop().await;
}

/// Maria reads the portal in Spanish (issue 15, "Languages"): picked on the
/// account page, the app is in Spanish at once (navigation, headings, her
/// results by their Spanish names, decimal commas), and still after a
/// reload without a network; English comes back the same way.
#[tokio::test]
async fn a_patient_switches_to_spanish_and_keeps_it_offline() {
    let portal = DemoPortal::start().await;
    portal
        .browser
        .scenario("spanish", async {
            let maria = portal.enroll("Maria").await;
            maria.wait_for("main table", "%").await;
            e2e::wait_for_service_worker(&maria.page).await;
            maria.tab("Account").await;
            maria.choose("#language", "es").await;
            maria.wait_for(".main-nav", "Resultados").await;
            maria.wait_for("main h2", "Cuenta").await;
            let lang = |maria: &e2e::Person| {
                let page = maria.page.clone();
                async move {
                    let lang = page.evaluate("document.documentElement.lang").await;
                    lang.ok().and_then(|v| v.into_value::<String>().ok()).unwrap_or_default()
                }
            };
            maria.check(lang(&maria).await == "es", "the page says it is in Spanish").await;
            maria.tab("Resultados").await;
            maria.wait_for("main h2", "Resultados").await;
            maria.wait_for("main th", "Hemoglobina A1c").await;
            let table = maria.wait_for("main table", "%").await;
            let comma = table
                .as_bytes()
                .windows(3)
                .any(|w| w[0].is_ascii_digit() && w[1] == b',' && w[2].is_ascii_digit());
            maria.check(comma, &format!("values have a decimal comma: {table}")).await;
            // Each view as a Spanish reader sees it, on a phone and a desktop.
            for width in [390, 1280] {
                maria.set_width(width, width < 600).await;
                maria.tab("Resultados").await;
                maria.wait_for("main table", "%").await;
                maria.screenshot(&format!("es results {width}")).await;
                maria.click("main button", "Ver tendencia").await;
                maria.wait_for("main h2", "a lo largo del tiempo").await;
                maria.screenshot(&format!("es trend {width}")).await;
                maria.tab("Mensajes").await;
                maria.wait_for("main h2", "Mensajes").await;
                maria.screenshot(&format!("es messages {width}")).await;
                maria.tab("Cuenta").await;
                maria.wait_for("main h2", "Cuenta").await;
                maria.screenshot(&format!("es account {width}")).await;
            }
            maria.tab("Resultados").await;

            // Offline, a reload opens the app in Spanish again.
            maria.go_offline().await;
            maria.page.reload().await.expect("reload");
            maria.wait_for(".sync-status", "Sin conexión").await;
            maria.wait_for(".main-nav", "Medicamentos").await;
            maria.wait_for("main th", "Hemoglobina A1c").await;
            let title: String =
                maria.page.evaluate("document.title").await.unwrap().into_value().unwrap();
            maria.check(title == "Resultados · Portal del paciente", &title).await;

            // Back to English, offline too.
            maria.tab("Cuenta").await;
            maria.choose("#language", "en").await;
            maria.wait_for(".main-nav", "Medications").await;
            maria.wait_for("main h2", "Account").await;
            maria.check(lang(&maria).await == "en", "the page says it is in English").await;
        })
        .await;
    portal.stop().await;
}

/// The first screen of an offline reload comes from the record's summary
/// (the latest results and the unread count), before the documents load,
/// and says exactly what the loaded documents then say.
#[tokio::test]
async fn the_first_screen_shows_from_the_summary_before_the_record_loads() {
    let portal = DemoPortal::start().await;
    portal
        .browser
        .scenario("summary first", async {
            let maria = portal.enroll("Maria").await;
            maria.wait_for("main table", "Hemoglobin A1c").await;
            e2e::wait_for_service_worker(&maria.page).await;
            maria.wait_for(".sync-status", "last synced").await;
            // The summary is made a moment after the record stops changing.
            let stored = "new Promise((ok) => { const r = indexedDB.open('patient-portal', 1);
                r.onsuccess = () => { const q = r.result.transaction('docs').objectStore('docs').getAllKeys();
                    q.onsuccess = () => { r.result.close(); ok(q.result.includes('summary')); }; }; })";
            let mut kept = false;
            for _ in 0..100 {
                kept = maria.page.evaluate(stored).await.unwrap().into_value().unwrap();
                if kept {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            maria.check(kept, "the summary is kept on the device").await;
            // What the page shows the moment the latest results appear.
            maria
                .page
                .evaluate_on_new_document(
                    "new MutationObserver((_, o) => {
                        const rows = document.querySelector('section[aria-labelledby=results-h] tbody');
                        if (!rows || !rows.rows.length) return;
                        o.disconnect();
                        window.__first = { table: rows.innerText, nav: document.querySelector('.main-nav').innerText,
                            loaded: performance.getEntriesByName('record-loaded').length };
                    }).observe(document, { childList: true, subtree: true });",
                )
                .await
                .expect("watch the first screen");
            maria.go_offline().await;
            maria.page.reload().await.expect("reload");
            maria.wait_for(".sync-status", "Offline").await;
            // The history shows once the documents are loaded.
            maria.wait_for("section[aria-labelledby=history-h] article", "").await;
            let now = "JSON.stringify({ first: window.__first,
                table: document.querySelector('section[aria-labelledby=results-h] tbody').innerText,
                nav: document.querySelector('.main-nav').innerText,
                loaded: performance.getEntriesByName('record-loaded').length })";
            let seen: String = maria.page.evaluate(now).await.unwrap().into_value().unwrap();
            let seen: serde_json::Value = serde_json::from_str(&seen).unwrap();
            let first = &seen["first"];
            maria.check(first["loaded"] == 0, &format!("shown before the record loaded: {seen}")).await;
            maria.check(seen["loaded"] == 1, &format!("then the record loaded: {seen}")).await;
            maria
                .check(
                    first["table"] == seen["table"] && first["nav"] == seen["nav"],
                    &format!("the summary showed what the record says: {seen}"),
                )
                .await;
            maria.check(seen["nav"].to_string().contains("unread"), &seen.to_string()).await;
        })
        .await;
    portal.stop().await;
}

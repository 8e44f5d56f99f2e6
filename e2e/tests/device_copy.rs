//! Issue 18, encrypted at rest: the copy of a record on a device is sealed
//! (nothing readable about the patient in IndexedDB, localStorage or the
//! Cache Storage), opens offline with the passkey alone, stays sealed when
//! that passkey was removed, and where the authenticator has no PRF is kept
//! by the browser, which the account page says.

use e2e::Person;
use e2e::demo::DemoPortal;
use e2e::wait_for_service_worker;

/// Whether `needle` occurs anywhere in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The first decimal number in `text` ("7.9 %" gives 7.9).
fn first_decimal(text: &str) -> Option<(String, f64)> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|t| t.contains('.') && !t.starts_with('.') && !t.ends_with('.'))
        .find_map(|t| Some((t.to_owned(), t.parse().ok()?)))
}

/// Nothing the patient's record holds (her name, a result value as text
/// and as the number Automerge stores, the messages, her clinic) is in the
/// browser's storage for the portal, which still holds her whole record.
/// The Cache Storage holds the app shell only.
async fn nothing_readable(maria: &Person, value: &(String, f64)) {
    for path in maria.cached_urls().await {
        let shell = ["/", "/index.html", "/app.js", "/app_bg.wasm", "/style.css"];
        assert!(
            shell.contains(&path.as_str()) || path.starts_with("/snippets/"),
            "the service worker cached {path}, not part of the app shell"
        );
    }
    let stored = maria.stored_bytes().await;
    assert!(stored.len() > 10_000, "the record is stored on the device ({} bytes)", stored.len());
    let mut needles: Vec<(String, Vec<u8>)> = [
        "Maria",
        "Santos",
        "ankles swell",
        "Ankle swelling is a known effect",
        "Riverside Family Practice",
        value.0.as_str(),
    ]
    .iter()
    .map(|s| (s.to_string(), s.as_bytes().to_vec()))
    .collect();
    needles.push((format!("{} as f64", value.1), value.1.to_le_bytes().to_vec()));
    for (what, needle) in needles {
        assert!(!contains(&stored, &needle), "{what:?} is readable in the browser's storage");
    }
}

#[tokio::test]
async fn the_copy_is_sealed_and_opens_offline_with_the_passkey_only() {
    let portal = DemoPortal::start().await;
    portal
        .browser
        .scenario("sealed copy", async {
            let maria = portal.enroll_with("Maria", true).await;
            let results = maria.wait_for("main table", "%").await;
            let value = first_decimal(&results).expect("a result value");
            maria.tab("Messages").await;
            maria.wait_for("main", "ankles swell by evening").await;
            maria.wait_for(".sync-status", "last synced").await;
            wait_for_service_worker(&maria.page).await;
            maria.click(".main-nav button", "Account").await;
            maria.wait_for(".protection", "Protected by your passkey").await;
            nothing_readable(&maria, &value).await;

            // Offline, a reload asks for the passkey and nothing else; the
            // passkey alone opens the record.
            maria.go_offline().await;
            maria.page.reload().await.expect("reload");
            maria.wait_for("main h2", "Unlock your record").await;
            let locked = maria.text("main").await;
            assert!(!locked.contains("Maria"), "nothing of the record shows locked: {locked}");
            maria.click("button", "Unlock with your passkey").await;
            // The reload stays on the page she was on (Account).
            maria.wait_for(".protection", "Protected by your passkey").await;
            maria.tab("Results").await;
            maria.wait_for("main table", &value.0).await;
            maria.tab("Messages").await;
            maria.wait_for("main", "Ankle swelling is a known effect of amlodipine").await;
            nothing_readable(&maria, &value).await;

            // Her passkey is revoked (she recovered her account on a new
            // phone, which replaces her passkeys): back online, a reload
            // asks for it, the server refuses it and the copy stays sealed.
            let _phone = portal.enroll_with("Maria", true).await;
            maria.go_online().await;
            maria.page.reload().await.expect("reload");
            maria.wait_for("main h2", "Unlock your record").await;
            maria.click("button", "Unlock with your passkey").await;
            maria.wait_for("main .error", "replaced").await;
            maria.wait_for("main h2", "Unlock your record").await;
            maria.wait_for("main button", "Remove this device's locked copy").await;
            let locked = maria.text("main").await;
            assert!(!locked.contains("Maria"), "the copy stays sealed: {locked}");
        })
        .await;
    portal.stop().await;
}

#[tokio::test]
async fn without_prf_the_browser_keeps_the_key_and_the_account_page_says_so() {
    let portal = DemoPortal::start().await;
    portal
        .browser
        .scenario("browser-kept key", async {
            let maria = portal.enroll_with("Maria", false).await;
            let results = maria.wait_for("main table", "%").await;
            let value = first_decimal(&results).expect("a result value");
            maria.wait_for(".sync-status", "last synced").await;
            maria.click(".main-nav button", "Account").await;
            maria.wait_for(".protection", "Protected by this browser only").await;
            nothing_readable(&maria, &value).await;
            // The browser opens it by itself: no passkey asked (and the
            // reload stays on Account).
            maria.page.reload().await.expect("reload");
            maria.wait_for(".protection", "Protected by this browser only").await;
            maria.tab("Results").await;
            maria.wait_for("main table", &value.0).await;
        })
        .await;
    portal.stop().await;
}

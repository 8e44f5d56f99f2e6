//! Drives Debian's headless Chromium for the end-to-end tests. Each browser
//! gets a fresh profile directory and is killed when dropped (chromiumoxide
//! spawns it with kill-on-drop), so no process outlives a test, even one that
//! panics.
//!
//! A simulated person is a [`Person`]: a browser context of their own
//! (cookies, IndexedDB, service worker), one page, and a virtual passkey
//! authenticator on it. [`Browser::scenario`] saves a screenshot of every
//! person's page when a scenario fails, whatever the assertion.

pub mod demo;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chromiumoxide::Page;
use chromiumoxide::browser::{Browser as CdpBrowser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::network;
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams, SetAutoAttachParams,
};
use chromiumoxide::cdp::browser_protocol::web_authn::{
    self, AddCredentialParams, AddVirtualAuthenticatorParams, AuthenticatorId,
    AuthenticatorProtocol, AuthenticatorTransport, Credential, GetCredentialsParams,
    RemoveVirtualAuthenticatorParams, VirtualAuthenticatorOptions,
};
use chromiumoxide::page::ScreenshotParams;
use futures::{FutureExt, StreamExt};

/// How long a person waits for something to show before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(15);

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The built web app (scripts/build-app).
pub fn app_dist() -> PathBuf {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../app/dist");
    assert!(
        dist.join("index.html").is_file(),
        "the web app is not built: run scripts/build-app first"
    );
    dist
}

pub struct Browser {
    browser: CdpBrowser,
    handler: tokio::task::JoinHandle<()>,
    /// Every person's page, by name, for screenshots of a failing scenario.
    pages: Mutex<Vec<(String, Page)>>,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn launch() -> Self {
        assert!(
            Path::new(CHROMIUM).exists(),
            "Chromium is needed at {CHROMIUM}: run scripts/setup --browser"
        );
        let profile = tempfile::tempdir().expect("profile directory");
        let config = BrowserConfig::builder()
            .chrome_executable(CHROMIUM)
            .user_data_dir(profile.path())
            .no_sandbox()
            .args([
                "--headless=new",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .request_timeout(Duration::from_secs(30))
            .build()
            .expect("browser config");
        let (browser, mut events) = CdpBrowser::launch(config).await.expect("launch Chromium");
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        Self { browser, handler, pages: Mutex::new(Vec::new()), _profile: profile }
    }

    /// The browser process's id (its renderers, GPU and utility processes
    /// are its descendants), for memory figures.
    pub fn pid(&mut self) -> Option<u32> {
        self.browser.get_mut_child().and_then(|child| child.as_mut_inner().id())
    }

    pub async fn open(&self, url: &str) -> Page {
        let page = self.browser.new_page(url).await.expect("open page");
        page.wait_for_navigation().await.expect("navigation");
        page
    }

    /// Opens `url` in a page whose service workers start on their own.
    /// chromiumoxide auto-attaches to new targets paused ("wait for
    /// debugger") and its resume of a service worker can race with its
    /// detach, leaving the worker stuck in "starting"; turning the pause off
    /// for this page avoids that.
    pub async fn open_with_service_workers(&self, url: &str) -> Page {
        let page = self.open("about:blank").await;
        let_service_workers_start(&page).await;
        page.goto(url).await.expect("open page");
        page.wait_for_navigation().await.expect("navigation");
        page
    }

    /// A new person: their own browser context (so their own cookies,
    /// IndexedDB and service worker), an empty page where service workers
    /// start on their own, and a virtual passkey authenticator.
    pub async fn person(&self, name: &str) -> Person {
        self.person_with(name, false).await
    }

    /// A new person whose authenticator has the WebAuthn `prf` extension
    /// (so the copy on their device is sealed under their passkey; without
    /// it, by the browser alone).
    pub async fn person_with(&self, name: &str, prf: bool) -> Person {
        let context = self
            .browser
            .create_browser_context(CreateBrowserContextParams::default())
            .await
            .expect("browser context");
        let target = CreateTargetParams::builder()
            .url("about:blank")
            .browser_context_id(context)
            .build()
            .expect("target");
        let page = self.browser.new_page(target).await.expect("open page");
        let_service_workers_start(&page).await;
        page.execute(web_authn::EnableParams::default()).await.expect("enable WebAuthn");
        let authenticator = add_authenticator(&page, prf).await;
        let person = Person { name: name.to_owned(), page: page.clone(), authenticator };
        self.pages.lock().expect("pages").push((name.to_owned(), page));
        person
    }

    /// A new person who opens their enrollment link and creates a passkey,
    /// as an invited patient or provider does; returns once they are signed
    /// in.
    pub async fn enroll(&self, name: &str, link: &str) -> Person {
        self.enroll_with(name, link, false).await
    }

    /// [`Browser::enroll`] with an authenticator that has PRF or not.
    pub async fn enroll_with(&self, name: &str, link: &str, prf: bool) -> Person {
        let person = self.person_with(name, prf).await;
        person.page.goto(link).await.expect("open the enrollment link");
        person.wait_for("h2", "Create your passkey").await;
        person.click("button", "Create a passkey").await;
        person.wait_for(".main-nav", "Account").await;
        person
    }

    /// Runs a scenario; if it fails (any panic: a timeout, an assertion, an
    /// `expect`), saves a screenshot of every person's page first.
    pub async fn scenario(&self, name: &str, body: impl std::future::Future<Output = ()>) {
        if let Err(panic) = AssertUnwindSafe(body).catch_unwind().await {
            let pages = self.pages.lock().expect("pages").clone();
            for (person, page) in pages {
                let shot = screenshot(&page, &format!("{name} {person}")).await;
                eprintln!("{name}: {person}'s page at failure: {}", shot.display());
            }
            std::panic::resume_unwind(panic);
        }
    }

    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// chromiumoxide auto-attaches to new targets paused ("wait for debugger")
/// and its resume of a service worker can race with its detach, leaving the
/// worker stuck in "starting"; turning the pause off for this page avoids
/// that.
async fn let_service_workers_start(page: &Page) {
    let attach = SetAutoAttachParams::builder()
        .auto_attach(true)
        .wait_for_debugger_on_start(false)
        .flatten(true)
        .build()
        .expect("auto-attach params");
    page.execute(attach).await.expect("auto-attach without pausing");
}

/// One simulated person at their own device (see [`Browser::person`]).
pub struct Person {
    pub name: String,
    pub page: Page,
    /// The authenticator the person started with (their first device).
    pub authenticator: AuthenticatorId,
}

impl Person {
    /// Waits until an element matching `selector` shows `text`; returns its text.
    pub async fn wait_for(&self, selector: &str, text: &str) -> String {
        wait_for_text(&self.page, selector, text).await
    }

    /// Clicks (with real mouse events, which WebAuthn may need as a user
    /// gesture) the first element matching `selector` that shows `text`.
    pub async fn click(&self, selector: &str, text: &str) {
        click(&self.page, selector, text).await;
    }

    pub async fn type_into(&self, selector: &str, value: &str) {
        type_into(&self.page, selector, value).await;
    }

    pub async fn choose(&self, selector: &str, value: &str) {
        choose(&self.page, selector, value).await;
    }

    /// The text of the first element matching `selector` ("" if none).
    pub async fn text(&self, selector: &str) -> String {
        let script = format!("document.querySelector({selector:?})?.innerText ?? ''");
        self.page.evaluate(script).await.ok().and_then(|v| v.into_value().ok()).unwrap_or_default()
    }

    /// Fails with a screenshot unless `condition` holds.
    pub async fn check(&self, condition: bool, what: &str) {
        if !condition {
            let shot = screenshot(&self.page, &format!("{} {what}", self.name)).await;
            panic!("{}: {what}; screenshot at {}", self.name, shot.display());
        }
    }

    /// Checks that `text` does not show in `selector` during `window`: for
    /// things that must not happen, which can only be watched for a while.
    pub async fn never_shows(&self, selector: &str, text: &str, window: Duration) {
        let deadline = tokio::time::Instant::now() + window;
        while tokio::time::Instant::now() < deadline {
            let shown = self.text(selector).await;
            self.check(
                !shown.contains(text),
                &format!("`{selector}` shows {text:?}, which it must not"),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Cuts this person's page off the network (see [`set_offline`]).
    pub async fn go_offline(&self) {
        set_offline(&self.page, true).await;
    }

    pub async fn go_online(&self) {
        set_offline(&self.page, false).await;
    }

    /// Opens a view from the navigation (a tab of the patient's own record,
    /// of a provider's open chart, or the account page).
    pub async fn tab(&self, label: &str) {
        self.click("nav button", label).await;
    }

    /// Sets the page's width in CSS pixels, as a phone (`mobile`) or a
    /// desktop window.
    pub async fn set_width(&self, width: i64, mobile: bool) {
        use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
        let params = SetDeviceMetricsOverrideParams::builder()
            .width(width)
            .height(900)
            .device_scale_factor(1.0)
            .mobile(mobile)
            .build()
            .expect("metrics");
        self.page.execute(params).await.expect("set the page width");
    }

    /// What sticks out sideways: the page itself if it is wider than the
    /// window, every scrolling box of the view whose content is wider than
    /// it (a column to scroll to), and every element that ends right of the
    /// screen; as "tag.class: px". Visually hidden text is meant to be clipped.
    pub async fn sideways_overflow(&self) -> Vec<String> {
        let script = r#"(() => {
            const out = [];
            const page = document.documentElement.scrollWidth - window.innerWidth;
            if (page > 0) out.push(`page: ${page}px`);
            for (const el of document.querySelectorAll('main *')) {
                const name = `${el.tagName.toLowerCase()}.${el.className}`;
                const over = el.scrollWidth - el.clientWidth;
                const scrolls = ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
                if (over > 1 && el.clientWidth > 0 && scrolls) {
                    out.push(`${name}: ${over}px`);
                }
                const right = el.getBoundingClientRect().right - window.innerWidth;
                if (right > 1 && el.getClientRects().length > 0 && !el.closest('.sr-only')) {
                    out.push(`${name} ends ${Math.round(right)}px right of the screen`);
                }
            }
            return out.slice(0, 12);
        })()"#;
        self.page.evaluate(script).await.expect("measure").into_value().expect("a list")
    }

    /// A screenshot of what the screen shows (not the whole page: a
    /// full-page capture resizes the page and drops a width set with
    /// [`Person::set_width`]), under e2e/screenshots, to look at.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots");
        let _ = std::fs::create_dir_all(&dir);
        let file: String = format!("{} {name}", self.name)
            .chars()
            .take(80)
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let path = dir.join(format!("{file}.png"));
        let params = ScreenshotParams::builder().full_page(false).build();
        self.page.save_screenshot(params, &path).await.expect("screenshot");
        path
    }

    /// The violations axe-core (installed by scripts/setup, never part of
    /// the app) finds in the page as it is now, one line per element:
    /// "rule (impact): what is wrong; at selector; its HTML".
    /// axe's source is evaluated in the page over CDP the first time.
    pub async fn axe(&self) -> Vec<String> {
        use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
        let loaded: bool = self
            .page
            .evaluate("typeof window.axe === 'object'")
            .await
            .expect("look for axe")
            .into_value()
            .expect("a boolean");
        if !loaded {
            let source = std::fs::read_to_string(axe_source())
                .expect("axe-core is not installed: run scripts/setup");
            let inject = EvaluateParams::builder().expression(source).build().expect("evaluate");
            self.page.execute(inject).await.expect("inject axe-core");
        }
        let script = r#"(async () => {
            const { violations } = await axe.run(document, { resultTypes: ['violations'] });
            return violations
                .flatMap((v) => v.nodes.map((n) =>
                    `${v.id} (${v.impact}): ${(n.failureSummary || v.help).replace(/\s+/g, ' ')}; at ${n.target.join(' ')}; ${n.html.slice(0, 160)}`));
        })()"#;
        self.page.evaluate(script).await.expect("run axe-core").into_value().expect("a list")
    }

    /// Presses a key (`Tab`, `Enter`, `Space`, `Escape`, `ArrowDown`, or
    /// one printable character) with real key events, Shift held or not.
    pub async fn press(&self, key: &str, shift: bool) {
        use chromiumoxide::cdp::browser_protocol::input::{
            DispatchKeyEventParams, DispatchKeyEventType,
        };
        let (name, code, vk, text) = match key {
            "Tab" => ("Tab", "Tab".to_owned(), 9, None),
            "Enter" => ("Enter", "Enter".to_owned(), 13, Some("\r".to_owned())),
            "Space" => (" ", "Space".to_owned(), 32, Some(" ".to_owned())),
            "Escape" => ("Escape", "Escape".to_owned(), 27, None),
            "ArrowDown" => ("ArrowDown", "ArrowDown".to_owned(), 40, None),
            c => {
                let ch = c.chars().next().expect("a key");
                let vk = ch.to_ascii_uppercase() as i64;
                (c, format!("Key{}", ch.to_ascii_uppercase()), vk, Some(c.to_owned()))
            }
        };
        for kind in [DispatchKeyEventType::KeyDown, DispatchKeyEventType::KeyUp] {
            let mut event = DispatchKeyEventParams::builder()
                .r#type(kind.clone())
                .key(name)
                .code(code.clone())
                .windows_virtual_key_code(vk)
                .native_virtual_key_code(vk)
                .modifiers(if shift { 8 } else { 0 });
            if let (DispatchKeyEventType::KeyDown, Some(text)) = (&kind, &text) {
                event = event.text(text.clone()).unmodified_text(text.clone());
            }
            self.page.execute(event.build().expect("key event")).await.expect("press a key");
        }
    }

    /// Pastes what the browser's clipboard holds into the focused field,
    /// as Ctrl+V does.
    pub async fn paste(&self) {
        use chromiumoxide::cdp::browser_protocol::input::{
            DispatchKeyEventParams, DispatchKeyEventType,
        };
        for kind in [DispatchKeyEventType::KeyDown, DispatchKeyEventType::KeyUp] {
            let down = kind == DispatchKeyEventType::KeyDown;
            let mut event = DispatchKeyEventParams::builder()
                .r#type(kind)
                .key("v")
                .code("KeyV")
                .windows_virtual_key_code(86)
                .native_virtual_key_code(86)
                .modifiers(2);
            if down {
                event = event.commands(vec!["paste".to_owned()]);
            }
            self.page.execute(event.build().expect("key event")).await.expect("paste");
        }
    }

    /// Types `text` one key at a time, with key events only.
    pub async fn type_keys(&self, text: &str) {
        for c in text.chars() {
            self.press(&c.to_string(), false).await;
        }
    }

    /// The element that has the keyboard focus, as "tag#id: name", its name
    /// being its aria-label, else its label's text, else its own text.
    pub async fn focused(&self) -> String {
        let script = r#"(() => {
            const el = document.activeElement;
            if (!el || el === document.body) return 'body';
            const label = el.getAttribute('aria-label') || (el.labels && el.labels[0] && el.labels[0].innerText) || el.innerText || '';
            return `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}: ${label.trim().replace(/\s+/g, ' ').slice(0, 120)}`;
        })()"#;
        self.page.evaluate(script).await.expect("the focus").into_value().expect("a string")
    }

    /// Presses Tab (or Shift+Tab) until the focused element's description
    /// ([`Person::focused`]) contains `target`, at most `most` times;
    /// fails naming every element the focus passed through.
    pub async fn tab_to(&self, target: &str, backwards: bool, most: usize) {
        let mut path = Vec::new();
        for _ in 0..most {
            self.press("Tab", backwards).await;
            let now = self.focused().await;
            if now.contains(target) {
                return;
            }
            path.push(now);
        }
        self.check(false, &format!("Tab never reached {target:?}; the focus went {path:#?}")).await;
    }

    /// Adds a virtual authenticator to this person's page (a new device).
    pub async fn add_authenticator(&self) -> AuthenticatorId {
        add_authenticator(&self.page, false).await
    }

    /// What scripts of the portal's origin stored in this person's browser,
    /// as raw bytes: every IndexedDB database's stores (keys and values:
    /// strings as UTF-8, bytes as they are, other values as JSON) and the
    /// localStorage. (The Cache Storage: [`Person::cached_urls`].)
    pub async fn stored_bytes(&self) -> Vec<u8> {
        let script = "(async () => {
            const parts = [];
            const add = (v) => parts.push(v instanceof Uint8Array ? v : v instanceof ArrayBuffer ? new Uint8Array(v)
                : new TextEncoder().encode(typeof v == 'string' ? v : JSON.stringify(v, (k, x) => x instanceof Uint8Array ? Array.from(x) : x)));
            for (const { name } of await indexedDB.databases()) {
                const db = await new Promise((ok, no) => { const r = indexedDB.open(name); r.onsuccess = () => ok(r.result); r.onerror = no; });
                for (const store of db.objectStoreNames) {
                    const get = (what) => new Promise((ok, no) => { const r = db.transaction(store).objectStore(store)[what](); r.onsuccess = () => ok(r.result); r.onerror = no; });
                    for (const key of await get('getAllKeys')) add(key);
                    for (const value of await get('getAll')) add(value);
                }
                db.close();
            }
            for (let i = 0; i < localStorage.length; i++) { add(localStorage.key(i)); add(localStorage.getItem(localStorage.key(i))); }
            return parts.flatMap((part) => Array.from(part));
        })()";
        self.page
            .evaluate(script)
            .await
            .expect("read the browser's storage")
            .into_value()
            .expect("bytes")
    }

    /// The paths of everything in the Cache Storage of the page's origin.
    pub async fn cached_urls(&self) -> Vec<String> {
        let script = "(async () => {
            const paths = [];
            for (const name of await caches.keys())
                for (const request of await (await caches.open(name)).keys()) paths.push(new URL(request.url).pathname);
            return paths;
        })()";
        self.page
            .evaluate(script)
            .await
            .expect("read the Cache Storage")
            .into_value()
            .expect("paths")
    }

    /// The passkeys an authenticator holds.
    pub async fn credentials(&self, authenticator: &AuthenticatorId) -> Vec<Credential> {
        self.page
            .execute(GetCredentialsParams::new(authenticator.clone()))
            .await
            .expect("credentials")
            .result
            .credentials
            .clone()
    }

    /// Takes an authenticator away (the device with that passkey is gone).
    pub async fn remove_authenticator(&self, authenticator: &AuthenticatorId) {
        self.page
            .execute(RemoveVirtualAuthenticatorParams::new(authenticator.clone()))
            .await
            .expect("remove authenticator");
    }

    /// A new authenticator holding exactly `credential` (an old passkey
    /// brought back).
    pub async fn authenticator_with(&self, credential: Credential) -> AuthenticatorId {
        let authenticator = self.add_authenticator().await;
        self.page
            .execute(AddCredentialParams::new(authenticator.clone(), credential))
            .await
            .expect("add credential");
        authenticator
    }
}

/// axe-core's browser build, as scripts/setup installs it into the tools
/// folder (`$PORTAL_TOOLS`, by default ~/.cache/patient-portal/tools).
fn axe_source() -> PathBuf {
    let tools = std::env::var_os("PORTAL_TOOLS").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").expect("HOME");
        Path::new(&home).join(".cache/patient-portal/tools")
    });
    tools.join("node_modules/axe-core/axe.min.js")
}

/// Adds a virtual authenticator (a CTAP2 platform authenticator with user
/// verification, always present, with the `prf` extension or not) to a page.
async fn add_authenticator(page: &Page, prf: bool) -> AuthenticatorId {
    let options = VirtualAuthenticatorOptions::builder()
        .protocol(AuthenticatorProtocol::Ctap2)
        .transport(AuthenticatorTransport::Internal)
        .has_resident_key(true)
        .has_user_verification(true)
        .is_user_verified(true)
        .automatic_presence_simulation(true)
        .has_prf(prf)
        .build()
        .expect("authenticator options");
    let added = page
        .execute(AddVirtualAuthenticatorParams::new(options))
        .await
        .expect("virtual authenticator");
    added.result.authenticator_id.clone()
}

/// Waits until `selector` matches an element whose text contains `text`,
/// returning that text; on timeout saves a screenshot and fails.
pub async fn wait_for_text(page: &Page, selector: &str, text: &str) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(elements) = page.find_elements(selector).await {
            for element in elements {
                if let Ok(Some(found)) = element.inner_text().await
                    && found.contains(text)
                {
                    return found;
                }
            }
        }
        if tokio::time::Instant::now() > deadline {
            let shot = screenshot(page, selector).await;
            panic!(
                "no `{selector}` containing {text:?} within 15 s; screenshot at {}",
                shot.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Saves a screenshot of the page under e2e/screenshots for a failing test.
pub async fn screenshot(page: &Page, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots");
    let _ = std::fs::create_dir_all(&dir);
    let file: String =
        name.chars().take(80).map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let path = dir.join(format!("{file}.png"));
    let _ = page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &path).await;
    path
}

/// Cuts a page off the network, or reconnects it, as a lost connection
/// does: the page gets `offline`/`online` events and its requests and new
/// WebSockets fail while offline.
#[allow(deprecated)] // its successor (Network.overrideNetworkState) is not in Debian's Chromium yet
pub async fn set_offline(page: &Page, offline: bool) {
    page.execute(network::EnableParams::default()).await.expect("network domain");
    page.execute(network::EmulateNetworkConditionsParams::new(offline, 0.0, -1.0, -1.0))
        .await
        .expect("network conditions");
}

/// Clicks the first element matching `selector` whose text contains `text`,
/// with real mouse events.
pub async fn click(page: &Page, selector: &str, text: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    // A view built again (a sync arriving, a list loading) replaces its
    // elements between finding one and clicking it: then look again.
    while tokio::time::Instant::now() < deadline {
        wait_for_text(page, selector, text).await;
        for element in page.find_elements(selector).await.unwrap_or_default() {
            if element.inner_text().await.ok().flatten().is_some_and(|t| t.contains(text))
                && element.click().await.is_ok()
            {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shot = screenshot(page, selector).await;
    panic!(
        "`{selector}` showing {text:?} went away before it was clicked; screenshot at {}",
        shot.display()
    );
}

/// Waits until `selector` matches an element (form fields have no text).
pub async fn wait_for_element(page: &Page, selector: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if page.find_element(selector).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shot = screenshot(page, selector).await;
    panic!("no `{selector}` within {PATIENCE:?}; screenshot at {}", shot.display());
}

/// Sets a form control's value and fires `event`, as a person typing
/// (`input`) or picking an option (`change`) does.
pub async fn set_value(page: &Page, selector: &str, value: &str, event: &str) {
    wait_for_element(page, selector).await;
    let script = format!(
        "(() => {{ const el = document.querySelector({selector:?}); el.value = {value:?}; el.dispatchEvent(new Event({event:?}, {{ bubbles: true }})); return true; }})()"
    );
    page.evaluate(script).await.expect("set a form value");
}

/// Types into a text field.
pub async fn type_into(page: &Page, selector: &str, value: &str) {
    set_value(page, selector, value, "input").await;
}

/// Picks an option of a `<select>`.
pub async fn choose(page: &Page, selector: &str, value: &str) {
    set_value(page, selector, value, "change").await;
}

/// Waits until the service worker controls the page (it claims clients on
/// activation), i.e. the shell is cached and the page opens offline.
pub async fn wait_for_service_worker(page: &Page) {
    let probe = "navigator.serviceWorker.getRegistration().then((r) => JSON.stringify({
        registered: !!r, installing: !!(r && r.installing), waiting: !!(r && r.waiting),
        active: !!(r && r.active), controlled: !!navigator.serviceWorker.controller }))";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut state = String::new();
    while tokio::time::Instant::now() < deadline {
        if let Ok(Ok(result)) =
            tokio::time::timeout(Duration::from_secs(5), page.evaluate(probe)).await
        {
            state = result.into_value::<String>().unwrap_or_default();
            if state.contains("\"controlled\":true") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let shot = screenshot(page, "service worker").await;
    panic!(
        "the service worker did not take control within 60 s ({state}); screenshot at {}",
        shot.display()
    );
}

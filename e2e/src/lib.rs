//! Drives Debian's headless Chromium for the end-to-end tests. Each browser
//! gets a fresh profile directory and is killed when dropped, so no process
//! outlives a test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chromiumoxide::browser::{Browser as CdpBrowser, BrowserConfig};
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures::StreamExt;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The built web app (scripts/build-app).
pub fn app_dist() -> PathBuf {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../app/dist");
    assert!(dist.join("index.html").is_file(), "the web app is not built: run scripts/build-app first");
    dist
}

pub struct Browser {
    browser: CdpBrowser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn launch() -> Self {
        assert!(Path::new(CHROMIUM).exists(), "Chromium is needed at {CHROMIUM}: run scripts/setup --browser");
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
        Self { browser, handler, _profile: profile }
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
        use chromiumoxide::cdp::browser_protocol::target::SetAutoAttachParams;
        let page = self.open("about:blank").await;
        let attach = SetAutoAttachParams::builder()
            .auto_attach(true)
            .wait_for_debugger_on_start(false)
            .flatten(true)
            .build()
            .expect("auto-attach params");
        page.execute(attach).await.expect("auto-attach without pausing");
        page.goto(url).await.expect("open page");
        page.wait_for_navigation().await.expect("navigation");
        page
    }

    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// Waits until `selector` matches an element whose text contains `text`,
/// returning that text; on timeout saves a screenshot and fails.
pub async fn wait_for_text(page: &Page, selector: &str, text: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(elements) = page.find_elements(selector).await {
            for element in elements {
                if let Ok(Some(found)) = element.inner_text().await {
                    if found.contains(text) {
                        return found;
                    }
                }
            }
        }
        if tokio::time::Instant::now() > deadline {
            let shot = screenshot(page, selector).await;
            panic!("no `{selector}` containing {text:?} within 15 s; screenshot at {}", shot.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Saves a screenshot of the page under e2e/screenshots for a failing test.
pub async fn screenshot(page: &Page, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots");
    let _ = std::fs::create_dir_all(&dir);
    let file: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let path = dir.join(format!("{file}.png"));
    let _ = page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &path).await;
    path
}

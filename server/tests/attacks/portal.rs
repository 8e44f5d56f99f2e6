//! The real `portal` binary as a child process: started on port 0 on a copy
//! of a demo database, its memory read from `/proc`, its logs kept for
//! inspection, killed when dropped. People sign in for real (enrollment link,
//! software passkey, session cookie) and sync over real WebSockets.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use automerge::Automerge;
use futures::{SinkExt, StreamExt};
use server::demo::{self, DemoUser};
use server::storage::Store;
use shared::sync::{SyncClient, WireMessage};
use shared::{DocId, PatientId};
use testkit::Replica;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::authenticator::SoftPasskey;
use crate::client::Browser;

pub const TIMEOUT: Duration = Duration::from_secs(30);
/// The binary under attack: this build's `portal`, or another build
/// (`PORTAL_ATTACK_BIN=target/release/portal`, to measure a release build).
fn portal_bin() -> String {
    std::env::var("PORTAL_ATTACK_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_portal").to_owned())
}
const LOG_FILTER: &str = "info,sqlx=warn,webauthn_rs_core=warn";

/// A demo database seeded once by `portal demo`, and the enrollment links
/// it printed (each copy of the file still holds them unused).
struct Template {
    dir: tempfile::TempDir,
    /// (display name, enrollment token link)
    links: Vec<(String, String)>,
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("portal.db").display());
        let (mut child, _, lines) = spawn(&["demo"], &url, &[]);
        let links = enrollment_links(&lines);
        terminate(&mut child);
        Template { dir, links }
    })
}

/// The enrollment links `portal demo` printed, by the user's name.
fn enrollment_links(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter(|l| l.contains("/enroll#"))
        .map(|l| {
            let link = l.split_whitespace().last().unwrap().to_owned();
            let name = demo::users()
                .into_iter()
                .find(|u| l.contains(u.name))
                .expect("a demo user")
                .name
                .to_owned();
            (name, link)
        })
        .collect()
}

/// Starts `portal <command> --addr 127.0.0.1:0 <extra>` and reads its output up to
/// the line naming its URL; returns the child, its port and the lines read.
// The child is returned to its owner (`Portal`, which kills and waits for
// it on drop); only the failure paths here wait for it themselves.
#[allow(clippy::zombie_processes)]
fn spawn(command: &[&str], database_url: &str, extra: &[&str]) -> (Child, u16, Vec<String>) {
    let mut child = Command::new(portal_bin())
        .args(command)
        .args(extra)
        .args([
            "--addr",
            "127.0.0.1:0",
            "--database-url",
            database_url,
            "--static-dir",
            "/nonexistent",
        ])
        .env("PORTAL_LOG", LOG_FILTER)
        .env_remove("PORTAL_PUBLIC_URL")
        // As deployed: a panic (Automerge on hostile input, caught) prints no
        // backtrace, whose symbols would cost a debug build 200 MB to load.
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start portal");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut line = String::new();
        let read = stdout.read_line(&mut line).unwrap_or(0);
        if read == 0 || Instant::now() >= deadline {
            // Not left running (or a zombie) behind the failed test.
            let _ = child.kill();
            let _ = child.wait();
            panic!("portal did not start listening: {lines:?}");
        }
        if let Some(rest) = line.split("listening: open http://localhost:").nth(1) {
            let port = rest.trim().trim_end_matches('/').parse().expect("port");
            lines.push(line);
            // Keep its pipes drained (a full pipe would block its logging).
            let log = Arc::new(Mutex::new(String::new()));
            drain(stdout, log.clone());
            drain(BufReader::new(child.stderr.take().unwrap()), log.clone());
            LOGS.lock().unwrap().push((child.id(), log));
            return (child, port, lines);
        }
        lines.push(line);
    }
}

/// Every child's captured output, by pid.
static LOGS: Mutex<Vec<(u32, Arc<Mutex<String>>)>> = Mutex::new(Vec::new());

fn drain(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

fn terminate(child: &mut Child) {
    // SIGTERM: a graceful shutdown, so SQLite files are consistent.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One running `portal serve`.
pub struct Portal {
    child: Mutex<Child>,
    pid: u32,
    pub port: u16,
    /// `http://localhost:PORT`, the origin people use.
    pub base: String,
    pub database_url: String,
    /// Enrollment links it printed (`portal demo`).
    links: Vec<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Portal {
    /// `portal serve` on a fresh copy of the demo database.
    pub fn serve_demo_copy() -> Self {
        let template = template();
        let dir = tempfile::tempdir().expect("temporary directory");
        for entry in std::fs::read_dir(template.dir.path()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
        let url = format!("sqlite://{}", dir.path().join("portal.db").display());
        let mut portal = Self::start(&["serve"], &url);
        portal._dir = Some(dir);
        portal
    }

    /// `portal <command>` on `database_url` (PostgreSQL tests).
    pub fn start(command: &[&str], database_url: &str) -> Self {
        Self::start_with(command, database_url, &[])
    }

    /// The same with more arguments, e.g. `--public-url` (as every instance
    /// behind one load balancer has).
    pub fn start_with(command: &[&str], database_url: &str, extra: &[&str]) -> Self {
        let (child, port, lines) = spawn(command, database_url, extra);
        let links = enrollment_links(&lines);
        let pid = child.id();
        Self {
            child: Mutex::new(child),
            pid,
            port,
            base: format!("http://localhost:{port}"),
            database_url: database_url.to_owned(),
            links,
            _dir: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn alive(&self) -> bool {
        self.child.lock().unwrap().try_wait().unwrap().is_none()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://localhost:{}/sync", self.port)
    }

    /// What the process has logged so far.
    pub fn logs(&self) -> String {
        let logs = LOGS.lock().unwrap();
        logs.iter()
            .filter(|(pid, _)| *pid == self.pid())
            .map(|(_, log)| log.lock().unwrap().clone())
            .collect()
    }

    fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the portal process is running");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc status"))
    }

    /// Resident memory now, in KiB.
    pub fn rss_kb(&self) -> u64 {
        self.status_kb("VmRSS:")
    }

    /// The most resident memory since the last `reset_peak`, in KiB.
    pub fn peak_kb(&self) -> u64 {
        self.status_kb("VmHWM:")
    }

    /// Resets the peak (`VmHWM`) to the current size: `clear_refs` 5.
    pub fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5")
            .expect("reset the peak resident size");
    }

    /// Signs a demo user in for real: their enrollment link, a new passkey
    /// on a software authenticator, and the session cookie that gives.
    pub async fn sign_in(&self, name: &str) -> Session {
        let link =
            &template().links.iter().find(|(n, _)| n.contains(name)).expect("an enrollment link").1;
        self.enroll(name, link).await
    }

    /// The enrollment link this process printed for `name` (`portal demo`).
    pub fn link(&self, name: &str) -> String {
        self.links.iter().find(|(n, _)| n.contains(name)).expect("an enrollment link").1.clone()
    }

    pub async fn enroll(&self, name: &str, link: &str) -> Session {
        let mut device = SoftPasskey::new();
        let mut browser = Browser::new(&self.base);
        let me = browser.enroll(&mut device, link).await;
        let user = demo::users().into_iter().find(|u| u.name.contains(name)).unwrap();
        assert_eq!(me["user_id"], user.id.to_string());
        Session {
            user,
            cookie: browser.cookie.expect("a session cookie"),
            origin: self.base.clone(),
        }
    }

    /// A replica of `docs` for `session`, synced with the server, writing
    /// under its own actor id.
    pub async fn replica(&self, session: &Session, docs: &[DocId]) -> Replica {
        let mut client = SyncClient::new(format!("replica-{}", uuid::Uuid::now_v7().simple()));
        for id in docs {
            client.insert(*id, Automerge::new());
        }
        let mut replica =
            Replica::connect(&self.ws_url(), &session.headers(), client).await.expect("connect");
        replica.sync_all(TIMEOUT).await.expect("initial sync");
        let actor = automerge::ActorId::random();
        for id in docs {
            replica.client.doc_mut(*id).unwrap().set_actor(actor.clone());
        }
        replica.take_received();
        replica
    }

    /// A bare sync connection (joined), for sending crafted frames.
    pub async fn raw(&self, session: &Session) -> Raw {
        Raw::connect(&self.ws_url(), session).await
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.database_url).await.expect("open the portal's database")
    }
}

impl Drop for Portal {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A signed-in person: their session cookie and the origin they use.
#[derive(Clone)]
pub struct Session {
    pub user: DemoUser,
    cookie: String,
    origin: String,
}

impl Session {
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![("cookie", format!("portal_session={}", self.cookie)), ("origin", self.origin.clone())]
    }

    pub fn patient(&self) -> PatientId {
        self.user.patient.expect("a patient")
    }
}

/// A joined sync connection that sends whatever bytes it is given.
pub struct Raw {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub server_peer: String,
}

/// How the server answered a connection.
#[derive(Debug, Default)]
pub struct Answer {
    pub messages: Vec<WireMessage>,
    /// The close frame's code and reason, if one came.
    pub close: Option<(u16, String)>,
    /// The connection ended without a close frame (reset, end of stream).
    pub dropped: Option<String>,
    pub timed_out: bool,
}

impl Answer {
    pub fn error(&self) -> Option<&str> {
        self.messages.iter().find_map(|m| match m {
            WireMessage::Error { message } => Some(message.as_str()),
            _ => None,
        })
    }

    /// The rule and explanation of a `change-rejected` message, if one came.
    pub fn rejected(&self) -> Option<(&str, &str)> {
        self.messages.iter().find_map(|m| match m {
            WireMessage::ChangeRejected { rule, message, .. } => {
                Some((rule.as_str(), message.as_str()))
            }
            _ => None,
        })
    }

    /// An `error` message, then a close with this code.
    pub fn assert_refused(&self, code: u16, what: &str) {
        let error = self.error().unwrap_or_else(|| panic!("{what}: no error message: {self:?}"));
        let (close, reason) =
            self.close.as_ref().unwrap_or_else(|| panic!("{what}: no close frame: {self:?}"));
        assert_eq!(*close, code, "{what}: {self:?}");
        assert_eq!(error, reason, "{what}: the error message and the close reason agree");
    }
}

impl Raw {
    pub async fn connect(ws_url: &str, session: &Session) -> Self {
        let mut request = ws_url.into_client_request().unwrap();
        for (name, value) in session.headers() {
            request.headers_mut().insert(name, HeaderValue::from_str(&value).unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await.expect("WebSocket upgrade");
        let mut raw = Self { ws, server_peer: String::new() };
        let join = WireMessage::Join {
            sender_id: "attacker".into(),
            supported_protocol_versions: vec!["1".into()],
        };
        raw.send(join.encode()).await.unwrap();
        let answer = raw.answer_until(TIMEOUT, |m| matches!(m, WireMessage::Peer { .. })).await;
        let Some(WireMessage::Peer { sender_id, .. }) = answer.messages.last() else {
            panic!("no peer message: {answer:?}")
        };
        raw.server_peer = sender_id.clone();
        raw
    }

    pub async fn send(
        &mut self,
        frame: Vec<u8>,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.ws.send(Message::Binary(frame.into())).await
    }

    /// Sends a sync message's bytes for `doc` in a `sync` frame.
    pub fn sync_frame(&self, doc: DocId, data: Vec<u8>) -> Vec<u8> {
        WireMessage::Sync {
            sender_id: "attacker".into(),
            target_id: self.server_peer.clone(),
            document_id: shared::sync::encode_doc_id(doc),
            data: serde_bytes::ByteBuf::from(data),
        }
        .encode()
    }

    /// Everything the server says until it closes the connection (or `timeout`).
    pub async fn answer(&mut self, timeout: Duration) -> Answer {
        self.answer_until(timeout, |_| false).await
    }

    pub async fn answer_until(
        &mut self,
        timeout: Duration,
        done: impl Fn(&WireMessage) -> bool,
    ) -> Answer {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut answer = Answer::default();
        loop {
            let Ok(frame) = tokio::time::timeout_at(deadline, self.ws.next()).await else {
                answer.timed_out = true;
                return answer;
            };
            match frame {
                Some(Ok(Message::Binary(bytes))) => {
                    let message =
                        WireMessage::decode(&bytes).expect("the server sends well-formed frames");
                    let stop = done(&message);
                    answer.messages.push(message);
                    if stop {
                        return answer;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    answer.close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    return answer;
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    answer.dropped = Some(error.to_string());
                    return answer;
                }
                None => {
                    answer.dropped = Some("end of stream".into());
                    return answer;
                }
            }
        }
    }
}

/// `/healthz` asked every 10 ms from another client (its own thread and
/// runtime, so nothing in the test delays it), and how long each took.
pub struct Probe {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Duration>>,
}

impl Probe {
    pub fn start(port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let runtime =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(async move {
                    let http = reqwest::Client::new();
                    let url = format!("http://127.0.0.1:{port}/healthz");
                    // The connection is made before measuring.
                    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
                    ready_tx.send(()).unwrap();
                    let mut latencies = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let response = http.get(&url).send().await.expect("/healthz answers");
                        assert_eq!(response.status(), 200, "/healthz");
                        response.bytes().await.unwrap();
                        latencies.push(started.elapsed());
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    latencies
                })
            }
        });
        ready_rx.recv().expect("the probe starts");
        Self { stop, thread }
    }

    pub fn stop(self) -> Vec<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the probe does not fail")
    }
}

/// Limits every attack is held to.
pub const MAX_GROWTH_KB: u64 = 200 * 1024;
pub const MAX_HEALTHZ: Duration = Duration::from_millis(50);
/// A loaded two-core machine (a build beside the tests) has delayed a probe
/// by 217 ms; a runtime an attack stalls answers in seconds, or late often.
pub const MAX_HEALTHZ_OUTLIER: Duration = Duration::from_millis(500);

/// What the server did while an attack ran.
#[derive(Debug)]
pub struct Measured {
    pub idle_kb: u64,
    pub peak_kb: u64,
    pub healthz: Vec<Duration>,
    pub elapsed: Duration,
}

impl std::fmt::Display for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |kb: u64| kb as f64 / 1024.0;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(
            f,
            "idle {:.1} MiB, peak {:.1} MiB (+{:.1} MiB), /healthz median {:.1} ms, worst {:.1} ms over {} probes, {:.2} s",
            mib(self.idle_kb),
            mib(self.peak_kb),
            mib(self.peak_kb.saturating_sub(self.idle_kb)),
            ms(self.median_healthz()),
            ms(self.worst_healthz()),
            self.healthz.len(),
            self.elapsed.as_secs_f64(),
        )
    }
}

impl Measured {
    pub fn worst_healthz(&self) -> Duration {
        self.healthz.iter().copied().max().unwrap_or_default()
    }

    pub fn median_healthz(&self) -> Duration {
        let mut sorted = self.healthz.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }
}

/// Runs `attack` while measuring the server's peak resident size and
/// `/healthz` latency, then asserts the server stayed within bounds and
/// is still running. Numbers are printed (`--nocapture` shows them).
pub async fn under_attack<T>(
    portal: &Portal,
    name: &str,
    attack: impl std::future::Future<Output = T>,
) -> (T, Measured) {
    let idle_kb = portal.rss_kb();
    portal.reset_peak();
    let probe = Probe::start(portal.port);
    let started = Instant::now();
    let outcome = attack.await;
    let elapsed = started.elapsed();
    // A last few samples after the attack's frames were answered.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let healthz = probe.stop();
    let peak_kb = portal.peak_kb();
    let measured = Measured { idle_kb, peak_kb, healthz, elapsed };
    println!("attack {name}: {measured}");
    assert!(portal.alive(), "{name}: the server is still running");
    assert!(
        peak_kb < idle_kb + MAX_GROWTH_KB,
        "{name}: peak resident size {peak_kb} KiB is more than 200 MB above idle ({idle_kb} KiB)"
    );
    assert!(!measured.healthz.is_empty(), "{name}: /healthz was probed");
    // Every probe under 50 ms; on a loaded machine the operating system
    // may delay one now and then, so one probe, or one in twenty-five of a
    // long attack, may take up to 500 ms (a stalled runtime shows as
    // seconds, or as many slow probes).
    let slow = measured.healthz.iter().filter(|d| **d >= MAX_HEALTHZ).count();
    assert!(
        slow <= (measured.healthz.len() / 25).max(1)
            && measured.worst_healthz() < MAX_HEALTHZ_OUTLIER,
        "{name}: /healthz took over 50 ms {slow} times out of {}, at worst {:?}",
        measured.healthz.len(),
        measured.worst_healthz()
    );
    (outcome, measured)
}

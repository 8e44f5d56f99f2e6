//! A structured fuzzer for what the server does with one client frame, on
//! stable Rust and without extra tools: `WireMessage::decode`, then
//! `scan_sync_message` (the bounds on raw bytes), then, for what passes,
//! `automerge::sync::Message::decode`, each change chunk parsed, the write
//! policy's `check_ops` and `check_quota` against a real record, the changes
//! applied to a fork and `check_entries` (or, for a message without
//! changes, the reply Automerge generates for its heads and Bloom filters),
//! exactly as `server/src/sync/connection.rs` does.
//!
//! Every input must finish without a panic, within a time bound, and
//! allocating at most a bounded multiple of its size (a counting global
//! allocator, [`Counting`], measures it). Inputs are made by mutating a
//! corpus of real frames (`fuzz/corpus/`) at four levels: the frame's bytes,
//! the sync message's bytes, the message's structure (hashes, Bloom filter
//! parameters, change chunks taken apart column by column and put together
//! with a correct checksum, so mutations reach past Automerge's checks),
//! and whole Automerge edits a replica could make (random operations at
//! random places of the record, signed by random actors).

pub mod mutate;
pub mod world;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use automerge::sync::{self, SyncDoc};
use shared::sync::inbound::limits::MAX_CLIENT_FRAME_BYTES;
use shared::sync::{WireMessage, decode_doc_id, scan_sync_message};
use shared::{check_entries, check_ops, check_quota};

pub use world::World;

/// What the server would do with a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Over the client frame limit: the socket refuses it unread (1009).
    TooLarge,
    /// Not a protocol message (1007).
    Malformed,
    /// Join, peer, error and the like: nothing to judge.
    NotSync,
    /// A document the sender may not read: `doc-unavailable`.
    Unavailable,
    /// Refused on its raw bytes, before Automerge parsed it (1007).
    Refused(String),
    /// Automerge could not parse it (1007).
    Corrupt(&'static str),
    /// Heads and Bloom filters only: answered (or not).
    Heads { replied: bool },
    /// Changes refused by the write policy: `change-rejected`.
    Rejected(&'static str),
    /// Changes accepted: `applied` if the document changed.
    Accepted { applied: bool },
    /// Changes accepted that leave the record unreadable by the app (it
    /// hydrates whole records through `shared::read`), or that storage
    /// could not load back: always a failure.
    Unreadable(String),
}

impl Outcome {
    /// A coarse name for the path the input took, for telling new
    /// behaviour from old: numbers in refusal reasons are left out.
    pub fn class(&self) -> String {
        match self {
            Self::Refused(reason) => {
                let words: Vec<&str> = reason
                    .split_whitespace()
                    .map(|w| if w.starts_with(|c: char| c.is_ascii_digit()) { "#" } else { w })
                    .collect();
                format!("refused: {}", words.join(" "))
            }
            other => format!("{other:?}"),
        }
    }
}

/// Handles one client frame as the server does, against `world`.
pub fn run(world: &World, frame: &[u8]) -> Outcome {
    if frame.len() > MAX_CLIENT_FRAME_BYTES {
        return Outcome::TooLarge;
    }
    let Ok(message) = WireMessage::decode(frame) else { return Outcome::Malformed };
    let (sender, document_id, data) = match message {
        WireMessage::Request { sender_id, document_id, data, .. }
        | WireMessage::Sync { sender_id, document_id, data, .. } => (sender_id, document_id, data),
        _ => return Outcome::NotSync,
    };
    let Some(target) = decode_doc_id(&document_id).ok().and_then(|id| world.target(id, &sender))
    else {
        return Outcome::Unavailable;
    };
    let scanned = match scan_sync_message(&data) {
        Ok(scanned) => scanned,
        Err(refused) => return Outcome::Refused(refused.0),
    };
    let Ok(message) = sync::Message::decode(&data) else { return Outcome::Corrupt("sync message") };
    // What the server runs off the runtime, catching panics (Automerge
    // unwraps on some inputs): a panic there closes the connection as
    // corrupt input. Only Automerge's own panics are expected; one in the
    // portal's code is a failure all the same.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        judge(&target, message, scanned.changes)
    })) {
        Ok(outcome) => outcome,
        Err(panic) if last_panic_in_automerge() => {
            drop(panic);
            Outcome::Corrupt("automerge panicked")
        }
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Judges and applies a message's changes, or answers its heads, as
/// `Job::run` in `server/src/sync/connection.rs` does.
fn judge(target: &world::Target, message: sync::Message, chunks: usize) -> Outcome {
    let mut state = sync::State::new();
    if message.changes.is_empty() {
        let mut doc = target.doc.clone();
        if doc.receive_sync_message(&mut state, message).is_err() {
            return Outcome::Corrupt("heads");
        }
        return Outcome::Heads { replied: doc.generate_sync_message(&mut state).is_some() };
    }
    let mut changes = Vec::with_capacity(chunks);
    for blob in message.changes.iter() {
        for chunk in shared::sync::inbound::change_chunks(blob) {
            match automerge::Change::try_from(chunk) {
                Ok(change) => changes.push(change),
                Err(_) => return Outcome::Corrupt("change"),
            }
        }
    }
    // As the server does (`only_ready`): changes whose dependencies are
    // neither in the record nor among the others are left out.
    let ready = ready(&target.doc, &changes);
    let changes: Vec<automerge::Change> =
        changes.into_iter().zip(&ready).filter_map(|(c, r)| r.then_some(c)).collect();
    let mut message = message;
    if ready.iter().any(|r| !r) {
        message.changes = changes.iter().map(|c| c.raw_bytes().to_vec()).collect::<Vec<_>>().into();
    }
    let plan = match check_ops(&target.doc, &changes, &target.kind, &target.who)
        .and_then(|p| check_quota(&p).map(|()| p))
    {
        Ok(plan) => plan,
        Err(denial) => return Outcome::Rejected(denial.rule.code()),
    };
    let mut fork = target.doc.clone();
    let before = fork.get_heads();
    if fork.receive_sync_message(&mut state, message).is_err() {
        return Outcome::Corrupt("apply");
    }
    if let Err(denial) = check_entries(&fork, &plan, &target.kind, &target.who) {
        return Outcome::Rejected(denial.rule.code());
    }
    let applied = fork.get_heads() != before;
    if let Err(why) = readable(&target.kind, &fork) {
        return Outcome::Unreadable(why);
    }
    if applied {
        // What the server stores must load again, as a chunk after what it
        // had and as a whole document (a restart, another instance).
        let chunk = fork.save_after(&before);
        let mut reloaded = target.doc.clone();
        let mut sorted = fork.get_heads();
        sorted.sort();
        let heads = |doc: &automerge::Automerge| {
            let mut h = doc.get_heads();
            h.sort();
            h
        };
        if reloaded.load_incremental(&chunk).is_err() || heads(&reloaded) != sorted {
            return Outcome::Unreadable("the stored chunk does not load back".into());
        }
        match automerge::Automerge::load(&fork.save()) {
            Ok(doc) if heads(&doc) == sorted => {}
            _ => return Outcome::Unreadable("the saved document does not load back".into()),
        }
        state.last_sent_heads.clear();
        let _ = fork.generate_sync_message(&mut state);
    }
    Outcome::Accepted { applied }
}

/// Whether the app can still read the record, as it reads it (`app/src/store.rs`).
pub fn readable(kind: &shared::DocKind, doc: &automerge::Automerge) -> Result<(), String> {
    use shared::schema::{ClinicalRecord, MessageThread, RefillRequest};
    let read = match kind {
        shared::DocKind::ClinicalRecord { .. } => {
            shared::read::hydrate::<ClinicalRecord>(doc).map(drop)
        }
        shared::DocKind::MessageThread { .. } => {
            shared::read::hydrate::<MessageThread>(doc).map(drop)
        }
        shared::DocKind::PatientRecord { .. } => {
            shared::read::hydrate_root_prop::<RefillRequest>(doc, "refill_requests").map(drop)
        }
    };
    read.map_err(|e| e.to_string())
}

/// Which changes can be applied now: each dependency in `base` or among the
/// changes that can (`only_ready` in `server/src/sync/connection.rs`).
fn ready(base: &automerge::Automerge, changes: &[automerge::Change]) -> Vec<bool> {
    let mut ready = vec![false; changes.len()];
    let mut known: std::collections::HashSet<automerge::ChangeHash> =
        std::collections::HashSet::new();
    loop {
        let mut progress = false;
        for (i, change) in changes.iter().enumerate() {
            if !ready[i]
                && change
                    .deps()
                    .iter()
                    .all(|d| known.contains(d) || base.get_change_meta_by_hash(d).is_some())
            {
                ready[i] = true;
                known.insert(change.hash());
                progress = true;
            }
        }
        if !progress {
            return ready;
        }
    }
}

thread_local! {
    /// Where the last panic on this thread happened (source file).
    static PANIC_AT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Records where panics happen; stays quiet about Automerge's own (the
/// server catches them), prints the others as usual.
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let file = info.location().map(|l| l.file().to_owned());
            let ours = !file.as_deref().is_some_and(in_automerge);
            PANIC_AT.with(|p| *p.borrow_mut() = file);
            if ours {
                default(info);
            }
        }));
    });
}

/// Automerge's own source: the registry's copies, and the vendored one
/// (`vendor/automerge`, patched for the web app).
fn in_automerge(file: &str) -> bool {
    file.contains("/automerge-") || file.contains("/hexane-") || file.contains("vendor/automerge/")
}

fn last_panic_in_automerge() -> bool {
    PANIC_AT.with(|p| p.borrow().as_deref().is_some_and(in_automerge))
}

/// Bounds every input is held to.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub time: Duration,
    /// Peak bytes allocated while handling an input, beyond what was
    /// allocated before: `per_byte` times its size plus `fixed`.
    pub per_byte: usize,
    pub fixed: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        // Unoptimised builds are slow; the fixed allowance covers copies of
        // the record (a fork to apply changes to) and Automerge's caches.
        Self { time: Duration::from_secs(5), per_byte: 32, fixed: 64 << 20 }
    }
}

/// What handling one input cost.
#[derive(Clone, Debug)]
pub struct Cost {
    pub outcome: Outcome,
    pub time: Duration,
    pub allocated: usize,
}

/// Why an input failed.
#[derive(Clone, Debug)]
pub enum Failure {
    Panic(String),
    Slow(Duration, Outcome),
    Allocated(usize, Outcome),
    Unreadable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Panic(message) => write!(f, "panicked: {message}"),
            Self::Slow(time, outcome) => write!(f, "took {time:?} ({})", outcome.class()),
            Self::Allocated(bytes, outcome) => {
                write!(f, "allocated {} MiB ({})", bytes >> 20, outcome.class())
            }
            Self::Unreadable(why) => {
                write!(f, "accepted changes leave the record unreadable by the app: {why}")
            }
        }
    }
}

/// Runs one input under the bounds. The counting allocator must be the
/// global allocator for the allocation bound to mean anything.
pub fn check(world: &World, frame: &[u8], bounds: &Bounds) -> Result<Cost, Failure> {
    install_panic_hook();
    let base = Counting::reset_peak();
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(world, frame)))
        .map_err(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            Failure::Panic(message)
        })?;
    let time = started.elapsed();
    let allocated = Counting::peak().saturating_sub(base);
    if let Outcome::Unreadable(why) = outcome {
        return Err(Failure::Unreadable(why));
    }
    if time > bounds.time {
        return Err(Failure::Slow(time, outcome));
    }
    if allocated > bounds.per_byte * frame.len() + bounds.fixed {
        return Err(Failure::Allocated(allocated, outcome));
    }
    Ok(Cost { outcome, time, allocated })
}

/// A global allocator that counts bytes in use and their peak.
pub struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    /// Starts a new peak at what is in use now; returns that.
    pub fn reset_peak() -> usize {
        let now = IN_USE.load(Ordering::Relaxed);
        PEAK.store(now, Ordering::Relaxed);
        now
    }

    pub fn peak() -> usize {
        PEAK.load(Ordering::Relaxed)
    }
}

fn grew(size: usize) {
    let now = IN_USE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size > layout.size() {
                grew(new_size - layout.size());
            } else {
                IN_USE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        new
    }
}

/// The committed corpus: `fuzz/corpus/*.bin`, by file name.
pub fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

pub fn load_corpus(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut entries: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "bin"))
                .map(|e| {
                    (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
                })
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    entries
}

/// A short stable name for an input.
pub fn name_of(bytes: &[u8]) -> String {
    // FNV-1a, 64 bits: enough to tell corpus files apart.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

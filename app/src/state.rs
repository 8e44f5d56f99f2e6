//! What the views show, as signals (`Ui`), and the typed values behind the
//! sync status: the connection (`Connection`) and what needs the person's
//! attention (`Notice`, put into words by `status.rs`).
//!
//! `App` creates one `Ui` and provides it as context; views take it with
//! `expect_context::<Ui>()`. The modules below the views get it from their
//! caller when the session starts (`session::start`).

use leptos::prelude::*;
use shared::PatientId;
use shared::schema::Collection;
use shared::sync::Progress;

use shared::api::{DocumentInfo, Me};

use crate::api::ClinicAccess;

/// The sync connection, as the person would describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// The browser has no network.
    Offline,
    /// Network, but no open sync socket (opening, waiting to retry, or
    /// nobody signed in).
    Connecting,
    /// Network, but the portal did not answer the last attempt to connect
    /// (server down, or a network that reaches nothing): retrying.
    Unreachable,
    /// The sync socket is open.
    Online,
}

/// Something that needs the person's attention, shown until dismissed (or,
/// for sync failures, until the connection opens again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The server ended this session (signed out elsewhere, passkey
    /// removed, access taken away); its reason, in plain words.
    SessionEnded(String),
    /// The server refused changes; the record on this device went back to
    /// the server's. What was not saved, in plain words.
    Refused(Vec<Refusal>),
    /// This device could not store a change.
    StorageFull,
    /// The list of records could not be fetched (the error, in words).
    RefreshFailed(String),
    /// The server reported an error, or sent a message that does not sync.
    SyncError(String),
    /// The server sent a frame this app cannot decode.
    Unreadable(String),
}

/// A change the server refused: what was not saved, in plain words
/// (naming the patient and the item, with what the person wrote), and where
/// the item is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub words: String,
    pub patient: PatientId,
    pub collection: Collection,
}

impl Notice {
    /// Sync failures are over once a connection opens again.
    pub fn ends_on_reconnect(&self) -> bool {
        matches!(self, Self::SyncError(_) | Self::Unreadable(_))
    }
}

#[derive(Clone, Copy)]
pub struct Ui {
    pub me: RwSignal<Option<Me>>,
    pub docs: RwSignal<Vec<DocumentInfo>>,
    /// Bumped on every change to any replica.
    pub version: RwSignal<u64>,
    pub connection: RwSignal<Connection>,
    pub progress: RwSignal<Progress>,
    pub last_synced: RwSignal<Option<String>>,
    /// What needs attention (a refused change, a sync failure).
    pub notice: RwSignal<Option<Notice>>,
    pub session_expired: RwSignal<bool>,
    /// Local data has been read (or there was none).
    pub started: RwSignal<bool>,
    /// This device holds a copy sealed under a passkey, not opened yet.
    pub sealed: RwSignal<bool>,
    pub consents: RwSignal<Vec<ClinicAccess>>,
    /// Changes the server refused for good because the patient withdrew
    /// consent, described ("Message: ..."), kept until the person dismisses
    /// them so their text is not lost.
    pub undelivered: RwSignal<Vec<String>>,
    /// The person asked to be signed out once the server has every change
    /// made on this device (`App` does it).
    pub sign_out_when_sent: RwSignal<bool>,
    /// Clinic staff: patients pinned to stay on this device, and those
    /// opened most recently (first), kept with the copy.
    pub pins: RwSignal<Vec<PatientId>>,
    pub recent: RwSignal<Vec<PatientId>>,
    /// What the last action done in place did ("Refill requested for
    /// amlodipine"), read out by a polite live region.
    pub said: RwSignal<String>,
    /// The test (LOINC code) the trend view shows; empty: the one that
    /// matters most for this patient.
    pub trend: RwSignal<String>,
    /// When the person last opened Results on this device: results
    /// recorded after it are new.
    pub seen_results: RwSignal<String>,
    /// The view shown (`App` keeps the address bar in step with it).
    pub page: RwSignal<crate::Page>,
    /// The conversation of each message thread the person opened (by its
    /// first message's id; "" for the messages from before conversations);
    /// a thread not named shows its latest.
    pub conversation: RwSignal<Vec<(shared::DocId, String)>>,
    /// The language the views are in (`i18n`); set again when its words
    /// change, and `App` builds every view anew.
    pub language: RwSignal<&'static str>,
}

impl Ui {
    /// The page's signals, before anything is read.
    pub fn create() -> Self {
        let online = web_sys::window().map(|w| w.navigator().on_line()).unwrap_or(true);
        Self {
            me: RwSignal::new(None),
            docs: RwSignal::new(Vec::new()),
            version: RwSignal::new(0),
            connection: RwSignal::new(if online {
                Connection::Connecting
            } else {
                Connection::Offline
            }),
            progress: RwSignal::new(Progress::default()),
            last_synced: RwSignal::new(None),
            notice: RwSignal::new(None),
            session_expired: RwSignal::new(false),
            started: RwSignal::new(false),
            sealed: RwSignal::new(false),
            consents: RwSignal::new(Vec::new()),
            undelivered: RwSignal::new(Vec::new()),
            sign_out_when_sent: RwSignal::new(false),
            pins: RwSignal::new(Vec::new()),
            recent: RwSignal::new(Vec::new()),
            said: RwSignal::new(String::new()),
            trend: RwSignal::new(String::new()),
            seen_results: RwSignal::new(String::new()),
            page: RwSignal::new(crate::Page::Record(crate::Tab::Results)),
            conversation: RwSignal::new(Vec::new()),
            // Read before anything is shown: the first render is in the
            // person's language.
            language: RwSignal::new(crate::i18n::start()),
        }
    }

    /// Tells screen reader users what an action did.
    pub fn say(&self, what: String) {
        self.said.set(what);
    }

    /// Whether the browser has a network (tracked).
    pub fn online(&self) -> bool {
        self.connection.get() != Connection::Offline
    }

    pub fn online_untracked(&self) -> bool {
        self.connection.get_untracked() != Connection::Offline
    }
}

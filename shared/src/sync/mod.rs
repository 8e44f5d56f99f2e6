//! Sync between replicas and the server, without I/O.
//!
//! The wire format is automerge-repo's (CBOR messages `join`, `peer`,
//! `request`, `sync`, `doc-unavailable`, `error`) so standard automerge-repo
//! clients can talk to the server, plus one portal message,
//! `change-rejected`, telling a client that its changes to a document broke
//! the write policy and that it must reset that document from the server.
//! Each document is synced with Automerge's sync protocol (heads and Bloom
//! filters, so only what the other side lacks is sent; a peer with nothing
//! gets the whole document in one message).

pub mod client;
pub mod inbound;
mod wire;

pub use client::{Progress, Received, SyncClient};
pub use inbound::{Scanned, Unbounded, scan_sync_message};
pub use wire::{
    MAX_FRAME_BYTES, PROTOCOL_VERSION, WireError, WireMessage, decode_doc_id, encode_doc_id,
};

/// The WebSocket close code of a sync connection whose session ended
/// (signed out, passkey removed, access taken away): the client must sign in
/// again, not reconnect. The close reason says why in plain words.
pub const CLOSE_SESSION_ENDED: u16 = 4401;

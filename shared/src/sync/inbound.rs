//! Bounds on a client's Automerge sync message, checked on its raw bytes
//! before Automerge (or anything else) parses it.
//!
//! Automerge trusts what a message claims: a Bloom filter's probe count sizes
//! an allocation, a filter of zero bits divides by zero, a run-length encoded
//! column can claim billions of operations in a few bytes, and a compressed
//! chunk inflates without limit. So the server walks the message itself
//! first: every count is read and bounded before anything is allocated for
//! it, every chunk must be a plain change chunk (no document, bundle or
//! compressed chunks: nothing inflates), and each change's operations are
//! counted from its columns without materialising them. Only a message that
//! passes reaches `automerge::sync::Message::decode`. The format is
//! Automerge's binary sync message and chunk format (automerge 0.12,
//! `sync.rs` and `storage/`).

/// Every limit, with the reason for its value; `docs/security.md` lists them.
pub mod limits {
    /// Largest frame a client may send. A client sends only what it changed
    /// (the server creates documents; their first load goes the other way),
    /// and a day of a clinic's offline work on one record is tens of KiB.
    pub const MAX_CLIENT_FRAME_BYTES: usize = 1024 * 1024;
    /// Heads, needs, or last-sync hashes in one list. A document's heads
    /// are one per concurrent device at most.
    pub const MAX_HASHES: usize = 1024;
    /// `have` entries: Automerge sends at most one.
    pub const MAX_HAVES: usize = 4;
    /// Bloom filter parameters: Automerge generates 10 bits per entry and
    /// 7 probes; each probe is work for every change the server checks.
    pub const MAX_BLOOM_ENTRIES: u64 = 1 << 20;
    pub const MAX_BLOOM_BITS_PER_ENTRY: u64 = 32;
    pub const MAX_BLOOM_PROBES: u64 = 16;
    /// Changes in one sync message.
    pub const MAX_CHANGES: usize = 4096;
    /// Dependencies of one change, and other actors it names.
    pub const MAX_DEPS: usize = 256;
    pub const MAX_ACTORS: usize = 256;
    /// Bytes of an actor id (Automerge's are 16).
    pub const MAX_ACTOR_BYTES: usize = 64;
    /// Columns of a change (Automerge writes 14 at most).
    pub const MAX_COLUMNS: usize = 32;
    /// Operations in one change: the largest edit the app makes (a panel of
    /// results with its report) is a few hundred.
    pub const MAX_OPS_PER_CHANGE: u64 = 4096;
    /// Operations in one sync message (one document).
    pub const MAX_OPS_PER_MESSAGE: u64 = 20_000;
}

use limits::*;

/// A sync message that may be handed to Automerge, and what it carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scanned {
    pub changes: usize,
    /// Operations in all its changes.
    pub ops: u64,
}

/// Why a client's sync message was refused before it was parsed. Safe to log
/// and to send back: it names structure, never content.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("sync message refused: {0}")]
pub struct Unbounded(pub String);

fn refuse<T>(why: impl Into<String>) -> Result<T, Unbounded> {
    Err(Unbounded(why.into()))
}

const SYNC_V1: u8 = 0x42;
const SYNC_V2: u8 = 0x43;
const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const CHUNK_CHANGE: u8 = 1;
const HASH_BYTES: usize = 32;

/// Checks a client's encoded sync message against every bound above.
pub fn scan_sync_message(bytes: &[u8]) -> Result<Scanned, Unbounded> {
    let mut r = Reader::new(bytes);
    match r.byte()? {
        SYNC_V1 | SYNC_V2 => {}
        other => return refuse(format!("unknown sync message type {other:#04x}")),
    }
    r.hashes("heads")?;
    r.hashes("need")?;
    let haves = r.count("have", MAX_HAVES)?;
    for _ in 0..haves {
        r.hashes("last sync")?;
        let bloom = r.length_prefixed("bloom filter")?;
        check_bloom(bloom)?;
    }
    let mut scanned = Scanned::default();
    let blobs = r.count("changes", MAX_CHANGES)?;
    for _ in 0..blobs {
        // A V1 message has one change per entry; a V2 message concatenates
        // chunks in one entry. Either way: a sequence of change chunks.
        let mut blob = Reader::new(r.length_prefixed("change")?);
        while !blob.is_empty() {
            let ops = scan_change_chunk(&mut blob)?;
            scanned.changes += 1;
            scanned.ops += ops;
            if scanned.changes > MAX_CHANGES {
                return refuse(format!("more than {MAX_CHANGES} changes in one message"));
            }
            if scanned.ops > MAX_OPS_PER_MESSAGE {
                return refuse(format!(
                    "more than {MAX_OPS_PER_MESSAGE} operations in one message"
                ));
            }
        }
    }
    // Optional flags: a length-prefixed byte string, then nothing.
    if !r.is_empty() {
        r.length_prefixed("flags")?;
        if !r.is_empty() {
            return refuse("trailing bytes after the message");
        }
    }
    Ok(scanned)
}

/// Empty, or entries, bits per entry and probes followed by exactly the bits
/// they imply, with at least one bit (Automerge divides by the bit count).
fn check_bloom(bytes: &[u8]) -> Result<(), Unbounded> {
    if bytes.is_empty() {
        return Ok(());
    }
    let mut r = Reader::new(bytes);
    let entries = r.uleb()?;
    let bits_per_entry = r.uleb()?;
    let probes = r.uleb()?;
    if entries > MAX_BLOOM_ENTRIES
        || !(1..=MAX_BLOOM_BITS_PER_ENTRY).contains(&bits_per_entry)
        || !(1..=MAX_BLOOM_PROBES).contains(&probes)
    {
        return refuse("bloom filter parameters out of range");
    }
    let bits = (entries * bits_per_entry).div_ceil(8);
    if entries == 0 || r.rest().len() as u64 != bits {
        return refuse("bloom filter size does not match its parameters");
    }
    Ok(())
}

/// One change chunk, header and columns; returns its operation count.
fn scan_change_chunk(r: &mut Reader<'_>) -> Result<u64, Unbounded> {
    if r.take(4)? != CHUNK_MAGIC {
        return refuse("not an Automerge chunk");
    }
    r.take(4)?; // checksum, verified by Automerge
    match r.byte()? {
        CHUNK_CHANGE => {}
        // Documents, bundles and compressed changes inflate or hold whole
        // histories: the server cannot bound them cheaply, and a client
        // only ever needs to send its own changes.
        0 => return refuse("document chunks are not accepted from clients"),
        2 => return refuse("compressed chunks are not accepted from clients"),
        3 => return refuse("bundle chunks are not accepted from clients"),
        other => return refuse(format!("unknown chunk type {other}")),
    }
    let len = r.uleb_usize()?;
    let mut c = Reader::new(r.take(len)?);
    c.hashes_max("dependencies", MAX_DEPS)?;
    actor(&mut c)?;
    c.uleb()?; // seq
    if c.uleb()? == 0 {
        return refuse("a change's start op must not be zero");
    }
    c.sleb()?; // time
    let message = c.uleb_usize()?;
    c.take(message)?;
    let actors = c.count("other actors", MAX_ACTORS)?;
    for _ in 0..actors {
        actor(&mut c)?;
    }
    let columns = c.count("columns", MAX_COLUMNS)?;
    let mut specs = Vec::with_capacity(columns);
    for _ in 0..columns {
        let spec = c.uleb()?;
        if spec > u64::from(u32::MAX) {
            return refuse("column specification out of range");
        }
        if spec & 0b1000 != 0 {
            return refuse("compressed columns are not accepted");
        }
        specs.push((spec as u32, c.uleb_usize()?));
    }
    let mut ops = 0;
    for (spec, len) in specs {
        let rows = column_rows(spec & 0b111, c.take(len)?)?;
        ops = ops.max(rows);
    }
    if !c.is_empty() {
        // Automerge keeps trailing bytes as "extra bytes"; the portal never
        // writes any, and they would be data the policy cannot see.
        return refuse("trailing bytes after a change's columns");
    }
    Ok(ops)
}

/// The chunks of a change blob that passed [`scan_sync_message`], one by
/// one (a V2 message concatenates them).
pub fn change_chunks(mut blob: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if blob.is_empty() {
            return None;
        }
        let mut r = Reader::new(blob.get(9..)?);
        let len = r.uleb_usize().ok()?;
        let total = blob.len() - r.rest().len() + len;
        let (chunk, rest) = blob.split_at(total.min(blob.len()));
        blob = rest;
        Some(chunk)
    })
}

fn actor(r: &mut Reader<'_>) -> Result<(), Unbounded> {
    let len = r.uleb_usize()?;
    if len > MAX_ACTOR_BYTES {
        return refuse("actor id too long");
    }
    r.take(len)?;
    Ok(())
}

/// How many rows a column claims, counted run by run without expanding
/// them, refusing as soon as the count passes the per-change limit.
fn column_rows(column_type: u32, bytes: &[u8]) -> Result<u64, Unbounded> {
    let mut r = Reader::new(bytes);
    let mut rows: u64 = 0;
    let mut add = |n: u64| -> Result<(), Unbounded> {
        rows = rows.saturating_add(n);
        if rows > MAX_OPS_PER_CHANGE {
            refuse(format!("more than {MAX_OPS_PER_CHANGE} operations in one change"))
        } else {
            Ok(())
        }
    };
    match column_type {
        // Raw values: their lengths come from the metadata column.
        7 => {}
        // Booleans: alternating run lengths, starting with false.
        4 => {
            while !r.is_empty() {
                add(r.uleb()?)?;
            }
        }
        // Run-length encoded: a positive count and one value repeated, a
        // negative count of literal values, or zero and a count of nulls.
        0 | 1 | 2 | 3 | 5 | 6 => {
            let value = |r: &mut Reader<'_>| -> Result<(), Unbounded> {
                match column_type {
                    3 => r.sleb().map(drop),
                    5 => {
                        let len = r.uleb_usize()?;
                        r.take(len).map(drop)
                    }
                    _ => r.uleb().map(drop),
                }
            };
            while !r.is_empty() {
                let count = r.sleb()?;
                if count > 0 {
                    add(count as u64)?;
                    value(&mut r)?;
                } else if count < 0 {
                    let n = count.unsigned_abs();
                    add(n)?;
                    for _ in 0..n {
                        value(&mut r)?;
                    }
                } else {
                    add(r.uleb()?)?;
                }
            }
        }
        _ => unreachable!("three bits"),
    }
    Ok(rows)
}

/// A cursor over bytes whose every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Unbounded> {
        if n > self.bytes.len() {
            return refuse("message ends early");
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, Unbounded> {
        Ok(self.take(1)?[0])
    }

    fn uleb(&mut self) -> Result<u64, Unbounded> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return refuse("number out of range");
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        refuse("number out of range")
    }

    fn sleb(&mut self) -> Result<i64, Unbounded> {
        let mut value: i64 = 0;
        let mut shift = 0;
        loop {
            let byte = self.byte()?;
            if shift >= 64 {
                return refuse("number out of range");
            }
            value |= i64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    value |= -1 << shift;
                }
                return Ok(value);
            }
        }
    }

    fn uleb_usize(&mut self) -> Result<usize, Unbounded> {
        usize::try_from(self.uleb()?).or_else(|_| refuse("length out of range"))
    }

    /// A count, refused above `max` before anything is read for it.
    fn count(&mut self, what: &str, max: usize) -> Result<usize, Unbounded> {
        let n = self.uleb()?;
        if n > max as u64 {
            return refuse(format!("more than {max} {what}"));
        }
        Ok(n as usize)
    }

    fn hashes(&mut self, what: &str) -> Result<(), Unbounded> {
        self.hashes_max(what, MAX_HASHES)
    }

    fn hashes_max(&mut self, what: &str, max: usize) -> Result<(), Unbounded> {
        let n = self.count(what, max)?;
        self.take(n * HASH_BYTES).map(drop)
    }

    fn length_prefixed(&mut self, what: &str) -> Result<&'a [u8], Unbounded> {
        let len = self.uleb_usize()?;
        if len > self.bytes.len() {
            return refuse(format!("{what} longer than the message"));
        }
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use automerge::sync::{self, SyncDoc};
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ROOT};

    use super::*;

    fn doc_with(n: usize) -> Automerge {
        let mut doc = Automerge::new();
        for i in 0..n {
            doc.transact::<_, _, automerge::AutomergeError>(|tx| {
                tx.put(ROOT, format!("k{i}"), i as i64).map(drop)
            })
            .unwrap();
        }
        doc
    }

    /// What a portal client sends (changes one by one, as `SyncClient`
    /// generates them) passes, all through a sync with the server.
    #[test]
    fn messages_automerge_generates_pass() {
        let mut server = doc_with(1);
        let mut client = server.fork();
        for i in 0..20 {
            client
                .transact::<_, _, automerge::AutomergeError>(|tx| {
                    tx.put(ROOT, format!("c{i}"), i).map(drop)
                })
                .unwrap();
        }
        let (mut s, mut c) = (sync::State::new(), sync::State::new());
        for _ in 0..6 {
            c.their_capabilities = None;
            if let Some(m) = client.generate_sync_message(&mut c) {
                let bytes = m.encode();
                scan_sync_message(&bytes).unwrap();
                server
                    .receive_sync_message(&mut s, sync::Message::decode(&bytes).unwrap())
                    .unwrap();
            }
            if let Some(m) = server.generate_sync_message(&mut s) {
                client.receive_sync_message(&mut c, m).unwrap();
            }
        }
        assert_eq!(server.get_heads(), client.get_heads());
        let ours = client;
        let change = ours.get_changes(&[]);
        let message = sync::Message {
            heads: ours.get_heads(),
            need: vec![],
            have: vec![],
            changes: change.iter().map(|c| c.raw_bytes().to_vec()).collect::<Vec<_>>().into(),
            flags: None,
            version: sync::MessageVersion::V1,
        };
        assert_eq!(scan_sync_message(&message.encode()).unwrap(), Scanned { changes: 21, ops: 21 });
    }

    #[test]
    fn whole_documents_and_compressed_chunks_are_refused() {
        let doc = doc_with(50);
        let message = sync::Message {
            heads: doc.get_heads(),
            need: vec![],
            have: vec![],
            changes: doc.save().into(),
            flags: None,
            version: sync::MessageVersion::V2,
        };
        assert!(scan_sync_message(&message.encode()).unwrap_err().0.contains("document chunks"));
    }

    fn with_bloom(bloom: &[u8]) -> Vec<u8> {
        let mut bytes = vec![SYNC_V1, 0, 0, 1, 0];
        bytes.push(bloom.len() as u8);
        bytes.extend_from_slice(bloom);
        bytes.push(0);
        bytes
    }

    #[test]
    fn bloom_filters_that_automerge_would_choke_on_are_refused() {
        // Billions of probes (16 GiB allocated in Automerge).
        let probes = with_bloom(&[1, 10, 0xff, 0xff, 0xff, 0xff, 0x0f, 0xff, 0x03]);
        assert!(scan_sync_message(&probes).is_err());
        // Zero bits: a division by zero in Automerge.
        assert!(scan_sync_message(&with_bloom(&[5, 0, 7])).is_err());
        // Bits that do not match the entries.
        assert!(scan_sync_message(&with_bloom(&[8, 10, 7, 0, 0])).is_err());
        // A well-formed one passes: 1 entry, 10 bits, 7 probes, 2 bytes.
        assert!(scan_sync_message(&with_bloom(&[1, 10, 7, 0xab, 0x01])).is_ok());
    }

    #[test]
    fn counts_are_bounded_before_anything_is_read() {
        // Heads claiming 2^63 entries.
        let bytes = [SYNC_V1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(scan_sync_message(&bytes).unwrap_err().0.contains("more than"));
        assert!(scan_sync_message(&[SYNC_V1, 1]).is_err());
        assert!(scan_sync_message(&[0x99]).is_err());
    }

    #[test]
    fn run_length_bombs_are_counted_without_expanding_them() {
        // Uleb column: a run of 2^40 copies of 1.
        let mut column = Vec::new();
        leb(&mut column, 1 << 40);
        column.push(1);
        assert!(column_rows(2, &column).is_err());
        // A null run, a literal run and booleans within bounds count exactly.
        assert_eq!(column_rows(2, &[0, 5]).unwrap(), 5);
        assert_eq!(column_rows(5, &[0x7e, 1, b'a', 1, b'b']).unwrap(), 2);
        assert_eq!(column_rows(4, &[3, 2]).unwrap(), 5);
        assert!(column_rows(4, &[0xff, 0xff, 0x03]).is_err());
    }

    /// Signed LEB128, as run counts are written.
    fn leb(out: &mut Vec<u8>, mut v: i64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if (v == 0 && byte & 0x40 == 0) || (v == -1 && byte & 0x40 != 0) {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
}

//! Making new inputs from old ones, at four levels: the frame's bytes, the
//! sync message's bytes, the message's structure (hashes, Bloom filters,
//! change chunks column by column, re-checksummed), and Automerge edits a
//! replica could make. The formats are automerge 0.12's (`sync.rs`,
//! `storage/chunk.rs`, `storage/change.rs`).

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ObjId, ObjType, ROOT, ReadDoc, ScalarValue};
use serde_bytes::ByteBuf;
use shared::sync::{WireMessage, encode_doc_id};

use crate::World;

/// xorshift64*: small, fast and the same everywhere, so a seed replays a run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
    }

    /// True `n` times in 100.
    pub fn percent(&mut self, n: usize) -> bool {
        self.below(100) < n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// Up to `max - 1` random bytes.
    pub fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }

    pub fn actor(&mut self) -> ActorId {
        ActorId::from(self.bytes(16).as_slice())
    }

    /// A canonical entry id (UUIDv7), from this generator.
    pub fn entry_id(&mut self) -> shared::EntryId {
        let random: [u8; 10] = self.bytes(10).try_into().unwrap();
        shared::EntryId::from_uuid(
            uuid::Builder::from_unix_timestamp_millis(1_764_000_000_000, &random).into_uuid(),
        )
    }

    /// A count worth trying: around the limits, zero, one, huge.
    pub fn interesting(&mut self) -> u64 {
        const VALUES: [u64; 22] = [
            0,
            1,
            2,
            7,
            16,
            17,
            32,
            33,
            127,
            128,
            255,
            1023,
            1024,
            1025,
            4096,
            4097,
            20_001,
            1 << 20,
            (1 << 20) + 1,
            u32::MAX as u64,
            1 << 40,
            u64::MAX,
        ];
        if self.percent(70) { *self.pick(&VALUES) } else { self.next_u64() >> self.below(64) }
    }
}

pub fn uleb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

pub fn sleb(out: &mut Vec<u8>, mut v: i64) {
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

/// A lenient cursor: `None` when the bytes run out.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn uleb(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn sleb(&mut self) -> Option<i64> {
        let mut value = 0i64;
        let mut shift = 0u32;
        loop {
            let byte = self.take(1)?[0];
            value |= i64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
            shift += 7;
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    value |= -1 << shift;
                }
                return Some(value);
            }
            if shift > 70 {
                return None;
            }
        }
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = usize::try_from(self.uleb()?).ok()?;
        Some(self.take(n)?.to_vec())
    }

    fn hashes(&mut self) -> Option<Vec<Vec<u8>>> {
        let n = self.uleb()?;
        if n > 100_000 {
            return None;
        }
        (0..n).map(|_| self.take(32).map(<[u8]>::to_vec)).collect()
    }
}

/// A sync message taken apart.
#[derive(Clone, Debug, Default)]
pub struct Msg {
    pub version: u8,
    pub heads: Vec<Vec<u8>>,
    pub need: Vec<Vec<u8>>,
    /// (last sync hashes, Bloom filter bytes)
    pub haves: Vec<(Vec<Vec<u8>>, Vec<u8>)>,
    pub changes: Vec<Vec<u8>>,
    pub flags: Option<Vec<u8>>,
}

impl Msg {
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let mut c = Cursor(bytes);
        let version = c.take(1)?[0];
        let heads = c.hashes()?;
        let need = c.hashes()?;
        let count = c.uleb()?;
        let mut haves = Vec::new();
        for _ in 0..count.min(10_000) {
            haves.push((c.hashes()?, c.bytes()?));
        }
        let count = c.uleb()?;
        let mut changes = Vec::new();
        for _ in 0..count.min(10_000) {
            changes.push(c.bytes()?);
        }
        let flags = if c.0.is_empty() { None } else { Some(c.bytes()?) };
        Some(Self { version, heads, need, haves, changes, flags })
    }

    pub fn encode(&self) -> Vec<u8> {
        let haves: Vec<(Vec<Vec<u8>>, Vec<u8>)> = self.haves.clone();
        encode_message(
            self.version,
            &self.heads,
            &self.need,
            &haves,
            &self.changes,
            self.flags.as_deref(),
        )
    }
}

/// A sync message's bytes, in `Message::encode`'s layout, from any parts
/// (hashes need not be sorted or 32 bytes long).
pub fn encode_message<H: AsRef<[u8]>>(
    version: u8,
    heads: &[H],
    need: &[Vec<u8>],
    haves: &[(Vec<Vec<u8>>, Vec<u8>)],
    changes: &[Vec<u8>],
    flags: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = vec![version];
    uleb(&mut out, heads.len() as u64);
    for h in heads {
        out.extend_from_slice(h.as_ref());
    }
    uleb(&mut out, need.len() as u64);
    for h in need {
        out.extend_from_slice(h);
    }
    uleb(&mut out, haves.len() as u64);
    for (last_sync, bloom) in haves {
        uleb(&mut out, last_sync.len() as u64);
        for h in last_sync {
            out.extend_from_slice(h);
        }
        uleb(&mut out, bloom.len() as u64);
        out.extend_from_slice(bloom);
    }
    uleb(&mut out, changes.len() as u64);
    for change in changes {
        uleb(&mut out, change.len() as u64);
        out.extend_from_slice(change);
    }
    if let Some(flags) = flags {
        uleb(&mut out, flags.len() as u64);
        out.extend_from_slice(flags);
    }
    out
}

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// A chunk: type, checksum and data.
#[derive(Clone, Debug)]
pub struct Chunk {
    pub kind: u8,
    pub checksum: [u8; 4],
    pub data: Vec<u8>,
}

impl Chunk {
    /// The chunks of a blob, as far as they parse.
    pub fn split(blob: &[u8]) -> Vec<Chunk> {
        let mut c = Cursor(blob);
        let mut chunks = Vec::new();
        while !c.0.is_empty() {
            let Some(chunk) = (|| {
                if c.take(4)? != MAGIC {
                    return None;
                }
                let checksum: [u8; 4] = c.take(4)?.try_into().ok()?;
                let kind = c.take(1)?[0];
                let data = c.bytes()?;
                Some(Chunk { kind, checksum, data })
            })() else {
                break;
            };
            chunks.push(chunk);
        }
        chunks
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&self.checksum);
        out.push(self.kind);
        uleb(&mut out, self.data.len() as u64);
        out.extend_from_slice(&self.data);
        out
    }

    /// Sets the checksum Automerge expects: SHA-256 of the type, length and data.
    pub fn fix_checksum(&mut self) {
        use sha2::{Digest, Sha256};
        let mut header = vec![self.kind];
        uleb(&mut header, self.data.len() as u64);
        let mut hasher = Sha256::new();
        hasher.update(&header);
        hasher.update(&self.data);
        let hash = hasher.finalize();
        self.checksum = [hash[0], hash[1], hash[2], hash[3]];
    }
}

/// A change chunk's body taken apart.
#[derive(Clone, Debug)]
pub struct Change {
    pub deps: Vec<Vec<u8>>,
    pub actor: Vec<u8>,
    pub seq: u64,
    pub start_op: u64,
    pub time: i64,
    pub message: Vec<u8>,
    pub others: Vec<Vec<u8>>,
    pub columns: Vec<(u64, Vec<u8>)>,
    pub extra: Vec<u8>,
}

impl Change {
    pub fn parse(body: &[u8]) -> Option<Self> {
        let mut c = Cursor(body);
        let deps = c.hashes()?;
        let actor = c.bytes()?;
        let seq = c.uleb()?;
        let start_op = c.uleb()?;
        let time = c.sleb()?;
        let message = c.bytes()?;
        let n = c.uleb()?;
        let others = (0..n.min(1000)).map(|_| c.bytes()).collect::<Option<Vec<_>>>()?;
        let n = c.uleb()?;
        let specs = (0..n.min(1000))
            .map(|_| Some((c.uleb()?, usize::try_from(c.uleb()?).ok()?)))
            .collect::<Option<Vec<_>>>()?;
        let columns = specs
            .into_iter()
            .map(|(spec, len)| Some((spec, c.take(len)?.to_vec())))
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            deps,
            actor,
            seq,
            start_op,
            time,
            message,
            others,
            columns,
            extra: c.0.to_vec(),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        uleb(&mut out, self.deps.len() as u64);
        for dep in &self.deps {
            out.extend_from_slice(dep);
        }
        uleb(&mut out, self.actor.len() as u64);
        out.extend_from_slice(&self.actor);
        uleb(&mut out, self.seq);
        uleb(&mut out, self.start_op);
        sleb(&mut out, self.time);
        uleb(&mut out, self.message.len() as u64);
        out.extend_from_slice(&self.message);
        uleb(&mut out, self.others.len() as u64);
        for other in &self.others {
            uleb(&mut out, other.len() as u64);
            out.extend_from_slice(other);
        }
        uleb(&mut out, self.columns.len() as u64);
        for (spec, data) in &self.columns {
            uleb(&mut out, *spec);
            uleb(&mut out, data.len() as u64);
        }
        for (_, data) in &self.columns {
            out.extend_from_slice(data);
        }
        out.extend_from_slice(&self.extra);
        out
    }
}

/// Byte-level mutations: flips, interesting bytes and numbers, inserts,
/// deletions, copies, truncation.
pub fn bytes(rng: &mut Rng, data: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let at = rng.below(len);
                data[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                data[at] = *rng.pick(&[0, 1, 0x7f, 0x80, 0xff, 0x40, 0x3f, 0xc0]);
            }
            2 => {
                let at = rng.below(len + 1);
                let mut leb = Vec::new();
                if rng.percent(50) {
                    uleb(&mut leb, rng.interesting());
                } else {
                    sleb(&mut leb, rng.interesting() as i64);
                }
                if at < len && rng.percent(50) {
                    let end = (at + leb.len()).min(len);
                    data.splice(at..end, leb);
                } else {
                    data.splice(at..at, leb);
                }
            }
            3 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let random = rng.bytes(n);
                data.splice(at..at, random);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                data.drain(at..at + n);
            }
            5 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(256));
                let copy = data[at..at + n].to_vec();
                let to = rng.below(len + 1);
                data.splice(to..to, copy);
            }
            6 if len > 0 => data.truncate(rng.below(len)),
            _ if len > 0 => {
                let at = rng.below(len);
                data[at] = rng.next_u64() as u8;
            }
            _ => data.push(rng.next_u64() as u8),
        }
    }
}

/// The frame's parts, if it is a sync or request frame.
fn envelope(frame: &[u8]) -> Option<(bool, String, String, Vec<u8>)> {
    match WireMessage::decode(frame).ok()? {
        WireMessage::Sync { sender_id, document_id, data, .. } => {
            Some((false, sender_id, document_id, data.into_vec()))
        }
        WireMessage::Request { sender_id, document_id, data, .. } => {
            Some((true, sender_id, document_id, data.into_vec()))
        }
        _ => None,
    }
}

pub fn frame(request: bool, sender: String, document_id: String, data: Vec<u8>) -> Vec<u8> {
    let data = ByteBuf::from(data);
    let target_id = "server".to_owned();
    if request {
        WireMessage::Request { sender_id: sender, target_id, document_id, data }.encode()
    } else {
        WireMessage::Sync { sender_id: sender, target_id, document_id, data }.encode()
    }
}

const SENDERS: [&str; 5] =
    ["provider-fuzz", "patient-fuzz", "caregiver-fuzz", "outsider-fuzz", "someone"];

/// A new input from `input` (and perhaps another corpus entry).
pub fn mutate(rng: &mut Rng, world: &World, corpus: &[Vec<u8>], input: &[u8]) -> Vec<u8> {
    match rng.below(100) {
        0..10 => {
            let mut out = input.to_vec();
            bytes(rng, &mut out);
            out
        }
        10..35 => {
            let Some((request, sender, doc, mut data)) = envelope(input) else {
                return edit(rng, world);
            };
            bytes(rng, &mut data);
            frame(request, sender, doc, data)
        }
        35..70 => {
            let Some((request, mut sender, mut doc, data)) = envelope(input) else {
                return edit(rng, world);
            };
            let other = rng.pick(corpus).clone();
            let data = structure(rng, world, &data, &other);
            if rng.percent(5) {
                sender = rng.pick(&SENDERS).to_string();
            }
            if rng.percent(3) {
                doc = encode_doc_id(world.doc(rng.below(3)).0.doc_id());
            }
            frame(request, sender, doc, data)
        }
        _ => edit(rng, world),
    }
}

fn random_hash(rng: &mut Rng, world: &World) -> Vec<u8> {
    if rng.percent(50) {
        let (_, doc) = world.doc(rng.below(3));
        let changes = doc.get_changes(&[]);
        if let Some(change) = changes.get(rng.below(changes.len())) {
            return change.hash().0.to_vec();
        }
    }
    rng.bytes(32)
}

/// A Bloom filter with chosen parameters and some bits.
fn bloom(rng: &mut Rng) -> Vec<u8> {
    let (entries, bits, probes) = if rng.percent(50) {
        (rng.below(300) as u64, *rng.pick(&[0, 1, 8, 10, 32, 33]), *rng.pick(&[0, 1, 7, 16, 17]))
    } else {
        (rng.interesting(), rng.interesting(), rng.interesting())
    };
    let mut out = Vec::new();
    uleb(&mut out, entries);
    uleb(&mut out, bits);
    uleb(&mut out, probes);
    let size = entries.saturating_mul(bits).div_ceil(8);
    let n = if size <= 4096 && rng.percent(80) { size as usize } else { rng.below(64) };
    let fill = if rng.percent(50) { 0 } else { 0xff };
    out.extend(std::iter::repeat_n(fill, n));
    out
}

/// Structure-level mutations of a sync message.
fn structure(rng: &mut Rng, world: &World, data: &[u8], other: &[u8]) -> Vec<u8> {
    let Some(mut msg) = Msg::parse(data) else {
        let mut data = data.to_vec();
        bytes(rng, &mut data);
        return data;
    };
    for _ in 0..1 + rng.below(3) {
        match rng.below(12) {
            0 => {
                let hash = random_hash(rng, world);
                if rng.percent(50) { msg.heads.push(hash) } else { msg.need.push(hash) }
            }
            1 => {
                let n = *rng.pick(&[2usize, 100, 1024, 1025]);
                let hash = random_hash(rng, world);
                let list = if rng.percent(50) { &mut msg.heads } else { &mut msg.need };
                list.extend(std::iter::repeat_n(hash, n));
            }
            2 => {
                let last_sync = (0..rng.below(3)).map(|_| random_hash(rng, world)).collect();
                msg.haves.push((last_sync, bloom(rng)));
            }
            3 if !msg.haves.is_empty() => {
                let at = rng.below(msg.haves.len());
                msg.haves[at].1 = bloom(rng);
            }
            4 => msg.flags = if rng.percent(50) { None } else { Some(rng.some_bytes(4)) },
            5 => msg.version = *rng.pick(&[0x42, 0x43, 0x44, 0x00]),
            6 => {
                // A change from another input.
                if let Some(theirs) = envelope(other).and_then(|(_, _, _, d)| Msg::parse(&d))
                    && let Some(change) = theirs.changes.get(rng.below(theirs.changes.len()))
                {
                    msg.changes.push(change.clone());
                }
            }
            7 if !msg.changes.is_empty() => {
                // Several chunks in one entry (as a V2 message carries them).
                let a = rng.below(msg.changes.len());
                let b = rng.below(msg.changes.len());
                let copy = msg.changes[b].clone();
                msg.changes[a].extend_from_slice(&copy);
            }
            8 if !msg.changes.is_empty() => {
                let at = rng.below(msg.changes.len());
                let copy = msg.changes[at].clone();
                msg.changes.push(copy);
            }
            _ if !msg.changes.is_empty() => {
                let at = rng.below(msg.changes.len());
                msg.changes[at] = change_blob(rng, world, &msg.changes[at]);
            }
            _ => msg.changes.push(edit_change(rng, world)),
        }
    }
    msg.encode()
}

/// Mutations of a change chunk, checksummed again (mostly).
fn change_blob(rng: &mut Rng, world: &World, blob: &[u8]) -> Vec<u8> {
    let mut chunks = Chunk::split(blob);
    if chunks.is_empty() {
        let mut blob = blob.to_vec();
        bytes(rng, &mut blob);
        return blob;
    }
    let at = rng.below(chunks.len());
    let chunk = &mut chunks[at];
    match rng.below(10) {
        0 => chunk.kind = *rng.pick(&[0, 2, 3, 4, 0xff]),
        1 => bytes(rng, &mut chunk.data),
        _ => {
            if let Some(mut change) = Change::parse(&chunk.data) {
                change_parts(rng, world, &mut change);
                chunk.data = change.encode();
            } else {
                bytes(rng, &mut chunk.data);
            }
        }
    }
    if rng.percent(90) {
        chunk.fix_checksum();
    }
    chunks.iter().flat_map(Chunk::encode).collect()
}

/// Column types of a change's operations, by specification (id << 4 | type).
const SPECS: [u64; 14] =
    [0x01, 0x02, 0x11, 0x13, 0x15, 0x34, 0x42, 0x56, 0x57, 0x70, 0x71, 0x73, 0x94, 0xa5];

fn change_parts(rng: &mut Rng, world: &World, change: &mut Change) {
    match rng.below(12) {
        0 => change.deps.push(random_hash(rng, world)),
        1 => change.deps.clear(),
        2 => {
            let n = *rng.pick(&[0, 1, 16, 32, 65]);
            change.actor = rng.bytes(n);
        }
        3 => change.seq = rng.interesting(),
        4 => change.start_op = rng.interesting(),
        5 => change.time = rng.interesting() as i64,
        6 => change.message = rng.some_bytes(40),
        7 => change.others.push(rng.bytes(16)),
        8 => change.extra = rng.some_bytes(8),
        9 => {
            // A column replaced by one run claiming an interesting count.
            let mut column = Vec::new();
            match rng.below(3) {
                0 => {
                    sleb(&mut column, rng.interesting() as i64);
                    uleb(&mut column, rng.below(8) as u64);
                }
                1 => {
                    column.push(0);
                    uleb(&mut column, rng.interesting());
                }
                _ => uleb(&mut column, rng.interesting()),
            }
            if change.columns.is_empty() || rng.percent(20) {
                change.columns.push((*rng.pick(&SPECS), column));
            } else {
                let at = rng.below(change.columns.len());
                change.columns[at].1 = column;
            }
        }
        10 if !change.columns.is_empty() => {
            let at = rng.below(change.columns.len());
            if rng.percent(50) {
                change.columns[at].0 =
                    if rng.percent(50) { *rng.pick(&SPECS) } else { rng.interesting() };
            } else {
                change.columns.remove(at);
            }
        }
        _ if !change.columns.is_empty() => {
            let at = rng.below(change.columns.len());
            bytes(rng, &mut change.columns[at].1);
        }
        _ => {}
    }
}

/// Keys worth writing: the schema's field names, collection names, ids in
/// canonical and other spellings, and nonsense.
fn key(rng: &mut Rng) -> String {
    const KEYS: [&str; 40] = [
        "status",
        "status_reason",
        "status_by",
        "status_at",
        "provenance",
        "clinic",
        "clinic_name",
        "recorder",
        "recorder_name",
        "recorded",
        "loinc",
        "display",
        "value_quantity",
        "value_string",
        "unit",
        "effective",
        "replaces",
        "report",
        "quantity",
        "refills_allowed",
        "rxnorm",
        "dosage",
        "authored",
        "author",
        "author_name",
        "side",
        "sent_at",
        "body",
        "read_at",
        "read_by",
        "note",
        "decided_by",
        "decision_note",
        "family",
        "phone",
        "observations",
        "messages",
        "refill_requests",
        "demographics",
        "",
    ];
    match rng.below(10) {
        0..6 => rng.pick(&KEYS).to_string(),
        6 => rng.entry_id().to_string(),
        7 => rng.entry_id().to_string().to_uppercase(),
        8 => [
            crate::world::RESULT,
            crate::world::MESSAGE,
            crate::world::REFILL,
            crate::world::PRESCRIPTION,
        ][rng.below(4)]
        .to_string(),
        _ => String::from_utf8_lossy(&rng.some_bytes(12)).into_owned(),
    }
}

fn scalar(rng: &mut Rng) -> ScalarValue {
    let ids = [crate::world::PROVIDER, crate::world::PATIENT_USER, crate::world::CAREGIVER];
    match rng.below(14) {
        0 => ScalarValue::Str("final".into()),
        1 => ScalarValue::Str("entered-in-error".into()),
        2 => ScalarValue::Str(ids[rng.below(3)].to_string().into()),
        3 => ScalarValue::Str(
            "x".repeat(*rng.pick(&[0, 64, 65, 200, 201, 2000, 2001, 10_001])).into(),
        ),
        4 => ScalarValue::Str("2026-11-30T10:00:00Z".into()),
        5 => ScalarValue::Int(rng.interesting() as i64),
        6 => ScalarValue::Uint(rng.interesting()),
        7 => ScalarValue::F64(*rng.pick(&[0.0, 1.5, f64::NAN, f64::INFINITY, -1.0])),
        8 => ScalarValue::Bytes(rng.some_bytes(16)),
        9 => ScalarValue::Null,
        10 => ScalarValue::Boolean(rng.percent(50)),
        11 => ScalarValue::counter(rng.below(10) as i64),
        12 => ScalarValue::Timestamp(rng.next_u64() as i64),
        _ => ScalarValue::Str(crate::world::CLINIC.to_string().into()),
    }
}

/// Some object of the document: the root, a collection, an entry, its
/// provenance, or one of `made`.
fn object<R: ReadDoc>(rng: &mut Rng, doc: &R, made: &[ObjId]) -> ObjId {
    if !made.is_empty() && rng.percent(40) {
        return rng.pick(made).clone();
    }
    let mut obj = ROOT;
    for _ in 0..rng.below(4) {
        let keys: Vec<String> = doc.keys(&obj).collect();
        if keys.is_empty() {
            break;
        }
        let key = rng.pick(&keys).clone();
        match doc.get(&obj, &key) {
            Ok(Some((automerge::Value::Object(ObjType::Map), child))) => obj = child,
            _ => break,
        }
    }
    obj
}

/// One change's worth of random operations on a replica of a world
/// document: what a modified client could send.
fn random_edit(rng: &mut Rng, doc: &mut Automerge) {
    let mut made = Vec::new();
    let mut tx = doc.transaction();
    for _ in 0..1 + rng.below(6) {
        let obj = object(rng, &tx, &made);
        let key = key(rng);
        let _ = match rng.below(10) {
            0..4 => tx.put(&obj, key, scalar(rng)).map(drop),
            4..7 => {
                let kind = *rng.pick(&[ObjType::Map, ObjType::Map, ObjType::List, ObjType::Text]);
                tx.put_object(&obj, key, kind).map(|o| {
                    if kind == ObjType::List {
                        let _ = tx.insert(&o, 0, scalar(rng));
                    } else if kind == ObjType::Text {
                        let _ = tx.splice_text(&o, 0, 0, "text");
                    }
                    made.push(o)
                })
            }
            7 => tx.delete(&obj, key),
            8 => tx.increment(&obj, key, rng.below(5) as i64),
            _ => {
                // A valid entry, sometimes with something added to it.
                let id = rng.entry_id();
                let observation = crate::world::observation(crate::world::PROVIDER, 99.0);
                let message = crate::world::message(
                    crate::world::PATIENT_USER,
                    shared::status::Side::Patient,
                    "hello",
                );
                let added = if rng.percent(50) {
                    shared::record::add(&mut tx, id, &observation)
                } else {
                    shared::record::add(&mut tx, id, &message)
                };
                added.map_err(|_| automerge::AutomergeError::InvalidOp(ObjType::Map))
            }
        };
    }
    let options = automerge::transaction::CommitOptions::default().with_time(1_764_000_000);
    tx.commit_with(if rng.percent(10) { options.with_message("note".to_owned()) } else { options });
}

/// Changes a replica of a world document makes (a few, by one or more
/// actors), as a change chunk blob.
fn edit_change(rng: &mut Rng, world: &World) -> Vec<u8> {
    let (_, base) = world.doc(rng.below(3));
    let mut doc = base.clone();
    doc.set_actor(rng.actor());
    random_edit(rng, &mut doc);
    doc.get_changes(&base.get_heads()).iter().flat_map(|c| c.raw_bytes().to_vec()).collect()
}

/// A frame carrying random edits of a world document by one of its people.
pub fn edit(rng: &mut Rng, world: &World) -> Vec<u8> {
    let (kind, base) = world.doc(rng.below(3));
    let mut doc = base.clone();
    for _ in 0..1 + rng.below(3) {
        // Sometimes an actor of the world (someone else's), mostly a new one.
        let actor = if rng.percent(10) {
            ActorId::from([1u8 + rng.below(2) as u8; 16].as_slice())
        } else {
            rng.actor()
        };
        doc.set_actor(actor);
        random_edit(rng, &mut doc);
    }
    let changes: Vec<Vec<u8>> =
        doc.get_changes(&base.get_heads()).iter().map(|c| c.raw_bytes().to_vec()).collect();
    let mut heads = doc.get_heads();
    heads.sort();
    let data = encode_message(
        0x42,
        &heads.iter().map(|h| h.0.to_vec()).collect::<Vec<_>>(),
        &[],
        &[],
        &changes,
        None,
    );
    frame(false, rng.pick(&SENDERS).to_string(), encode_doc_id(kind.doc_id()), data)
}

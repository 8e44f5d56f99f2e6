//! Attack bytes: Automerge sync messages and change chunks, made with
//! Automerge where it can make them and patched or written by hand where it
//! would refuse to. Formats: automerge 0.12 `sync.rs` (`Message::encode`)
//! and `storage/chunk.rs`, `storage/change.rs`.

use automerge::sync;

pub const SYNC_V1: u8 = 0x42;
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
pub const CHUNK_CHANGE: u8 = 1;
pub const CHUNK_COMPRESSED: u8 = 2;

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

/// A Bloom filter's bytes as Automerge writes them: entries, bits per
/// entry, probes, then the bits (whatever `bits` holds).
pub fn bloom(entries: u64, bits_per_entry: u64, probes: u64, bits: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    uleb(&mut out, entries);
    uleb(&mut out, bits_per_entry);
    uleb(&mut out, probes);
    out.extend_from_slice(bits);
    out
}

/// A sync message (`Message::encode`'s layout) with no heads or needs,
/// these `have` entries (each with no last-sync hashes) and these changes.
pub fn sync_message(haves: &[Vec<u8>], changes: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![SYNC_V1, 0, 0];
    uleb(&mut out, haves.len() as u64);
    for bloom in haves {
        out.push(0); // last sync: none
        uleb(&mut out, bloom.len() as u64);
        out.extend_from_slice(bloom);
    }
    uleb(&mut out, changes.len() as u64);
    for change in changes {
        uleb(&mut out, change.len() as u64);
        out.extend_from_slice(change);
    }
    out
}

/// A sync message carrying `chunks` as Automerge makes one: heads, no have.
pub fn carrying(
    heads: Vec<automerge::ChangeHash>,
    chunks: Vec<Vec<u8>>,
    version: sync::MessageVersion,
) -> Vec<u8> {
    sync::Message {
        heads,
        need: vec![],
        have: vec![],
        changes: chunks.into(),
        flags: None,
        version,
    }
    .encode()
}

/// A chunk: magic, checksum, type, length, data.
pub fn chunk(kind: u8, checksum: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&checksum);
    out.push(kind);
    uleb(&mut out, data.len() as u64);
    out.extend_from_slice(data);
    out
}

/// The checksum of a chunk of `kind` holding `data`: the first four bytes
/// of SHA-256 over the type, the length and the data (given in pieces).
pub fn checksum<'a>(kind: u8, len: usize, pieces: impl IntoIterator<Item = &'a [u8]>) -> [u8; 4] {
    let mut hasher = openssl::sha::Sha256::new();
    let mut header = vec![kind];
    uleb(&mut header, len as u64);
    hasher.update(&header);
    for piece in pieces {
        hasher.update(piece);
    }
    let hash = hasher.finish();
    [hash[0], hash[1], hash[2], hash[3]]
}

/// A change chunk taken apart, to be patched and put together again.
#[derive(Clone, Debug)]
pub struct ChangeParts {
    pub deps: Vec<[u8; 32]>,
    pub actor: Vec<u8>,
    pub seq: u64,
    pub start_op: u64,
    pub time: i64,
    pub message: Vec<u8>,
    pub others: Vec<Vec<u8>>,
    /// Column specification and data, in order.
    pub columns: Vec<(u32, Vec<u8>)>,
    pub extra: Vec<u8>,
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }
    fn uleb(&mut self) -> u64 {
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let byte = self.take(1)[0];
            value |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                return value;
            }
        }
    }
    fn sleb(&mut self) -> i64 {
        let mut value = 0i64;
        let mut shift = 0;
        loop {
            let byte = self.take(1)[0];
            value |= i64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    value |= -1 << shift;
                }
                return value;
            }
        }
    }
    fn bytes(&mut self) -> Vec<u8> {
        let n = self.uleb() as usize;
        self.take(n).to_vec()
    }
}

impl ChangeParts {
    /// Takes apart one change chunk as Automerge writes it.
    pub fn parse(chunk: &[u8]) -> Self {
        assert_eq!(chunk[..4], MAGIC);
        assert_eq!(chunk[8], CHUNK_CHANGE);
        let mut c = Cursor(&chunk[9..]);
        let len = c.uleb() as usize;
        let mut c = Cursor(c.take(len));
        let deps = (0..c.uleb()).map(|_| c.take(32).try_into().unwrap()).collect();
        let actor = c.bytes();
        let seq = c.uleb();
        let start_op = c.uleb();
        let time = c.sleb();
        let message = c.bytes();
        let others = (0..c.uleb()).map(|_| c.bytes()).collect();
        let specs: Vec<(u32, usize)> =
            (0..c.uleb()).map(|_| (c.uleb() as u32, c.uleb() as usize)).collect();
        let columns = specs.into_iter().map(|(spec, len)| (spec, c.take(len).to_vec())).collect();
        let extra = c.0.to_vec();
        Self { deps, actor, seq, start_op, time, message, others, columns, extra }
    }

    /// The body around column `split`, whose data is left out and its
    /// length given as `split_len`: the bytes before that column's data and
    /// after it (so a huge column need not be held to be hashed or
    /// compressed).
    pub fn body_around(&self, split: usize, split_len: usize) -> (Vec<u8>, Vec<u8>) {
        let mut before = Vec::new();
        uleb(&mut before, self.deps.len() as u64);
        for dep in &self.deps {
            before.extend_from_slice(dep);
        }
        uleb(&mut before, self.actor.len() as u64);
        before.extend_from_slice(&self.actor);
        uleb(&mut before, self.seq);
        uleb(&mut before, self.start_op);
        sleb(&mut before, self.time);
        uleb(&mut before, self.message.len() as u64);
        before.extend_from_slice(&self.message);
        uleb(&mut before, self.others.len() as u64);
        for other in &self.others {
            uleb(&mut before, other.len() as u64);
            before.extend_from_slice(other);
        }
        uleb(&mut before, self.columns.len() as u64);
        for (i, (spec, data)) in self.columns.iter().enumerate() {
            uleb(&mut before, u64::from(*spec));
            uleb(&mut before, if i == split { split_len } else { data.len() } as u64);
        }
        let mut after = Vec::new();
        for (i, (_, data)) in self.columns.iter().enumerate() {
            if i < split {
                before.extend_from_slice(data);
            } else if i > split {
                after.extend_from_slice(data);
            }
        }
        after.extend_from_slice(&self.extra);
        (before, after)
    }

    pub fn body(&self) -> Vec<u8> {
        let (mut before, after) = self.body_around(self.columns.len(), 0);
        before.extend_from_slice(&after);
        before
    }

    /// The change chunk, with a correct checksum.
    pub fn chunk(&self) -> Vec<u8> {
        let body = self.body();
        chunk(CHUNK_CHANGE, checksum(CHUNK_CHANGE, body.len(), [body.as_slice()]), &body)
    }

    pub fn column(&self, spec: u32) -> usize {
        self.columns
            .iter()
            .position(|(s, _)| *s == spec)
            .unwrap_or_else(|| panic!("column {spec:#x} in {:?}", self.specs()))
    }

    pub fn specs(&self) -> Vec<u32> {
        self.columns.iter().map(|(s, _)| *s).collect()
    }
}

/// Column specifications (id << 4 | type) of a change's operations.
pub const ACTION_COLUMN: u32 = 4 << 4 | 2;
pub const VALUE_META_COLUMN: u32 = 5 << 4 | 6;
pub const VALUE_RAW_COLUMN: u32 = 5 << 4 | 7;

/// The value metadata column, decoded: one entry per operation, `None`
/// for a null run.
fn decode_meta(column: &[u8]) -> Vec<Option<u64>> {
    let mut c = Cursor(column);
    let mut values = Vec::new();
    while !c.0.is_empty() {
        let count = c.sleb();
        if count > 0 {
            let v = c.uleb();
            values.extend(std::iter::repeat_n(Some(v), count as usize));
        } else if count < 0 {
            for _ in 0..-count {
                values.push(Some(c.uleb()));
            }
        } else {
            let nulls = c.uleb() as usize;
            values.extend(std::iter::repeat_n(None, nulls));
        }
    }
    values
}

fn encode_meta(values: &[Option<u64>]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        match v {
            Some(v) => {
                sleb(&mut out, -1);
                uleb(&mut out, *v);
            }
            None => {
                sleb(&mut out, 0);
                uleb(&mut out, 1);
            }
        }
    }
    out
}

/// `change`'s body with its string value `marker` replaced by a string of
/// `len` bytes, in two parts: the bytes before that string and after it
/// (so a huge value need not be held to be hashed or compressed).
pub fn around_string(change: &ChangeParts, marker: &str, len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut patched = change.clone();
    let meta_at = patched.column(VALUE_META_COLUMN);
    let mut meta = decode_meta(&patched.columns[meta_at].1);
    let wanted = (marker.len() as u64) << 4 | 6;
    let index = meta.iter().position(|m| *m == Some(wanted)).expect("the marker value");
    let offset: usize = meta[..index].iter().flatten().map(|m| (m >> 4) as usize).sum();
    meta[index] = Some((len as u64) << 4 | 6);
    patched.columns[meta_at].1 = encode_meta(&meta);
    let raw_at = patched.column(VALUE_RAW_COLUMN);
    let raw = patched.columns[raw_at].1.clone();
    assert_eq!(&raw[offset..offset + marker.len()], marker.as_bytes());
    let raw_len = raw.len() - marker.len() + len;
    let (mut before, mut after) = patched.body_around(raw_at, raw_len);
    before.extend_from_slice(&raw[..offset]);
    let mut tail = raw[offset + marker.len()..].to_vec();
    tail.extend_from_slice(&after);
    after = tail;
    (before, after)
}

/// Compresses `before`, `copies` copies of `unit`, then `after` as one raw
/// deflate stream, quickly: a block of `unit`s is compressed once (with
/// `unit`s before it) and repeated, since it decodes to the same text
/// wherever the 32 KiB before it are `unit`s.
fn deflate_repeated(before: &[u8], segment: &[u8], copies: usize, after: &[u8]) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress, Status};
    fn feed(deflate: &mut Compress, input: &[u8], out: &mut Vec<u8>, flush: FlushCompress) {
        let finish = matches!(flush, FlushCompress::Finish);
        let mut at = 0;
        loop {
            out.reserve(64 * 1024);
            let consumed = deflate.total_in();
            let status = deflate.compress_vec(&input[at..], out, flush).unwrap();
            at += (deflate.total_in() - consumed) as usize;
            let done = if finish {
                status == Status::StreamEnd
            } else {
                at == input.len() && out.len() < out.capacity()
            };
            if done {
                return;
            }
        }
    }
    assert!(segment.len() >= 32 * 1024 && copies >= 2);
    let mut deflate = Compress::new(Compression::best(), false);
    let mut out = Vec::new();
    feed(&mut deflate, before, &mut out, FlushCompress::Sync);
    feed(&mut deflate, segment, &mut out, FlushCompress::Sync);
    let start = out.len();
    feed(&mut deflate, segment, &mut out, FlushCompress::Sync);
    let block = out[start..].to_vec();
    for _ in 2..copies {
        out.extend_from_slice(&block);
    }
    feed(&mut deflate, after, &mut out, FlushCompress::Finish);
    out
}

/// A compressed change chunk (type 2) holding `change` with its string
/// value `marker` replaced by `copies` copies of `segment` (ASCII, at
/// least 32 KiB): it inflates to about `copies * segment.len()` bytes. The
/// checksum is the inflated change's, as Automerge checks it.
pub fn compressed_change(
    change: &ChangeParts,
    marker: &str,
    segment: &[u8],
    copies: usize,
) -> Vec<u8> {
    let len = segment.len() * copies;
    let (before, after) = around_string(change, marker, len);
    let body_len = before.len() + len + after.len();
    let mut pieces: Vec<&[u8]> = vec![&before];
    pieces.extend(std::iter::repeat_n(segment, copies));
    pieces.push(&after);
    let sum = checksum(CHUNK_CHANGE, body_len, pieces);
    chunk(CHUNK_COMPRESSED, sum, &deflate_repeated(&before, segment, copies, &after))
}

/// Text deflate shrinks well: one letter, with a pseudo-random letter at
/// every `every`th byte (the larger `every`, the better it compresses).
pub fn compressible_text(len: usize, every: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..len)
        .map(|i| {
            if i % every == 0 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                b'a' + (state % 26) as u8
            } else {
                b'a'
            }
        })
        .collect()
}

/// Replaces a run-length encoded column with one run claiming `ops` rows
/// of `value`.
pub fn rle_bomb(change: &ChangeParts, spec: u32, ops: i64, value: u64) -> ChangeParts {
    let mut patched = change.clone();
    let mut column = Vec::new();
    sleb(&mut column, ops);
    uleb(&mut column, value);
    let at = patched.column(spec);
    patched.columns[at].1 = column;
    patched
}

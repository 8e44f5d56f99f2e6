//! The automerge-repo wire protocol: CBOR maps tagged by `type`.
//!
//! Encoded and decoded by hand: a generic CBOR library with serde's derived
//! code for an internally tagged enum cost the web app about 6 KB brotli
//! for seven flat messages. The bytes are the ones ciborium writes for the
//! serde shape automerge-repo expects (definite lengths, shortest heads,
//! `type` first, then the fields in declaration order); a test pins them.

use serde_bytes::ByteBuf;

use crate::ids::DocId;

pub const PROTOCOL_VERSION: &str = "1";

/// Frames larger than this are refused (and the connection closed): 8 MiB
/// holds the first load of a large multi-year record with room to spare.
pub const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq)]
pub enum WireMessage {
    Join {
        sender_id: String,
        supported_protocol_versions: Vec<String>,
    },
    Peer {
        sender_id: String,
        target_id: String,
        selected_protocol_version: String,
    },
    /// A sync message for a document the sender does not have yet.
    Request {
        sender_id: String,
        target_id: String,
        document_id: String,
        data: ByteBuf,
    },
    Sync {
        sender_id: String,
        target_id: String,
        document_id: String,
        data: ByteBuf,
    },
    /// The document does not exist, or the sender may not see it: the two
    /// are deliberately indistinguishable.
    DocUnavailable {
        sender_id: String,
        target_id: String,
        document_id: String,
    },
    /// The changes the client sent for a document were refused; nothing of
    /// them was stored. The client must reset the document from the server.
    ChangeRejected {
        sender_id: String,
        target_id: String,
        document_id: String,
        rule: String,
        message: String,
    },
    Error {
        message: String,
    },
    /// From the server: documents this client does not hold may be for it
    /// now (issue 17 part 2: a patient outside a staff device's offline set
    /// sent their clinic work), so it should list its documents again. It
    /// names nothing: the list (`/api/documents/offline`) says what.
    ListChanged,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("frame of {0} bytes is larger than the {MAX_FRAME_BYTES} byte limit")]
    TooLarge(usize),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("malformed document id")]
    BadDocId,
}

/// A field's value as written on the wire.
enum Out<'a> {
    Text(&'a str),
    Texts(&'a [String]),
    Bytes(&'a [u8]),
}

/// A decoded field's value; anything but text, bytes and arrays of text is
/// read past and kept as `Other`.
enum In {
    Text(String),
    Bytes(Vec<u8>),
    Texts(Vec<String>),
    Other,
}

impl WireMessage {
    pub fn encode(&self) -> Vec<u8> {
        use Out::{Bytes, Text, Texts};
        let (kind, fields): (&str, Vec<(&str, Out<'_>)>) = match self {
            Self::Join { sender_id, supported_protocol_versions } => (
                "join",
                vec![
                    ("senderId", Text(sender_id)),
                    ("supportedProtocolVersions", Texts(supported_protocol_versions)),
                ],
            ),
            Self::Peer { sender_id, target_id, selected_protocol_version } => (
                "peer",
                vec![
                    ("senderId", Text(sender_id)),
                    ("targetId", Text(target_id)),
                    ("selectedProtocolVersion", Text(selected_protocol_version)),
                ],
            ),
            Self::Request { sender_id, target_id, document_id, data }
            | Self::Sync { sender_id, target_id, document_id, data } => (
                if matches!(self, Self::Request { .. }) { "request" } else { "sync" },
                vec![
                    ("senderId", Text(sender_id)),
                    ("targetId", Text(target_id)),
                    ("documentId", Text(document_id)),
                    ("data", Bytes(data)),
                ],
            ),
            Self::DocUnavailable { sender_id, target_id, document_id } => (
                "doc-unavailable",
                vec![
                    ("senderId", Text(sender_id)),
                    ("targetId", Text(target_id)),
                    ("documentId", Text(document_id)),
                ],
            ),
            Self::ChangeRejected { sender_id, target_id, document_id, rule, message } => (
                "change-rejected",
                vec![
                    ("senderId", Text(sender_id)),
                    ("targetId", Text(target_id)),
                    ("documentId", Text(document_id)),
                    ("rule", Text(rule)),
                    ("message", Text(message)),
                ],
            ),
            Self::Error { message } => ("error", vec![("message", Text(message))]),
            Self::ListChanged => ("list-changed", Vec::new()),
        };
        let mut out = Vec::new();
        head(&mut out, MAP, fields.len() as u64 + 1);
        text(&mut out, "type");
        text(&mut out, kind);
        for (key, value) in fields {
            text(&mut out, key);
            match value {
                Text(s) => text(&mut out, s),
                Bytes(b) => {
                    head(&mut out, BYTES, b.len() as u64);
                    out.extend_from_slice(b);
                }
                Texts(items) => {
                    head(&mut out, ARRAY, items.len() as u64);
                    for item in items {
                        text(&mut out, item);
                    }
                }
            }
        }
        out
    }

    pub fn decode(frame: &[u8]) -> Result<Self, WireError> {
        if frame.len() > MAX_FRAME_BYTES {
            return Err(WireError::TooLarge(frame.len()));
        }
        let mut reader = Reader { buf: frame, at: 0 };
        let entries = reader.message()?;
        if reader.at != frame.len() {
            return Err(WireError::Malformed("extra bytes after the message".into()));
        }
        let mut fields = Fields(entries);
        let kind = fields.text("type")?;
        Ok(match kind.as_str() {
            "join" => Self::Join {
                sender_id: fields.text("senderId")?,
                supported_protocol_versions: fields.texts("supportedProtocolVersions")?,
            },
            "peer" => Self::Peer {
                sender_id: fields.text("senderId")?,
                target_id: fields.text("targetId")?,
                selected_protocol_version: fields.text("selectedProtocolVersion")?,
            },
            "request" | "sync" => {
                let (sender_id, target_id) = (fields.text("senderId")?, fields.text("targetId")?);
                let (document_id, data) = (fields.text("documentId")?, fields.bytes("data")?);
                if kind == "request" {
                    Self::Request { sender_id, target_id, document_id, data }
                } else {
                    Self::Sync { sender_id, target_id, document_id, data }
                }
            }
            "doc-unavailable" => Self::DocUnavailable {
                sender_id: fields.text("senderId")?,
                target_id: fields.text("targetId")?,
                document_id: fields.text("documentId")?,
            },
            "change-rejected" => Self::ChangeRejected {
                sender_id: fields.text("senderId")?,
                target_id: fields.text("targetId")?,
                document_id: fields.text("documentId")?,
                rule: fields.text("rule")?,
                message: fields.text("message")?,
            },
            "error" => Self::Error { message: fields.text("message")? },
            "list-changed" => Self::ListChanged,
            other => return Err(WireError::Malformed(format!("unknown message type `{other}`"))),
        })
    }

    /// The document a message is about, if any.
    pub fn document_id(&self) -> Option<&str> {
        match self {
            Self::Request { document_id, .. }
            | Self::Sync { document_id, .. }
            | Self::DocUnavailable { document_id, .. }
            | Self::ChangeRejected { document_id, .. } => Some(document_id),
            _ => None,
        }
    }
}

// CBOR major types (RFC 8949 section 3.1).
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;
const TAG: u8 = 6;
const SIMPLE: u8 = 7;

/// A head in its shortest form, as ciborium and cbor-x write it.
fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let major = major << 5;
    match n {
        0..24 => out.push(major | n as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, n as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn text(out: &mut Vec<u8>, s: &str) {
    head(out, TEXT, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Nesting deeper than this (in fields the protocol does not use) is
/// refused rather than followed: bounded recursion on hostile input.
const MAX_DEPTH: u32 = 32;

fn malformed(what: &str) -> WireError {
    WireError::Malformed(what.into())
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, WireError> {
        let b = *self.buf.get(self.at).ok_or_else(|| malformed("truncated CBOR"))?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&[u8], WireError> {
        let rest = self.buf.len() - self.at;
        let n = usize::try_from(n).ok().filter(|&n| n <= rest);
        let n = n.ok_or_else(|| malformed("truncated CBOR"))?;
        self.at += n;
        Ok(&self.buf[self.at - n..self.at])
    }

    /// A head: major type and argument; `None` for an indefinite length
    /// (or, in major type 7, the break stop code).
    fn head(&mut self) -> Result<(u8, Option<u64>), WireError> {
        let first = self.byte()?;
        let (major, info) = (first >> 5, first & 0x1f);
        let arg = match info {
            0..24 => u64::from(info),
            24..=27 => {
                let bytes = self.take(1 << (info - 24))?;
                bytes.iter().fold(0, |n, &b| n << 8 | u64::from(b))
            }
            31 if major >= BYTES && major != TAG => return Ok((major, None)),
            _ => return Err(malformed("invalid CBOR head")),
        };
        Ok((major, Some(arg)))
    }

    /// Whether the next byte is the break that ends an indefinite item.
    fn at_break(&mut self) -> bool {
        let stop = self.buf.get(self.at) == Some(&0xff);
        self.at += usize::from(stop);
        stop
    }

    /// A string's bytes, joined from its chunks if of indefinite length.
    fn string(&mut self, major: u8, len: Option<u64>) -> Result<Vec<u8>, WireError> {
        let Some(len) = len else {
            let mut all = Vec::new();
            while !self.at_break() {
                match self.head()? {
                    (m, Some(n)) if m == major => all.extend_from_slice(self.take(n)?),
                    _ => return Err(malformed("invalid CBOR string chunk")),
                }
            }
            return Ok(all);
        };
        Ok(self.take(len)?.to_vec())
    }

    fn utf8(bytes: Vec<u8>) -> Result<String, WireError> {
        String::from_utf8(bytes).map_err(|_| malformed("invalid UTF-8"))
    }

    /// Calls `each` once per item of an array or map of `len` items (pairs
    /// for a map), definite or indefinite.
    fn items(
        &mut self,
        len: Option<u64>,
        mut each: impl FnMut(&mut Self) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        match len {
            Some(n) => (0..n).try_for_each(|_| each(self)),
            None => {
                while !self.at_break() {
                    each(self)?;
                }
                Ok(())
            }
        }
    }

    fn value(&mut self, depth: u32) -> Result<In, WireError> {
        if depth > MAX_DEPTH {
            return Err(malformed("CBOR nested too deeply"));
        }
        Ok(match self.head()? {
            (BYTES, len) => In::Bytes(self.string(BYTES, len)?),
            (TEXT, len) => In::Text(Self::utf8(self.string(TEXT, len)?)?),
            (ARRAY, len) => {
                let (mut texts, mut all_text) = (Vec::new(), true);
                self.items(len, |r| {
                    match r.value(depth + 1)? {
                        In::Text(t) => texts.push(t),
                        _ => all_text = false,
                    }
                    Ok(())
                })?;
                if all_text { In::Texts(texts) } else { In::Other }
            }
            (MAP, len) => {
                self.items(len, |r| {
                    r.value(depth + 1)?;
                    r.value(depth + 1).map(drop)
                })?;
                In::Other
            }
            (TAG, _) => self.value(depth + 1).map(|_| In::Other)?,
            (SIMPLE, None) => return Err(malformed("unexpected CBOR break")),
            _ => In::Other,
        })
    }

    /// The message: a map, its text keys with their values.
    fn message(&mut self) -> Result<Vec<(String, In)>, WireError> {
        let (MAP, len) = self.head()? else {
            return Err(malformed("a message must be a CBOR map"));
        };
        let mut entries = Vec::new();
        self.items(len, |r| {
            let key = r.value(1)?;
            let value = r.value(1)?;
            if let In::Text(key) = key {
                entries.push((key, value));
            }
            Ok(())
        })?;
        Ok(entries)
    }
}

/// A decoded message's fields; unknown ones are ignored, as automerge-repo does.
struct Fields(Vec<(String, In)>);

impl Fields {
    fn take(&mut self, key: &str) -> Result<In, WireError> {
        let at = self.0.iter().position(|(k, _)| k == key);
        at.map(|i| self.0.swap_remove(i).1)
            .ok_or_else(|| WireError::Malformed(format!("missing field `{key}`")))
    }

    fn text(&mut self, key: &str) -> Result<String, WireError> {
        match self.take(key)? {
            In::Text(text) => Ok(text),
            _ => Err(wrong_type(key, "text")),
        }
    }

    fn texts(&mut self, key: &str) -> Result<Vec<String>, WireError> {
        match self.take(key)? {
            In::Texts(items) => Ok(items),
            _ => Err(wrong_type(key, "an array of text")),
        }
    }

    fn bytes(&mut self, key: &str) -> Result<ByteBuf, WireError> {
        match self.take(key)? {
            In::Bytes(bytes) => Ok(ByteBuf::from(bytes)),
            _ => Err(wrong_type(key, "bytes")),
        }
    }
}

fn wrong_type(key: &str, expected: &str) -> WireError {
    WireError::Malformed(format!("field `{key}` must be {expected}"))
}

/// automerge-repo document ids: the UUID's 16 bytes in base58check (the
/// bytes, then the first four bytes of their double SHA-256). The checksum
/// is computed here with the `sha2` that Automerge already links, rather than
/// through bs58's `check` feature, which brings a second `sha2` into the app.
pub fn encode_doc_id(id: DocId) -> String {
    let id = id.as_uuid().as_bytes();
    let mut bytes = [0u8; 20];
    bytes[..16].copy_from_slice(id);
    bytes[16..].copy_from_slice(&checksum(id));
    bs58::encode(bytes).into_string()
}

pub fn decode_doc_id(text: &str) -> Result<DocId, WireError> {
    // 20 bytes are at most 28 base58 digits: anything longer is refused
    // before decoding.
    if text.len() > 28 {
        return Err(WireError::BadDocId);
    }
    let bytes = bs58::decode(text).into_vec().map_err(|_| WireError::BadDocId)?;
    let bytes: [u8; 20] = bytes.try_into().map_err(|_| WireError::BadDocId)?;
    let (id, check) = bytes.split_at(16);
    if check != checksum(id) {
        return Err(WireError::BadDocId);
    }
    let id: [u8; 16] = id.try_into().map_err(|_| WireError::BadDocId)?;
    Ok(DocId::from_uuid(uuid::Uuid::from_bytes(id)))
}

fn checksum(bytes: &[u8]) -> [u8; 4] {
    use sha2::{Digest, Sha256};
    let twice = Sha256::digest(Sha256::digest(bytes));
    [twice[0], twice[1], twice[2], twice[3]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciborium::Value;

    fn sample_messages() -> Vec<WireMessage> {
        let id = encode_doc_id(DocId::mint());
        let (s, t) = (String::from("a"), String::from("b"));
        vec![
            WireMessage::Join {
                sender_id: s.clone(),
                supported_protocol_versions: vec!["1".into(), "x".repeat(300)],
            },
            WireMessage::Peer {
                sender_id: s.clone(),
                target_id: t.clone(),
                selected_protocol_version: "1".into(),
            },
            WireMessage::Request {
                sender_id: s.clone(),
                target_id: t.clone(),
                document_id: id.clone(),
                data: ByteBuf::from(vec![9]),
            },
            WireMessage::Sync {
                sender_id: s.clone(),
                target_id: t.clone(),
                document_id: id.clone(),
                data: ByteBuf::from(vec![7; 70_000]),
            },
            WireMessage::DocUnavailable {
                sender_id: s.clone(),
                target_id: t.clone(),
                document_id: id.clone(),
            },
            WireMessage::ChangeRejected {
                sender_id: s,
                target_id: t,
                document_id: id,
                rule: "r".into(),
                message: "m".repeat(24),
            },
            WireMessage::Error { message: "boom".into() },
            WireMessage::ListChanged,
        ]
    }

    #[test]
    fn encoding_is_the_bytes_a_cbor_library_writes() {
        // Definite lengths, shortest heads, `type` first: what ciborium
        // (and cbor-x in automerge-repo) write for the same map.
        for message in sample_messages() {
            let ours = message.encode();
            let value: Value = ciborium::from_reader(ours.as_slice()).unwrap();
            let keys: Vec<_> =
                value.as_map().unwrap().iter().map(|(k, _)| k.as_text().unwrap()).collect();
            assert_eq!(keys[0], "type");
            let mut theirs = Vec::new();
            ciborium::into_writer(&value, &mut theirs).unwrap();
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn decoding_reads_what_other_peers_may_add() {
        // Unknown fields of any shape (automerge-repo's `peerMetadata`),
        // tags, floats and indefinite lengths are read past or joined.
        let frame = [
            &[0xbf][..],
            &[0x64],
            b"type",
            &[0x64],
            b"sync",
            &[0x6c],
            b"peerMetadata",
            &[0xa2, 0x61, b'a', 0xf5, 0x61, b'b', 0x82, 0xc1, 0x1a, 0, 1, 0, 0, 0xfb],
            &1.5f64.to_be_bytes(),
            &[0x68],
            b"senderId",
            &[0x7f, 0x62],
            b"cl",
            &[0x62],
            b"nt",
            &[0xff, 0x68],
            b"targetId",
            &[0x61, b's', 0x6a],
            b"documentId",
            &[0x61, b'd', 0x64],
            b"data",
            &[0x5f, 0x41, 1, 0x42, 2, 3, 0xff, 0xff],
        ]
        .concat();
        assert_eq!(
            WireMessage::decode(&frame).unwrap(),
            WireMessage::Sync {
                sender_id: "clnt".into(),
                target_id: "s".into(),
                document_id: "d".into(),
                data: ByteBuf::from(vec![1, 2, 3]),
            }
        );
        // Truncated, nested past the bound, trailing bytes: errors, no panic.
        for cut in 0..frame.len() {
            assert!(WireMessage::decode(&frame[..cut]).is_err());
        }
        let mut deep = vec![0xa2, 0x64];
        deep.extend_from_slice(b"type");
        deep.extend_from_slice(&[0x65]);
        deep.extend_from_slice(b"error");
        deep.extend_from_slice(&[0x61, b'x']);
        deep.extend(std::iter::repeat_n(0x81, 100_000));
        deep.push(0);
        assert!(WireMessage::decode(&deep).is_err());
        let mut extra = WireMessage::Error { message: "m".into() }.encode();
        extra.push(0);
        assert!(WireMessage::decode(&extra).is_err());
    }

    #[test]
    fn messages_round_trip_as_automerge_repo_cbor() {
        let message = WireMessage::Sync {
            sender_id: "client".into(),
            target_id: "server".into(),
            document_id: encode_doc_id(DocId::mint()),
            data: ByteBuf::from(vec![1, 2, 3]),
        };
        let frame = message.encode();
        assert_eq!(WireMessage::decode(&frame).unwrap(), message);
        // The type tag and camelCase keys are what automerge-repo expects.
        let value: Value = ciborium::from_reader(frame.as_slice()).unwrap();
        let map = value.as_map().unwrap();
        assert!(
            map.iter().any(|(k, v)| k.as_text() == Some("type") && v.as_text() == Some("sync"))
        );
        assert!(map.iter().any(|(k, v)| k.as_text() == Some("data") && v.is_bytes()));
        assert!(map.iter().any(|(k, _)| k.as_text() == Some("documentId")));
    }

    #[test]
    fn garbage_and_oversized_frames_are_errors() {
        assert!(matches!(WireMessage::decode(b"\xff\x00garbage"), Err(WireError::Malformed(_))));
        let mut unknown = Vec::new();
        ciborium::into_writer(
            &Value::Map(vec![("type".into(), "launch-missiles".into())]),
            &mut unknown,
        )
        .unwrap();
        assert!(matches!(WireMessage::decode(&unknown), Err(WireError::Malformed(_))));
        let huge = vec![0u8; MAX_FRAME_BYTES + 1];
        assert_eq!(WireMessage::decode(&huge), Err(WireError::TooLarge(MAX_FRAME_BYTES + 1)));
    }

    #[test]
    fn every_message_type_round_trips_and_wrong_fields_are_named() {
        let messages = sample_messages();
        for message in messages {
            assert_eq!(WireMessage::decode(&message.encode()).unwrap(), message);
        }
        let mut wrong = Vec::new();
        let map =
            vec![("type".into(), "error".into()), ("message".into(), Value::Integer(7.into()))];
        ciborium::into_writer(&Value::Map(map), &mut wrong).unwrap();
        assert_eq!(
            WireMessage::decode(&wrong),
            Err(WireError::Malformed("field `message` must be text".into()))
        );
    }

    #[test]
    fn document_ids_round_trip_and_reject_typos() {
        let id = DocId::mint();
        let text = encode_doc_id(id);
        assert_eq!(decode_doc_id(&text).unwrap(), id);
        let mut typo = text.into_bytes();
        typo[3] = if typo[3] == b'a' { b'b' } else { b'a' };
        assert!(decode_doc_id(std::str::from_utf8(&typo).unwrap()).is_err());
    }

    #[test]
    fn doc_ids_are_the_base58check_automerge_repo_writes() {
        for _ in 0..100 {
            let id = DocId::mint();
            let theirs = bs58::encode(id.as_uuid().as_bytes()).with_check().into_string();
            assert_eq!(encode_doc_id(id), theirs);
            assert_eq!(decode_doc_id(&theirs).unwrap(), id);
        }
        assert!(decode_doc_id(&"2".repeat(29)).is_err());
        assert!(decode_doc_id("").is_err());
    }
}

//! The automerge-repo wire protocol: CBOR maps tagged by `type`.

use ciborium::Value;
use serde::Serialize;
use serde_bytes::ByteBuf;

use crate::ids::DocId;

pub const PROTOCOL_VERSION: &str = "1";

/// Frames larger than this are refused (and the connection closed): 8 MiB
/// holds the first load of a large multi-year record with room to spare.
pub const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// Encoded by serde; decoded by hand (see [`WireMessage::decode`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum WireMessage {
    #[serde(rename_all = "camelCase")]
    Join {
        sender_id: String,
        supported_protocol_versions: Vec<String>,
    },
    #[serde(rename_all = "camelCase")]
    Peer {
        sender_id: String,
        target_id: String,
        selected_protocol_version: String,
    },
    /// A sync message for a document the sender does not have yet.
    #[serde(rename_all = "camelCase")]
    Request {
        sender_id: String,
        target_id: String,
        document_id: String,
        data: ByteBuf,
    },
    #[serde(rename_all = "camelCase")]
    Sync {
        sender_id: String,
        target_id: String,
        document_id: String,
        data: ByteBuf,
    },
    /// The document does not exist, or the sender may not see it: the two
    /// are deliberately indistinguishable.
    #[serde(rename_all = "camelCase")]
    DocUnavailable {
        sender_id: String,
        target_id: String,
        document_id: String,
    },
    /// The changes the client sent for a document were refused; nothing of
    /// them was stored. The client must reset the document from the server.
    #[serde(rename_all = "camelCase")]
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

impl WireMessage {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).expect("CBOR encoding into memory cannot fail");
        out
    }

    pub fn decode(frame: &[u8]) -> Result<Self, WireError> {
        if frame.len() > MAX_FRAME_BYTES {
            return Err(WireError::TooLarge(frame.len()));
        }
        // By hand rather than derived: serde's code for an internally
        // tagged enum buffers every field generically and was the largest
        // single function in the web app's WASM (39 KB).
        let value: Value =
            ciborium::from_reader(frame).map_err(|e| WireError::Malformed(e.to_string()))?;
        let Value::Map(entries) = value else {
            return Err(WireError::Malformed("a message must be a CBOR map".into()));
        };
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

/// A decoded message's fields; unknown ones are ignored, as automerge-repo does.
struct Fields(Vec<(Value, Value)>);

impl Fields {
    fn take(&mut self, key: &str) -> Result<Value, WireError> {
        let at = self.0.iter().position(|(k, _)| k.as_text() == Some(key));
        at.map(|i| self.0.swap_remove(i).1)
            .ok_or_else(|| WireError::Malformed(format!("missing field `{key}`")))
    }

    fn text(&mut self, key: &str) -> Result<String, WireError> {
        match self.take(key)? {
            Value::Text(text) => Ok(text),
            _ => Err(wrong_type(key, "text")),
        }
    }

    fn texts(&mut self, key: &str) -> Result<Vec<String>, WireError> {
        match self.take(key)? {
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::Text(text) => Ok(text),
                    _ => Err(wrong_type(key, "an array of text")),
                })
                .collect(),
            _ => Err(wrong_type(key, "an array of text")),
        }
    }

    fn bytes(&mut self, key: &str) -> Result<ByteBuf, WireError> {
        match self.take(key)? {
            Value::Bytes(bytes) => Ok(ByteBuf::from(bytes)),
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
        let value: ciborium::Value = ciborium::from_reader(frame.as_slice()).unwrap();
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
            &ciborium::Value::Map(vec![("type".into(), "launch-missiles".into())]),
            &mut unknown,
        )
        .unwrap();
        assert!(matches!(WireMessage::decode(&unknown), Err(WireError::Malformed(_))));
        let huge = vec![0u8; MAX_FRAME_BYTES + 1];
        assert_eq!(WireMessage::decode(&huge), Err(WireError::TooLarge(MAX_FRAME_BYTES + 1)));
    }

    #[test]
    fn every_message_type_round_trips_and_wrong_fields_are_named() {
        let id = encode_doc_id(DocId::mint());
        let (s, t) = (String::from("a"), String::from("b"));
        let messages = [
            WireMessage::Join {
                sender_id: s.clone(),
                supported_protocol_versions: vec!["1".into()],
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
                message: "m".into(),
            },
            WireMessage::Error { message: "boom".into() },
        ];
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

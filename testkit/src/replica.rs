//! A native replica that syncs with a portal server over a real WebSocket,
//! driving the shared `SyncClient` state machine. Used by the benchmark and
//! the tests; the web app drives the same state machine from the browser.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use shared::DocId;
use shared::sync::{Received, SyncClient, WireMessage, decode_doc_id};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("sync: {0}")]
    Sync(#[from] shared::sync::client::SyncError),
    #[error("the server closed the connection: {0}")]
    Closed(String),
    #[error("timed out waiting for sync")]
    Timeout,
}

pub struct Replica {
    pub client: SyncClient,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub bytes_up: usize,
    pub bytes_down: usize,
    /// Everything received since the last `take_received`.
    pub received: Received,
    /// The server said to list again (`WireMessage::ListChanged`).
    pub told_to_relist: bool,
}

impl Replica {
    /// Connects to `ws_url` (e.g. `ws://localhost:PORT/sync`) with extra
    /// request headers (session cookie, Origin) and sends `join`.
    pub async fn connect(
        ws_url: &str,
        headers: &[(&'static str, String)],
        mut client: SyncClient,
    ) -> Result<Self, ClientError> {
        let mut request = ws_url.into_client_request()?;
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(*name, HeaderValue::from_str(value).expect("header value"));
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(shared::sync::MAX_FRAME_BYTES))
            .read_buffer_size(server::sync::SOCKET_READ_BUFFER);
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?;
        let join = client.connect();
        let mut replica = Self {
            client,
            ws,
            bytes_up: 0,
            bytes_down: 0,
            received: Received::default(),
            told_to_relist: false,
        };
        replica.send(vec![join]).await?;
        Ok(replica)
    }

    /// Sends raw bytes as one binary frame (tests use it for bad input).
    pub async fn send_raw(&mut self, frame: Vec<u8>) -> Result<(), ClientError> {
        self.bytes_up += frame.len();
        self.ws.send(Message::Binary(frame.into())).await?;
        Ok(())
    }

    pub async fn send(&mut self, messages: Vec<WireMessage>) -> Result<(), ClientError> {
        for message in messages {
            let frame = message.encode();
            self.bytes_up += frame.len();
            self.ws.feed(Message::Binary(frame.into())).await?;
        }
        self.ws.flush().await?;
        Ok(())
    }

    /// Sends whatever local changes are waiting.
    pub async fn flush_local(&mut self) -> Result<(), ClientError> {
        let outgoing = self.client.outgoing();
        self.send(outgoing).await
    }

    /// Handles incoming messages until `done` holds (given the client and
    /// what was received so far), answering each.
    pub async fn sync_until(
        &mut self,
        timeout: Duration,
        done: impl Fn(&SyncClient, &Received) -> bool,
    ) -> Result<(), ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(&self.client, &self.received) {
            if self.step(deadline).await?.is_none() {
                return Err(ClientError::Timeout);
            }
        }
        Ok(())
    }

    /// Handles the next message from the server, answering it, and returns
    /// when it arrived; `None` if nothing arrived before `deadline`.
    pub async fn step(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Result<Option<std::time::Instant>, ClientError> {
        let Some((arrived, message)) = self.next_message(deadline).await? else { return Ok(None) };
        self.handle(message).await?;
        Ok(Some(arrived))
    }

    /// Takes one message from the server and sends the answers.
    async fn handle(&mut self, message: WireMessage) -> Result<(), ClientError> {
        self.told_to_relist |= message == WireMessage::ListChanged;
        let received = self.client.receive(message)?;
        self.send(received.outgoing.clone()).await?;
        self.received.changed.extend(received.changed);
        self.received.unavailable.extend(received.unavailable);
        self.received.rejected.extend(received.rejected);
        Ok(())
    }

    /// The next message from the server and when it arrived, not yet
    /// handled (a load generator may answer it itself); `None` if nothing
    /// arrived before `deadline`.
    pub async fn next_message(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Result<Option<(std::time::Instant, WireMessage)>, ClientError> {
        loop {
            let Ok(frame) = tokio::time::timeout_at(deadline, self.ws.next()).await else {
                return Ok(None);
            };
            let arrived = std::time::Instant::now();
            match frame {
                Some(Ok(Message::Binary(bytes))) => {
                    self.bytes_down += bytes.len();
                    let message = WireMessage::decode(&bytes)
                        .map_err(shared::sync::client::SyncError::from)?;
                    return Ok(Some((arrived, message)));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(ClientError::Closed(
                        frame.map(|f| format!("{} {}", f.code, f.reason)).unwrap_or_default(),
                    ));
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error.into()),
                None => return Err(ClientError::Closed("end of stream".into())),
            }
        }
    }

    /// Syncs until the server has confirmed every document.
    ///
    /// A message changes whether one document is synced, the one it names,
    /// so only that one is looked at again: counting every document after
    /// every message made a catch-up of n documents cost n² checks in the
    /// replica (a tenth of the benchmark's time at 1,000 documents).
    pub async fn sync_all(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut waiting: BTreeSet<DocId> =
            self.client.ids().filter(|id| !self.client.is_synced(*id)).collect();
        while !waiting.is_empty() {
            let Some((_, message)) = self.next_message(deadline).await? else {
                return Err(ClientError::Timeout);
            };
            let named = match &message {
                WireMessage::Sync { document_id, .. }
                | WireMessage::Request { document_id, .. }
                | WireMessage::DocUnavailable { document_id, .. }
                | WireMessage::ChangeRejected { document_id, .. } => {
                    decode_doc_id(document_id).ok()
                }
                _ => None,
            };
            self.handle(message).await?;
            if let Some(id) = named.filter(|id| self.client.contains(*id)) {
                if self.client.is_synced(id) {
                    waiting.remove(&id);
                } else {
                    waiting.insert(id);
                }
            }
        }
        Ok(())
    }

    pub fn take_received(&mut self) -> Received {
        std::mem::take(&mut self.received)
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

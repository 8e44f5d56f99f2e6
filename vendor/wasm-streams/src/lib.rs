//! Stands in for `wasm-streams` (patched in by the workspace's Cargo.toml).
//!
//! leptos always builds server_fn with its `browser` feature, and that
//! feature's streaming requests and responses use wasm-streams, whose
//! `IntoUnderlyingSource`, `IntoUnderlyingByteSource` and
//! `IntoUnderlyingSink` are `#[wasm_bindgen]` exports. The linker keeps
//! every export, so their code, the futures and promises they drive and
//! the glue classes wasm-bindgen writes for them went into the web app
//! (about 2 KB of the brotli bundle), though the app has no server
//! functions and nothing ever made one. This crate has the one type
//! server_fn names, and no exports.
//!
//! The app never calls a server function, so never streams: the two
//! conversions that would need the real crate say so and stop. Should
//! server functions be added, remove the patch.

use futures_util::Stream;
use wasm_bindgen::JsValue;

/// A JavaScript `ReadableStream`, as server_fn names wasm-streams'.
pub struct ReadableStream {
    raw: web_sys::ReadableStream,
}

impl ReadableStream {
    pub fn from_raw(raw: web_sys::ReadableStream) -> Self {
        Self { raw }
    }

    pub fn into_raw(self) -> web_sys::ReadableStream {
        self.raw
    }

    /// A streaming request body: only server functions send one.
    pub fn from_stream<St>(_stream: St) -> Self
    where
        St: Stream<Item = Result<JsValue, JsValue>> + 'static,
    {
        unimplemented!("streaming server function requests (wasm-streams is not linked in)")
    }

    /// A streaming response body: only server functions read one.
    pub fn into_stream(self) -> futures_util::stream::Empty<Result<JsValue, JsValue>> {
        unimplemented!("streaming server function responses (wasm-streams is not linked in)")
    }
}

//! The built web app, served from disk.
//!
//! Files keep stable names (app.js, app_bg.wasm), so every response says
//! `Cache-Control: no-cache`: browsers revalidate with If-Modified-Since and
//! get a 304 when nothing changed, and a new release is picked up at once.
//! Offline use does not depend on HTTP caching: the service worker keeps the
//! app shell. Brotli and gzip copies made at build time are served when the
//! browser accepts them.

use std::path::Path;

use axum::http::{HeaderValue, header};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeader;

pub fn service(dir: &Path) -> SetResponseHeader<ServeDir<ServeFile>, HeaderValue> {
    let index = ServeFile::new(dir.join("index.html")).precompressed_br().precompressed_gzip();
    let files = ServeDir::new(dir).precompressed_br().precompressed_gzip().fallback(index);
    SetResponseHeader::overriding(
        files,
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    )
}

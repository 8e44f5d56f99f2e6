//! The HTTP surface of a real server on port 0.

use std::path::PathBuf;

use testkit::{TestDatabase, TestServer};

use crate::BACKENDS;

fn static_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<!doctype html><title>Portal</title>").unwrap();
    std::fs::write(dir.path().join("app.js"), "export default function init() {}").unwrap();
    std::fs::write(dir.path().join("app_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    dir
}

#[tokio::test]
async fn healthz_reports_the_database() {
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let app = TestServer::start(&db, PathBuf::from("/nonexistent")).await;
        let response = reqwest::get(format!("{}/healthz", app.base_url)).await.unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ok");
        assert_eq!(body["database"], backend.name());
        // Several instances share only PostgreSQL: there, the instance
        // reports the connection on which it hears the others.
        match backend {
            server::storage::Backend::Sqlite => assert!(body.get("listener").is_none(), "{body}"),
            server::storage::Backend::Postgres => {
                assert_eq!(body["listener"]["listening"], true, "{body}");
                assert_eq!(body["listener"]["reconnects"], 0, "{body}");
                assert!(body["listener"]["last_heartbeat_ms"].as_u64().unwrap() < 10_000, "{body}");
            }
        }
        app.stop().await;
        db.drop_database().await;
    }
}

#[tokio::test]
async fn the_web_app_is_served_with_content_types_and_revalidation() {
    let db = TestDatabase::new(server::storage::Backend::Sqlite).await;
    let dist = static_fixture();
    let app = TestServer::start(&db, dist.path().to_owned()).await;
    let client = reqwest::Client::new();
    for (path, content_type) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/app_bg.wasm", "application/wasm"),
        ("/results", "text/html"),
    ] {
        let response = client.get(format!("{}{path}", app.base_url)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(content_type),
            "{path}: {headers:?}"
        );
        assert_eq!(headers["cache-control"], "no-cache", "{path}");
        // A revalidation with the same Last-Modified gets 304 Not Modified.
        let last_modified = headers["last-modified"].clone();
        let again = client
            .get(format!("{}{path}", app.base_url))
            .header("if-modified-since", last_modified)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    app.stop().await;
}

//! Baseline (b) of `catch-up`: the npm package
//! `@automerge/automerge-repo-sync-server` serving the same documents to an
//! automerge-repo client, run by the Node harness `bench/peer/catch-up.mjs`
//! (installed by `scripts/setup`). See that file for what it times and how it
//! decides the sync server's copy is durable.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

/// The harness, checked before the benchmark starts.
pub struct Peer {
    script: PathBuf,
}

impl Peer {
    /// Finds `node` on PATH and the installed harness, or says how to set
    /// them up.
    pub fn find() -> Result<Self, String> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peer");
        let setup = "run scripts/setup (it installs bench/peer's npm packages), or pass --no-peer";
        match Command::new("node").arg("--version").output() {
            Ok(out) if out.status.success() => {}
            _ => {
                return Err(format!(
                    "`node` is not on PATH; the npm peer baseline needs Node.js 20+: install it, then {setup}"
                ));
            }
        }
        if !dir.join("node_modules/@automerge/automerge-repo-sync-server/package.json").exists() {
            return Err(format!("{} has no installed npm packages: {setup}", dir.display()));
        }
        Ok(Self { script: dir.join("catch-up.mjs") })
    }

    /// Runs the harness once and returns its JSON line.
    pub fn run(&self, docs: usize, changes: usize) -> Result<Value, String> {
        let out = Command::new("node")
            .arg(&self.script)
            .args(["--docs", &docs.to_string(), "--changes", &changes.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("running node: {e}"))?;
        if !out.status.success() {
            return Err(format!("{} failed ({})", self.script.display(), out.status));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .ok_or("the harness printed no JSON line")?;
        serde_json::from_str(line)
            .map_err(|e| format!("the harness printed bad JSON ({e}): {line}"))
    }
}

/// Adds the peer's figures to the catch-up line under their own keys:
/// its seconds and CPU seconds (server and client processes together, like
/// ours), how many times faster we are, and its whole line.
pub fn add_figures(line: &mut Value, peer: &Value, seconds: f64, cpu_seconds: f64) {
    let peer_seconds = peer["seconds"].as_f64().unwrap_or(f64::NAN);
    let peer_cpu = peer["server_cpu_seconds"].as_f64().unwrap_or(f64::NAN)
        + peer["client_cpu_seconds"].as_f64().unwrap_or(f64::NAN);
    let fields = json!({
        "automerge_repo_sync_server_seconds": peer_seconds,
        "automerge_repo_sync_server_cpu_seconds": round3(peer_cpu),
        "speedup_vs_sync_server": round3(peer_seconds / seconds),
        "cpu_speedup_vs_sync_server": round3(peer_cpu / cpu_seconds),
        "automerge_repo_sync_server": peer,
    });
    if let (Some(line), Value::Object(fields)) = (line.as_object_mut(), fields) {
        line.extend(fields);
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// Baseline (b) of `portal-bench catch-up`: the same clinic catch-up served by
// the npm package @automerge/automerge-repo-sync-server to an automerge-repo
// client. Prints one JSON line.
//
//   node bench/peer/catch-up.mjs --docs 1000 --changes 20
//
// Set up with `scripts/setup` (npm ci of this folder's lockfile into
// $PORTAL_CACHE/peer-bench, linked here as node_modules).
//
// What is timed, mirroring the Rust bench (the server already holds each
// document's genesis on disk, the clinic comes back with `changes` offline
// changes per document over one fresh connection):
//  1. Untimed: a first sync server process starts on a fresh DATA_DIR; a client
//     repo creates the documents (a genesis change like `DocKind::genesis`) and
//     syncs them; once every genesis is on disk the server is stopped.
//  2. Untimed: each document gets `changes` offline changes, each adding one
//     observation shaped like `server::demo::glucose_result` (15 fields and a
//     nested provenance map) under a fresh UUIDv7-like key.
//  3. A new sync server process starts on the same DATA_DIR (so, like ours, it
//     loads documents from storage on first use). A fresh client repo holding
//     the changed documents (in memory, loaded before the clock starts)
//     connects. Timed from adding the WebSocket adapter until every
//     document's changes are durable on the server.
//
// "Durable" on the sync server: it has no acknowledgement for storage. Its
// repo saves a document to DATA_DIR (NodeFSStorageAdapter: one file per chunk,
// fs.writeFile, no fsync) at most every 100 ms after the document changes,
// independently of its sync replies. So a document counts as durable in two
// steps: (i) the client's handle reports the server's heads ("remote-heads"
// for the server's storage id) equal to its own, i.e. the server has applied
// everything; then (ii) the harness reads the server's DATA_DIR and loads the
// document's stored chunks (snapshot and incremental files) into a bare
// Automerge document whose heads must equal the client's. Step (ii) starts
// 100 ms after step (i) for each document and repeats every 10 ms, so it
// overlaps the sync. `seconds` runs until the last document is verified on
// disk; `sync_seconds` until the server had applied the last one (step i).
// Our server, by contrast, acknowledges only after a committed transaction
// (SQLite synchronous=FULL, or PostgreSQL); the sync server never fsyncs,
// which favours it.

import { spawn } from "node:child_process"
import fs from "node:fs"
import net from "node:net"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import * as A from "@automerge/automerge"
import { Repo } from "@automerge/automerge-repo"
import { BrowserWebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"

const args = process.argv.slice(2)
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? Number(args[i + 1]) : fallback
}
const DOCS = arg("docs", 1000)
const CHANGES = arg("changes", 20)
// Per phase: at 1,000 documents on a loaded 2-core machine each takes minutes.
const TIMEOUT_MS = arg("timeout", 1800) * 1000
const VERBOSE = args.includes("--verbose") || !!process.env.PEER_BENCH_VERBOSE
const t0 = performance.now()
const log = msg => { if (VERBOSE) console.error(`[${((performance.now() - t0) / 1000).toFixed(1)} s] ${msg}`) }

const here = path.dirname(fileURLToPath(import.meta.url))
const serverEntry = fileURLToPath(import.meta.resolve("@automerge/automerge-repo-sync-server"))
const versionOf = pkg => JSON.parse(fs.readFileSync(path.join(here, "node_modules", pkg, "package.json"), "utf8")).version

/** A StorageAdapter in memory: the client keeps nothing on disk. */
class MemoryStorage {
  data = new Map()
  key = k => k.join("\u0000")
  async load(k) { return this.data.get(this.key(k)) }
  async save(k, v) { this.data.set(this.key(k), v) }
  async remove(k) { this.data.delete(this.key(k)) }
  async loadRange(prefix) {
    const p = this.key(prefix)
    return [...this.data].filter(([k]) => k === p || k.startsWith(p + "\u0000"))
      .map(([k, data]) => ({ key: k.split("\u0000"), data }))
  }
  async removeRange(prefix) {
    for (const { key } of await this.loadRange(prefix)) this.data.delete(this.key(key))
  }
}

const freePort = () => new Promise((resolve, reject) => {
  const s = net.createServer()
  s.once("error", reject)
  s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)) })
})

const children = new Set()
process.on("exit", () => { for (const c of children) c.kill("SIGKILL") })

/** Starts the package's own entry point (its `bin`) as a child process. */
async function startServer(dataDir) {
  const port = await freePort()
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "sync-server-cwd-"))
  const child = spawn(process.execPath, [serverEntry], {
    cwd, env: { ...process.env, PORT: String(port), DATA_DIR: dataDir }, stdio: ["ignore", "pipe", "inherit"],
  })
  children.add(child)
  child.once("exit", () => children.delete(child))
  await new Promise((resolve, reject) => {
    let out = ""
    child.stdout.on("data", d => { out += d; if (out.includes("Listening on port")) resolve() })
    child.once("exit", code => reject(new Error(`sync server exited (${code}): ${out}`)))
  })
  child.stdout.resume()
  const stop = () => new Promise(resolve => { child.once("exit", resolve); child.kill("SIGTERM") })
  return { url: `ws://127.0.0.1:${port}`, child, stop, cleanup: () => fs.rmSync(cwd, { recursive: true, force: true }) }
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuOf(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return (Number(f[11]) + Number(f[12])) / 100
}
const selfCpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6 }

const sameHeads = (a, b) => a.length === b.length && [...a].sort().join() === [...b].sort().join()

/** Whether DATA_DIR holds every change of the document (NodeFSStorageAdapter layout). */
function storedHeadsMatch(dataDir, documentId, heads) {
  const dir = path.join(dataDir, documentId.slice(0, 2), documentId.slice(2))
  const chunks = []
  try {
    for (const kind of ["snapshot", "incremental"]) {
      const sub = path.join(dir, kind)
      if (!fs.existsSync(sub)) continue
      for (const name of fs.readdirSync(sub)) chunks.push(fs.readFileSync(path.join(sub, name)))
    }
    if (chunks.length === 0) return false
    // A chunk being written or a compaction in progress just fails this pass.
    // The bare wasm document: loading without building the JS object tree.
    const backend = A.getBackend(A.init())
    try {
      backend.loadIncremental(Buffer.concat(chunks))
      return sameHeads(backend.getHeads(), heads)
    } finally {
      backend.free()
    }
  } catch {
    return false
  }
}

/**
 * Waits until the server has every handle's heads (its "remote-heads" equal
 * the handle's own), then until DATA_DIR holds them. A document is checked on
 * disk from 100 ms after its heads matched (the repo's save throttle) and then
 * every 10 ms until it verifies, so checking overlaps the sync and only the
 * last documents' checks fall after it. Returns both times in seconds from
 * `started`.
 */
function untilDurable(handles, dataDir, deadline, started) {
  return new Promise((resolve, reject) => {
    let left = handles.length
    let syncSeconds
    const synced = [] // [documentId, heads, time its heads matched]
    let ticks = 0
    const finish = (err, value) => { clearInterval(timer); err ? reject(err) : resolve(value) }
    const timer = setInterval(() => {
      if (++ticks % 200 === 0) log(`${handles.length - left}/${handles.length} synced, ${synced.length} waiting for disk`)
      if (Date.now() > deadline) return finish(new Error(`${left} documents not synced, ${synced.length} not on disk in time`))
      const now = performance.now()
      for (let i = synced.length - 1; i >= 0; i--) {
        const [id, heads, at] = synced[i]
        if (now - at >= 100 && storedHeadsMatch(dataDir, id, heads)) synced.splice(i, 1)
      }
      if (left === 0 && synced.length === 0) finish(null, { syncSeconds, seconds: (performance.now() - started()) / 1000 })
    }, 10)
    for (const handle of handles) {
      const local = A.getHeads(handle.docSync())
      let done = false
      const check = ({ heads }) => {
        if (!done && sameHeads(heads, local)) {
          done = true
          handle.off("remote-heads", check)
          synced.push([handle.documentId, local, performance.now()])
          if (--left === 0) syncSeconds = (performance.now() - started()) / 1000
        }
      }
      handle.on("remote-heads", check)
    }
  })
}

// Our record ids are UUIDv7 strings; anything of that shape will do here.
let seq = 0
const entryId = () => {
  const hex = (Date.now().toString(16).padStart(12, "0") + (seq++).toString(16).padStart(20, "0")).slice(0, 32)
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20)}`
}
const uuid = () => crypto.randomUUID()

/** `server::demo::glucose_result`, as autosurgeon writes it (None is null). */
const glucoseResult = (clinic, recorder, value) => ({
  report: null,
  loinc: "2345-7",
  display: "Glucose [Mass/volume] in Serum or Plasma",
  value_quantity: value,
  value_string: null,
  unit: "mg/dL",
  reference_low: 70.0,
  reference_high: 99.0,
  effective: "2026-11-25T08:00:00Z",
  status: "final",
  replaces: null,
  provenance: {
    clinic,
    clinic_name: "Clinic",
    recorder,
    recorder_name: "Dr. Bench",
    recorded: "2026-11-25T09:00:00Z",
  },
  status_reason: null,
  status_by: null,
  status_at: null,
})

async function main() {
  let deadline = Date.now() + TIMEOUT_MS
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "sync-server-data-"))
  const clinic = uuid()
  const provider = uuid()
  try {
    // 1. The server gets every document's genesis, on disk.
    let server = await startServer(dataDir)
    const first = new BrowserWebSocketClientAdapter(server.url)
    const repo1 = new Repo({ network: [first], storage: new MemoryStorage() })
    const handles = []
    for (let i = 0; i < DOCS; i++) {
      handles.push(repo1.create({
        schema: 1, kind: "clinical_record", patient: uuid(), clinic,
        reports: {}, observations: {}, prescriptions: {}, allergies: {}, immunizations: {}, appointments: {},
      }))
    }
    log("phase 1: genesis")
    await untilDurable(handles, dataDir, deadline, () => 0)
    first.disconnect()
    await server.stop()
    server.cleanup()

    log("phase 2: offline changes")
    // 2. The day offline.
    const storage = new MemoryStorage()
    const expected = new Map()
    for (const [i, handle] of handles.entries()) {
      if (i % 100 === 0) log(`${i}/${DOCS} documents changed offline`)
      let doc = A.load(A.save(handle.docSync()))
      for (let n = 0; n < CHANGES; n++) {
        doc = A.change(doc, d => { d.observations[entryId()] = glucoseResult(clinic, provider, 80.0 + n) })
      }
      await storage.save([handle.documentId, "snapshot", "offline"], A.save(doc))
      expected.set(handle.documentId, A.getHeads(doc))
      A.free(doc) // its wasm memory, now rather than at some later GC
    }

    // 3. Catch-up against a freshly started server.
    deadline = Date.now() + TIMEOUT_MS
    server = await startServer(dataDir)
    const repo2 = new Repo({ network: [], storage })
    const handles2 = [...expected.keys()].map(id => repo2.find(id))
    await Promise.all(handles2.map(h => h.whenReady()))
    log("phase 3: catch-up")
    let started
    const durable = untilDurable(handles2, dataDir, deadline, () => started)
    const serverCpu0 = cpuOf(server.child.pid)
    const clientCpu0 = selfCpu()
    started = performance.now()
    const adapter = new BrowserWebSocketClientAdapter(server.url)
    repo2.networkSubsystem.addNetworkAdapter(adapter)
    const { syncSeconds, seconds } = await durable
    const serverCpu = cpuOf(server.child.pid) - serverCpu0
    const clientCpu = selfCpu() - clientCpu0
    adapter.disconnect()
    await server.stop()
    server.cleanup()

    const round3 = x => Math.round(x * 1000) / 1000
    console.log(JSON.stringify({
      scenario: "catch-up",
      peer: "automerge-repo-sync-server",
      docs: DOCS,
      changes_per_doc: CHANGES,
      seconds: round3(seconds),
      sync_seconds: round3(syncSeconds),
      server_cpu_seconds: round3(serverCpu),
      client_cpu_seconds: round3(clientCpu),
      versions: {
        node: process.versions.node,
        "@automerge/automerge-repo-sync-server": versionOf("@automerge/automerge-repo-sync-server"),
        "@automerge/automerge-repo": versionOf("@automerge/automerge-repo"),
        "@automerge/automerge-repo-network-websocket": versionOf("@automerge/automerge-repo-network-websocket"),
        "@automerge/automerge-repo-storage-nodefs": versionOf("@automerge/automerge-repo-storage-nodefs"),
        "@automerge/automerge": versionOf("@automerge/automerge"),
      },
    }))
  } finally {
    if (process.env.KEEP_DATA) console.error("kept", dataDir); else fs.rmSync(dataDir, { recursive: true, force: true })
  }
}

main().then(() => process.exit(0), err => { console.error(err); process.exit(1) })

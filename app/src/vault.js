// This device's copy, sealed: IndexedDB and WebCrypto in one small module
// that app/src/vault.rs binds (hand-written: the same through web-sys
// bindings costs the WASM bundle several KB more).
//
// One database, store `docs` (each document's saved bytes, by doc id) and
// store `kv` (small values by name: me, documents, confirmed, ...). Every
// value is sealed with the device's data key: AES-GCM, a fresh 96-bit IV in
// front, the value's name as additional data (a sealed value cannot be
// moved to another name). `kv` also holds the vault record, plain (no
// patient data in it):
// - {salt, creds: {<credential id>: wrapped key}}: the data key wrapped by
//   HKDF-SHA-256 over each passkey's PRF output (evaluated over `salt`);
//   opening needs the passkey;
// - {key}: where the passkey has no PRF, a non-extractable key the browser
//   keeps (CryptoKey is structured-cloneable).
const S = crypto.subtle;
const GCM = { name: "AES-GCM", length: 256 };
const text = new TextEncoder();
const random = (n) => crypto.getRandomValues(new Uint8Array(n));
let db, key, record, salt, prf;
// Per name, the number of its latest write: sealing may finish out of
// order, so a write overtaken by a newer one (or a delete) is not stored.
const latest = new Map();

const done = (r) => new Promise((ok, fail) => { r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error); });
const store = (name, mode) => db.transaction(name, mode).objectStore(name);
const kv = (name) => done(store("kv", "readonly").get(name));
const saveRecord = () => done(store("kv", "readwrite").put(record, "vault"));

async function gcm(op, k, iv, data, name) {
  return new Uint8Array(await S[op]({ name: "AES-GCM", iv, additionalData: text.encode(name) }, k, data));
}
const join = (head, rest) => { const out = new Uint8Array(head.length + rest.length); out.set(head); out.set(rest, head.length); return out; };
// A document is kept deflated by the browser's own zlib, behind a 0 byte
// (the app's WASM carries no compressor: vendor/flate2/PATCHED.md); one
// kept before that is Automerge's bytes as saved, which start with 0x85.
const pipe = async (bytes, how) => new Uint8Array(await new Response(new Blob([bytes]).stream().pipeThrough(how)).arrayBuffer());
const pack = async (bytes) => join([0], await pipe(bytes, new CompressionStream("deflate-raw")));
const unpack = (bytes) => bytes[0] ? bytes : pipe(bytes.subarray(1), new DecompressionStream("deflate-raw"));
async function seal(k, name, bytes) { const iv = random(12); return join(iv, await gcm("encrypt", k, iv, bytes, name)); }
const unseal = (k, name, v) => gcm("decrypt", k, v.subarray(0, 12), v.subarray(12), name);

// The key that wraps the data key: HKDF over the PRF output, fixed salt
// and info (the PRF's own salt is per device).
async function kek(output) {
  const base = await S.importKey("raw", output, "HKDF", false, ["deriveKey"]);
  const params = { name: "HKDF", hash: "SHA-256", salt: text.encode("portal copy"), info: text.encode("wrap v1") };
  return S.deriveKey(params, base, GCM, false, ["encrypt", "decrypt"]);
}
async function wrap(output) {
  const raw = new Uint8Array(await S.exportKey("raw", key));
  record.creds[prf.id] = await seal(await kek(output), "", raw);
}

// Opens the database and reads the vault record: 1 if a copy is sealed
// under a passkey (`unlock` or a sign-in opens it), else 0. A copy stored
// before encryption (plain values, no record) is sealed now under a
// browser key.
export async function open() {
  navigator.storage?.persist?.();
  const request = indexedDB.open("patient-portal", 1);
  request.onupgradeneeded = () => ["docs", "kv"].forEach((s) => request.result.createObjectStore(s));
  db = await done(request);
  record = await kv("vault");
  if (!record && typeof (await kv("me")) == "string") {
    await makeKey();
    for (const s of ["docs", "kv"]) {
      const names = await done(store(s, "readonly").getAllKeys());
      for (const name of names) if (!plain.includes(name)) await put(s == "docs", name, await done(store(s, "readonly").get(name)));
    }
  }
  key = record?.key;
  salt = record?.salt;
  return record && !key ? 1 : 0;
}

// Everything stored, opened: {kv: {name: text}, docs: [[id, bytes]]}.
// A value that does not open (another key's, damaged) is left out.
export async function read() {
  const all = { kv: {}, docs: [] };
  for (const s of ["docs", "kv"]) {
    const names = await done(store(s, "readonly").getAllKeys());
    const values = await done(store(s, "readonly").getAll());
    for (let i = 0; i < names.length; i++) {
      if (plain.includes(names[i])) continue;
      try {
        const bytes = await unseal(key, names[i], values[i]);
        if (s == "kv") all.kv[names[i]] = new TextDecoder().decode(bytes);
        else all.docs.push([names[i], await unpack(bytes)]);
      } catch {}
    }
  }
  return all;
}

// Seals and stores a value; false if the device could not store it.
export async function put(doc, name, bytes) {
  bytes = typeof bytes == "string" ? text.encode(bytes) : bytes.slice();
  const n = (latest.get(name) || 0) + 1;
  latest.set(name, n);
  try {
    if (!key) return false;
    const sealed = await seal(key, name, doc ? await pack(bytes) : bytes);
    if (latest.get(name) == n) await done(store(doc ? "docs" : "kv", "readwrite").put(sealed, name));
    return true;
  } catch {
    return false;
  }
}

// Values kept plain in `kv`: the vault record, and flags that outlive the
// copy (`flag`), none of them about a patient.
const plain = ["vault", "logout_owed"];
export const flag = (name, value) => value == null ? kv(name) : done(store("kv", "readwrite").put(value, name));

export function remove(name) {
  latest.set(name, (latest.get(name) || 0) + 1);
  return done(store("docs", "readwrite").delete(name));
}

// Forgets everything, the key and its record included (the next sign-in
// makes a new key).
export async function clear() {
  for (const name of latest.keys()) latest.set(name, latest.get(name) + 1);
  key = record = undefined;
  for (const s of ["docs", "kv"]) await done(store(s, "readwrite").clear());
}

// Asks a ceremony for the passkey's PRF over this device's salt (the
// client adds the extension: the server neither needs nor sees it).
function askPrf(publicKey) {
  salt ||= random(32);
  publicKey.extensions = { ...publicKey.extensions, prf: { eval: { first: salt } } };
}

// Notes what a ceremony returned; `signedIn` uses it once the server has
// accepted the passkey.
function took(credential) {
  const first = credential.getClientExtensionResults().prf?.results?.first;
  prf = first && { id: credential.id, output: new Uint8Array(first) };
}

// After the server accepted a passkey (or `unlock`): opens a sealed copy
// with it, or makes this device's key, or wraps the open key for this
// passkey too. Throws if the passkey cannot open a sealed copy.
export async function signedIn() {
  if (!record) return makeKey();
  if (!key) {
    const wrapped = prf && record.creds[prf.id];
    if (!wrapped) throw 0;
    const raw = await unseal(await kek(prf.output), "", wrapped);
    key = await S.importKey("raw", raw, GCM, true, ["encrypt", "decrypt"]);
  } else if (prf && record.creds && !record.creds[prf.id]) {
    await wrap(prf.output);
    await saveRecord();
  }
}

// A new data key: wrapped under the passkey this page last used if it has
// PRF; else one the browser keeps and never lets out. Under a passkey it
// stays extractable in memory only, to be wrapped for the next passkey.
export async function makeKey() {
  if (key) return;
  key = await S.generateKey(GCM, !!prf, ["encrypt", "decrypt"]);
  record = prf ? { salt, creds: {} } : { key };
  if (prf) await wrap(prf.output);
  await saveRecord();
}

export const protectedByPasskey = () => !!record?.creds;

// The API over fetch (app/src/api.rs): [status, text]; rejects offline.
export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, credentials: "same-origin", headers, body });
  return [response.status, await response.text()];
}

// base64url (WebAuthn's JSON) to bytes and back.
const bytes = (t) => Uint8Array.from(atob(t.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
const base64url = (b) => b && btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

// A passkey ceremony over the server's options (webauthn-rs's JSON, whose
// base64url fields become bytes here), asking for the PRF too; resolves to
// the credential as the server reads it (the PRF output stays here).
export async function ceremony(create, options) {
  const k = options.publicKey;
  k.challenge = bytes(k.challenge);
  if (k.user) k.user.id = bytes(k.user.id);
  for (const c of k.allowCredentials || k.excludeCredentials || []) c.id = bytes(c.id);
  askPrf(k);
  const credential = await navigator.credentials[create ? "create" : "get"](options);
  took(credential);
  const r = credential.response;
  const response = {};
  for (const f of ["clientDataJSON", "attestationObject", "authenticatorData", "signature", "userHandle"]) if (f in r) response[f] = base64url(r[f]);
  return { id: credential.id, rawId: base64url(credential.rawId), type: "public-key", response, extensions: {} };
}

// Opening without the server: the passkey alone, over a challenge made
// here (nothing is sent; only the PRF output is used).
export async function unlock() {
  const allowCredentials = Object.keys(record.creds).map((id) => ({ type: "public-key", id: bytes(id) }));
  const publicKey = { challenge: random(32), allowCredentials, userVerification: "required" };
  askPrf(publicKey);
  took(await navigator.credentials.get({ publicKey }));
  return signedIn();
}

// A button marked `data-hand-over="<field id>"` hands that field's one-time
// link over: to the device's share sheet where there is one (phones; it
// offers copying too), else to the clipboard, and says what happened after
// it (inside the link's live region), in the words the button carries
// (`data-shared`, `data-copied`, `data-failed`: the app's language). Here rather than in
// the app's Rust: a click handler awaiting a promise cost the WASM bundle
// about 0.7 KB brotli.
document.addEventListener("click", async (event) => {
  const button = event.target.closest && event.target.closest("[data-hand-over]");
  if (!button) return;
  const link = document.getElementById(button.dataset.handOver).value;
  let said;
  try {
    if (navigator.share) await navigator.share({ url: link }), said = button.dataset.shared;
    else await navigator.clipboard.writeText(link), said = button.dataset.copied;
  } catch {
    said = button.dataset.failed;
  }
  let note = button.nextElementSibling;
  if (!note) button.after((note = document.createElement("p")));
  note.textContent = said;
});
export const canShare = () => !!navigator.share;

// Dates for people: in the page's language (the html element's lang) and,
// for an instant, in this device's time zone. A date alone and a clinic's
// wall time (`wall`: stored with a "Z" but meaning the clinic's clock) are
// shown as written, never moved by a zone. One formatter per kind is kept:
// making one costs far more than using it (a long history has thousands).
const formats = {};
export function when(stamp, time, wall) {
  const day = stamp.length < 11;
  const at = new Date(day ? stamp + "T00:00Z" : stamp);
  if (isNaN(at)) return stamp;
  const lang = document.documentElement.lang, key = lang + time + (day || wall);
  return (formats[key] ??= new Intl.DateTimeFormat(lang, {
    dateStyle: "medium",
    timeStyle: time && !day ? "short" : undefined,
    timeZone: day || wall ? "UTC" : undefined,
  })).format(at);
}
// Today's date on this device's calendar, as YYYY-MM-DD.
export const today = (d = new Date()) => new Date(d - d.getTimezoneOffset() * 6e4).toISOString().slice(0, 10);

// Renames the WASM module's imports from the JS glue to short names, in the
// .wasm and in the glue alike: wasm-bindgen names each one after the
// function plus a 16-digit hash (`__wbg_remove_8228e91d7ddbc755`), and those
// hashes, written twice and random to a compressor, cost about 3 KB of the
// brotli bundle.
//
// Usage: node scripts/short-imports.mjs app_bg.wasm app.js (both rewritten).
import { readFileSync, writeFileSync } from "node:fs";

const [wasmPath, jsPath] = process.argv.slice(2);
const wasm = readFileSync(wasmPath);
let js = readFileSync(jsPath, "utf8");

function readLeb(bytes, at) {
  let value = 0, shift = 0, byte;
  do {
    byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return [value, at];
}

function leb(value) {
  const out = [];
  do {
    let byte = value & 0x7f;
    value = Math.floor(value / 128);
    if (value) byte |= 0x80;
    out.push(byte);
  } while (value);
  return Buffer.from(out);
}

const name = (text) => Buffer.concat([leb(Buffer.byteLength(text)), Buffer.from(text)]);

// Short names in order: a, b, ..., z, A, ..., Z, aa, ab, ...
const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const short = (n) => (n < letters.length ? letters[n] : short(Math.floor(n / letters.length) - 1) + letters[n % letters.length]);

let at = 8;
const sections = [wasm.subarray(0, 8)];
const renamed = new Map();
while (at < wasm.length) {
  const id = wasm[at];
  const [size, body] = readLeb(wasm, at + 1);
  const end = body + size;
  if (id !== 2) {
    sections.push(wasm.subarray(at, end));
    at = end;
    continue;
  }
  // The import section: module and field names, then the import's kind and
  // type, copied as they are.
  let [count, p] = readLeb(wasm, body);
  const parts = [leb(count)];
  for (let i = 0; i < count; i++) {
    const [moduleLen, m] = readLeb(wasm, p);
    const module = wasm.subarray(m, m + moduleLen).toString();
    const [fieldLen, f] = readLeb(wasm, m + moduleLen);
    const field = wasm.subarray(f, f + fieldLen).toString();
    const descStart = f + fieldLen;
    p = descStart;
    const kind = wasm[p++];
    if (kind === 0) {
      p = readLeb(wasm, p)[1];
    } else if (kind === 1 || kind === 2) {
      if (kind === 1) p++;
      const flags = wasm[p++];
      p = readLeb(wasm, p)[1];
      if (flags & 1) p = readLeb(wasm, p)[1];
    } else if (kind === 3) {
      p += 2;
    } else {
      throw new Error(`import kind ${kind} is not known here`);
    }
    let newField = field;
    // Only the glue's imports, each of which the glue names exactly once.
    if (module.endsWith("_bg.js") && js.split(field).length === 2) {
      newField = short(renamed.size);
      renamed.set(field, newField);
    }
    parts.push(name(module), name(newField), wasm.subarray(descStart, p));
  }
  const content = Buffer.concat(parts);
  sections.push(Buffer.from([2]), leb(content.length), content);
  at = end;
}

for (const [from, to] of renamed) {
  js = js.replace(from, to);
}
writeFileSync(wasmPath, Buffer.concat(sections));
writeFileSync(jsPath, js);
console.log(`short-imports: ${renamed.size} imports renamed`);

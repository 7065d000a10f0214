import { AjvCompiler } from '@fastify/ajv-compiler';
import fc, { type Arbitrary } from 'fast-check';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseApiKey } from '../../plugins/api-keys/key-format.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { schemaArbitrary, type JsonSchema } from '../helpers/schema-arbitrary.js';

/**
 * Fuzzing from the OpenAPI document (issue 13, item 2). Every operation `/docs/json` lists gets
 * requests generated from its own schemas (path parameters, query, headers, JSON body): valid
 * ones with the admin key, invalid ones (a field of the wrong type, a missing or unknown field,
 * any JSON as the body, a nonsense path parameter), and ones without a key, with a bad key or
 * with a key lacking the scope. Every answer must be declared by the document for its status
 * and content type and validate against the schema declared there; no 5xx, no crash.
 *
 * Bounded: FUZZ_RUNS requests of each kind per operation and FUZZ_BUDGET_MS in all (operations
 * left when the budget runs out are named in the summary line). Deterministic: FUZZ_SEED
 * (printed) decides every request; each operation draws from its own seed derived from it, so a
 * finding reproduces with the same seed whatever ran before.
 */
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 20261130;
const RUNS = Number(process.env.FUZZ_RUNS ?? 6);
const BUDGET_MS = Number(process.env.FUZZ_BUDGET_MS ?? 60_000);
/** FUZZ_VERBOSE=1: one line per operation (requests, time); 2: each request as it is sent. */
const VERBOSE = Number(process.env.FUZZ_VERBOSE ?? 0);
/** FUZZ_ONLY: fuzz only the operations whose `METHOD /path` contains this text. */
const ONLY = process.env.FUZZ_ONLY;
/** The app's BODY_LIMIT, and a body larger than any route's own limit (the blocklist's bulk import). */
const BODY_LIMIT = 4096;
const OVERSIZED = 8 * 1024 * 1024;

interface Parameter {
  $ref?: string;
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required?: boolean;
  schema?: JsonSchema;
}
interface MediaType {
  schema?: JsonSchema;
}
interface Operation {
  parameters?: Parameter[];
  requestBody?: { required?: boolean; content?: Record<string, MediaType> };
  responses?: Record<string, { content?: Record<string, MediaType> }>;
}
interface OpenApiDoc {
  components: { schemas?: Record<string, JsonSchema>; parameters?: Record<string, Parameter> };
  paths: Record<string, Record<string, Operation>>;
}

/** One generated request, before it is written as a URL and a payload. */
interface Draft {
  kind: 'valid' | 'invalid' | 'auth';
  params: Record<string, unknown>;
  query: Record<string, unknown>;
  headers: Record<string, string>;
  /** `undefined`: no body sent; otherwise the JSON value sent (`raw`: the text as is). */
  body?: { value: unknown } | { raw: string; type?: string };
}

interface Finding {
  operation: string;
  what: string;
  status: number;
  request: string;
  detail: string;
}

let t: TestApp;
let doc: OpenApiDoc;
let adminClientId: string;
let adminKeyId: string;
let narrowKey: string;

beforeAll(async () => {
  // No default rate limit (thousands of requests a minute). The test's own address is in
  // BLOCKLIST_ALWAYS_ALLOW: the fuzzer writes blocklist rules (address, network, user agent,
  // path, API client) and honeypots that auto-block, and the break-glass list is what keeps an
  // operator's own address answered whatever the rules say; the rules are still written,
  // checked, listed and deleted. Deliveries to non-public addresses stay refused (the default),
  // and every URL or host a request carries is rewritten to a closed loopback port
  // (`confine`), so a channel test, a smoke run or an email never leaves the machine.
  t = await createTestApp({ BODY_LIMIT, RATE_LIMIT_DEFAULT_MAX: 0, BLOCKLIST_ALWAYS_ALLOW: '127.0.0.1,::1', WEBHOOK_ALLOW_PRIVATE: false });
  doc = (await t.inject({ method: 'GET', url: '/docs/json' })).json<OpenApiDoc>();
  adminKeyId = parseApiKey(t.adminKey)!.keyId;
  const clients = await t.inject({ method: 'GET', url: `/system/api-clients?limit=100` });
  adminClientId = String(clients.json<{ items: Array<{ id: number; name: string }> }>().items.find((c) => c.name === 'bootstrap-admin')!.id);
  narrowKey = (await t.keyWith(['flags:read'])).token;
}, 120_000);
afterAll(async () => t?.close());

// ---------------------------------------------------------------------------------------------
// The document's response schemas, compiled by the kernel's own Ajv (@fastify/ajv-compiler with
// its ajv-formats), but validating only: no coercion, no defaults, nothing removed.

const COMPONENT = 'urn:valhalla:component:';
function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, k === '$ref' && typeof v === 'string' ? v.replace('#/components/schemas/', COMPONENT) : rewriteRefs(v)]),
  );
}

const validators = new Map<string, (data: unknown) => string | null>();
let compile: ((schema: JsonSchema) => { (data: unknown): boolean; errors?: unknown }) | undefined;

function responseValidator(key: string, schema: JsonSchema): (data: unknown) => string | null {
  let v = validators.get(key);
  if (v) return v;
  if (!compile) {
    const external = Object.fromEntries(
      Object.entries(doc.components.schemas ?? {}).map(([name, s]) => [`${COMPONENT}${name}`, { ...(rewriteRefs(s) as JsonSchema), $id: `${COMPONENT}${name}` }]),
    );
    const build = AjvCompiler()(external, {
      customOptions: { coerceTypes: false, useDefaults: false, removeAdditional: false, allErrors: true, allowUnionTypes: true, strict: false },
    });
    compile = (s) => build({ schema: s, method: 'GET', url: '/', httpPart: 'body' }) as unknown as { (data: unknown): boolean; errors?: unknown };
  }
  const check = compile(rewriteRefs(schema) as JsonSchema);
  v = (data) => (check(data) ? null : JSON.stringify(check.errors).slice(0, 600));
  validators.set(key, v);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Requests from the document.

const resolveParam = (p: Parameter): Parameter => (p.$ref ? doc.components.parameters![p.$ref.replace('#/components/parameters/', '')]! : p);

/** Every property name in the document: keys for free-form objects (a security action's `params`). */
function propertyNames(): string[] {
  const names = new Set<string>();
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (typeof v !== 'object' || v === null) return;
    for (const [k, child] of Object.entries(v)) {
      if (k === 'properties' && typeof child === 'object' && child !== null) for (const n of Object.keys(child)) names.add(n);
      walk(child);
    }
  };
  walk(doc.paths);
  return [...names].sort();
}

/** Values seen in answers, by field name: path parameters then also name things that exist. */
const seen = new Map<string, Set<string | number>>();
function remember(body: unknown): void {
  const rows = typeof body === 'object' && body !== null ? [body, ...(Array.isArray((body as { items?: unknown }).items) ? ((body as { items: unknown[] }).items) : [])] : [];
  for (const row of rows) {
    if (typeof row !== 'object' || row === null) continue;
    for (const [k, v] of Object.entries(row)) {
      if (typeof v !== 'string' && typeof v !== 'number') continue;
      if (typeof v === 'string' && v.length > 200) continue;
      const set = seen.get(k) ?? new Set();
      if (set.size < 50) set.add(v);
      seen.set(k, set);
    }
  }
}

/** A path parameter: from its schema, or (once answers named some) a value that exists. */
function paramArbitrary(p: Parameter, keyHints: string[]): Arbitrary<unknown> {
  const fromSchema = schemaArbitrary(p.schema, { components: doc.components.schemas, keyHints });
  const known = [...(seen.get(p.name) ?? []), ...(/id$/i.test(p.name) ? (seen.get('id') ?? []) : [])];
  return known.length > 0 ? fc.oneof(fromSchema, fc.constantFrom(...known)) : fromSchema;
}

const printable = (s: string) => /^[\x20-\x7e]*$/.test(s);

function draftArbitrary(method: string, op: Operation, keyHints: string[]): { valid: Arbitrary<Draft>; invalid: Arbitrary<Draft> } {
  const params = (op.parameters ?? []).map(resolveParam);
  const opts = { components: doc.components.schemas, keyHints, knownValues: (name: string) => [...(seen.get(name) ?? [])] };
  const pathParams = params.filter((p) => p.in === 'path');
  const queryParams = params.filter((p) => p.in === 'query');
  const headerParams = params.filter((p) => p.in === 'header');
  const bodySchema = op.requestBody?.content?.['application/json']?.schema;

  const pathArb = fc.record(Object.fromEntries(pathParams.map((p) => [p.name, paramArbitrary(p, keyHints)])));
  const queryArb = fc.record(Object.fromEntries(queryParams.map((p) => [p.name, schemaArbitrary(p.schema, opts)])), {
    requiredKeys: queryParams.filter((p) => p.required).map((p) => p.name),
  });
  const headerArb = fc.record(
    Object.fromEntries(headerParams.map((p) => [p.name, (schemaArbitrary(p.schema, opts) as Arbitrary<string>).filter(printable)])),
    { requiredKeys: headerParams.filter((p) => p.required).map((p) => p.name) },
  ) as Arbitrary<Record<string, string>>;
  const bodyArb: Arbitrary<Draft['body']> = bodySchema
    ? schemaArbitrary(bodySchema, opts).map((value) => ({ value }))
    : fc.constant(undefined);

  const valid = fc.record({ params: pathArb, query: queryArb, headers: headerArb, body: bodyArb }).map((d): Draft => ({ kind: 'valid', ...d }));

  const anyText = fc.string({ minLength: 0, maxLength: 40 });
  const mutations: Array<Arbitrary<Draft>> = [];
  if (pathParams.length > 0) {
    mutations.push(
      fc.tuple(valid, fc.constantFrom(...pathParams.map((p) => p.name)), fc.oneof(anyText.filter((s) => s.length > 0), fc.integer(), fc.double())).map(([d, name, bad]) => ({ ...d, kind: 'invalid' as const, params: { ...d.params, [name]: bad } })),
    );
  }
  mutations.push(
    fc.tuple(valid, fc.string({ minLength: 1, maxLength: 12 }), anyText).map(([d, name, bad]) => ({ ...d, kind: 'invalid' as const, query: { ...d.query, [name]: bad } })),
  );
  if (queryParams.length > 0) {
    mutations.push(
      fc.tuple(valid, fc.constantFrom(...queryParams.map((p) => p.name)), fc.oneof(anyText, fc.constantFrom('-1', '0', '1e999', 'NaN', 'null', '[]', '99999999999999999999'))).map(([d, name, bad]) => ({ ...d, kind: 'invalid' as const, query: { ...d.query, [name]: bad } })),
    );
  }
  // A header the kernel reads, with any printable value; an Accept the API cannot answer.
  if (headerParams.length > 0) {
    mutations.push(
      fc.tuple(valid, fc.constantFrom(...headerParams.map((p) => p.name)), fc.string({ maxLength: 200 }).filter(printable)).map(([d, name, bad]) => ({ ...d, kind: 'invalid' as const, headers: { ...d.headers, [name]: bad } })),
    );
  }
  mutations.push(
    fc.tuple(valid, fc.constantFrom('text/html', 'application/xml', 'text/csv', 'image/png', '*/*;q=0', 'application/json;q=0')).map(([d, accept]) => ({ ...d, kind: 'invalid' as const, headers: { ...d.headers, accept } })),
  );
  if (method !== 'get') {
    // Past BODY_LIMIT (or the route's own bodyLimit), or not JSON: whether or not the route takes a body.
    mutations.push(
      valid.map((d) => ({ ...d, kind: 'invalid' as const, body: { raw: JSON.stringify({ padding: 'x'.repeat(OVERSIZED) }) } })),
      fc.tuple(valid, fc.constantFrom('text/plain', 'application/xml', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x')).map(([d, type]) => ({ ...d, kind: 'invalid' as const, body: { raw: 'a=1', type } })),
    );
  }
  if (bodySchema) {
    const replaceField = fc.tuple(valid, fc.jsonValue({ maxDepth: 2 })).map(([d, bad]) => {
      const body = d.body && 'value' in d.body && typeof d.body.value === 'object' && d.body.value !== null && !Array.isArray(d.body.value) ? { ...(d.body.value as Record<string, unknown>) } : {};
      const keys = Object.keys(body);
      if (keys.length > 0) body[keys[Math.abs(JSON.stringify(bad).length) % keys.length]!] = bad;
      return { ...d, kind: 'invalid' as const, body: { value: body } };
    });
    const dropRequired = valid.map((d) => {
      const body = d.body && 'value' in d.body && typeof d.body.value === 'object' && d.body.value !== null ? { ...(d.body.value as Record<string, unknown>) } : {};
      const required = (bodySchema.required as string[] | undefined) ?? [];
      if (required.length > 0) delete body[required[0]!];
      return { ...d, kind: 'invalid' as const, body: { value: body } };
    });
    mutations.push(
      replaceField,
      dropRequired,
      fc.tuple(valid, fc.jsonValue({ maxDepth: 3 })).map(([d, value]) => ({ ...d, kind: 'invalid' as const, body: { value } })),
      fc.tuple(valid, fc.string({ maxLength: 30 })).map(([d, raw]) => ({ ...d, kind: 'invalid' as const, body: { raw } })),
    );
  } else {
    // A body the route does not take.
    mutations.push(fc.tuple(valid, fc.jsonValue({ maxDepth: 2 })).map(([d, value]) => ({ ...d, kind: 'invalid' as const, body: { value } })));
  }
  return { valid, invalid: fc.oneof(...mutations) };
}

/** Credentials of an `auth` draft: none, a bad one, or a real key lacking the scope. */
const badCredentials: Arbitrary<Record<string, string>> = fc.oneof(
  fc.constant({}),
  fc.constant({ authorization: 'Bearer' }),
  fc.string({ maxLength: 80 }).filter(printable).map((s) => ({ authorization: `Bearer ${s}` })),
  fc.stringMatching(/^vhk_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}$/).map((s) => ({ 'x-api-key': s })),
  fc.string({ maxLength: 40 }).filter(printable).map((s) => ({ authorization: `Basic ${s}` })),
  fc.constant('narrow' as const).map(() => ({ authorization: `Bearer ${narrowKey}` })),
);

/**
 * Keeps the run from leaving the machine: any URL becomes a closed loopback port, any host
 * loopback (deliveries to it are refused by the kernel unless WEBHOOK_ALLOW_PRIVATE), and a
 * rate-limit rule's `max` is raised so no rule the fuzzer writes can limit the fuzzer itself
 * (a global rule of 1 request a day would answer every later request with 429, its own
 * deletion included).
 */
function confine(value: unknown, key = '', path = ''): unknown {
  if (typeof value === 'string') {
    if (/^https?:\/\//i.test(value)) return 'http://127.0.0.1:9/fuzz';
    if (key === 'host') return '127.0.0.1';
    return value;
  }
  if (typeof value === 'number' && key === 'max' && path.startsWith('/system/rate-limits')) return Math.max(value, 100_000_000);
  if (Array.isArray(value)) return value.map((v) => confine(v, key, path));
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, confine(v, k, path)]));
}

/**
 * Requests that would take the fuzzer's own access away are not sent: any write to the admin's
 * own API client (suspending it, narrowing its scopes, giving it a quota, deleting it, revoking
 * or rotating its keys), and a security action naming the admin's client or key. Everything
 * else destructive is allowed and undone after the request (`restoreState`).
 */
function takesOwnAccess(method: string, path: string, d: Draft): boolean {
  if (method !== 'GET' && path.startsWith('/system/api-clients/{id}') && String(d.params.id) === adminClientId) return true;
  if (path === '/system/security/actions' && d.body && 'value' in d.body) {
    const params = (d.body.value as { params?: Record<string, unknown> } | null)?.params;
    if (params && (String(params.clientId) === adminClientId || String(params.keyId) === adminKeyId)) return true;
  }
  return false;
}

function toInject(method: string, path: string, d: Draft, credentials: Record<string, string>): InjectOptions {
  const url = path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(String(d.params[name])));
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(d.query)) {
    if (v === null || v === undefined) continue;
    for (const item of Array.isArray(v) ? v : [v]) search.append(k, typeof item === 'object' ? JSON.stringify(item) : String(item));
  }
  const qs = search.toString();
  const headers: Record<string, string> = { ...d.headers, ...credentials };
  let payload: string | undefined;
  if (d.body) {
    payload = 'raw' in d.body ? d.body.raw : JSON.stringify(confine(d.body.value, '', path));
    headers['content-type'] = ('type' in d.body && d.body.type) || 'application/json';
  }
  return { method: method as InjectOptions['method'], url: qs ? `${url}?${qs}` : url, headers, ...(payload === undefined ? {} : { payload }) };
}

// ---------------------------------------------------------------------------------------------
// Checking an answer against the document.

const findings = new Map<string, Finding>();
function report(f: Finding): void {
  const key = `${f.operation} | ${f.what} | ${f.status}`;
  if (!findings.has(key)) findings.set(key, f);
}

/** Answers by status class, and how many bodies were validated against a schema. */
const answered: Record<string, number> = {};
let validated = 0;

function check(label: string, op: Operation, req: InjectOptions, res: LightMyRequestResponse): void {
  const status = res.statusCode;
  const statusClass = `${String(status)[0]}xx`;
  answered[statusClass] = (answered[statusClass] ?? 0) + 1;
  const shown = `${req.method} ${req.url}${req.payload ? ` ${String(req.payload).slice(0, 160)}` : ''}`;
  const base = { operation: label, status, request: shown };
  if (status >= 500) report({ ...base, what: 'server error', detail: res.body.slice(0, 300) });
  const declared = op.responses?.[String(status)] ?? op.responses?.[`${String(status)[0]}XX`] ?? op.responses?.default;
  if (!declared) {
    report({ ...base, what: 'status not declared', detail: res.body.slice(0, 300) });
    return;
  }
  if (status === 204 || status === 304 || req.method === 'HEAD') {
    if (res.body !== '') report({ ...base, what: 'body on a no-content answer', detail: res.body.slice(0, 200) });
    return;
  }
  const mediaType = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
  const content = declared.content?.[mediaType];
  if (!content) {
    report({ ...base, what: `content type ${mediaType || '(none)'} not declared`, detail: `declared: ${Object.keys(declared.content ?? {}).join(', ')}` });
    return;
  }
  if (!/json$/.test(mediaType) || !content.schema) return;
  let body: unknown;
  try {
    body = JSON.parse(res.body);
  } catch {
    report({ ...base, what: 'body is not JSON', detail: res.body.slice(0, 200) });
    return;
  }
  validated++;
  const error = responseValidator(`${label} ${status} ${mediaType}`, content.schema)(body);
  if (error) report({ ...base, what: 'answer does not match its schema', detail: `${error} | body: ${res.body.slice(0, 300)}` });
  if (status >= 200 && status < 300) remember(body);
}

// ---------------------------------------------------------------------------------------------
// Undoing what a write may have switched on for the whole instance.

let restores = 0;
/**
 * After every successful write (whatever its route: a security action's execution or an import
 * may switch modes too): maintenance and read-only mode back to normal, the change freeze off,
 * windows that are running or about to start deleted. The maintenance endpoints stay open to
 * an admin in every mode, so this always gets through. Blocklist rules need no undoing (the
 * always-allow list), rate-limit rules are kept harmless by `confine`, and the admin's own
 * client and key are never written (`takesOwnAccess`).
 */
async function restoreState(): Promise<void> {
  const admin = { authorization: `Bearer ${t.adminKey}` };
  const res = await t.app.inject({ method: 'GET', url: '/system/maintenance', headers: admin });
  if (res.statusCode !== 200) throw new Error(`the fuzzer lost its admin access: ${res.statusCode} ${res.body.slice(0, 200)}`);
  const m = res.json<{ mode: string; effective: { mode: string }; freeze: { enabled: boolean }; activeWindow: unknown; nextWindow: unknown }>();
  const reason = 'fuzz: restore';
  if (m.freeze.enabled) {
    restores++;
    await t.app.inject({ method: 'POST', url: '/system/maintenance/freeze', headers: admin, payload: { enabled: false, reason } });
  }
  if (m.mode !== 'normal') {
    restores++;
    await t.app.inject({ method: 'POST', url: '/system/maintenance/state', headers: admin, payload: { mode: 'normal', reason } });
  }
  if (m.activeWindow || m.nextWindow) {
    for (const status of ['active', 'upcoming']) {
      const list = await t.app.inject({ method: 'GET', url: `/system/maintenance/windows?status=${status}&limit=100`, headers: admin });
      for (const w of list.json<{ items: Array<{ id: number }> }>().items) {
        restores++;
        await t.app.inject({ method: 'DELETE', url: `/system/maintenance/windows/${w.id}`, headers: admin });
      }
    }
  }
  const after = (await t.app.inject({ method: 'GET', url: '/system/maintenance', headers: admin })).json<{ effective: { mode: string }; freeze: { enabled: boolean } }>();
  if (after.effective.mode !== 'normal' || after.freeze.enabled) throw new Error(`could not restore normal mode: ${JSON.stringify(after)}`);
}

// ---------------------------------------------------------------------------------------------

/**
 * Lists first (their answers name what exists: datasets, categories, problem kinds), then
 * creates, then reads of one thing, changes and actions on existing things, deletes last.
 */
function rank(method: string, path: string): number {
  if (method === 'get' && !path.includes('{')) return 0;
  if (method === 'post' && !path.includes('{')) return 1;
  if (method === 'get') return 2;
  if (method === 'put' || method === 'patch') return 3;
  if (method === 'post') return 4;
  return 5;
}

function seedOf(label: string): number {
  let h = SEED | 0;
  for (let i = 0; i < label.length; i++) h = (Math.imul(h, 31) + label.charCodeAt(i)) | 0;
  return h;
}

describe('fuzzing every operation of the OpenAPI document', () => {
  it(
    'answers generated valid and invalid requests with no 5xx, only declared statuses and content types, and bodies matching their schemas',
    async () => {
      const started = Date.now();
      const keyHints = propertyNames();
      const operations = Object.entries(doc.paths)
        .filter(([path]) => !path.startsWith('/docs'))
        .flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ method, path, op, label: `${method.toUpperCase()} ${path}` })))
        .sort((a, b) => rank(a.method, a.path) - rank(b.method, b.path))
        .filter((o) => !ONLY || o.label.includes(ONLY));
      expect(operations.length).toBeGreaterThan(ONLY ? 0 : 100);

      let sent = 0;
      let skipped = 0;
      /** Operations that answered 2xx at least once: the rest were only seen refusing. */
      const succeeded = new Set<string>();
      const notFuzzed: string[] = [];
      for (const { method, path, op, label } of operations) {
        if (Date.now() - started > BUDGET_MS) {
          notFuzzed.push(label);
          continue;
        }
        const opStarted = Date.now();
        const { valid, invalid } = draftArbitrary(method, op, keyHints);
        const seed = seedOf(label);
        const drafts: Array<{ draft: Draft; credentials: Record<string, string> }> = [
          ...fc.sample(valid, { seed, numRuns: RUNS }).map((draft) => ({ draft, credentials: { authorization: `Bearer ${t.adminKey}` } })),
          ...fc.sample(invalid, { seed: seed + 1, numRuns: RUNS }).map((draft) => ({ draft, credentials: { authorization: `Bearer ${t.adminKey}` } })),
          ...fc.sample(fc.tuple(valid, badCredentials), { seed: seed + 2, numRuns: Math.ceil(RUNS / 2) }).map(([draft, credentials]) => ({ draft: { ...draft, kind: 'auth' as const }, credentials })),
        ];
        const generated = Date.now();
        for (const { draft, credentials } of drafts) {
          if (takesOwnAccess(method.toUpperCase(), path, draft)) {
            skipped++;
            continue;
          }
          const req = toInject(method.toUpperCase(), path, draft, credentials);
          let res: LightMyRequestResponse;
          const sentAt = Date.now();
          if (VERBOSE > 1) console.log(`  > ${req.method} ${req.url} ${String(req.payload ?? '').slice(0, 500)}`);
          try {
            res = await t.app.inject(req);
            if (VERBOSE > 0 && Date.now() - sentAt > 1000) console.log(`  slow: ${Date.now() - sentAt} ms ${req.method} ${req.url}`);
          } catch (err) {
            report({ operation: label, what: 'no answer', status: 0, request: `${req.method} ${req.url}`, detail: String(err) });
            continue;
          }
          sent++;
          if (VERBOSE > 1) console.log(`  < ${res.statusCode} ${res.body.slice(0, 300)}`);
          if (res.statusCode < 300) succeeded.add(label);
          check(label, op, req, res);
          if (method !== 'get' && res.statusCode < 300) await restoreState();
        }
        if (VERBOSE > 0) console.log(`${label}: ${drafts.length} drafts in ${Date.now() - opStarted} ms (generated in ${generated - opStarted} ms)`);
      }

      // Still up and ready after all of it.
      expect((await t.app.inject({ method: 'GET', url: '/live' })).statusCode).toBe(200);
      expect((await t.app.inject({ method: 'GET', url: '/ready' })).statusCode).toBe(200);

      const elapsed = ((Date.now() - started) / 1000).toFixed(1);
      console.log(
        `openapi fuzz: seed=${SEED} runs=${RUNS} operations=${operations.length - notFuzzed.length}/${operations.length} requests=${sent} skipped=${skipped} restores=${restores} findings=${findings.size} operations-with-2xx=${succeeded.size} answers=${JSON.stringify(answered)} schema-checked=${validated} time=${elapsed}s` +
          (notFuzzed.length > 0 ? ` budget of ${BUDGET_MS} ms ran out before: ${notFuzzed.join(', ')}` : ''),
      );
      if (VERBOSE > 0) console.log(`never 2xx: ${operations.filter((o) => !succeeded.has(o.label)).map((o) => o.label).join(', ')}`);
      const list = [...findings.values()].map((f) => `${f.operation}: ${f.what} (${f.status})\n    ${f.request}\n    ${f.detail}`);
      expect(list, `reproduce with FUZZ_SEED=${SEED}`).toEqual([]);
    },
    BUDGET_MS + 120_000,
  );
});

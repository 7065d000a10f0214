import { randomFillSync } from 'node:crypto';

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context-1/, the Recommendation, plus the
 * random-trace-id flag of Level 2, https://www.w3.org/TR/trace-context-2/#random-trace-id-flag):
 * parsing and formatting of `traceparent` / `tracestate`, id generation and the sampling
 * decision. No Fastify here.
 */
export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** 16 lowercase hex digits: this span. */
  readonly spanId: string;
  /** The caller's span (from `traceparent`), or the span this one was started under; null for a new trace. */
  readonly parentSpanId: string | null;
  readonly sampled: boolean;
  /**
   * Trace flag 0x02 (Level 2): at least the right-most 7 bytes of the trace id are random. Set
   * on the traces this kernel starts (its ids are random); kept as received on a continued
   * trace, since it describes the trace id, not this hop.
   */
  readonly randomTraceId: boolean;
  /** The caller's `tracestate`, normalised (see parseTracestate), passed on unchanged; or null. */
  readonly traceState: string | null;
}

export interface InboundTrace {
  traceId: string;
  parentId: string;
  sampled: boolean;
  randomTraceId: boolean;
}

export interface PropagationHeaders {
  traceparent: string;
  tracestate?: string;
}

const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);
const TRACEPARENT_LENGTH = 55;
const VERSION = /^[0-9a-f]{2}$/;
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const FLAG_SAMPLED = 0x01;
const FLAG_RANDOM = 0x02;

/** RFC 9110 field values carry no leading or trailing optional whitespace (spaces and tabs). */
function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value[start] === ' ' || value[start] === '\t')) start++;
  while (end > start && (value[end - 1] === ' ' || value[end - 1] === '\t')) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

/**
 * `version-trace-id-parent-id-trace-flags`, lowercase hex. Version `00` is exactly 55
 * characters; a higher version may append fields after a dash and is read as 00 (the first 55
 * characters); version `ff`, uppercase hex and all-zero ids are invalid.
 */
export function parseTraceparent(header: string | undefined): InboundTrace | null {
  if (header === undefined) return null;
  const value = trimOws(header);
  if (value.length < TRACEPARENT_LENGTH) return null;
  const version = value.slice(0, 2);
  if (!VERSION.test(version) || version === 'ff') return null;
  if (value.length > TRACEPARENT_LENGTH && (version === '00' || value[TRACEPARENT_LENGTH] !== '-')) return null;
  const head = value.length === TRACEPARENT_LENGTH ? value : value.slice(0, TRACEPARENT_LENGTH);
  if (!TRACEPARENT.test(head)) return null;
  const traceId = head.slice(3, 35);
  const parentId = head.slice(36, 52);
  if (traceId === ZERO_TRACE_ID || parentId === ZERO_SPAN_ID) return null;
  const flags = parseInt(head.slice(53, 55), 16);
  return { traceId, parentId, sampled: (flags & FLAG_SAMPLED) !== 0, randomTraceId: (flags & FLAG_RANDOM) !== 0 };
}

/** The trace-flags a traceparent carries: sampled and random; the other bits are reserved and sent as zero. */
const traceFlags = (sampled: boolean, random: boolean): string => `0${(sampled ? FLAG_SAMPLED : 0) | (random ? FLAG_RANDOM : 0)}`;

export const formatTraceparent = (context: Pick<TraceContext, 'traceId' | 'spanId' | 'sampled' | 'randomTraceId'>): string =>
  `00-${context.traceId}-${context.spanId}-${traceFlags(context.sampled, context.randomTraceId)}`;

// tracestate (https://www.w3.org/TR/trace-context-1/#tracestate-header)

/** The most list members a tracestate may hold. */
export const TRACESTATE_MAX_MEMBERS = 32;
/** What this kernel passes on at most (the spec's floor, 512 characters, commas included). */
export const TRACESTATE_MAX = 512;
/** When a tracestate has to be cut, members longer than this go first. */
const TRACESTATE_LONG_MEMBER = 128;

/**
 * One list member, `key=value`:
 * - key = simple-key / multi-tenant-key; simple-key = lcalpha 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/");
 *   multi-tenant-key = tenant-id "@" system-id, tenant-id = (lcalpha / DIGIT) 0*240(...),
 *   system-id = lcalpha 0*13(...);
 * - value = 0*255(chr) nblk-chr: printable ASCII but `,` and `=`, not ending in a space.
 */
const KEY_CHAR = '[a-z0-9_*/-]';
const SIMPLE_KEY = `[a-z]${KEY_CHAR}{0,255}`;
const MULTI_TENANT_KEY = `[a-z0-9]${KEY_CHAR}{0,240}@[a-z]${KEY_CHAR}{0,13}`;
const VALUE_CHAR = '[\\x20-\\x2b\\x2d-\\x3c\\x3e-\\x7e]';
const VALUE_LAST = '[\\x21-\\x2b\\x2d-\\x3c\\x3e-\\x7e]';
const LIST_MEMBER = new RegExp(`^(${SIMPLE_KEY}|${MULTI_TENANT_KEY})=${VALUE_CHAR}{0,255}${VALUE_LAST}$`);

/**
 * The tracestate to pass on, or null. What this kernel chose where the spec leaves a choice:
 * - Several `tracestate` fields are one list, joined with commas (RFC 9110 §5.3).
 * - Spaces and tabs around members and empty members are dropped; members are re-joined with
 *   a bare comma. Members themselves are passed on as received (a value's leading spaces kept).
 * - A member that breaks the grammar, a key that appears twice, or more than 32 members:
 *   the whole tracestate is discarded (nothing half-understood is forwarded).
 * - Over 512 characters: whole members are removed, those over 128 characters first (from the
 *   right), then from the right, until it fits.
 */
export function parseTracestate(header: string | readonly string[] | undefined): string | null {
  if (header === undefined) return null;
  const combined = typeof header === 'string' ? header : header.join(',');
  const members: string[] = [];
  const keys = new Set<string>();
  for (const raw of combined.split(',')) {
    const member = trimOws(raw);
    if (member === '') continue;
    const match = LIST_MEMBER.exec(member);
    if (!match) return null;
    const key = match[1]!;
    if (keys.has(key)) return null;
    keys.add(key);
    if (members.push(member) > TRACESTATE_MAX_MEMBERS) return null;
  }
  if (members.length === 0) return null;
  return fitTracestate(members).join(',');
}

function fitTracestate(members: string[]): string[] {
  let length = members.reduce((n, m) => n + m.length, members.length - 1);
  if (length <= TRACESTATE_MAX) return members;
  const kept = [...members];
  for (let i = kept.length - 1; i >= 0 && length > TRACESTATE_MAX; i--) {
    if (kept[i]!.length > TRACESTATE_LONG_MEMBER) {
      length -= kept[i]!.length + 1;
      kept.splice(i, 1);
    }
  }
  while (length > TRACESTATE_MAX && kept.length > 0) length -= kept.pop()!.length + 1;
  return kept;
}

export function propagationHeaders(context: TraceContext): PropagationHeaders {
  const traceparent = formatTraceparent(context);
  return context.traceState === null ? { traceparent } : { traceparent, tracestate: context.traceState };
}

// Ids come from a pool of random bytes refilled 4 KiB at a time: one small string per id on
// the hot path instead of a Buffer allocation and a crypto call per request.
const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolOffset = POOL_SIZE;

function randomHex(bytes: number): string {
  if (poolOffset + bytes > POOL_SIZE) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const hex = pool.toString('hex', poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return hex;
}

export function newSpanId(): string {
  let id = randomHex(8);
  while (id === ZERO_SPAN_ID) id = randomHex(8);
  return id;
}

export function newTraceId(): string {
  let id = randomHex(16);
  while (id === ZERO_TRACE_ID) id = randomHex(16);
  return id;
}

/**
 * Sampling decided from the trace id alone, so every instance (and every service using the
 * same rule) keeps or drops the same traces: the rightmost 52 bits of the id (the random part
 * in W3C Trace Context Level 2) compared with rate × 2^52. Raising the rate only adds traces.
 */
export function createSampler(rate: number): (traceId: string) => boolean {
  if (rate >= 1) return () => true;
  if (rate <= 0) return () => false;
  const threshold = rate * 2 ** 52;
  return (traceId) => parseInt(traceId.slice(19), 16) < threshold;
}

export interface TraceContextFactory {
  /**
   * The server span of an inbound request: continues a valid `traceparent` (with its
   * `tracestate`), else starts a trace (and, as the spec requires, does not read `tracestate`).
   */
  fromHeaders(traceparent: string | undefined, tracestate: string | readonly string[] | undefined): TraceContext;
  /** A span under `parent`, or the first span of a new trace when there is none. */
  child(parent: TraceContext | null): TraceContext;
}

export function createTraceContextFactory(sampleRate: number): TraceContextFactory {
  const sampler = createSampler(sampleRate);
  const newTrace = (): TraceContext => {
    const traceId = newTraceId();
    return { traceId, spanId: newSpanId(), parentSpanId: null, sampled: sampler(traceId), randomTraceId: true, traceState: null };
  };
  return {
    fromHeaders(traceparent, tracestate) {
      const inbound = parseTraceparent(traceparent);
      if (!inbound) return newTrace();
      return {
        traceId: inbound.traceId,
        spanId: newSpanId(),
        parentSpanId: inbound.parentId,
        sampled: inbound.sampled,
        randomTraceId: inbound.randomTraceId,
        traceState: parseTracestate(tracestate),
      };
    },
    child(parent) {
      if (!parent) return newTrace();
      return { ...parent, spanId: newSpanId(), parentSpanId: parent.spanId };
    },
  };
}

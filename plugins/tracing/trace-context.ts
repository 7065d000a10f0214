import { randomFillSync } from 'node:crypto';

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): parsing and formatting of
 * `traceparent` / `tracestate`, id generation and the sampling decision. No Fastify here.
 */
export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** 16 lowercase hex digits: this span. */
  readonly spanId: string;
  /** The caller's span (from `traceparent`), or the span this one was started under; null for a new trace. */
  readonly parentSpanId: string | null;
  readonly sampled: boolean;
  /** Vendor data passed through unchanged (`tracestate`), or null. */
  readonly traceState: string | null;
}

export interface InboundTrace {
  traceId: string;
  parentId: string;
  sampled: boolean;
}

export interface PropagationHeaders {
  traceparent: string;
  tracestate?: string;
}

const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);
const TRACEPARENT_LENGTH = 55;
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
/** Vendors must pass on at least 512 characters of tracestate; a longer one is dropped, not cut mid-entry. */
export const TRACESTATE_MAX = 512;
const TRACESTATE = /^[\x20-\x7e]*$/;

/**
 * Version `00` is exactly 55 characters; a higher version may append fields after a
 * dash and is parsed as 00; version `ff`, uppercase hex and all-zero ids are invalid.
 */
export function parseTraceparent(header: string | undefined): InboundTrace | null {
  if (header === undefined || header.length < TRACEPARENT_LENGTH) return null;
  const version = header.slice(0, 2);
  if (version === 'ff') return null;
  if (header.length > TRACEPARENT_LENGTH && (version === '00' || header[TRACEPARENT_LENGTH] !== '-')) return null;
  const head = header.length === TRACEPARENT_LENGTH ? header : header.slice(0, TRACEPARENT_LENGTH);
  if (!TRACEPARENT.test(head)) return null;
  const traceId = head.slice(3, 35);
  const parentId = head.slice(36, 52);
  if (traceId === ZERO_TRACE_ID || parentId === ZERO_SPAN_ID) return null;
  return { traceId, parentId, sampled: (parseInt(head.slice(53, 55), 16) & 1) === 1 };
}

/** A tracestate worth forwarding: printable ASCII of at most 512 characters; anything else is dropped. */
export function acceptTracestate(header: string | undefined): string | null {
  if (header === undefined || header.length === 0 || header.length > TRACESTATE_MAX) return null;
  return TRACESTATE.test(header) ? header : null;
}

export const formatTraceparent = (traceId: string, spanId: string, sampled: boolean): string =>
  `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;

export function propagationHeaders(context: TraceContext): PropagationHeaders {
  const traceparent = formatTraceparent(context.traceId, context.spanId, context.sampled);
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
  /** The server span of an inbound request: continues a valid `traceparent`, else starts a trace. */
  fromHeaders(traceparent: string | undefined, tracestate: string | undefined): TraceContext;
  /** A span under `parent`, or the first span of a new trace when there is none. */
  child(parent: TraceContext | null): TraceContext;
}

export function createTraceContextFactory(sampleRate: number): TraceContextFactory {
  const sampler = createSampler(sampleRate);
  const newTrace = (): TraceContext => {
    const traceId = newTraceId();
    return { traceId, spanId: newSpanId(), parentSpanId: null, sampled: sampler(traceId), traceState: null };
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
        traceState: acceptTracestate(tracestate),
      };
    },
    child(parent) {
      if (!parent) return newTrace();
      return { traceId: parent.traceId, spanId: newSpanId(), parentSpanId: parent.spanId, sampled: parent.sampled, traceState: parent.traceState };
    },
  };
}

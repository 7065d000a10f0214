import { spawn } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { LookupAddress } from 'node:dns';
import type { AddressInfo } from 'node:net';
import { and, eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { adminOperations } from '../../src/audit/table.js';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';
import { cleanEnv, projectRoot } from '../../test/lifecycle/server-process.js';
import { decide } from './jobs.js';
import { guardedLookup, refusedRange, type ResolveAll } from './outbound.js';
import { MAX_ATTEMPTS, RETRY_SCHEDULE_MS, retryDelayMs, subscribes } from './service.js';
import { secretKey, signature } from './standard-webhooks.js';
import { notificationChannels, notificationOutbox } from './table.js';

const ROOT = '/system/notify';
const CHANNELS = `${ROOT}/channels`;
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-3]$/; // 02: random trace id (Trace Context Level 2)

// Two secrets, as during a rotation: the old and the new one both sign every message.
const SECRET_A = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
const SECRET_B = `whsec_${Buffer.alloc(32, 2).toString('base64')}`;
process.env.NOTIFY_SECRET_TEST_A = SECRET_A;
process.env.NOTIFY_SECRET_TEST_B = SECRET_B;
process.env.NOTIFY_SECRET_BROKEN = 'not-a-whsec-secret';
process.env.NOTIFY_SECRET_SMS_TOKEN = 'sms-provider-token-123';

/**
 * A receiver written from the Standard Webhooks spec, independent of the sender's code: the
 * signed content is `id.timestamp.body`, the key is the base64 after `whsec_`, and any one of the
 * space-separated `v1,` signatures matching is enough. Timestamps older than 5 minutes are refused.
 */
function verifyStandardWebhook(secret: string, headers: Record<string, string | undefined>, body: string, nowSeconds = Math.floor(Date.now() / 1000)): boolean {
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const header = headers['webhook-signature'];
  if (!id || !timestamp || !header) return false;
  if (Math.abs(nowSeconds - Number(timestamp)) > 300) return false;
  const key = Buffer.from(secret.split('_')[1]!, 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest();
  return header.split(' ').some((entry) => {
    const [version, sig] = entry.split(',');
    if (version !== 'v1' || !sig) return false;
    const given = Buffer.from(sig, 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** The receiving end: a real HTTP server on loopback, one path per kind of answer. */
interface Sink {
  url: string;
  received: Received[];
  close(): Promise<void>;
}

async function startSink(): Promise<Sink> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      const path = req.url ?? '/';
      received.push({ path, headers: req.headers, body });
      if (path.startsWith('/ok') || path.startsWith('/sms')) return void res.writeHead(204).end();
      if (path.startsWith('/fail')) return void res.writeHead(500).end('broken');
      if (path.startsWith('/busy')) return void res.writeHead(503, { 'retry-after': '3600' }).end();
      if (path.startsWith('/gone')) return void res.writeHead(410).end();
      if (path.startsWith('/redirect')) return void res.writeHead(302, { location: '/ok/redirected' }).end();
      if (path.startsWith('/hang')) return; // never answers: the delivery's timeout ends it
      if (path.startsWith('/slow')) return void setTimeout(() => res.writeHead(204).end(), 25);
      if (path.startsWith('/trickle')) {
        // 200 at once, then the body one byte every 100 ms: the receiver has the message already.
        res.writeHead(200, { 'content-type': 'text/plain' });
        let n = 0;
        const timer = setInterval(() => {
          res.write('.');
          if (++n === 8) {
            clearInterval(timer);
            res.end();
          }
        }, 100);
        res.on('close', () => clearInterval(timer));
        return;
      }
      res.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let t: TestApp;
let sink: Sink;
let seq = 0;

beforeAll(async () => {
  sink = await startSink();
  t = await createTestApp({ WEBHOOK_ALLOW_PRIVATE: true });
});
afterAll(async () => {
  await t?.close();
  await sink?.close();
});

async function createChannel(body: Record<string, unknown>): Promise<{ id: number; name: string }> {
  const res = await t.inject({ method: 'POST', url: CHANNELS, payload: { name: `ch-${++seq}`, ...body } });
  expect(res.statusCode, res.body).toBe(201);
  return res.json();
}

const webhook = (path: string, events: string[] = ['test.*'], extra: Record<string, unknown> = {}) =>
  createChannel({ type: 'webhook', events, config: { url: `${sink.url}${path}`, secretEnvs: ['NOTIFY_SECRET_TEST_A'], ...extra } });

async function notify(type: string, payload: Record<string, unknown> = {}, channelIds?: number[]) {
  const res = await t.inject({ method: 'POST', url: ROOT, payload: { type, payload, ...(channelIds && { channelIds }) } });
  expect(res.statusCode, res.body).toBe(202);
  return res.json<{ eventId: string; items: Array<{ id: number; messageId: string; channelId: number }> }>();
}

const row = async (id: number) => (await t.app.db.select().from(notificationOutbox).where(eq(notificationOutbox.id, id)))[0]!;
const receivedFor = (messageId: string) => sink.received.filter((r) => r.headers['webhook-id'] === messageId);
const drain = (app: FastifyInstance = t.app) => app.notifications.dispatcher.drain();

describe('Standard Webhooks signing', () => {
  it("reproduces the spec's published example", () => {
    // https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const body = '{"test": 2432232314}';
    const sig = signature(secretKey(secret), 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, body);
    expect(sig).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
    const headers = { 'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek', 'webhook-timestamp': '1614265330', 'webhook-signature': sig };
    expect(verifyStandardWebhook(secret, headers, body, 1614265330)).toBe(true);
    expect(verifyStandardWebhook(secret, headers, '{"test": 2432232315}', 1614265330)).toBe(false);
  });

  it('refuses secrets that are not whsec_ base64 of 24 to 64 bytes', () => {
    for (const bad of ['', 'whsec_', 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'whsec_!!!!', `whsec_${Buffer.alloc(8).toString('base64')}`]) {
      expect(() => secretKey(bad), bad).toThrow(/whsec_/);
    }
  });

  it('delivers a webhook the independent receiver verifies, with every rotation secret, a stable id and a traceparent', async () => {
    const ch = await createChannel({ type: 'webhook', events: ['test.signed'], config: { url: `${sink.url}/ok/signed`, secretEnvs: ['NOTIFY_SECRET_TEST_A', 'NOTIFY_SECRET_TEST_B'] } });
    const { items } = await notify('test.signed', { answer: 42 }, [ch.id]);
    expect(await drain()).toBeGreaterThanOrEqual(1);
    const [got] = receivedFor(items[0]!.messageId);
    expect(got).toBeDefined();
    const headers = got!.headers as Record<string, string>;
    expect(headers['webhook-signature']!.split(' ')).toHaveLength(2);
    expect(verifyStandardWebhook(SECRET_A, headers, got!.body)).toBe(true);
    expect(verifyStandardWebhook(SECRET_B, headers, got!.body)).toBe(true);
    expect(verifyStandardWebhook(`whsec_${Buffer.alloc(32, 3).toString('base64')}`, headers, got!.body)).toBe(false);
    expect(headers.traceparent).toMatch(TRACEPARENT);
    expect(headers['content-type']).toBe('application/json');
    expect(JSON.parse(got!.body)).toMatchObject({ type: 'test.signed', data: { answer: 42 } });
    expect(await row(items[0]!.id)).toMatchObject({ status: 'delivered', attempts: 1, lastStatusCode: 204, lockedBy: null });
  });
});

describe('channels', () => {
  it('creates (201, Location, audited), reads, lists, changes and deletes a channel', async () => {
    const res = await t.inject({
      method: 'POST',
      url: CHANNELS,
      payload: { name: 'ops-hook', type: 'webhook', events: ['maintenance.*'], config: { url: `${sink.url}/ok`, secretEnvs: ['NOTIFY_SECRET_TEST_A'], timeoutMs: 2000 } },
    });
    expect(res.statusCode, res.body).toBe(201);
    const ch = res.json();
    expect(res.headers.location).toBe(`${CHANNELS}/${ch.id}`);
    expect(ch).toMatchObject({ name: 'ops-hook', type: 'webhook', enabled: true, disabledReason: null, config: { secretEnvs: ['NOTIFY_SECRET_TEST_A'] } });
    expect(res.body).not.toContain(SECRET_A.slice(6));
    const audit = await t.app.db.select().from(adminOperations).where(and(eq(adminOperations.operation, 'notify-channel.create'), eq(adminOperations.targetId, String(ch.id))));
    expect(audit).toHaveLength(1);

    expect((await t.inject({ method: 'GET', url: `${CHANNELS}/${ch.id}` })).json()).toEqual(ch);
    const patched = await t.inject({ method: 'PATCH', url: `${CHANNELS}/${ch.id}`, payload: { events: ['maintenance.changed', 'freeze.changed'], enabled: false } });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json()).toMatchObject({ events: ['maintenance.changed', 'freeze.changed'], enabled: false });

    const page1 = await t.inject({ method: 'GET', url: `${CHANNELS}?limit=1` });
    expect(page1.json().items).toHaveLength(1);
    const page2 = await t.inject({ method: 'GET', url: `${CHANNELS}?limit=1&cursor=${page1.json().nextCursor}` });
    expect(page2.json().items[0].id).toBeGreaterThan(page1.json().items[0].id);
    const disabled = await t.inject({ method: 'GET', url: `${CHANNELS}?enabled=false&type=webhook` });
    expect(disabled.json().items.map((c: { id: number }) => c.id)).toContain(ch.id);

    expect((await t.inject({ method: 'DELETE', url: `${CHANNELS}/${ch.id}` })).statusCode).toBe(204);
    expect((await t.inject({ method: 'GET', url: `${CHANNELS}/${ch.id}` })).statusCode).toBe(404);
  });

  it('answers 400 for unknown fields, a config of another type, secret names outside NOTIFY_SECRET_, long names, credentials in the URL', async () => {
    const base = { name: 'bad', type: 'webhook', events: ['x.y'], config: { url: `${sink.url}/ok`, secretEnvs: ['NOTIFY_SECRET_TEST_A'] } };
    const cases: Array<[string, Record<string, unknown>]> = [
      ['unknown field', { ...base, colour: 'red' }],
      ['unknown config field', { ...base, config: { ...base.config, secret: 'whsec_x' } }],
      ['email config on a webhook', { ...base, config: { host: 'smtp.example.com', port: 25, from: 'a@example.com', to: ['b@example.com'] } }],
      ['secret name outside the prefix', { ...base, config: { ...base.config, secretEnvs: ['DATABASE_URL'] } }],
      ['long name', { ...base, name: 'n'.repeat(101) }],
      ['bad event pattern', { ...base, events: ['Not An Event'] }],
      ['no events', { ...base, events: [] }],
      ['credentials in the URL', { ...base, config: { ...base.config, url: 'http://user:pw@example.com/hook' } }],
      ['not http', { ...base, config: { ...base.config, url: 'ftp://example.com/hook' } }],
      ['bad type', { ...base, type: 'pigeon' }],
    ];
    for (const [what, payload] of cases) {
      const res = await t.inject({ method: 'POST', url: CHANNELS, payload });
      expect(res.statusCode, `${what}: ${res.body}`).toBe(400);
      expect(res.json().type).toMatch(/validation-failed|malformed-request/);
    }
  });

  it('answers 409 for a duplicate name, 404 for a missing channel, 400 for bad ids, cursors and empty patches', async () => {
    const ch = await webhook('/ok');
    const dup = await t.inject({ method: 'POST', url: CHANNELS, payload: { name: ch.name, type: 'webhook', events: ['x.y'], config: { url: `${sink.url}/ok`, secretEnvs: ['NOTIFY_SECRET_TEST_A'] } } });
    expect(dup.statusCode).toBe(409);
    expect(dup.json().type).toBe('/problems/conflict');
    const other = await webhook('/ok');
    expect((await t.inject({ method: 'PATCH', url: `${CHANNELS}/${other.id}`, payload: { name: ch.name } })).statusCode).toBe(409);

    for (const [method, url] of [['GET', `${CHANNELS}/999999`], ['PATCH', `${CHANNELS}/999999`], ['DELETE', `${CHANNELS}/999999`], ['POST', `${CHANNELS}/999999/test`]] as const) {
      const res = await t.inject({ method, url, ...(method === 'PATCH' && { payload: { enabled: true } }) });
      expect(res.statusCode, `${method} ${url}`).toBe(404);
    }
    expect((await t.inject({ method: 'GET', url: `${CHANNELS}/abc` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${CHANNELS}/0` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${CHANNELS}?cursor=bm9wZQ` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'PATCH', url: `${CHANNELS}/${ch.id}`, payload: {} })).statusCode).toBe(400);
    // The type is fixed; a config of another type is refused against the stored type.
    const wrong = await t.inject({ method: 'PATCH', url: `${CHANNELS}/${ch.id}`, payload: { config: { url: `${sink.url}/sms`, to: ['+15551234567'] } } });
    expect(wrong.statusCode, wrong.body).toBe(400);
  });

  it('needs notify:read to read and notify:write to change', async () => {
    const reader = await t.keyWith(['notify:read']);
    const auth = { authorization: `Bearer ${reader.token}` };
    expect((await t.inject({ method: 'GET', url: CHANNELS, headers: auth })).statusCode).toBe(200);
    expect((await t.inject({ method: 'GET', url: ROOT, headers: auth })).statusCode).toBe(200);
    expect((await t.inject({ method: 'POST', url: ROOT, headers: auth, payload: { type: 'test.x' } })).statusCode).toBe(403);
    expect((await t.app.inject({ method: 'GET', url: CHANNELS })).statusCode).toBe(401);
  });

  it('tests a channel on demand: delivered now, outside the outbox, audited', async () => {
    const ch = await webhook('/ok/test-endpoint');
    const before = sink.received.length;
    const res = await t.inject({ method: 'POST', url: `${CHANNELS}/${ch.id}/test` });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ ok: true, statusCode: 204, error: null });
    const got = sink.received.slice(before).find((r) => r.path === '/ok/test-endpoint');
    expect(JSON.parse(got!.body).type).toBe('notify.test');
    expect(verifyStandardWebhook(SECRET_A, got!.headers as Record<string, string>, got!.body)).toBe(true);

    const failing = await webhook('/fail/test-endpoint');
    expect((await t.inject({ method: 'POST', url: `${CHANNELS}/${failing.id}/test` })).json()).toMatchObject({ ok: false, statusCode: 500, error: 'target answered 500' });
  });
});

describe('the outbox', () => {
  it('enqueues one row per enabled channel subscribed to the type (exact, prefix or *), listed and filterable', async () => {
    const exact = await webhook('/ok', ['audit.exported']);
    const prefix = await webhook('/ok', ['audit.*']);
    const other = await webhook('/ok', ['smoke.failed']);
    const off = await webhook('/ok', ['audit.*']);
    await t.inject({ method: 'PATCH', url: `${CHANNELS}/${off.id}`, payload: { enabled: false } });

    const res = await t.inject({ method: 'POST', url: ROOT, payload: { type: 'audit.exported', payload: { rows: 3 } } });
    expect(res.statusCode, res.body).toBe(202);
    const { eventId, items } = res.json();
    expect(res.headers.location).toBe(`${ROOT}?eventId=${eventId}`);
    const channelIds = items.map((i: { channelId: number }) => i.channelId);
    expect(channelIds).toEqual(expect.arrayContaining([exact.id, prefix.id]));
    expect(channelIds).not.toContain(other.id);
    expect(channelIds).not.toContain(off.id);
    expect(items[0]).toMatchObject({ status: 'pending', attempts: 0, maxAttempts: MAX_ATTEMPTS, eventType: 'audit.exported', payload: { rows: 3 } });

    const listed = await t.inject({ method: 'GET', url: `${ROOT}?eventId=${eventId}&limit=1` });
    expect(listed.json().items).toHaveLength(1);
    expect(listed.json().nextCursor).not.toBeNull();
    const next = await t.inject({ method: 'GET', url: `${ROOT}?eventId=${eventId}&limit=1&cursor=${listed.json().nextCursor}` });
    expect(next.json().items[0].id).toBeLessThan(listed.json().items[0].id);
    const byChannel = await t.inject({ method: 'GET', url: `${ROOT}?channelId=${exact.id}&status=pending&eventType=audit.exported` });
    expect(byChannel.json().items.map((i: { channelId: number }) => i.channelId)).toEqual([exact.id]);
    expect((await t.inject({ method: 'GET', url: `${ROOT}/${items[0].id}` })).json().messageId).toBe(items[0].messageId);

    const audit = await t.app.db.select().from(adminOperations).where(eq(adminOperations.targetId, eventId));
    expect(audit.map((a) => a.operation)).toEqual(['notify-outbox.notify']);
  });

  it('answers 400 for a bad type, unknown fields, a bad cursor or filter, 404 for a missing row', async () => {
    for (const payload of [{ type: 'NoDots' }, { type: 'a.b', extra: 1 }, { type: 'a.b', channelIds: [0] }, {}]) {
      expect((await t.inject({ method: 'POST', url: ROOT, payload })).statusCode, JSON.stringify(payload)).toBe(400);
    }
    const unknown = await t.inject({ method: 'POST', url: ROOT, payload: { type: 'a.b', channelIds: [999999] } });
    expect(unknown.statusCode).toBe(422);
    expect(unknown.json()).toMatchObject({ channelIds: [999999] });
    expect((await t.inject({ method: 'GET', url: `${ROOT}?cursor=!!` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${ROOT}?status=lost` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${ROOT}?bogus=1` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${ROOT}/999999` })).statusCode).toBe(404);
    expect((await t.inject({ method: 'POST', url: `${ROOT}/999999/retry` })).statusCode).toBe(404);
    expect((await t.inject({ method: 'POST', url: `${ROOT}/nope/retry` })).statusCode).toBe(400);
  });

  it('rolls the rows back with the transaction that enqueued them', async () => {
    const ch = await webhook('/ok', ['test.rollback']);
    await expect(
      t.app.db.transaction(async (tx) => {
        await t.app.notifications.enqueue(tx, { type: 'test.rollback', payload: {} });
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');
    const rows = await t.app.db.select().from(notificationOutbox).where(eq(notificationOutbox.channelId, ch.id));
    expect(rows).toHaveLength(0);
  });
});

describe('retries', () => {
  it('follows the Svix schedule with ±20 % jitter and goes dead after the last attempt', () => {
    expect(MAX_ATTEMPTS).toBe(8);
    expect(RETRY_SCHEDULE_MS).toEqual([5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]);
    for (let attempt = 1; attempt < MAX_ATTEMPTS; attempt++) {
      const base = RETRY_SCHEDULE_MS[attempt - 1]!;
      expect(retryDelayMs(attempt, () => 0)).toBe(Math.round(base * 0.8));
      expect(retryDelayMs(attempt, () => 0.999999)).toBeLessThanOrEqual(Math.round(base * 1.2));
      const failed = { ok: false as const, statusCode: 500, error: 'target answered 500', retryAfterMs: null, permanent: false, gone: false };
      expect(decide({ attempts: attempt, maxAttempts: MAX_ATTEMPTS }, failed, () => 0.5)).toEqual({ outcome: 'retry', statusCode: 500, error: 'target answered 500', delayMs: base });
    }
    const last = decide({ attempts: MAX_ATTEMPTS, maxAttempts: MAX_ATTEMPTS }, { ok: false, statusCode: 500, error: 'x', retryAfterMs: null, permanent: false, gone: false });
    expect(last.outcome).toBe('dead');
  });

  it('schedules the retry of a failed delivery 5 s (±20 %) later and records the status', async () => {
    const ch = await webhook('/fail/schedule', ['test.schedule']);
    const { items } = await notify('test.schedule', {}, [ch.id]);
    const start = Date.now();
    await drain();
    const r = await row(items[0]!.id);
    expect(r).toMatchObject({ status: 'pending', attempts: 1, lastStatusCode: 500, lastError: 'target answered 500', lockedBy: null });
    const delay = r.nextAttemptAt.getTime() - start;
    expect(delay).toBeGreaterThanOrEqual(4000 - 50);
    expect(delay).toBeLessThanOrEqual(6000 + 2000);
    // Not due yet: another pass does not touch it.
    await drain();
    expect((await row(items[0]!.id)).attempts).toBe(1);
  });

  it('marks a row dead after its last attempt; retry brings it back (audited), only when dead', async () => {
    const ch = await webhook('/fail/dead', ['test.dead']);
    const { items } = await notify('test.dead', {}, [ch.id]);
    const id = items[0]!.id;
    const conflict = await t.inject({ method: 'POST', url: `${ROOT}/${id}/retry` });
    expect(conflict.statusCode).toBe(409);
    await t.app.db.update(notificationOutbox).set({ attempts: MAX_ATTEMPTS - 1 }).where(eq(notificationOutbox.id, id));
    await drain();
    const dead = await row(id);
    expect(dead).toMatchObject({ status: 'dead', attempts: MAX_ATTEMPTS });
    expect(dead.lastError).toContain('the last');

    const res = await t.inject({ method: 'POST', url: `${ROOT}/${id}/retry` });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ status: 'pending', attempts: 0, lastError: null });
    const audit = await t.app.db.select().from(adminOperations).where(and(eq(adminOperations.operation, 'notify-outbox.retry'), eq(adminOperations.targetId, String(id))));
    expect(audit).toHaveLength(1);
  });

  it('honours Retry-After when it asks for longer than the schedule', async () => {
    const ch = await webhook('/busy', ['test.busy']);
    const { items } = await notify('test.busy', {}, [ch.id]);
    const start = Date.now();
    await drain();
    const r = await row(items[0]!.id);
    expect(r).toMatchObject({ status: 'pending', lastStatusCode: 503 });
    expect(r.nextAttemptAt.getTime() - start).toBeGreaterThanOrEqual(3_600_000 - 1000);
  });

  it('does not follow redirects: a 3xx is a failed attempt', async () => {
    const ch = await webhook('/redirect', ['test.redirect']);
    const { items } = await notify('test.redirect', {}, [ch.id]);
    await drain();
    expect(await row(items[0]!.id)).toMatchObject({ status: 'pending', lastStatusCode: 302 });
    expect(sink.received.some((r) => r.path === '/ok/redirected')).toBe(false);
  });

  it('abandons an attempt after the channel timeout', async () => {
    const ch = await webhook('/hang', ['test.hang'], { timeoutMs: 200 });
    const { items } = await notify('test.hang', {}, [ch.id]);
    await drain();
    const r = await row(items[0]!.id);
    expect(r).toMatchObject({ status: 'pending', lastStatusCode: null });
    expect(r.lastError).toContain('no answer within 200 ms');
  });

  it('disables the channel on 410 Gone (audited) and stops enqueueing for it', async () => {
    const ch = await webhook('/gone', ['test.gone']);
    const { items } = await notify('test.gone', {}, [ch.id]);
    await drain();
    expect(await row(items[0]!.id)).toMatchObject({ status: 'dead', lastStatusCode: 410 });
    const channel = (await t.inject({ method: 'GET', url: `${CHANNELS}/${ch.id}` })).json();
    expect(channel).toMatchObject({ enabled: false });
    expect(channel.disabledReason).toContain('410');
    const audit = await t.app.db.select().from(adminOperations).where(and(eq(adminOperations.operation, 'notify-channel.disable'), eq(adminOperations.targetId, String(ch.id))));
    expect(audit).toHaveLength(1);
    expect(audit[0]!.actorType).toBe('system');
    expect((await notify('test.gone')).items.map((i) => i.channelId)).not.toContain(ch.id);
    // Re-enabling clears the reason.
    const back = await t.inject({ method: 'PATCH', url: `${CHANNELS}/${ch.id}`, payload: { enabled: true } });
    expect(back.json()).toMatchObject({ enabled: true, disabledReason: null });
    await t.inject({ method: 'PATCH', url: `${CHANNELS}/${ch.id}`, payload: { enabled: false } });
  });

  it('retries while a secret variable is unset, and goes dead at once on a malformed secret', async () => {
    // Set when the channel is written (an unset one is a 422), unset before the delivery.
    process.env.NOTIFY_SECRET_NOT_SET = SECRET_A;
    const unset = await createChannel({ type: 'webhook', events: ['test.secret'], config: { url: `${sink.url}/ok`, secretEnvs: ['NOTIFY_SECRET_NOT_SET'] } });
    delete process.env.NOTIFY_SECRET_NOT_SET;
    const broken = await createChannel({ type: 'webhook', events: ['test.secret'], config: { url: `${sink.url}/ok`, secretEnvs: ['NOTIFY_SECRET_BROKEN'] } });
    const { items } = await notify('test.secret', {}, [unset.id, broken.id]);
    await drain();
    const [a, b] = [await row(items.find((i) => i.channelId === unset.id)!.id), await row(items.find((i) => i.channelId === broken.id)!.id)];
    expect(a).toMatchObject({ status: 'pending', lastError: 'environment variable NOTIFY_SECRET_NOT_SET is not set' });
    expect(b.status).toBe('dead');
    expect(b.lastError).toContain('NOTIFY_SECRET_BROKEN');
    expect(b.lastError).not.toContain('not-a-whsec-secret');
  });
});

describe('leases', () => {
  it('redelivers a row whose dispatcher died mid-delivery once its lease runs out, and fences the late finisher', async () => {
    const ch = await webhook('/ok/lease', ['test.lease']);
    const { items } = await notify('test.lease', {}, [ch.id]);
    // A dispatcher claims the row, then dies before delivering: nothing is recorded.
    const [claimed] = await t.app.notifications.service.claimDue('crashed-instance', 100, 1);
    expect(claimed?.id).toBe(items[0]!.id);
    await new Promise((resolve) => setTimeout(resolve, 20)); // the 1 ms lease runs out
    expect(await drain()).toBe(1);
    expect(receivedFor(items[0]!.messageId)).toHaveLength(1);
    expect(await row(items[0]!.id)).toMatchObject({ status: 'delivered', attempts: 2 });
    // The dead dispatcher coming back cannot overwrite the outcome.
    expect(await t.app.notifications.service.finish(claimed!, 'crashed-instance', { outcome: 'retry', statusCode: 500, error: 'late', delayMs: 1 })).toBe(false);
    expect((await row(items[0]!.id)).status).toBe('delivered');
  });

  it('hands a row back, attempt not counted, when shutdown interrupts its delivery', async () => {
    const ch = await webhook('/hang/shutdown', ['test.shutdown'], { timeoutMs: 10_000 });
    const { items } = await notify('test.shutdown', {}, [ch.id]);
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 200);
    expect(await t.app.notifications.dispatcher.runOnce(stop.signal)).toBe(1);
    expect(await row(items[0]!.id)).toMatchObject({ status: 'pending', attempts: 0, lockedBy: null, lastError: null });
    await t.app.db.update(notificationOutbox).set({ status: 'dead' }).where(eq(notificationOutbox.id, items[0]!.id));
  });

  it('does not take over a row whose lease is still running', async () => {
    const ch = await webhook('/ok/held', ['test.held']);
    const { items } = await notify('test.held', {}, [ch.id]);
    await t.app.notifications.service.claimDue('busy-instance', 100, 60_000);
    expect(await drain()).toBe(0);
    expect(receivedFor(items[0]!.messageId)).toHaveLength(0);
    await t.app.db.update(notificationOutbox).set({ status: 'dead', lockedBy: null, lockedUntil: null }).where(eq(notificationOutbox.id, items[0]!.id));
  });
});

describe('SSRF guard', () => {
  it('classifies loopback, private, link-local, CGNAT, unique-local and IPv4-mapped addresses, and lets public ones through', () => {
    const cases: Array<[string, string | null]> = [
      ['127.0.0.1', 'loopback'],
      ['127.255.0.9', 'loopback'],
      ['::1', 'loopback'],
      ['10.1.2.3', 'private'],
      ['172.16.0.1', 'private'],
      ['172.31.255.255', 'private'],
      ['192.168.1.1', 'private'],
      ['169.254.169.254', 'link-local'],
      ['fe80::1', 'link-local'],
      ['100.64.0.1', 'CGNAT'],
      ['100.127.255.254', 'CGNAT'],
      ['fd12:3456::1', 'unique-local'],
      ['fc00::1', 'unique-local'],
      ['::ffff:127.0.0.1', 'IPv4-mapped'],
      ['::ffff:8.8.8.8', 'IPv4-mapped'],
      ['0:0:0:0:0:ffff:7f00:1', 'IPv4-mapped'],
      ['0.0.0.0', 'unspecified'],
      ['::', 'unspecified'],
      ['224.0.0.1', 'multicast'],
      ['::7f00:1', 'IPv4-compatible'],
      ['::ffff:0:7f00:1', 'IPv4-translated'],
      ['64:ff9b::7f00:1', 'NAT64'],
      ['2001::1', 'Teredo'],
      ['2002:7f00:1::', '6to4 of loopback'],
      ['2002:c0a8:101::1', '6to4 of private'],
      ['2002::1', '6to4 of unspecified'],
      ['fe80::1%eth0', 'scoped (zone id)'],
      ['255.255.255.255', 'reserved'],
      ['2002:808:808::1', null],
      ['2001:4860:4860::8888', null],
      ['8.8.8.8', null],
      ['172.32.0.1', null],
      ['100.128.0.1', null],
      ['2606:4700:4700::1111', null],
    ];
    for (const [address, reason] of cases) expect(refusedRange(address), address).toBe(reason);
  });

  describe('without WEBHOOK_ALLOW_PRIVATE', () => {
    let strict: FastifyInstance;
    beforeAll(async () => {
      strict = await t.another({ WEBHOOK_ALLOW_PRIVATE: false });
    });

    it('refuses channels whose URL is an IP literal in a refused range (422)', async () => {
      for (const host of ['127.0.0.1', '[::1]', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]', '10.0.0.1', '169.254.169.254', '100.64.0.1', '[fd00::1]', '[fe80::1]', '0.0.0.0']) {
        const res = await t.inject({ method: 'POST', url: CHANNELS, payload: { name: `ssrf-${++seq}`, type: 'webhook', events: ['x.y'], config: { url: `http://${host}:8080/hook`, secretEnvs: ['NOTIFY_SECRET_TEST_A'] } } }, strict);
        expect(res.statusCode, `${host}: ${res.body}`).toBe(422);
        expect(res.json().detail).toContain('WEBHOOK_ALLOW_PRIVATE');
      }
      const sms = await t.inject({ method: 'POST', url: CHANNELS, payload: { name: `ssrf-${++seq}`, type: 'sms', events: ['x.y'], config: { url: 'http://192.168.0.10/send', to: ['+15551234567'] } } }, strict);
      expect(sms.statusCode).toBe(422);
    });

    it('refuses every spelling of a refused address the URL parser accepts, localhost names and zone ids (422 or 400)', async () => {
      const port = new URL(sink.url).port;
      const refused = [
        'http://2130706433/', // decimal
        'http://0x7f.1/', // hex, shortened
        'http://0x7f000001/',
        'http://017700000001/', // octal
        'http://127.1/',
        'http://127.0.0.1./', // trailing dot
        'http://%31%32%37.0.0.1/', // percent-encoded
        'http://0/', // 0.0.0.0
        'http://[::]/',
        'http://[::ffff:127.0.0.1]/',
        'http://[::ffff:7f00:1]/',
        'http://[0:0:0:0:0:ffff:127.0.0.1]/',
        'http://[::127.0.0.1]/', // IPv4-compatible
        'http://[::ffff:0:7f00:1]/', // IPv4-translated
        'http://[64:ff9b::127.0.0.1]/', // NAT64
        'http://[2002:7f00:1::]/', // 6to4 of 127.0.0.1
        `http://localhost:${port}/ok/`,
        'http://localhost./',
        'http://LOCALHOST/',
        'http://api.localhost/',
      ];
      for (const url of refused) {
        const res = await t.inject({ method: 'POST', url: CHANNELS, payload: { name: `ssrf-${++seq}`, type: 'webhook', events: ['x.y'], config: { url, secretEnvs: ['NOTIFY_SECRET_TEST_A'] } } }, strict);
        expect(res.statusCode, `${url}: ${res.body}`).toBe(422);
        expect(res.json().detail).toContain('WEBHOOK_ALLOW_PRIVATE');
      }
      // Not a URL the parser takes (zone id), or one with credentials: 400 before any address check.
      for (const url of ['http://[fe80::1%25eth0]/', 'http://user@127.0.0.1/', 'http://user:pw@8.8.8.8/', 'http://8.8.8.8@127.0.0.1/']) {
        const res = await t.inject({ method: 'POST', url: CHANNELS, payload: { name: `ssrf-${++seq}`, type: 'webhook', events: ['x.y'], config: { url, secretEnvs: ['NOTIFY_SECRET_TEST_A'] } } }, strict);
        expect(res.statusCode, `${url}: ${res.body}`).toBe(400);
      }
    });

    it('delivers to those spellings only with WEBHOOK_ALLOW_PRIVATE=true (the guard is what refused them)', async () => {
      const port = new URL(sink.url).port;
      for (const host of ['2130706433', '0x7f.1', '017700000001', 'localhost']) {
        const ch = await createChannel({ type: 'webhook', events: ['test.spelling'], config: { url: `http://${host}:${port}/ok/spelling-${host}`, secretEnvs: ['NOTIFY_SECRET_TEST_A'] } });
        const { items } = await notify('test.spelling', {}, [ch.id]);
        await drain();
        expect((await row(items[0]!.id)).status, host).toBe('delivered');
        expect(receivedFor(items[0]!.messageId), host).toHaveLength(1);
      }
    });

    it('refuses a localhost name at delivery: dead at once, nothing sent (a channel created while private targets were allowed)', async () => {
      const port = new URL(sink.url).port;
      for (const host of ['localhost', 'localhost.']) {
        const ch = await createChannel({ type: 'webhook', events: ['test.ssrf'], config: { url: `http://${host}:${port}/ok/ssrf`, secretEnvs: ['NOTIFY_SECRET_TEST_A'] } });
        await t.app.db.update(notificationOutbox).set({ status: 'dead' }).where(eq(notificationOutbox.status, 'pending'));
        const { items } = await notify('test.ssrf', {}, [ch.id]);
        expect(await drain(strict)).toBe(1);
        const r = await row(items[0]!.id);
        expect(r.status).toBe('dead');
        expect(r.lastError).toContain(`refused: target ${host} is a loopback name`);
        // The channel test answers the same refusal.
        const tested = await t.inject({ method: 'POST', url: `${CHANNELS}/${ch.id}/test` }, strict);
        expect(tested.json()).toMatchObject({ ok: false });
        expect(tested.json().error).toContain('loopback');
      }
      expect(sink.received.some((x) => x.path === '/ok/ssrf')).toBe(false);
    });

    it('checks every address a name resolves to: one refused address refuses the name', async () => {
      const answers: Record<string, LookupAddress[]> = {
        'mixed.example': [{ address: '93.184.216.34', family: 4 }, { address: '10.0.0.7', family: 4 }],
        'mixed6.example': [{ address: '2606:4700::1111', family: 6 }, { address: '::ffff:169.254.169.254', family: 6 }],
        'public.example': [{ address: '93.184.216.34', family: 4 }, { address: '2606:4700::1111', family: 6 }],
      };
      const resolve: ResolveAll = (hostname, _options, callback) => callback(null, answers[hostname] ?? []);
      const lookup = (allowPrivate: boolean, hostname: string, all: boolean) =>
        new Promise<{ err: Error | null; address: unknown }>((done) => guardedLookup(allowPrivate, resolve)(hostname, { all }, (err, address) => done({ err, address })));
      expect((await lookup(false, 'mixed.example', true)).err?.message).toMatch(/target mixed\.example resolves to private address 10\.0\.0\.7/);
      expect((await lookup(false, 'mixed.example', false)).err?.message).toContain('private address 10.0.0.7');
      expect((await lookup(false, 'mixed6.example', true)).err?.message).toContain('IPv4-mapped address ::ffff:169.254.169.254');
      expect(await lookup(false, 'public.example', true)).toEqual({ err: null, address: answers['public.example'] });
      expect(await lookup(false, 'public.example', false)).toEqual({ err: null, address: '93.184.216.34' });
      expect((await lookup(false, 'localhost.', true)).err?.message).toContain('loopback name');
      expect(await lookup(true, 'mixed.example', true)).toEqual({ err: null, address: answers['mixed.example'] });
      expect((await lookup(false, 'nothing.example', true)).err).toMatchObject({ code: 'ENOTFOUND' });
    });

    it('refuses an IPv4-mapped literal at delivery too (a channel created while private targets were allowed)', async () => {
      const ch = await createChannel({ type: 'webhook', events: ['test.mapped'], config: { url: `http://[::ffff:127.0.0.1]:${new URL(sink.url).port}/ok/mapped`, secretEnvs: ['NOTIFY_SECRET_TEST_A'] } });
      const { items } = await notify('test.mapped', {}, [ch.id]);
      await drain(strict);
      expect((await row(items[0]!.id)).lastError).toContain('IPv4-mapped');
    });
  });
});

describe('email and sms', () => {
  it('delivers email over SMTP to a loopback server', async () => {
    const mails: Array<{ from: string; to: string[]; data: string }> = [];
    const smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onData(stream, session, callback) {
        let data = '';
        stream.on('data', (c: Buffer) => (data += c.toString('utf8')));
        stream.on('end', () => {
          mails.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), data });
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', () => resolve()));
    try {
      const { port } = smtp.server.address() as AddressInfo;
      const ch = await createChannel({ type: 'email', events: ['test.mail'], config: { host: '127.0.0.1', port, from: 'valhalla@example.com', to: ['ops@example.com', 'oncall@example.com'], timeoutMs: 5000 } });
      const { items } = await notify('test.mail', { summary: 'disk almost full' }, [ch.id]);
      await drain();
      expect(await row(items[0]!.id)).toMatchObject({ status: 'delivered', attempts: 1 });
      expect(mails).toHaveLength(1);
      expect(mails[0]).toMatchObject({ from: 'valhalla@example.com', to: ['ops@example.com', 'oncall@example.com'] });
      expect(mails[0]!.data).toContain('Subject: [valhalla] test.mail');
      expect(mails[0]!.data).toContain('disk almost full');
      expect(mails[0]!.data).toMatch(/traceparent: 00-/i);
    } finally {
      await new Promise<void>((resolve) => smtp.close(() => resolve()));
    }
  });

  it('sends SMS through the generic HTTP provider with the bearer token from the environment', async () => {
    const ch = await createChannel({ type: 'sms', events: ['test.sms'], config: { url: `${sink.url}/sms`, to: ['+15551234567'], tokenEnv: 'NOTIFY_SECRET_SMS_TOKEN' } });
    const { items } = await notify('test.sms', { summary: 'smoke run failed' }, [ch.id]);
    await drain();
    expect(await row(items[0]!.id)).toMatchObject({ status: 'delivered' });
    const got = sink.received.find((r) => r.path === '/sms' && r.headers['idempotency-key'] === items[0]!.messageId);
    expect(got?.headers.authorization).toBe('Bearer sms-provider-token-123');
    expect(got?.headers.traceparent).toMatch(TRACEPARENT);
    expect(JSON.parse(got!.body)).toMatchObject({ to: ['+15551234567'], eventType: 'test.sms', message: '[valhalla] test.sms: smoke run failed' });
    // The token is in no response and no stored row.
    const listed = await t.inject({ method: 'GET', url: `${CHANNELS}/${ch.id}` });
    expect(listed.body).not.toContain('sms-provider-token-123');
  });
});

describe('events from other packs', () => {
  it('enqueues freeze.changed inside the freeze change, and refuses channel writes while frozen (423)', async () => {
    const ch = await webhook('/ok/freeze', ['freeze.changed']);
    const on = await t.inject({ method: 'POST', url: '/system/maintenance/freeze', payload: { enabled: true, reason: 'release 4.2' } });
    expect(on.statusCode, on.body).toBe(200);
    try {
      const rows = await t.app.db.select().from(notificationOutbox).where(eq(notificationOutbox.channelId, ch.id));
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ eventType: 'freeze.changed', payload: { kind: 'freeze', cause: 'manual', freeze: true, reason: 'release 4.2' } });
      const frozen = await t.inject({ method: 'PATCH', url: `${CHANNELS}/${ch.id}`, payload: { enabled: false } });
      expect(frozen.statusCode).toBe(423);
    } finally {
      await t.inject({ method: 'POST', url: '/system/maintenance/freeze', payload: { enabled: false, reason: 'released' } });
    }
  });

  it('enqueues smoke.failed when a smoke run fails', async () => {
    const ch = await webhook('/ok/smoke', ['smoke.failed']);
    const profile = await t.inject({
      method: 'POST',
      url: '/system/deployment/profiles',
      payload: { name: `notify-smoke-${++seq}`, environment: 'test', baseUrl: sink.url, smokeChecks: [{ name: 'home', path: '/fail/home', timeoutMs: 2000 }] },
    });
    expect(profile.statusCode, profile.body).toBe(201);
    const run = await t.inject({ method: 'POST', url: `/system/deployment/profiles/${profile.json().id}/smoke-runs?wait=true` });
    expect(run.json().status).toBe('failed');
    const rows = await t.app.db.select().from(notificationOutbox).where(eq(notificationOutbox.channelId, ch.id));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ eventType: 'smoke.failed', payload: { runId: run.json().id, status: 'failed', failedChecks: [{ name: 'home', statusCode: 500 }] } });
  });
});

describe.skipIf(!process.env.TEST_DATABASE_URL && !process.env.DATABASE_URL)('two dispatchers on one PostgreSQL', () => {
  let second: FastifyInstance;
  beforeEach(async () => {
    second ??= await t.another();
  });

  it('never deliver one row twice', async () => {
    const ch = await webhook('/ok/race', ['test.race']);
    // Nothing else due, so every claimed row below is one of these.
    await t.app.db.update(notificationOutbox).set({ status: 'dead' }).where(eq(notificationOutbox.status, 'pending'));
    const ids: string[] = [];
    await t.app.db.transaction(async (tx) => {
      for (let i = 0; i < 300; i++) ids.push(...(await t.app.notifications.service.enqueue(tx, { type: 'test.race', payload: { i } }, { channelIds: [ch.id] })).items.map((x) => x.messageId));
    });
    expect(ids).toHaveLength(300);
    const [a, b] = await Promise.all([drain(t.app), drain(second)]);
    expect(a + b).toBe(300);
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(0);
    const counts = new Map<string, number>();
    for (const r of sink.received) {
      const id = r.headers['webhook-id'];
      if (typeof id === 'string' && r.path === '/ok/race') counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    expect(counts.size).toBe(300);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    const delivered = await t.app.db.select().from(notificationOutbox).where(and(eq(notificationOutbox.channelId, ch.id), eq(notificationOutbox.status, 'delivered')));
    expect(delivered).toHaveLength(300);
  });
});

describe.skipIf(!process.env.TEST_DATABASE_URL && !process.env.DATABASE_URL)('two dispatchers in two processes on one PostgreSQL', () => {
  /** A kernel process that drains the outbox once when told `go` (test/helpers/dispatcher-process.ts). */
  function dispatcherProcess() {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/dispatcher-process.ts'], {
      cwd: projectRoot,
      env: cleanEnv({
        DATABASE_URL: t.db.url!,
        ADMIN_API_KEY: t.adminKey,
        LOG_LEVEL: 'silent',
        RUN_JOBS: 'false',
        WEBHOOK_ALLOW_PRIVATE: 'true',
        PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
        // Small claims and a slow receiver, so both processes are claiming while the other delivers.
        NOTIFY_DISPATCH_BATCH: '10',
        NOTIFY_DISPATCH_CONCURRENCY: '4',
      }),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const waitFor = async (pattern: RegExp): Promise<RegExpMatchArray> => {
      for (;;) {
        const m = out.match(pattern);
        if (m) return m;
        if (child.exitCode !== null) throw new Error(`dispatcher process exited ${child.exitCode}: ${out} ${err}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    return { child, exited, waitFor };
  }

  it('never deliver one row twice', async () => {
    const ch = await webhook('/slow/processes', ['test.processes']);
    await t.app.db.update(notificationOutbox).set({ status: 'dead' }).where(eq(notificationOutbox.status, 'pending'));
    const ids: string[] = [];
    await t.app.db.transaction(async (tx) => {
      for (let i = 0; i < 300; i++) ids.push(...(await t.app.notifications.service.enqueue(tx, { type: 'test.processes', payload: { i } }, { channelIds: [ch.id] })).items.map((x) => x.messageId));
    });
    const procs = [dispatcherProcess(), dispatcherProcess()];
    try {
      await Promise.all(procs.map((p) => p.waitFor(/^ready$/m)));
      for (const p of procs) p.child.stdin.write('go\n');
      const claimed = (await Promise.all(procs.map((p) => p.waitFor(/^claimed (\d+)$/m)))).map((m) => Number(m[1]));
      expect(await Promise.all(procs.map((p) => p.exited))).toEqual([0, 0]);
      // Both took part: otherwise one process did everything and the test proves nothing.
      expect(claimed[0]! + claimed[1]!).toBe(300);
      expect(claimed[0]).toBeGreaterThan(0);
      expect(claimed[1]).toBeGreaterThan(0);
    } finally {
      for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    }
    const counts = new Map<string, number>();
    for (const r of sink.received) {
      const id = r.headers['webhook-id'];
      if (typeof id === 'string' && r.path === '/slow/processes') counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual([...ids].sort());
    expect([...counts.values()].filter((n) => n > 1)).toEqual([]);
    const delivered = await t.app.db.select().from(notificationOutbox).where(and(eq(notificationOutbox.channelId, ch.id), eq(notificationOutbox.status, 'delivered')));
    expect(delivered).toHaveLength(300);
    expect(delivered.every((r) => r.attempts === 1)).toBe(true);
  }, 90_000);
});

it('keeps channel configs free of secrets in the table', async () => {
  const rows = await t.app.db.select().from(notificationChannels);
  const text = JSON.stringify(rows);
  expect(text).not.toContain(SECRET_A.slice(6));
  expect(text).not.toContain('sms-provider-token-123');
});

it('matches subscriptions exactly, by prefix or all', () => {
  expect(subscribes(['*'], 'a.b')).toBe(true);
  expect(subscribes(['a.*'], 'a.b.c')).toBe(true);
  expect(subscribes(['a.*'], 'ab.c')).toBe(false);
  expect(subscribes(['a.b'], 'a.bc')).toBe(false);
});

describe('secrets are bound by the operator (admin), not by notify:write', () => {
  const as = (token: string) => ({ authorization: `Bearer ${token}` });
  let writer: string;
  beforeAll(async () => {
    writer = (await t.keyWith(['notify:write'])).token;
  });

  it('refuses a notify:write key naming a secret on a new channel (403 naming the field); an admin may', async () => {
    const sms = { name: `steal-${++seq}`, type: 'sms', events: ['test.steal'], config: { url: `${sink.url}/sms/attacker`, to: ['+15555550100'], tokenEnv: 'NOTIFY_SECRET_TEST_A' } };
    const refused = await t.inject({ method: 'POST', url: CHANNELS, headers: as(writer), payload: sms });
    expect(refused.statusCode, refused.body).toBe(403);
    expect(refused.json()).toMatchObject({ type: '/problems/forbidden', requiredScope: 'admin' });
    expect(refused.json().detail).toContain('config.tokenEnv');
    const hook = await t.inject({ method: 'POST', url: CHANNELS, headers: as(writer), payload: { name: `steal-${++seq}`, type: 'webhook', events: ['x.y'], config: { url: `${sink.url}/ok/attacker`, secretEnvs: ['NOTIFY_SECRET_TEST_A'] } } });
    expect(hook.statusCode, hook.body).toBe(403);
    const mail = await t.inject({ method: 'POST', url: CHANNELS, headers: as(writer), payload: { name: `steal-${++seq}`, type: 'email', events: ['x.y'], config: { host: '127.0.0.1', port: 2525, from: 'a@example.com', to: ['b@example.com'], usernameEnv: 'NOTIFY_SECRET_TEST_A', passwordEnv: 'NOTIFY_SECRET_TEST_B' } } });
    expect(mail.statusCode, mail.body).toBe(403);
    // A channel without secrets is the writer's to create; the admin may name secrets.
    const plain = await t.inject({ method: 'POST', url: CHANNELS, headers: as(writer), payload: { ...sms, name: `plain-${++seq}`, config: { url: `${sink.url}/sms/plain`, to: ['+15555550100'] } } });
    expect(plain.statusCode, plain.body).toBe(201);
    expect((await t.inject({ method: 'POST', url: CHANNELS, payload: sms })).statusCode).toBe(201);
    expect(sink.received.some((r) => r.path === '/sms/attacker')).toBe(false);
  });

  it('refuses a notify:write key moving a secret-holding channel to its own sink or changing its secrets; the rest of the config, events and tests stay allowed', async () => {
    const ch = await createChannel({ type: 'sms', events: ['test.bound'], config: { url: `${sink.url}/sms/provider`, to: ['+15555550100'], tokenEnv: 'NOTIFY_SECRET_SMS_TOKEN' } });
    const patch = (payload: Record<string, unknown>, headers = as(writer)) => t.inject({ method: 'PATCH', url: `${CHANNELS}/${ch.id}`, headers, payload });
    const moved = await patch({ config: { url: `${sink.url}/sms/attacker`, to: ['+15555550100'], tokenEnv: 'NOTIFY_SECRET_SMS_TOKEN' } });
    expect(moved.statusCode, moved.body).toBe(403);
    expect(moved.json().detail).toContain('config.url');
    const swapped = await patch({ config: { url: `${sink.url}/sms/provider`, to: ['+15555550100'], tokenEnv: 'NOTIFY_SECRET_TEST_A' } });
    expect(swapped.statusCode, swapped.body).toBe(403);
    expect(swapped.json().detail).toContain('secret variables');
    const dropped = await patch({ config: { url: `${sink.url}/sms/attacker`, to: ['+15555550100'] } });
    expect(dropped.statusCode, 'dropping the secret is a change of secrets too').toBe(403);
    expect((await patch({ config: { url: `${sink.url}/sms/provider`, to: ['+15555550199'], tokenEnv: 'NOTIFY_SECRET_SMS_TOKEN', timeoutMs: 3000 } })).statusCode).toBe(200);
    expect((await patch({ events: ['test.bound', 'test.more'] })).statusCode).toBe(200);
    // Nothing of the above reached the attacker's path: the test delivery still goes to the provider.
    expect((await t.inject({ method: 'POST', url: `${CHANNELS}/${ch.id}/test`, headers: as(writer) })).json()).toMatchObject({ ok: true });
    expect(sink.received.some((r) => r.path === '/sms/attacker')).toBe(false);
    expect(sink.received.filter((r) => r.path === '/sms/provider').at(-1)?.headers.authorization).toBe('Bearer sms-provider-token-123');
    // The admin may move it.
    const byAdmin = await t.inject({ method: 'PATCH', url: `${CHANNELS}/${ch.id}`, payload: { config: { url: `${sink.url}/sms/other`, to: ['+15555550100'], tokenEnv: 'NOTIFY_SECRET_SMS_TOKEN' } } });
    expect(byAdmin.statusCode, byAdmin.body).toBe(200);

    // A writer's own channel without a secret cannot be given one later.
    const own = (await t.inject({ method: 'POST', url: CHANNELS, headers: as(writer), payload: { name: `own-${++seq}`, type: 'sms', events: ['x.y'], config: { url: `${sink.url}/sms/mine`, to: ['+15555550100'] } } })).json();
    const added = await t.inject({ method: 'PATCH', url: `${CHANNELS}/${own.id}`, headers: as(writer), payload: { config: { url: `${sink.url}/sms/mine`, to: ['+15555550100'], tokenEnv: 'NOTIFY_SECRET_SMS_TOKEN' } } });
    expect(added.statusCode, added.body).toBe(403);
    // ... but its destination is the writer's to change.
    expect((await t.inject({ method: 'PATCH', url: `${CHANNELS}/${own.id}`, headers: as(writer), payload: { config: { url: `${sink.url}/sms/mine2`, to: ['+15555550100'] } } })).statusCode).toBe(200);
  });

  it('refuses a notify:write key moving an email channel with credentials to another host or port', async () => {
    const config = { host: 'smtp.example.com', port: 465, secure: true, from: 'a@example.com', to: ['b@example.com'], usernameEnv: 'NOTIFY_SECRET_TEST_A', passwordEnv: 'NOTIFY_SECRET_TEST_B' };
    const ch = await createChannel({ type: 'email', events: ['x.y'], config });
    for (const change of [{ host: 'mx.attacker.example' }, { port: 2525 }, { secure: false }]) {
      const res = await t.inject({ method: 'PATCH', url: `${CHANNELS}/${ch.id}`, headers: as(writer), payload: { config: { ...config, ...change } } });
      expect(res.statusCode, JSON.stringify(change)).toBe(403);
      expect(res.json().detail).toContain('config.host/port/secure');
    }
    expect((await t.inject({ method: 'PATCH', url: `${CHANNELS}/${ch.id}`, headers: as(writer), payload: { config: { ...config, to: ['c@example.com'] } } })).statusCode).toBe(200);
  });

  it('answers 422 naming an unset secret variable (never a value), on create and when a change names a new one', async () => {
    const res = await t.inject({ method: 'POST', url: CHANNELS, payload: { name: `unset-${++seq}`, type: 'webhook', events: ['x.y'], config: { url: `${sink.url}/ok`, secretEnvs: ['NOTIFY_SECRET_TEST_A', 'NOTIFY_SECRET_NOPE'] } } });
    expect(res.statusCode, res.body).toBe(422);
    expect(res.json().detail).toContain('NOTIFY_SECRET_NOPE');
    expect(res.json().unsetVariables).toEqual(['NOTIFY_SECRET_NOPE']);
    expect(res.body).not.toContain(SECRET_A.slice(6));
    const sms = await t.inject({ method: 'POST', url: CHANNELS, payload: { name: `unset-${++seq}`, type: 'sms', events: ['x.y'], config: { url: `${sink.url}/sms`, to: ['+15555550100'], tokenEnv: 'NOTIFY_SECRET_NOPE' } } });
    expect(sms.statusCode).toBe(422);
    const ch = await webhook('/ok');
    const patched = await t.inject({ method: 'PATCH', url: `${CHANNELS}/${ch.id}`, payload: { config: { url: `${sink.url}/ok`, secretEnvs: ['NOTIFY_SECRET_NOPE'] } } });
    expect(patched.statusCode, patched.body).toBe(422);
  });
});

describe('manual events cannot pass for the kernel’s own', () => {
  it('answers 422 for a manual event in a reserved namespace (naming the type), also to listed channels; other types go', async () => {
    const ch = await webhook('/ok/reserved', ['*']);
    for (const type of ['freeze.changed', 'maintenance.changed', 'smoke.failed', 'export.finished', 'security.honeypot_hit', 'notify.test', 'freeze.anything']) {
      for (const payload of [{ type, payload: { freeze: false } }, { type, channelIds: [ch.id] }]) {
        const res = await t.inject({ method: 'POST', url: ROOT, payload });
        expect(res.statusCode, `${type}: ${res.body}`).toBe(422);
        expect(res.json().detail).toContain(`'${type}'`);
        expect(res.json().type).toBe('/problems/unprocessable');
      }
    }
    const outbox = await t.app.db.select().from(notificationOutbox).where(eq(notificationOutbox.channelId, ch.id));
    expect(outbox).toHaveLength(0);
    expect((await notify('custom.freeze.changed', { freeze: false }, [ch.id])).items).toHaveLength(1);
    expect(t.app.notifications.events.patterns()).toEqual(expect.arrayContaining(['export.*', 'freeze.*', 'maintenance.*', 'notify.*', 'security.*', 'smoke.*']));
  });

  it('reserves the namespace of every declared type, and a type a pack enqueues without declaring it', async () => {
    t.app.notifications.reserveEvents(['plugin-x.happened']);
    expect((await t.inject({ method: 'POST', url: ROOT, payload: { type: 'plugin-x.other' } })).statusCode).toBe(422);
    expect((await t.inject({ method: 'POST', url: ROOT, payload: { type: 'undeclared-pack.event' } })).statusCode).toBe(202);
    await t.app.db.transaction((tx) => t.app.notifications.enqueue(tx, { type: 'undeclared-pack.event', payload: {} }));
    expect((await t.inject({ method: 'POST', url: ROOT, payload: { type: 'undeclared-pack.event' } })).statusCode).toBe(422);
    expect((await t.inject({ method: 'POST', url: ROOT, payload: { type: 'undeclared-pack.other' } })).statusCode).toBe(202);
  });
});

describe('smaller defects', () => {
  it('answers 409 naming the channel state when retrying a dead row of a disabled channel; 200 once it is enabled', async () => {
    const ch = await webhook('/ok/disabled-retry', ['test.disabled-retry']);
    const { items } = await notify('test.disabled-retry', {}, [ch.id]);
    await t.inject({ method: 'PATCH', url: `${CHANNELS}/${ch.id}`, payload: { enabled: false } });
    await drain();
    expect((await row(items[0]!.id)).status).toBe('dead');
    const res = await t.inject({ method: 'POST', url: `${ROOT}/${items[0]!.id}/retry` });
    expect(res.statusCode, res.body).toBe(409);
    expect(res.json()).toMatchObject({ channelId: ch.id, channelState: 'disabled' });
    expect(res.json().detail).toContain(`channel ${ch.id} (${ch.name}) is disabled`);
    expect((await row(items[0]!.id)).status).toBe('dead');
    await t.inject({ method: 'PATCH', url: `${CHANNELS}/${ch.id}`, payload: { enabled: true } });
    expect((await t.inject({ method: 'POST', url: `${ROOT}/${items[0]!.id}/retry` })).statusCode).toBe(200);

    // A deleted channel: the same 409, naming that.
    const gone = await webhook('/ok/deleted-retry', ['test.deleted-retry']);
    const queued = await notify('test.deleted-retry', {}, [gone.id]);
    await t.inject({ method: 'DELETE', url: `${CHANNELS}/${gone.id}` });
    await drain();
    expect((await row(queued.items[0]!.id)).status).toBe('dead');
    const deleted = await t.inject({ method: 'POST', url: `${ROOT}/${queued.items[0]!.id}/retry` });
    expect(deleted.statusCode).toBe(409);
    expect(deleted.json()).toMatchObject({ channelState: 'deleted' });
  });

  it('answers 400 for a channel URL holding CR/LF, spaces, tabs or other control characters', async () => {
    for (const url of [`${sink.url}/ok\r\nX-Evil: 1`, `${sink.url}/ok x`, `${sink.url}/ok\tx`, `${sink.url}/ok\u0000`, `${sink.url}/ok\u007f`, ` ${sink.url}/ok`]) {
      for (const payload of [
        { name: `crlf-${++seq}`, type: 'webhook', events: ['x.y'], config: { url, secretEnvs: ['NOTIFY_SECRET_TEST_A'] } },
        { name: `crlf-${++seq}`, type: 'sms', events: ['x.y'], config: { url, to: ['+15555550100'] } },
      ]) {
        const res = await t.inject({ method: 'POST', url: CHANNELS, payload });
        expect(res.statusCode, JSON.stringify(url)).toBe(400);
      }
    }
  });

  it('counts a 2xx whose body trickles in as delivered (the status is the answer)', async () => {
    const ch = await webhook('/trickle', ['test.trickle'], { timeoutMs: 300 });
    const { items } = await notify('test.trickle', {}, [ch.id]);
    await drain();
    expect(await row(items[0]!.id)).toMatchObject({ status: 'delivered', lastStatusCode: 200, lastError: null, attempts: 1 });
    expect((await t.inject({ method: 'POST', url: `${CHANNELS}/${ch.id}/test` })).json()).toMatchObject({ ok: true, statusCode: 200 });
  });

  describe('the SMTP relay behind the address guard', () => {
    let strict: FastifyInstance;
    beforeAll(async () => {
      strict = await t.another({ WEBHOOK_ALLOW_PRIVATE: false });
    });

    it('refuses an email channel whose host is a refused address or a localhost name (422), unless WEBHOOK_ALLOW_PRIVATE=true', async () => {
      for (const host of ['127.0.0.1', '2130706433', '0x7f.1', '10.1.2.3', '169.254.169.254', '[::1]', '::1', 'localhost', 'mail.localhost']) {
        const res = await t.inject({ method: 'POST', url: CHANNELS, payload: { name: `smtp-${++seq}`, type: 'email', events: ['x.y'], config: { host, port: 25, from: 'a@example.com', to: ['b@example.com'] } } }, strict);
        expect(res.statusCode, `${host}: ${res.body}`).toBe(422);
        expect(res.json().detail).toContain('WEBHOOK_ALLOW_PRIVATE');
      }
      // The same hosts are accepted where private targets are allowed (the earlier loopback SMTP test).
      expect((await t.inject({ method: 'POST', url: CHANNELS, payload: { name: `smtp-${++seq}`, type: 'email', events: ['x.y'], config: { host: '127.0.0.1', port: 25, from: 'a@example.com', to: ['b@example.com'] } } })).statusCode).toBe(201);
    });

    it('refuses at delivery an SMTP host whose name resolves to a refused address: dead at once, nothing sent', async () => {
      let connections = 0;
      const smtp = new SMTPServer({ authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], logger: false, onConnect: (_s, cb) => (connections++, cb()) });
      await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', () => resolve()));
      try {
        const { port } = smtp.server.address() as AddressInfo;
        // Created while private targets were allowed; delivered by the instance that refuses them.
        const ch = await createChannel({ type: 'email', events: ['test.smtp-guard'], config: { host: 'localhost', port, from: 'a@example.com', to: ['b@example.com'], timeoutMs: 2000 } });
        await t.app.db.update(notificationOutbox).set({ status: 'dead' }).where(eq(notificationOutbox.status, 'pending'));
        const { items } = await notify('test.smtp-guard', {}, [ch.id]);
        expect(await drain(strict)).toBe(1);
        const r = await row(items[0]!.id);
        expect(r.status).toBe('dead');
        expect(r.lastError).toContain('refused: target localhost is a loopback name');
        expect(connections).toBe(0);
      } finally {
        await new Promise<void>((resolve) => smtp.close(() => resolve()));
      }
    });
  });
});

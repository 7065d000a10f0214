import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';
import { metricValue } from '../../test/helpers/metrics.js';
import { OUTBOX_FIGURES_JOB } from './jobs.js';

process.env.NOTIFY_SECRET_GAUGES = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;

// A receiver on loopback: /fail answers 500 (the row is retried later, still pending), /gone
// answers 410 (the row is dead at once and the channel disabled).
let server: Server;
let base = '';
const REFRESH_MS = 100;
let t: TestApp;
beforeAll(async () => {
  server = createServer((req, res) => void res.writeHead(req.url?.startsWith('/gone') ? 410 : 500).end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t = await createTestApp({ WEBHOOK_ALLOW_PRIVATE: true, METRICS_REFRESH_INTERVAL_MS: REFRESH_MS, NOTIFY_DISPATCH_INTERVAL_MS: 50 });
});
afterAll(async () => {
  await t?.close();
  await new Promise<void>((resolve) => server?.close(() => resolve()));
});

const webhook = async (name: string, path: string) => {
  const res = await t.inject({ method: 'POST', url: '/system/notify/channels', payload: { name, type: 'webhook', events: [`gauges.${name}`], config: { url: `${base}${path}`, secretEnvs: ['NOTIFY_SECRET_GAUGES'] } } });
  expect(res.statusCode, res.body).toBe(201);
};
const notify = async (type: string) => expect((await t.inject({ method: 'POST', url: '/system/notify', payload: { type, payload: {} } })).statusCode).toBe(202);
/** One pass of the periodic jobs (the dispatcher, then the outbox figures), once both are due again. */
const runPeriodic = async () => {
  await sleep(REFRESH_MS + 20);
  return t.app.jobs.runDuePeriodic();
};
const webhookFigure = (name: string) => metricValue(t.app, name, { channel_type: 'webhook' });

describe('outbox gauges', () => {
  it('have no series until their job ran, then 0 for every channel type', async () => {
    expect(await webhookFigure('valhalla_outbox_pending')).toBeUndefined();
    expect(await runPeriodic()).toContain(OUTBOX_FIGURES_JOB);
    for (const channel_type of ['webhook', 'email', 'sms']) {
      expect(await metricValue(t.app, 'valhalla_outbox_pending', { channel_type }), channel_type).toBe(0);
      expect(await metricValue(t.app, 'valhalla_outbox_dead', { channel_type }), channel_type).toBe(0);
      expect(await metricValue(t.app, 'valhalla_outbox_oldest_pending_seconds', { channel_type }), channel_type).toBe(0);
    }
  });

  it('count rows waiting for a failing receiver and how long the oldest has waited, refreshed by the job only', async () => {
    await webhook('failing', '/fail');
    await notify('gauges.failing');
    await notify('gauges.failing');
    expect(await webhookFigure('valhalla_outbox_pending')).toBe(0);
    await sleep(1100);
    await runPeriodic();
    // Both attempted once, answered 500, and waiting for their retry.
    expect(await webhookFigure('valhalla_outbox_pending')).toBe(2);
    expect(await webhookFigure('valhalla_outbox_oldest_pending_seconds')).toBeGreaterThanOrEqual(1);
    expect(await webhookFigure('valhalla_outbox_dead')).toBe(0);
  });

  it('count a dead letter', async () => {
    await webhook('gone', '/gone');
    await notify('gauges.gone');
    await runPeriodic();
    expect(await webhookFigure('valhalla_outbox_dead')).toBe(1);
    expect(await webhookFigure('valhalla_outbox_pending')).toBe(2);
  });
});

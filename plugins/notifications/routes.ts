import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { randomBytes } from 'node:crypto';
import { hasScope } from '../../src/access.js';
import { PageOf, pageLimit } from '../../src/pagination.js';
import { problemError, problemResponses, ProblemError } from '../../src/problem.js';
import { IdParams } from '../../src/schemas.js';
import type { Notifications } from './index.js';
import {
  ChannelQuery,
  ChannelSchema,
  CreateChannelBody,
  NotifyBody,
  NotifyResultSchema,
  OutboxItemSchema,
  OutboxQuery,
  TestResultSchema,
  UpdateChannelBody,
} from './schemas.js';
import { formatTraceparent, newSpanId, newTraceId } from '../tracing/trace-context.js';

const TAGS = ['notifications'];
const ROOT = '/system/notify';
const CHANNELS = `${ROOT}/channels`;
const CHANNEL = 'notify-channel';
const OUTBOX = 'notify-outbox';

const channelNotFound = (id: number) => problemError('resource-not-found', `No notification channel ${id}`);
const outboxNotFound = (id: number) => problemError('resource-not-found', `No outbox row ${id}`);

/**
 * Whether the caller may name secrets and move a secret-holding channel (service checkSecretUse):
 * the admin scope; no caller on a scoped route means no authentication pack is loaded at all.
 */
const isOperator = (request: FastifyRequest) => request.caller === null || hasScope(request, 'admin');

/** The request's span, so deliveries join the trace of the change that caused them. */
export function traceparentOf(request: FastifyRequest): string | null {
  const ctx = request.traceContext ?? null;
  return ctx ? formatTraceparent(ctx) : null;
}

/**
 * Channel CRUD (control-plane writes: `freeze: true`), a test delivery, manual notifications,
 * the outbox list and retrying a dead row. Every write goes through `app.writeThrough` (audited in
 * its transaction; the dispatcher reads channels and rows when it runs, so there is no in-memory
 * state to refresh).
 */
export const notificationRoutes =
  ({ service, senders, events }: Notifications): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      CHANNELS,
      {
        config: { scope: 'notify:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Create a notification channel (webhook, email or sms) subscribed to event types',
          body: CreateChannelBody,
          response: { 201: ChannelSchema, ...problemResponses(400, 403, 409, 415, 422, 503) },
        },
      },
      async (request, reply) => {
        const channel = await app.writeThrough(request, {}, async (tx) => {
          const created = await service.createChannel(tx, request.body, { admin: isOperator(request) });
          return { result: created, audit: { operation: `${CHANNEL}.create`, targetType: CHANNEL, targetId: created.id, after: created } };
        });
        return reply.code(201).header('location', `${CHANNELS}/${channel.id}`).send(channel);
      },
    );

    app.get(
      CHANNELS,
      {
        config: { scope: 'notify:read' },
        schema: { tags: TAGS, summary: 'List notification channels, oldest first', querystring: ChannelQuery, response: { 200: PageOf(ChannelSchema), ...problemResponses(400, 503) } },
      },
      async (request) => service.listChannels({ ...request.query, limit: pageLimit(request.query) }),
    );

    app.get(
      `${CHANNELS}/:id`,
      {
        config: { scope: 'notify:read' },
        schema: { tags: TAGS, summary: 'One notification channel', params: IdParams, response: { 200: ChannelSchema, ...problemResponses(400, 404, 503) } },
      },
      async (request) => {
        const channel = await service.channel(request.params.id);
        if (!channel) throw channelNotFound(request.params.id);
        return channel;
      },
    );

    app.patch(
      `${CHANNELS}/:id`,
      {
        config: { scope: 'notify:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: "Change a channel's name, subscriptions, config or enabled flag (the type stays)",
          params: IdParams,
          body: UpdateChannelBody,
          response: { 200: ChannelSchema, ...problemResponses(400, 403, 404, 409, 415, 422, 503) },
        },
      },
      async (request) => {
        const { id } = request.params;
        return app.writeThrough(request, {}, async (tx) => {
          const changed = await service.updateChannel(tx, id, request.body, { admin: isOperator(request) });
          if (!changed) throw channelNotFound(id);
          return { result: changed.after, audit: { operation: `${CHANNEL}.update`, targetType: CHANNEL, targetId: id, before: changed.before, after: changed.after } };
        });
      },
    );

    app.delete(
      `${CHANNELS}/:id`,
      {
        config: { scope: 'notify:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Delete a channel (its undelivered outbox rows go dead; delivered history stays)',
          params: IdParams,
          response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(400, 404, 503) },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        await app.writeThrough(request, {}, async (tx) => {
          const removed = await service.removeChannel(tx, id);
          if (!removed) throw channelNotFound(id);
          return { result: null, audit: { operation: `${CHANNEL}.delete`, targetType: CHANNEL, targetId: id, before: removed } };
        });
        return reply.code(204).send(null);
      },
    );

    app.post(
      `${CHANNELS}/:id/test`,
      {
        config: { scope: 'notify:write' },
        schema: {
          tags: TAGS,
          summary: 'Send a `notify.test` event to this channel now, outside the outbox, and report the outcome',
          params: IdParams,
          response: { 200: TestResultSchema, ...problemResponses(400, 404, 503) },
        },
      },
      async (request) => {
        const { id } = request.params;
        const channel = await service.channelRow(id);
        if (!channel) throw channelNotFound(id);
        const messageId = `msg_test_${randomBytes(12).toString('base64url')}`;
        const started = performance.now();
        const parent = request.traceContext ?? null;
        const result = await senders.deliver(
          channel.type,
          channel.config,
          { messageId, eventType: 'notify.test', payload: { summary: `test of channel ${channel.name}`, channelId: id }, createdAt: new Date() },
          { traceHeaders: { traceparent: formatTraceparent({ traceId: parent?.traceId ?? newTraceId(), spanId: newSpanId(), sampled: parent?.sampled ?? false, randomTraceId: parent?.randomTraceId ?? true }) } },
        );
        const body = {
          ok: result.ok,
          statusCode: result.statusCode,
          durationMs: Math.round(performance.now() - started),
          error: result.ok ? null : result.error,
          messageId,
        };
        // The delivery happened outside any transaction; only its audit entry is written here.
        await app.writeThrough(request, {}, async () => ({
          result: null,
          audit: { operation: `${CHANNEL}.test`, targetType: CHANNEL, targetId: id, result: result.ok ? 'success' : 'failure', after: body },
        }));
        return body;
      },
    );

    app.post(
      ROOT,
      {
        config: { scope: 'notify:write' },
        schema: {
          tags: TAGS,
          summary: 'Notify: one outbox row per enabled channel subscribed to the event type (or per listed channel); delivered by the dispatcher',
          body: NotifyBody,
          response: { 202: NotifyResultSchema, ...problemResponses(400, 415, 422, 503) },
        },
      },
      async (request, reply) => {
        const { type, payload = {}, channelIds } = request.body;
        // The packs' own event types are theirs: a manual look-alike would be signed like the real one.
        const reserved = events.reservedPatternOf(type);
        if (reserved) {
          throw new ProblemError('unprocessable', {
            detail: `Event type '${type}' is reserved (${reserved}): the kernel's packs emit it (reserved: ${events.patterns().join(', ')}). Use another namespace for manual events, e.g. 'custom.${type}'.`,
            extensions: { type, reserved: events.patterns() },
          });
        }
        const result = await app.writeThrough(request, {}, async (tx) => {
          const queued = await service.enqueue(tx, { type, payload, traceparent: traceparentOf(request) }, { channelIds });
          const missing = (channelIds ?? []).filter((id) => !queued.items.some((i) => i.channelId === id));
          if (missing.length) throw new ProblemError('unprocessable', { detail: `No enabled notification channel ${missing.join(', ')}; nothing was queued.`, extensions: { channelIds: missing } });
          return {
            result: queued,
            audit: {
              operation: `${OUTBOX}.notify`,
              targetType: OUTBOX,
              targetId: queued.eventId,
              after: { eventType: type, channelIds: queued.items.map((i) => i.channelId), outboxIds: queued.items.map((i) => i.id) },
            },
          };
        });
        return reply.code(202).header('location', `${ROOT}?eventId=${result.eventId}`).send(result);
      },
    );

    app.get(
      ROOT,
      {
        config: { scope: 'notify:read' },
        schema: { tags: TAGS, summary: 'The outbox, newest first, filterable by status, channel, event type and event', querystring: OutboxQuery, response: { 200: PageOf(OutboxItemSchema), ...problemResponses(400, 503) } },
      },
      async (request) => service.listOutbox({ ...request.query, limit: pageLimit(request.query) }),
    );

    app.get(
      `${ROOT}/:id`,
      {
        config: { scope: 'notify:read' },
        schema: { tags: TAGS, summary: 'One outbox row', params: IdParams, response: { 200: OutboxItemSchema, ...problemResponses(400, 404, 503) } },
      },
      async (request) => {
        const item = await service.outboxItem(request.params.id);
        if (!item) throw outboxNotFound(request.params.id);
        return item;
      },
    );

    app.post(
      `${ROOT}/:id/retry`,
      {
        config: { scope: 'notify:write' },
        schema: {
          tags: TAGS,
          summary: 'Retry a dead outbox row: back to pending with a fresh set of attempts, due now',
          params: IdParams,
          response: { 200: OutboxItemSchema, ...problemResponses(400, 404, 409, 503) },
        },
      },
      async (request) => {
        const { id } = request.params;
        return app.writeThrough(request, {}, async (tx) => {
          const changed = await service.retry(tx, id);
          if (!changed) throw outboxNotFound(id);
          return { result: changed.after, audit: { operation: `${OUTBOX}.retry`, targetType: OUTBOX, targetId: id, before: changed.before, after: changed.after } };
        });
      },
    );
  };

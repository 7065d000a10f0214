import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import type { DbOrTx } from '../../db/client.js';
import { PageOf, pageLimit } from '../../src/pagination.js';
import { problemError, problemResponses } from '../../src/problem.js';
import { IdParams } from '../../src/schemas.js';
import { evaluate, type ActorRef } from './effective.js';
import type { Maintenance } from './index.js';
import type { ChangeCause } from './jobs.js';
import {
  CreateWindowBody,
  FreezeSchema,
  HistoryItemSchema,
  HistoryQuery,
  MaintenanceStatusSchema,
  SetFreezeBody,
  SetStateBody,
  UpdateWindowBody,
  WindowQuery,
  WindowSchema,
} from './schemas.js';
import { freezeBody, freezeJson, futureUntil, settingJson, statusBody, windowBody, windowStatus } from './service.js';

const TAGS = ['maintenance'];
export const MAINTENANCE_PATH = '/system/maintenance';
const WINDOWS = `${MAINTENANCE_PATH}/windows`;

const notFound = (id: number) => problemError('resource-not-found', `No maintenance window ${id}`);

const actorRef = (request: FastifyRequest): ActorRef =>
  request.actor ? { type: request.actor.type, id: request.actor.id, keyId: request.actor.keyId } : { type: 'anonymous', id: null, keyId: null };

/**
 * The maintenance endpoints. Reads of the mode and freeze answer from memory; each write goes
 * through `app.writeThrough` (its audit entry and the state-cache notification in its
 * transaction, then this instance reloads at once, the others on the notification), and tells
 * the change listeners inside that same transaction.
 * None of these routes is frozen: the freeze must stay switchable while it is on.
 */
export const maintenanceRoutes =
  (m: Maintenance): FastifyPluginAsyncTypebox =>
  async (app) => {
    const refresh = { refresh: [m.entry] };
    /** Tells the change listeners (the notifications pack's outbox) inside the write's transaction. */
    const emitChange = async (tx: DbOrTx, kind: 'mode' | 'freeze', cause: ChangeCause, windowId: number | null, now: number) =>
      m.events.emit(tx, [{ kind, cause, windowId }], async () => evaluate(await m.service.loadSnapshot(tx), now));

    app.get(
      MAINTENANCE_PATH,
      {
        config: { scope: 'maintenance:read' },
        schema: {
          tags: TAGS,
          summary: 'Mode as set, effective mode, active and next window, change freeze',
          response: { 200: MaintenanceStatusSchema, ...problemResponses(401, 403, 503) },
        },
      },
      async () => statusBody(m.current(), Date.now()),
    );

    app.post(
      `${MAINTENANCE_PATH}/state`,
      {
        config: { scope: 'maintenance:write' },
        schema: {
          tags: TAGS,
          summary: 'Set the mode (normal, read_only, maintenance), optionally until a time',
          body: SetStateBody,
          response: { 200: MaintenanceStatusSchema, ...problemResponses(400, 401, 403, 415, 503) },
        },
      },
      async (request) => {
        const now = Date.now();
        const { mode, reason } = request.body;
        const until = futureUntil(request.body.until, now, mode !== 'normal', "is not allowed with mode 'normal'");
        await app.writeThrough(request, refresh, async (tx) => {
          const before = await m.service.lockSetting(tx);
          const after = await m.service.insertSetting(tx, { mode, reason, source: 'manual', actor: actorRef(request), since: new Date(now), until });
          await emitChange(tx, 'mode', 'manual', null, now);
          return { result: null, audit: { operation: 'maintenance.state.change', targetType: 'maintenance', targetId: 'mode', reason, before: settingJson(before), after: settingJson(after) } };
        });
        return statusBody(m.current(), Date.now());
      },
    );

    app.get(
      `${MAINTENANCE_PATH}/history`,
      {
        config: { scope: 'maintenance:read' },
        schema: {
          tags: TAGS,
          summary: 'Mode settings, newest first (operators and expired untils; windows are listed under /windows)',
          querystring: HistoryQuery,
          response: { 200: PageOf(HistoryItemSchema), ...problemResponses(400, 401, 403, 503) },
        },
      },
      async (request) => m.service.history({ cursor: request.query.cursor, limit: pageLimit(request.query) }),
    );

    app.get(
      `${MAINTENANCE_PATH}/freeze`,
      {
        config: { scope: 'maintenance:read' },
        schema: {
          tags: TAGS,
          summary: 'The change freeze',
          response: { 200: FreezeSchema, ...problemResponses(401, 403, 503) },
        },
      },
      async () => freezeBody(m.current().freeze),
    );

    app.post(
      `${MAINTENANCE_PATH}/freeze`,
      {
        config: { scope: 'maintenance:write' },
        schema: {
          tags: TAGS,
          summary: 'Switch the change freeze on or off, optionally until a time',
          body: SetFreezeBody,
          response: { 200: FreezeSchema, ...problemResponses(400, 401, 403, 415, 503) },
        },
      },
      async (request) => {
        const now = Date.now();
        const { enabled, reason } = request.body;
        const until = futureUntil(request.body.until, now, enabled, 'is only allowed with enabled: true');
        await app.writeThrough(request, refresh, async (tx) => {
          const before = await m.service.lockFreeze(tx);
          const after = await m.service.insertFreeze(tx, { enabled, reason, source: 'manual', actor: actorRef(request), since: new Date(now), until });
          await emitChange(tx, 'freeze', 'manual', null, now);
          return { result: null, audit: { operation: 'maintenance.freeze.change', targetType: 'maintenance', targetId: 'freeze', reason, before: freezeJson(before), after: freezeJson(after) } };
        });
        return freezeBody(m.current().freeze);
      },
    );

    app.get(
      WINDOWS,
      {
        config: { scope: 'maintenance:read' },
        schema: {
          tags: TAGS,
          summary: 'List scheduled windows, oldest first',
          querystring: WindowQuery,
          response: { 200: PageOf(WindowSchema), ...problemResponses(400, 401, 403, 503) },
        },
      },
      async (request) => m.service.listWindows({ ...request.query, limit: pageLimit(request.query) }, new Date()),
    );

    app.post(
      WINDOWS,
      {
        config: { scope: 'maintenance:write' },
        schema: {
          tags: TAGS,
          summary: 'Schedule a window (read_only or maintenance from startsAt to endsAt); windows may not overlap',
          body: CreateWindowBody,
          response: { 201: WindowSchema, ...problemResponses(400, 401, 403, 409, 415, 503) },
        },
      },
      async (request, reply) => {
        const now = Date.now();
        const created = await app.writeThrough(request, refresh, async (tx) => {
          const w = await m.service.createWindow(tx, request.body, actorRef(request).id, now);
          const body = windowBody(w, now);
          // No change event: a window that is already in progress is announced by the sweep when it records the start.
          return { result: body, audit: { operation: 'maintenance.window.create', targetType: 'maintenance-window', targetId: w.id, reason: w.reason, after: body } };
        });
        return reply.code(201).header('location', `${WINDOWS}/${created.id}`).send(created);
      },
    );

    app.get(
      `${WINDOWS}/:id`,
      {
        config: { scope: 'maintenance:read' },
        schema: {
          tags: TAGS,
          summary: 'One scheduled window',
          params: IdParams,
          response: { 200: WindowSchema, ...problemResponses(400, 401, 403, 404, 503) },
        },
      },
      async (request) => {
        const w = await m.service.windowById(request.params.id);
        if (!w) throw notFound(request.params.id);
        return windowBody(w);
      },
    );

    app.patch(
      `${WINDOWS}/:id`,
      {
        config: { scope: 'maintenance:write' },
        schema: {
          tags: TAGS,
          summary: 'Change a window that has not ended',
          params: IdParams,
          body: UpdateWindowBody,
          response: { 200: WindowSchema, ...problemResponses(400, 401, 403, 404, 409, 415, 503) },
        },
      },
      async (request) => {
        const { id } = request.params;
        const now = Date.now();
        return app.writeThrough(request, refresh, async (tx) => {
          const change = await m.service.updateWindow(tx, id, request.body, now);
          if (!change) throw notFound(id);
          const before = windowBody(change.before, now);
          const body = windowBody(change.after, now);
          if (before.status === 'active' || body.status === 'active') await emitChange(tx, 'mode', 'window-changed', id, now);
          return { result: body, audit: { operation: 'maintenance.window.update', targetType: 'maintenance-window', targetId: id, reason: change.after.reason, before, after: body } };
        });
      },
    );

    app.delete(
      `${WINDOWS}/:id`,
      {
        config: { scope: 'maintenance:write' },
        schema: {
          tags: TAGS,
          summary: 'Delete a window (deleting one in progress ends it at once)',
          params: IdParams,
          response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(400, 401, 403, 404, 503) },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const now = Date.now();
        await app.writeThrough(request, refresh, async (tx) => {
          const removed = await m.service.removeWindow(tx, id);
          if (!removed) throw notFound(id);
          if (windowStatus(removed, now) === 'active') await emitChange(tx, 'mode', 'window-end', id, now);
          return { result: null, audit: { operation: 'maintenance.window.delete', targetType: 'maintenance-window', targetId: id, reason: removed.reason, before: windowBody(removed, now) } };
        });
        return reply.code(204).send(null);
      },
    );
  };

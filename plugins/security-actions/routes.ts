import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { PageOf, pageLimit } from '../../src/pagination.js';
import { problemError, problemResponses } from '../../src/problem.js';
import { IdParams } from '../../src/schemas.js';
import type { SecurityActions } from './index.js';
import { ActionQuery, CancelBody, CreateActionBody, DecideBody, SecurityActionSchema } from './schemas.js';

const TAGS = ['security'];
/**
 * The workflow is incident response: it must keep working in read-only and maintenance mode
 * (an action may be what switches the mode back), like the maintenance endpoints themselves.
 */
const WRITE = { scope: 'security:write', shield: false } as const;
export const ACTIONS_PATH = '/system/security/actions';

/**
 * The approval workflow's endpoints. Each write goes through `app.writeThrough` (workflow.ts):
 * transaction, row lock, audit entry. An approval that completes the count executes the
 * action in the same request and answers with the outcome (`executed` or `failed`).
 */
export const securityActionRoutes =
  ({ service, workflow }: SecurityActions): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      ACTIONS_PATH,
      {
        config: WRITE,
        schema: {
          tags: TAGS,
          summary: 'Request a security action (pending until approved by other people)',
          description:
            'Types: `block_ip` {address, ttlSeconds?}, `unblock_ip` {address}, `revoke_api_key` {keyId}, `suspend_client` {clientId}, `set_maintenance_mode` {mode, until?}, `disable_flag` {flagKey}. `requiredApprovals` defaults to 1 for low and medium severity, 2 for high and critical, and cannot be set lower. The target is checked now (400 naming `#/params/<field>`) and again at execution.',
          body: CreateActionBody,
          response: { 201: SecurityActionSchema, ...problemResponses(400, 401, 403, 415, 503) },
        },
      },
      async (request, reply) => {
        const action = await workflow.create(request, request.body);
        return reply.code(201).header('location', `${ACTIONS_PATH}/${action.id}`).send(action);
      },
    );

    app.get(
      ACTIONS_PATH,
      {
        config: { scope: 'security:read' },
        schema: {
          tags: TAGS,
          summary: 'List security actions, newest first (filters: status, type, severity, requestedBy)',
          querystring: ActionQuery,
          response: { 200: PageOf(SecurityActionSchema), ...problemResponses(400, 401, 403, 503) },
        },
      },
      async (request) => service.list({ ...request.query, limit: pageLimit(request.query) }),
    );

    app.get(
      `${ACTIONS_PATH}/:id`,
      {
        config: { scope: 'security:read' },
        schema: {
          tags: TAGS,
          summary: 'One security action with its decisions, result or error',
          params: IdParams,
          response: { 200: SecurityActionSchema, ...problemResponses(400, 401, 403, 404, 503) },
        },
      },
      async (request) => {
        const action = await service.byId(request.params.id);
        if (!action) throw problemError('resource-not-found', `No security action ${request.params.id}`);
        return action;
      },
    );

    app.post(
      `${ACTIONS_PATH}/:id/approvals`,
      {
        config: WRITE,
        schema: {
          tags: TAGS,
          summary: 'Approve or reject a pending action (never your own; one decision per person; any rejection rejects)',
          description:
            'Answers the action after the decision. The approval that completes `requiredApprovals` executes the action at once: the answer is then `executed` (with `result`) or `failed` (with `error`). 409 with `currentState` when the action is not pending (an expired one included); 409 for a second decision by the same person; 422 for the requester.',
          params: IdParams,
          body: DecideBody,
          response: { 200: SecurityActionSchema, ...problemResponses(400, 401, 403, 404, 409, 415, 422, 503) },
        },
      },
      async (request) => workflow.decide(request, request.params.id, request.body),
    );

    app.post(
      `${ACTIONS_PATH}/:id/execute`,
      {
        config: WRITE,
        schema: {
          tags: TAGS,
          summary: 'Execute an approved action whose execution did not start (e.g. its instance stopped right after the approval)',
          params: IdParams,
          response: { 200: SecurityActionSchema, ...problemResponses(400, 401, 403, 404, 409, 503) },
        },
      },
      async (request) => workflow.execute(request, request.params.id),
    );

    app.post(
      `${ACTIONS_PATH}/:id/cancel`,
      {
        config: WRITE,
        schema: {
          tags: TAGS,
          summary: 'Withdraw a pending action (the requester, or an admin)',
          params: IdParams,
          body: CancelBody,
          response: { 200: SecurityActionSchema, ...problemResponses(400, 401, 403, 404, 409, 415, 503) },
        },
      },
      async (request) => workflow.cancel(request, request.params.id, request.body?.comment ?? null),
    );
  };

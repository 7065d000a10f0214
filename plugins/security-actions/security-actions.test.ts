import { and, asc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { adminOperations } from '../../src/audit/table.js';
import { ProblemError } from '../../src/problem.js';
import { authHeader, createTestApp, type TestApp } from '../../test/helpers/app.js';
import { securityActions } from './table.js';
import { executionError } from './workflow.js';

const PATH = '/system/security/actions';

let t: TestApp;
/** Two people besides the admin (the bootstrap key, who requests most actions here). */
let alice: { token: string; clientId: number };
let bob: { token: string; clientId: number };
let reader: { token: string; clientId: number };

beforeAll(async () => {
  t = await createTestApp();
  alice = await t.keyWith(['security:write']);
  bob = await t.keyWith(['security:write']);
  reader = await t.keyWith(['security:read']);
});
afterAll(async () => t?.close());

type Who = { token: string } | null;
const as = (who: Who) => (who ? authHeader(who.token) : {});

const create = (payload: Record<string, unknown>, who: Who = null) => t.inject({ method: 'POST', url: PATH, payload, headers: as(who) });
const decide = (id: number, decision: 'approve' | 'reject', who: Who, comment?: string) =>
  t.inject({ method: 'POST', url: `${PATH}/${id}/approvals`, payload: comment === undefined ? { decision } : { decision, comment }, headers: as(who) });
const get = (id: number) => t.inject({ method: 'GET', url: `${PATH}/${id}` });
const auditOf = (id: number) =>
  t.app.db
    .select()
    .from(adminOperations)
    .where(and(eq(adminOperations.targetType, 'security-action'), eq(adminOperations.targetId, String(id))))
    .orderBy(asc(adminOperations.id));

let flagSeq = 0;
async function newFlag(enabled = true): Promise<string> {
  const key = `sa.flag-${++flagSeq}`;
  const res = await t.inject({ method: 'POST', url: '/system/flags', payload: { key, enabled } });
  expect(res.statusCode).toBe(201);
  return key;
}

/** A pending disable_flag action requested by the admin; returns its id. */
async function pendingAction(extra: Record<string, unknown> = {}, who: Who = null): Promise<number> {
  const res = await create({ type: 'disable_flag', params: { flagKey: await newFlag() }, reason: 'kill switch for the incident', ...extra }, who);
  expect(res.statusCode, res.body).toBe(201);
  return res.json().id;
}

function expectConflict(res: { statusCode: number; json: () => Record<string, unknown> }, currentState: string) {
  expect(res.statusCode).toBe(409);
  expect(res.json()).toMatchObject({ type: '/problems/conflict', currentState });
  expect(String(res.json().detail)).toContain(currentState);
}

describe('security action workflow (TR)', () => {
  it('creates a pending action with defaults by severity, Location and an audit entry', async () => {
    const flagKey = await newFlag();
    const res = await create({ type: 'disable_flag', params: { flagKey }, reason: 'checkout leaks data' });
    expect(res.statusCode).toBe(201);
    const action = res.json();
    expect(res.headers.location).toBe(`${PATH}/${action.id}`);
    expect(action).toMatchObject({
      type: 'disable_flag',
      params: { flagKey },
      reason: 'checkout leaks data',
      severity: 'medium',
      status: 'pending',
      requiredApprovals: 1,
      approvals: 0,
      decisions: [],
      result: null,
      error: null,
      requestedBy: { type: 'client', keyId: t.adminKey.slice(4, 16) },
    });
    // A day to decide by default.
    expect(Date.parse(action.expiresAt) - Date.now()).toBeGreaterThan(23 * 3600_000);
    expect((await get(action.id)).json()).toEqual(action);

    const high = await create({ type: 'disable_flag', params: { flagKey }, reason: 'second opinion', severity: 'high' });
    expect(high.json()).toMatchObject({ severity: 'high', requiredApprovals: 2 });
    const critical = await create({ type: 'disable_flag', params: { flagKey }, reason: 'more eyes', severity: 'critical', requiredApprovals: 3 });
    expect(critical.json()).toMatchObject({ severity: 'critical', requiredApprovals: 3 });
    expect((await create({ type: 'disable_flag', params: { flagKey }, reason: 'okay', severity: 'low' })).json().requiredApprovals).toBe(1);

    expect((await auditOf(action.id)).map((r) => r.operation)).toEqual(['security-action.create']);
  });

  it('refuses bad input with 400 problems pointing at the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ type: 'reboot', params: {}, reason: 'x'.repeat(5) }, '#/type'],
      [{ type: 'disable_flag', params: { flagKey: 'x' } }, '#/reason'],
      [{ type: 'disable_flag', params: { flagKey: 'x' }, reason: 'fine reason', colour: 'red' }, '#/colour'],
      [{ type: 'disable_flag', params: { flagKey: 'x' }, reason: 'r'.repeat(1001) }, '#/reason'],
      [{ type: 'disable_flag', params: 'x', reason: 'fine reason' }, '#/params'],
      [{ type: 'disable_flag', params: { flagKey: 'x', extra: 1 }, reason: 'fine reason' }, '#/params/extra'],
      [{ type: 'disable_flag', params: {}, reason: 'fine reason' }, '#/params/flagKey'],
      [{ type: 'block_ip', params: { address: 'not-an-ip' }, reason: 'fine reason' }, '#/params/address'],
      [{ type: 'block_ip', params: { address: '10.0.0.0/33' }, reason: 'fine reason' }, '#/params/address'],
      [{ type: 'block_ip', params: { address: '10.0.0.1', ttlSeconds: -5 }, reason: 'fine reason' }, '#/params/ttlSeconds'],
      [{ type: 'unblock_ip', params: { address: '2001:db8::/129' }, reason: 'fine reason' }, '#/params/address'],
      [{ type: 'revoke_api_key', params: { keyId: 'short' }, reason: 'fine reason' }, '#/params/keyId'],
      [{ type: 'revoke_api_key', params: { keyId: 'AAAAAAAAAAAA' }, reason: 'fine reason' }, '#/params/keyId'],
      [{ type: 'suspend_client', params: { clientId: '7' }, reason: 'fine reason' }, '#/params/clientId'],
      [{ type: 'suspend_client', params: { clientId: 999999 }, reason: 'fine reason' }, '#/params/clientId'],
      [{ type: 'set_maintenance_mode', params: { mode: 'off' }, reason: 'fine reason' }, '#/params/mode'],
      [{ type: 'set_maintenance_mode', params: { mode: 'normal', until: new Date(Date.now() + 60_000).toISOString() }, reason: 'fine reason' }, '#/params/until'],
      [{ type: 'set_maintenance_mode', params: { mode: 'read_only', until: '2000-01-01T00:00:00Z' }, reason: 'fine reason' }, '#/params/until'],
      [{ type: 'set_maintenance_mode', params: { mode: 'read_only', until: 'tomorrow-ish' }, reason: 'fine reason' }, '#/params/until'],
      [{ type: 'disable_flag', params: { flagKey: 'no.such.flag' }, reason: 'fine reason' }, '#/params/flagKey'],
      [{ type: 'disable_flag', params: { flagKey: 'x' }, reason: 'fine reason', severity: 'high', requiredApprovals: 1 }, '#/requiredApprovals'],
      [{ type: 'disable_flag', params: { flagKey: 'x' }, reason: 'fine reason', requiredApprovals: 11 }, '#/requiredApprovals'],
      [{ type: 'disable_flag', params: { flagKey: 'x' }, reason: 'fine reason', expiresAt: '2000-01-01T00:00:00Z' }, '#/expiresAt'],
      [{ type: 'disable_flag', params: { flagKey: 'x' }, reason: 'fine reason', expiresAt: new Date(Date.now() + 31 * 86_400_000).toISOString() }, '#/expiresAt'],
    ];
    const flagKey = await newFlag();
    for (const [payload, pointer] of cases) {
      // Cases about something else than the flag name a flag that exists.
      const params = payload.params as Record<string, unknown> | undefined;
      const body = params?.flagKey === 'x' ? { ...payload, params: { ...params, flagKey } } : payload;
      const res = await create(body);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().type).toBe('/problems/validation-failed');
      expect(res.json().errors, JSON.stringify(payload)).toContainEqual(expect.objectContaining({ pointer }));
    }
    const revoked = await t.keyWith(['flags:read']);
    await t.inject({ method: 'POST', url: `/system/api-clients/${revoked.clientId}/keys/${revoked.keyId}/revoke`, payload: { reason: 'gone' } });
    const again = await create({ type: 'revoke_api_key', params: { keyId: revoked.keyId }, reason: 'fine reason' });
    expect(again.json().errors).toContainEqual(expect.objectContaining({ pointer: '#/params/keyId', message: 'names a key that is already revoked' }));
    expect(await t.app.db.select().from(securityActions).where(eq(securityActions.reason, 'fine reason'))).toEqual([]);
  });

  it('executes on the approval that completes the count, in one transaction with its audit entries', async () => {
    const flagKey = await newFlag(true);
    const id = (await create({ type: 'disable_flag', params: { flagKey }, reason: 'kill switch' })).json().id;
    const res = await decide(id, 'approve', alice, 'looks right');
    expect(res.statusCode).toBe(200);
    const action = res.json();
    expect(action).toMatchObject({ status: 'executed', approvals: 1, error: null, result: { flagKey, wasEnabled: true } });
    expect(action.decisions).toEqual([{ approver: { type: 'client', id: String(alice.clientId), keyId: expect.any(String) }, decision: 'approve', comment: 'looks right', createdAt: expect.any(String) }]);
    expect(action.decidedAt).not.toBeNull();
    expect(action.executionStartedAt).not.toBeNull();
    expect(action.finishedAt).not.toBeNull();
    // The flag is off in memory at once (the state entry was reloaded before the answer).
    expect(t.app.flags.state.get().flags.get(flagKey)?.enabled).toBe(false);
    expect((await t.inject({ method: 'GET', url: `/system/flags/${flagKey}` })).json().enabled).toBe(false);

    const trail = await auditOf(id);
    expect(trail.map((r) => [r.operation, r.result])).toEqual([
      ['security-action.create', 'success'],
      ['security-action.approve', 'success'],
      ['security-action.execute', 'success'],
    ]);
    const execute = trail[2]!;
    expect(execute.actorId).toBe(String(alice.clientId));
    // The owning pack's entry is written by the same transaction, next to the execution's.
    const [flagEntry] = await t.app.db.select().from(adminOperations).where(and(eq(adminOperations.targetType, 'feature-flag'), eq(adminOperations.targetId, flagKey), eq(adminOperations.operation, 'feature-flag.update')));
    expect(flagEntry?.id).toBe(execute.id + 1);
    expect(flagEntry?.reason).toBe(`security action ${id}: kill switch`);
  });

  it('needs N approvals from different people for high severity; nothing runs before the last', async () => {
    const flagKey = await newFlag(true);
    const id = (await create({ type: 'disable_flag', params: { flagKey }, reason: 'two keys', severity: 'high' })).json().id;
    const first = await decide(id, 'approve', alice);
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ status: 'pending', approvals: 1, requiredApprovals: 2 });
    expect(t.app.flags.state.get().flags.get(flagKey)?.enabled).toBe(true);
    // One decision per approver.
    const twice = await decide(id, 'approve', alice);
    expect(twice.statusCode).toBe(409);
    expect(twice.json()).toMatchObject({ type: '/problems/conflict', approverId: String(alice.clientId) });
    expect((await get(id)).json().approvals).toBe(1);

    const second = await decide(id, 'approve', bob);
    expect(second.json()).toMatchObject({ status: 'executed', approvals: 2 });
    expect(second.json().decisions.map((d: { approver: { id: string } }) => d.approver.id)).toEqual([String(alice.clientId), String(bob.clientId)]);
    expect(t.app.flags.state.get().flags.get(flagKey)?.enabled).toBe(false);
  });

  it('refuses self-approval (422) and self-rejection, whatever the key of the same client', async () => {
    const id = await pendingAction({}, alice);
    const self = await decide(id, 'approve', alice);
    expect(self.statusCode).toBe(422);
    expect(self.json()).toMatchObject({ type: '/problems/unprocessable', currentState: 'pending' });
    expect((await decide(id, 'reject', alice)).statusCode).toBe(422);
    // A second key of the same client is the same person.
    const other = await t.inject({ method: 'POST', url: `/system/api-clients/${alice.clientId}/keys`, payload: { name: 'second', scopes: ['security:write'] } });
    expect((await decide(id, 'approve', { token: other.json().token })).statusCode).toBe(422);
    expect((await get(id)).json()).toMatchObject({ status: 'pending', approvals: 0, decisions: [] });
  });

  it('any rejection rejects, even after approvals; then no transition is allowed (409 naming the state)', async () => {
    const flagKey = await newFlag(true);
    const id = (await create({ type: 'disable_flag', params: { flagKey }, reason: 'needs three', requiredApprovals: 3 })).json().id;
    expect((await decide(id, 'approve', alice)).json().status).toBe('pending');
    const rejected = await decide(id, 'reject', bob, 'wrong flag');
    expect(rejected.statusCode).toBe(200);
    expect(rejected.json()).toMatchObject({ status: 'rejected', approvals: 1 });
    expect(rejected.json().finishedAt).not.toBeNull();
    expect(t.app.flags.state.get().flags.get(flagKey)?.enabled).toBe(true);

    expectConflict(await decide(id, 'approve', null), 'rejected');
    expectConflict(await t.inject({ method: 'POST', url: `${PATH}/${id}/cancel`, payload: {} }), 'rejected');
    expectConflict(await t.inject({ method: 'POST', url: `${PATH}/${id}/execute` }), 'rejected');
    expect((await auditOf(id)).map((r) => r.operation)).toEqual(['security-action.create', 'security-action.approve', 'security-action.reject']);
  });

  it('cancels a pending action: the requester or an admin, nobody else; then 409', async () => {
    const id = await pendingAction({}, alice);
    const byBob = await t.inject({ method: 'POST', url: `${PATH}/${id}/cancel`, payload: {}, headers: as(bob) });
    expect(byBob.statusCode).toBe(403);
    const cancelled = await t.inject({ method: 'POST', url: `${PATH}/${id}/cancel`, payload: { comment: 'not needed' }, headers: as(alice) });
    expect(cancelled.statusCode).toBe(200);
    expect(cancelled.json()).toMatchObject({ status: 'cancelled' });
    expectConflict(await t.inject({ method: 'POST', url: `${PATH}/${id}/cancel`, payload: {}, headers: as(alice) }), 'cancelled');
    expectConflict(await decide(id, 'approve', bob), 'cancelled');

    // An admin may withdraw anyone's action.
    const other = await pendingAction({}, bob);
    const byAdmin = await t.inject({ method: 'POST', url: `${PATH}/${other}/cancel`, payload: {} });
    expect(byAdmin.statusCode).toBe(200);
    expect(byAdmin.json().status).toBe('cancelled');
    expect((await auditOf(other)).at(-1)).toMatchObject({ operation: 'security-action.cancel', actorId: expect.any(String) });
  });

  it('execute: only an approved action (409 naming the state otherwise); runs it once', async () => {
    const id = await pendingAction();
    expectConflict(await t.inject({ method: 'POST', url: `${PATH}/${id}/execute` }), 'pending');
    // An approval whose execution never started (its instance stopped in between).
    await t.app.db.update(securityActions).set({ status: 'approved', approvals: 1 }).where(eq(securityActions.id, id));
    const res = await t.inject({ method: 'POST', url: `${PATH}/${id}/execute`, headers: as(bob) });
    expect(res.statusCode).toBe(200);
    expect(res.json().status).toBe('executed');
    expectConflict(await t.inject({ method: 'POST', url: `${PATH}/${id}/execute` }), 'executed');
    expectConflict(await decide(id, 'approve', alice), 'executed');
  });

  it('stores a sanitised error when the effect fails, and changes nothing', async () => {
    // The flag goes away between the request and the approval.
    const flagKey = await newFlag(true);
    const id = (await create({ type: 'disable_flag', params: { flagKey }, reason: 'too late' })).json().id;
    expect((await t.inject({ method: 'DELETE', url: `/system/flags/${flagKey}` })).statusCode).toBe(204);
    const res = await decide(id, 'approve', alice);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'failed', result: null, error: `Feature flag '${flagKey}' no longer exists.` });
    expect(res.json().finishedAt).not.toBeNull();
    const trail = await auditOf(id);
    expect(trail.at(-1)).toMatchObject({ operation: 'security-action.execute', result: 'failure' });

    // A client already suspended by hand: the suspension's own 409 becomes the error.
    const target = await t.keyWith(['flags:read']);
    const suspend = (await create({ type: 'suspend_client', params: { clientId: target.clientId }, reason: 'compromised' })).json().id;
    await t.inject({ method: 'PATCH', url: `/system/api-clients/${target.clientId}`, payload: { status: 'suspended' } });
    const failed = (await decide(suspend, 'approve', alice)).json();
    expect(failed).toMatchObject({ status: 'failed', error: `API client ${target.clientId} is already suspended.` });
    expect(failed.error).not.toMatch(/select|update|insert|at .*\.ts/i);
    expectConflict(await t.inject({ method: 'POST', url: `${PATH}/${suspend}/execute` }), 'failed');
  });

  it('revokes a key and suspends a client through the api-keys service: refused at once', async () => {
    const victim = await t.keyWith(['flags:read']);
    const headers = authHeader(victim.token);
    expect((await t.inject({ method: 'GET', url: '/system/flags', headers })).statusCode).toBe(200);
    const revoke = (await create({ type: 'revoke_api_key', params: { keyId: victim.keyId }, reason: 'leaked in a log' })).json().id;
    const done = (await decide(revoke, 'approve', alice)).json();
    expect(done).toMatchObject({ status: 'executed', result: { keyId: victim.keyId, clientId: victim.clientId } });
    expect((await t.inject({ method: 'GET', url: '/system/flags', headers })).statusCode).toBe(401);
    const key = await t.inject({ method: 'GET', url: `/system/api-clients/${victim.clientId}/keys/${victim.keyId}` });
    expect(key.json()).toMatchObject({ status: 'revoked', revokedReason: `security action ${revoke}: leaked in a log` });

    const client = await t.keyWith(['flags:read']);
    const suspend = (await create({ type: 'suspend_client', params: { clientId: client.clientId }, reason: 'abuse', severity: 'low' })).json().id;
    expect((await decide(suspend, 'approve', bob)).json()).toMatchObject({ status: 'executed', result: { clientId: client.clientId, status: 'suspended' } });
    expect((await t.inject({ method: 'GET', url: '/system/flags', headers: authHeader(client.token) })).statusCode).toBe(401);
    const [entry] = await t.app.db.select().from(adminOperations).where(and(eq(adminOperations.operation, 'api-client.suspend'), eq(adminOperations.targetId, String(client.clientId))));
    expect(entry?.reason).toBe(`security action ${suspend}: abuse`);
  });

  it('blocks and unblocks an address through the blocklist: refused and let through at once', async () => {
    const address = '203.0.113.77';
    const probe = () => t.inject({ method: 'GET', url: '/system/flags', remoteAddress: address });
    expect((await probe()).statusCode).toBe(200);
    const block = (await create({ type: 'block_ip', params: { address, ttlSeconds: 3600 }, reason: 'credential stuffing', severity: 'low' })).json().id;
    const blocked = (await decide(block, 'approve', alice)).json();
    expect(blocked).toMatchObject({ status: 'executed', result: { address, ruleId: expect.any(Number), expiresAt: expect.any(String) } });
    expect(Date.parse(blocked.result.expiresAt) - Date.now()).toBeGreaterThan(3500_000);
    const refused = await probe();
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({ type: '/problems/blocked' });
    const [rule] = await t.app.db.select().from(adminOperations).where(and(eq(adminOperations.operation, 'blocklist.block'), eq(adminOperations.targetId, String(blocked.result.ruleId))));
    expect(rule?.reason).toBe(`security action ${block}: credential stuffing`);

    const unblock = (await create({ type: 'unblock_ip', params: { address }, reason: 'false positive' })).json().id;
    expect((await decide(unblock, 'approve', bob)).json()).toMatchObject({ status: 'executed', result: { address, removedRuleIds: [blocked.result.ruleId] } });
    expect((await probe()).statusCode).toBe(200);

    // Nothing left to unblock: the action fails, saying so.
    const again = (await create({ type: 'unblock_ip', params: { address }, reason: 'twice' })).json().id;
    expect((await decide(again, 'approve', bob)).json()).toMatchObject({ status: 'failed', error: expect.stringContaining('nothing was unblocked') });
  });

  it("an executed action reaches every instance's in-memory state within a second", async () => {
    const other = await t.another();
    const flagKey = await newFlag(true);
    await vi.waitFor(() => expect(other.flags.state.get().flags.get(flagKey)?.enabled).toBe(true), { timeout: 5000, interval: 20 });
    const id = (await create({ type: 'disable_flag', params: { flagKey }, reason: 'everywhere' })).json().id;
    // Approved through the second instance: it executes there; the first hears the notification.
    const res = await t.inject({ method: 'POST', url: `${PATH}/${id}/approvals`, payload: { decision: 'approve' }, headers: as(alice) }, other);
    expect(res.json().status).toBe('executed');
    expect(other.flags.state.get().flags.get(flagKey)?.enabled).toBe(false);
    await vi.waitFor(() => expect(t.app.flags.state.get().flags.get(flagKey)?.enabled).toBe(false), { timeout: 5000, interval: 20 });
  });

  it('refuses to revoke the last admin key (the effect fails, the key keeps working)', async () => {
    const id = (await create({ type: 'revoke_api_key', params: { keyId: t.adminKey.slice(4, 16) }, reason: 'testing the guard' })).json().id;
    const res = (await decide(id, 'approve', alice)).json();
    expect(res).toMatchObject({ status: 'failed', error: expect.stringContaining('no usable admin key') });
    expect((await t.inject({ method: 'GET', url: PATH })).statusCode).toBe(200);
  });

  it('sets the maintenance mode through the maintenance pack', async () => {
    const until = new Date(Date.now() + 3600_000).toISOString();
    const id = (await create({ type: 'set_maintenance_mode', params: { mode: 'read_only', until }, reason: 'under attack' })).json().id;
    const res = await decide(id, 'approve', alice);
    expect(res.json()).toMatchObject({ status: 'executed', result: { mode: 'read_only', until, previousMode: 'normal' } });
    expect(t.app.maintenance.current().effective.mode).toBe('read_only');
    const status = (await t.inject({ method: 'GET', url: '/system/maintenance' })).json();
    expect(status).toMatchObject({ mode: 'read_only', reason: `security action ${id}: under attack`, actor: { id: String(alice.clientId) } });
    // Other writes are refused meanwhile; the workflow is not (it may be what switches back).
    expect((await t.inject({ method: 'POST', url: '/system/flags', payload: { key: 'sa.read-only' } })).statusCode).toBe(503);
    const back = (await create({ type: 'set_maintenance_mode', params: { mode: 'normal' }, reason: 'attack over' }, bob)).json().id;
    expect((await decide(back, 'approve', alice)).json()).toMatchObject({ status: 'executed', result: { mode: 'normal', previousMode: 'read_only' } });
    expect(t.app.maintenance.current().effective.mode).toBe('normal');
  });

  it('expires pending actions past expiresAt: the sweep, or the first decision after it (409 naming expired)', async () => {
    const swept = await pendingAction({ expiresAt: new Date(Date.now() + 60_000).toISOString() });
    const kept = await pendingAction();
    const result = await t.app.securityActions.workflow.sweep(new Date(Date.now() + 120_000));
    expect(result.expired).toContain(swept);
    expect(result.expired).not.toContain(kept);
    expect((await get(swept)).json()).toMatchObject({ status: 'expired' });
    expect((await get(kept)).json()).toMatchObject({ status: 'pending' });
    expect((await auditOf(swept)).at(-1)).toMatchObject({ operation: 'security-action.expire', actorType: 'system' });
    expectConflict(await decide(swept, 'approve', alice), 'expired');

    // Past its expiry, not yet swept: the approval records the expiry and answers 409.
    const late = await pendingAction();
    await t.app.db.update(securityActions).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(securityActions.id, late));
    expectConflict(await decide(late, 'approve', alice), 'expired');
    expect((await get(late)).json()).toMatchObject({ status: 'expired', approvals: 0, decisions: [] });
    const lateCancel = await pendingAction();
    await t.app.db.update(securityActions).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(securityActions.id, lateCancel));
    expectConflict(await t.inject({ method: 'POST', url: `${PATH}/${lateCancel}/cancel`, payload: {} }), 'expired');
  });

  it('fails executions that died before committing (the sweep, after the lease)', async () => {
    const id = await pendingAction();
    await t.app.db
      .update(securityActions)
      .set({ status: 'executing', approvals: 1, executionStartedAt: new Date(Date.now() - 10 * 60_000) })
      .where(eq(securityActions.id, id));
    const { interrupted } = await t.app.securityActions.workflow.sweep();
    expect(interrupted).toContain(id);
    expect((await get(id)).json()).toMatchObject({ status: 'failed', error: expect.stringContaining('interrupted') });
  });

  it('executes actions left approved (their instance stopped before executing them), naming the sweep', async () => {
    const flagKey = await newFlag(true);
    const left = (await create({ type: 'disable_flag', params: { flagKey }, reason: 'left behind' })).json().id;
    const recent = await pendingAction();
    await t.app.db.update(securityActions).set({ status: 'approved', approvals: 1, decidedAt: new Date(Date.now() - 5 * 60_000) }).where(eq(securityActions.id, left));
    // Approved a moment ago: its own request is still about to execute it.
    await t.app.db.update(securityActions).set({ status: 'approved', approvals: 1, decidedAt: new Date() }).where(eq(securityActions.id, recent));
    const { executed } = await t.app.securityActions.workflow.sweep();
    expect(executed).toEqual([left]);
    expect((await get(left)).json()).toMatchObject({ status: 'executed', result: { flagKey } });
    expect((await get(recent)).json().status).toBe('approved');
    expect(t.app.flags.state.get().flags.get(flagKey)?.enabled).toBe(false);
    expect((await auditOf(left)).at(-1)).toMatchObject({ operation: 'security-action.execute', actorType: 'system', actorId: 'security-actions' });
    expect((await t.inject({ method: 'POST', url: `${PATH}/${recent}/execute` })).json().status).toBe('executed');
  });

  it('answers the completing approval with the outcome when another execution took the action over (breaker finding 8)', async () => {
    const flagKey = await newFlag(true);
    const id = (await create({ type: 'disable_flag', params: { flagKey }, reason: 'taken over' })).json().id;
    const { service } = t.app.securityActions;
    const lock = service.lock.bind(service);
    // The approval locks the row twice: to decide, then to claim the execution. Before the claim,
    // another instance's `/execute` claims it (here inside the claim's own transaction, so the
    // claim sees `executing`) and finishes a moment later.
    const spy = vi
      .spyOn(service, 'lock')
      .mockImplementationOnce(lock)
      .mockImplementationOnce(async (tx, actionId) => {
        await tx.update(securityActions).set({ status: 'executing', executionStartedAt: new Date() }).where(eq(securityActions.id, actionId));
        setTimeout(() => void t.app.db.update(securityActions).set({ status: 'executed', finishedAt: new Date() }).where(eq(securityActions.id, actionId)).then(() => undefined), 300);
        return lock(tx, actionId);
      });
    try {
      const approved = await decide(id, 'approve', alice);
      expect(approved.statusCode, approved.body).toBe(200);
      expect(approved.json()).toMatchObject({ id, status: 'executed' });
    } finally {
      spy.mockRestore();
    }
  });

  it('two approvals racing execute the action once', async () => {
    const flagKey = await newFlag(true);
    const id = (await create({ type: 'disable_flag', params: { flagKey }, reason: 'race' })).json().id;
    const [a, b] = await Promise.all([decide(id, 'approve', alice), decide(id, 'approve', bob)]);
    const codes = [a.statusCode, b.statusCode].sort();
    expect(codes).toEqual([200, 409]);
    const winner = a.statusCode === 200 ? a : b;
    expect(winner.json().status).toBe('executed');
    const loser = a.statusCode === 409 ? a : b;
    expect(['approved', 'executing', 'executed']).toContain(loser.json().currentState);
    const trail = await auditOf(id);
    expect(trail.filter((r) => r.operation === 'security-action.execute')).toHaveLength(1);
    expect(trail.filter((r) => r.operation === 'security-action.approve')).toHaveLength(1);

    // Two approvals completing a count of two: both count, one execution.
    const key2 = await newFlag(true);
    const id2 = (await create({ type: 'disable_flag', params: { flagKey: key2 }, reason: 'race two', severity: 'high' })).json().id;
    const both = await Promise.all([decide(id2, 'approve', alice), decide(id2, 'approve', bob)]);
    expect(both.map((r) => r.statusCode)).toEqual([200, 200]);
    // The first one's answer is read after its commit: pending, or already what the second did.
    expect(both.map((r) => r.json().status)).toContain('executed');
    expect((await get(id2)).json()).toMatchObject({ status: 'executed', approvals: 2 });
    expect((await auditOf(id2)).filter((r) => r.operation === 'security-action.execute')).toHaveLength(1);

    // Two executions of one approved action: one runs, the other is told the state.
    const id3 = await pendingAction();
    await t.app.db.update(securityActions).set({ status: 'approved', approvals: 1 }).where(eq(securityActions.id, id3));
    const runs = await Promise.all([t.inject({ method: 'POST', url: `${PATH}/${id3}/execute` }), t.inject({ method: 'POST', url: `${PATH}/${id3}/execute`, headers: as(bob) })]);
    expect(runs.map((r) => r.statusCode).sort()).toEqual([200, 409]);
    expect((await auditOf(id3)).filter((r) => r.operation === 'security-action.execute')).toHaveLength(1);
  });

  it('lists newest first with filters and a keyset cursor', async () => {
    const mine = [await pendingAction({ severity: 'low' }, bob), await pendingAction({ severity: 'low' }, bob), await pendingAction({ severity: 'low' }, bob)];
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const url: string = `${PATH}?requestedBy=${bob.clientId}&status=pending&severity=low&type=disable_flag&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const res = await t.inject({ method: 'GET', url });
      expect(res.statusCode).toBe(200);
      seen.push(...res.json().items.map((i: { id: number }) => i.id));
      cursor = res.json().nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(seen).toEqual([...mine].reverse());
    expect(pages).toBe(2);

    for (const query of ['status=done', 'type=reboot', 'severity=urgent', 'limit=501', 'cursor=bogus', 'colour=red']) {
      const res = await t.inject({ method: 'GET', url: `${PATH}?${query}` });
      expect(res.statusCode, query).toBe(400);
    }
  });

  it('answers 404 for an unknown action and 400 for a bad id, on every route', async () => {
    const routes: Array<[string, string, Record<string, unknown> | undefined]> = [
      ['GET', '', undefined],
      ['POST', '/approvals', { decision: 'approve' }],
      ['POST', '/execute', undefined],
      ['POST', '/cancel', {}],
    ];
    for (const [method, suffix, payload] of routes) {
      const res = await t.inject({ method: method as 'GET' | 'POST', url: `${PATH}/999999${suffix}`, payload, headers: as(alice) });
      expect(res.statusCode, suffix).toBe(404);
      expect(res.json().type).toBe('/problems/resource-not-found');
      expect((await t.inject({ method: method as 'GET' | 'POST', url: `${PATH}/abc${suffix}`, payload })).statusCode, suffix).toBe(400);
    }
    const id = await pendingAction();
    for (const payload of [{}, { decision: 'maybe' }, { decision: 'approve', comment: 'c'.repeat(1001) }, { decision: 'approve', extra: 1 }]) {
      expect((await t.inject({ method: 'POST', url: `${PATH}/${id}/approvals`, payload, headers: as(alice) })).statusCode, JSON.stringify(payload)).toBe(400);
    }
  });

  it('needs security:read to read and security:write to act', async () => {
    const headers = authHeader(reader.token);
    expect((await t.inject({ method: 'GET', url: PATH, headers })).statusCode).toBe(200);
    const id = await pendingAction();
    expect((await t.inject({ method: 'GET', url: `${PATH}/${id}`, headers })).statusCode).toBe(200);
    const write = await t.inject({ method: 'POST', url: `${PATH}/${id}/approvals`, headers, payload: { decision: 'approve' } });
    expect(write.statusCode).toBe(403);
    expect(write.json()).toMatchObject({ requiredScope: 'security:write' });
    expect((await t.inject({ method: 'POST', url: PATH, headers, payload: { type: 'disable_flag', params: { flagKey: 'x' }, reason: 'nope' } })).statusCode).toBe(403);
    expect((await t.app.inject({ method: 'GET', url: PATH })).statusCode).toBe(401);
  });

  it('offers the dashboard its pending actions, and retention its finished ones', async () => {
    const before = await t.app.securityActions.pendingCount();
    const id = await pendingAction({ severity: 'critical' });
    expect(await t.app.securityActions.pendingCount()).toBe(before + 1);
    const pending = await t.app.securityActions.pending(500);
    expect(pending.find((p) => p.id === id)).toMatchObject({ type: 'disable_flag', severity: 'critical', approvals: 0, requiredApprovals: 2, requestedBy: { type: 'client' } });
    expect(Object.keys(pending[0]!).sort()).toEqual(['approvals', 'createdAt', 'expiresAt', 'id', 'reason', 'requestedBy', 'requiredApprovals', 'severity', 'type']);
    expect(t.app.retention.get('security_actions')).toMatchObject({ defaultRetainDays: 365 });
  });

  it('documents its routes under the security tag', async () => {
    const doc = (await t.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(Object.keys(doc.paths[PATH])).toEqual(expect.arrayContaining(['get', 'post']));
    for (const suffix of ['/{id}/approvals', '/{id}/execute', '/{id}/cancel']) expect(doc.paths[`${PATH}${suffix}`].post.summary).toBeTruthy();
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, { tags: string[]; responses: Record<string, unknown> }>>)) {
      if (!path.startsWith(PATH)) continue;
      for (const [method, op] of Object.entries(ops)) {
        if (method === 'head') continue;
        expect(op.tags, `${method} ${path}`).toEqual(['security']);
        expect(Object.keys(op.responses), `${method} ${path}`).toEqual(expect.arrayContaining(['401', '403', '503']));
        if (method === 'post' && path !== PATH) expect(Object.keys(op.responses), `${method} ${path}`).toEqual(expect.arrayContaining(['404', '409']));
      }
    }
    expect(t.app.packs.find((p) => p.name === 'security-actions')).toMatchObject({ code: 'TR' });
  });
});

describe('executionError: what a failed action stores', () => {
  it("keeps a problem's own words, and strips SQL, addresses and secrets from anything else", () => {
    expect(executionError(new ProblemError('conflict', { detail: 'Key abc is already revoked.' }))).toBe('Key abc is already revoked.');
    expect(executionError(new ProblemError('validation-failed', { detail: 'The request does not match the schema.', errors: [{ in: 'body', pointer: '#/address', message: 'is not an address' }] }))).toBe(
      'The request does not match the schema. (address: is not an address)',
    );
    const query = new Error('Failed query: update "api_keys" set "revoked_at" = $1 where "key_id" = $2\nparams: 2026-01-01,abc', { cause: new Error('deadlock detected') });
    expect(executionError(query)).toBe('query failed: deadlock detected');
    const token = 'vhk_AAAAAAAAAAAA_' + 'B'.repeat(38);
    const leaky = executionError(new Error(`connect ECONNREFUSED 10.1.2.3:5432 while using ${token} at postgres://app:pw@db.internal/prod`));
    expect(leaky).not.toContain('10.1.2.3');
    expect(leaky).not.toContain(token);
    expect(leaky).not.toContain('pw@');
  });
});

// Valhalla console: plain browser JavaScript, no build step. The API key stays in this tab's
// sessionStorage and goes only to this origin's /system API. Everything the API returns is shown
// through textContent, never parsed as HTML.
'use strict';

const KEY_STORAGE = 'valhalla.apiKey';
const $ = (id) => document.getElementById(id);

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

function say(text, isError) {
  const el = $('message');
  el.textContent = text || '';
  el.className = isError ? 'error' : '';
}

/** Calls the API with the key; answers the parsed body, or throws the problem's title and detail. */
async function api(method, url, body) {
  const key = apiKey();
  if (!key) throw new Error('Enter an API key first.');
  const headers = { authorization: `Bearer ${key}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const err = new Error(data && data.title ? `${data.status} ${data.title}: ${data.detail || ''}` : `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function fillTable(table, columns, rows) {
  table.replaceChildren();
  const head = el('tr');
  for (const [title] of columns) head.append(el('th', title));
  table.append(head);
  for (const row of rows) {
    const tr = el('tr');
    for (const [, pick] of columns) tr.append(el('td', pick(row)));
    table.append(tr);
  }
  if (rows.length === 0) {
    const tr = el('tr');
    const td = el('td', 'nothing to show');
    td.colSpan = columns.length;
    tr.append(td);
    table.append(tr);
  }
}

const OPERATION_COLUMNS = [
  ['id', (o) => o.id],
  ['when', (o) => o.occurredAt],
  ['actor', (o) => [o.actorType, o.actorId, o.keyId].filter(Boolean).join(' / ')],
  ['operation', (o) => o.operation],
  ['target', (o) => [o.targetType, o.targetId].filter(Boolean).join(' ')],
  ['result', (o) => o.result],
  ['reason', (o) => o.reason || ''],
];

// ---- views ----

async function showOverview() {
  const data = await api('GET', '/system/admin');
  const dl = $('instance');
  dl.replaceChildren();
  for (const [name, value] of Object.entries(data.instance)) {
    dl.append(el('dt', name), el('dd', value));
  }
  const sections = $('sections');
  sections.replaceChildren();
  for (const [name, value] of Object.entries(data.sections)) {
    const card = el('div', undefined, 'card');
    card.append(el('h3', name), el('pre', JSON.stringify(value, null, 2)));
    sections.append(card);
  }
  // absent when the key lacks audit:read
  fillTable($('overview-operations'), OPERATION_COLUMNS, data.recentOperations || []);
}

async function showMaintenance() {
  try {
    $('maintenance-state').textContent = JSON.stringify(await api('GET', '/system/maintenance'), null, 2);
  } catch (err) {
    $('maintenance-state').textContent = err.status === 404 ? 'The maintenance pack is not loaded on this instance.' : err.message;
  }
}

async function switchMode(event) {
  event.preventDefault();
  await api('POST', '/system/maintenance/state', { mode: $('mode').value, reason: $('mode-reason').value });
  say(`Mode switched to ${$('mode').value}.`);
  await showMaintenance();
}

async function showFlags() {
  try {
    const page = await api('GET', '/system/flags?limit=500');
    fillTable(
      $('flags'),
      [
        ['key', (f) => f.key],
        ['type', (f) => f.type],
        ['enabled', (f) => f.enabled],
        ['rollout %', (f) => f.rolloutPercentage],
        ['description', (f) => f.description || ''],
      ],
      page.items,
    );
  } catch (err) {
    if (err.status !== 404) throw err;
    fillTable($('flags'), [['', () => '']], []);
    say('The feature-flags pack is not loaded on this instance.');
  }
}

const counts = (record) => Object.entries(record || {}).map(([name, count]) => ({ name, count }));

async function showSecurity() {
  const span = $('security-window').value;
  let d;
  try {
    d = await api('GET', `/system/security/dashboard?window=${encodeURIComponent(span)}`);
  } catch (err) {
    $('security-summary').replaceChildren();
    say(err.status === 404 ? 'The security dashboard is not available on this instance.' : err.message, err.status !== 404);
    return;
  }
  const summary = $('security-summary');
  summary.replaceChildren();
  for (const [name, value] of [
    ['blocked', d.blocked.total],
    ['monitored (would block)', d.monitored],
    ['rate-limited', d.rateLimited],
    ['auth failures', d.authFailures],
    ['honeypot hits', d.honeypotHits.total],
    ['pending actions', d.pendingActions ? d.pendingActions.count : 'n/a'],
    ['active rules', d.activeRules.total],
  ]) {
    summary.append(el('dt', name), el('dd', value));
  }
  $('security-since').textContent = `${d.since} to ${d.until}`;
  fillTable($('security-by-type'), [['rule type', (r) => r.name], ['blocked', (r) => r.count]], counts(d.blocked.byRuleType));
  fillTable($('security-by-policy'), [['policy', (r) => r.name || `#${r.policyId}`], ['blocked', (r) => r.count]], d.blocked.byPolicy);
  fillTable(
    $('security-top'),
    [
      ['address', (a) => a.address],
      ['total', (a) => a.total],
      ['blocked', (a) => a.blocked],
      ['rate-limited', (a) => a.rateLimited],
      ['auth failures', (a) => a.authFailures],
      ['honeypot hits', (a) => a.honeypotHits],
    ],
    d.topAddresses,
  );
  fillTable($('security-honeypots'), [['honeypot', (h) => h.name || `#${h.honeypotId} (deleted)`], ['hits', (h) => h.hits]], d.honeypotHits.byHoneypot);
  fillTable(
    $('security-actions'),
    [
      ['id', (a) => a.id],
      ['type', (a) => a.type],
      ['severity', (a) => a.severity],
      ['approvals', (a) => `${a.approvals} / ${a.requiredApprovals}`],
      ['reason', (a) => a.reason],
      ['expires', (a) => a.expiresAt],
    ],
    d.pendingActions ? d.pendingActions.items : [],
  );
  fillTable(
    $('security-incidents'),
    [
      ['when', (i) => i.createdAt],
      ['kind', (i) => i.kind],
      ['severity', (i) => i.severity],
      ['source', (i) => i.sourceIp || ''],
      ['summary', (i) => i.summary],
    ],
    d.recentIncidents,
  );
  fillTable($('security-rules'), [['origin', (r) => r.name], ['active rules', (r) => r.count]], counts(d.activeRules.byOrigin));
}

let nextCursor = null;
async function showOperations(more) {
  const query = new URLSearchParams({ limit: '50' });
  const prefix = $('op-prefix').value.trim();
  if (prefix) query.set('operationPrefix', prefix);
  if (more && nextCursor) query.set('cursor', nextCursor);
  const page = await api('GET', `/system/admin/operations?${query}`);
  const table = $('operations');
  if (more) {
    // append the next page under the rows already shown
    const holder = el('table');
    fillTable(holder, OPERATION_COLUMNS, page.items);
    for (const tr of [...holder.rows].slice(1)) table.append(tr);
  } else {
    fillTable(table, OPERATION_COLUMNS, page.items);
  }
  nextCursor = page.nextCursor;
  $('operations-more').hidden = !nextCursor;
}

async function verifyChain() {
  const out = $('verify-result');
  out.textContent = 'Verifying…';
  const result = await api('GET', '/system/admin/operations/verify');
  out.textContent = result.detail;
  out.className = result.ok ? 'good' : 'bad';
}

const VIEWS = {
  overview: showOverview,
  maintenance: showMaintenance,
  flags: showFlags,
  security: showSecurity,
  operations: () => showOperations(false),
};

/** Runs an action and shows its failure instead of throwing. */
function guarded(action) {
  return async (...args) => {
    try {
      say('');
      await action(...args);
    } catch (err) {
      say(err.message, true);
    }
  };
}

const open = guarded(async (view) => {
  for (const name of Object.keys(VIEWS)) $(`view-${name}`).hidden = name !== view;
  if (Object.hasOwn(VIEWS, view)) await VIEWS[view]();
});

function showKeyState() {
  $('key-state').textContent = apiKey() ? 'key set for this tab' : 'no key';
}

document.addEventListener('DOMContentLoaded', () => {
  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, $('key').value.trim());
    $('key').value = '';
    showKeyState();
    open('overview');
  });
  $('forget').addEventListener('click', () => {
    sessionStorage.removeItem(KEY_STORAGE);
    showKeyState();
  });
  for (const button of document.querySelectorAll('nav button')) {
    button.addEventListener('click', () => open(button.dataset.view));
  }
  $('overview-refresh').addEventListener('click', guarded(showOverview));
  $('security-window').addEventListener('change', guarded(showSecurity));
  $('security-refresh').addEventListener('click', guarded(showSecurity));
  $('maintenance-form').addEventListener('submit', guarded(switchMode));
  $('operations-form').addEventListener('submit', guarded(async (event) => {
    event.preventDefault();
    await showOperations(false);
  }));
  $('operations-more').addEventListener('click', guarded(() => showOperations(true)));
  $('verify').addEventListener('click', guarded(verifyChain));
  showKeyState();
  if (apiKey()) open('overview');
});

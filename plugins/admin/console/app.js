// Valhalla console: an ES module, no build step. Preact + htm render the page, uPlot draws the
// charts; all three are served by the kernel from node_modules (plugins/admin/console.ts). The API
// key stays in this tab's sessionStorage and goes only to this origin's /system API. Everything
// the API returns is rendered as text (Preact escapes it), never parsed as HTML.
import { Component, createRef, h, render } from '/console/vendor/preact@11.2.0/preact.mjs';
import htm from '/console/vendor/htm@3.1.1/htm.mjs';
import uPlot from '/console/vendor/uplot@1.6.32/uPlot.esm.js';

const html = htm.bind(h);
const KEY_STORAGE = 'valhalla.apiKey';
const apiKey = () => sessionStorage.getItem(KEY_STORAGE);

// ---- the API ----

class ApiError extends Error {
  constructor(status, problem) {
    super(problem && problem.title ? `${status} ${problem.title}${problem.detail ? `: ${problem.detail}` : ''}` : `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

/** Told when the API refuses the key itself (401): the app clears it and says why. */
let onKeyRejected = () => {};

/** Calls the API with the key; answers the parsed body (or the Response for `raw`), throws ApiError. */
async function api(method, url, body, { headers = {}, raw = false } = {}) {
  const key = apiKey();
  if (!key) throw new ApiError(401, { title: 'No API key', detail: 'enter one above' });
  const all = { authorization: `Bearer ${key}`, ...headers };
  if (body !== undefined) all['content-type'] = 'application/json';
  const res = await fetch(url, { method, headers: all, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.ok && raw) return res;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401) onKeyRejected(err);
    throw err;
  }
  return data;
}

/** What a failed call means for a panel, in words. */
function explain(err) {
  if (!(err instanceof ApiError)) return String(err && err.message ? err.message : err);
  if (err.status === 404 && err.problem.type === '/problems/route-not-found') return 'This pack is not loaded on this instance.';
  if (err.status === 403 && err.problem.type === '/problems/forbidden') {
    const scope = err.problem.requiredScope;
    return `This key may not do that${scope ? ` (it needs the scope ${scope})` : ''}.`;
  }
  return err.message;
}

// ---- formatting ----

const pad = (n) => String(n).padStart(2, '0');
function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
function ago(iso) {
  if (!iso) return '';
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  const abs = Math.abs(s);
  const text = abs < 60 ? `${abs}s` : abs < 3600 ? `${Math.round(abs / 60)}m` : abs < 86400 ? `${Math.round(abs / 3600)}h` : `${Math.round(abs / 86400)}d`;
  return s >= 0 ? `${text} ago` : `in ${text}`;
}
const num = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en'));
function bytes(n) {
  if (n === null || n === undefined) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
/** A datetime-local input's value as ISO 8601, or undefined when empty. */
const isoFrom = (local) => (local ? new Date(local).toISOString() : undefined);

// ---- small pieces ----

const Badge = ({ tone, children }) => html`<span class=${`badge ${tone || ''}`}>${children}</span>`;
const STATUS_TONE = {
  normal: 'ok', read_only: 'warn', maintenance: 'bad',
  pending: 'warn', approved: 'info', executing: 'info', executed: 'ok', failed: 'bad', rejected: 'bad', cancelled: '', expired: '',
  sending: 'info', delivered: 'ok', dead: 'bad', queued: 'info', running: 'info', succeeded: 'ok',
  success: 'ok', failure: 'bad', low: '', medium: 'warn', high: 'bad', critical: 'bad',
};
const StatusBadge = ({ value }) => html`<${Badge} tone=${STATUS_TONE[value]}>${value}<//>`;

const ErrorBox = ({ error }) => (error ? html`<p class="panel-error" role="alert">${error}</p>` : null);

function Table({ columns, rows, empty = 'nothing to show', rowKey, testid }) {
  return html`<table data-testid=${testid}>
    <thead><tr>${columns.map(([title]) => html`<th>${title}</th>`)}</tr></thead>
    <tbody>
      ${rows.length === 0
        ? html`<tr><td class="empty" colspan=${columns.length}>${empty}</td></tr>`
        : rows.map((row, i) => html`<tr key=${rowKey ? rowKey(row) : i}>${columns.map(([, cell]) => html`<td>${cell(row)}</td>`)}</tr>`)}
    </tbody>
  </table>`;
}

/** A panel that loads with `load()` at mount and every `every` ms while mounted. */
class Polled extends Component {
  constructor(props) {
    super(props);
    this.state = { data: null, error: null, loading: true };
  }
  componentDidMount() {
    this.refresh();
    if (this.every) this.timer = setInterval(() => document.visibilityState === 'visible' && this.refresh(), this.every);
  }
  componentWillUnmount() {
    clearInterval(this.timer);
    this.gone = true;
  }
  async refresh() {
    try {
      const data = await this.load();
      if (!this.gone) this.setState({ data, error: null, loading: false });
    } catch (err) {
      if (!this.gone) this.setState({ error: explain(err), loading: false });
    }
  }
  /** Runs a change; says what happened; reloads the panel. */
  async act(label, run) {
    try {
      const result = await run();
      this.props.say(typeof label === 'function' ? label(result) : label, 'ok');
    } catch (err) {
      this.props.say(explain(err), 'bad');
    }
    await this.refresh();
  }
}

// ---- charts ----

/** Tick labels: hours and minutes, with seconds when the chart spans less than five minutes. */
function timeTicks(_u, ticks) {
  const short = ticks.length > 1 && ticks[ticks.length - 1] - ticks[0] < 300;
  return ticks.map((seconds) => {
    const d = new Date(seconds * 1000);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}${short ? `:${pad(d.getSeconds())}` : ''}`;
  });
}
const AXIS = { stroke: '#9aa4b2', grid: { stroke: '#26303a', width: 1 }, ticks: { stroke: '#26303a', width: 1 } };

class Chart extends Component {
  constructor(props) {
    super(props);
    this.holder = createRef();
  }
  componentDidMount() {
    const width = Math.max(260, this.holder.current.clientWidth);
    this.plot = new uPlot(
      {
        width,
        height: 150,
        legend: { show: true, live: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(max * 1.1, this.props.minMax || 1)] } },
        axes: [{ ...AXIS, values: timeTicks, space: 70 }, { ...AXIS, size: 48 }],
        series: [{ label: 'time' }, ...this.props.series.map((s) => ({ label: s.label, stroke: s.color, fill: `${s.color}22`, width: 1.5, spanGaps: false }))],
      },
      this.props.data,
      this.holder.current,
    );
    this.onResize = () => this.plot.setSize({ width: Math.max(260, this.holder.current.clientWidth), height: 150 });
    window.addEventListener('resize', this.onResize);
  }
  shouldComponentUpdate(next) {
    return next.data !== this.props.data;
  }
  componentDidUpdate() {
    this.plot.setData(this.props.data);
  }
  componentWillUnmount() {
    window.removeEventListener('resize', this.onResize);
    this.plot.destroy();
  }
  render() {
    return html`<div class=${`chart ${this.props.wide ? 'wide' : ''}`}><h3>${this.props.title}</h3><div ref=${this.holder}></div></div>`;
  }
}

// ---- overview ----

function Card({ title, value, tone, sub, testid }) {
  return html`<div class=${`card ${tone || ''}`} data-testid=${testid}>
    <div class="card-title">${title}</div>
    <div class="card-value">${value}</div>
    <div class="card-sub">${sub}</div>
  </div>`;
}

async function readiness() {
  const res = await fetch('/ready', { headers: { accept: 'application/json' } });
  const body = await res.json().catch(() => ({}));
  return { ok: res.ok, detail: res.ok ? 'database, migrations, no pressure' : body.detail || body.title || `HTTP ${res.status}` };
}

class Overview extends Polled {
  every = 10_000;
  async load() {
    const [overview, figures, ready] = await Promise.all([api('GET', '/system/admin'), api('GET', '/system/admin/figures?minutes=60'), readiness()]);
    this.props.onInstance(overview.instance);
    return { overview, figures, ready };
  }
  render() {
    const { data, error } = this.state;
    if (!data) return html`<${ErrorBox} error=${error} />${error ? null : html`<p class="muted">Loading…</p>`}`;
    const { overview, figures, ready } = data;
    const s = overview.sections;
    const m = s.maintenance;
    const jobs = s.jobs || {};
    const outbox = s.notifications || {};
    const r = figures.recent;
    const mins = Math.round(r.seconds / 60);
    const rate = r.errorRate * 100;
    const refusals = r.blocked + r.shieldRefused + r.rateLimited;
    const pending = s.securityActions ? s.securityActions.pending : null;
    // Buckets from before this instance started hold nothing: the charts begin at its start.
    const from = Math.max(0, figures.series.t.findIndex((t) => t + figures.bucketSeconds > Date.parse(overview.instance.startedAt) / 1000));
    const f = Object.fromEntries(Object.entries(figures.series).map(([name, values]) => [name, values.slice(from)]));
    return html`
      <${ErrorBox} error=${error} />
      <div class="cards">
        <${Card} testid="card-mode" title="Mode" value=${m ? m.mode : 'n/a'} tone=${m ? STATUS_TONE[m.mode] : ''}
          sub=${m ? (m.until ? `until ${when(m.until)} (${m.source})` : `set by ${m.source}`) : 'maintenance pack not loaded'} />
        <${Card} testid="card-freeze" title="Freeze" value=${m ? (m.freeze ? 'frozen' : 'off') : 'n/a'} tone=${m ? (m.freeze ? 'warn' : 'ok') : ''}
          sub=${m && m.freeze ? (m.freezeUntil ? `until ${when(m.freezeUntil)}` : 'until lifted') : 'writes allowed'} />
        <${Card} testid="card-ready" title="Readiness" value=${ready.ok ? 'ready' : 'not ready'} tone=${ready.ok ? 'ok' : 'bad'} sub=${ready.detail} />
        <${Card} testid="card-errors" title=${`5xx rate · ${mins} min`} value=${`${rate.toFixed(rate && rate < 1 ? 2 : 1)} %`}
          tone=${rate >= 5 ? 'bad' : rate >= 1 ? 'warn' : 'ok'} sub=${`${num(r.status5xx - r.shieldRefused)} of ${num(r.requests)} · ${s.errors ? num(s.errors.lastHour) : '–'} logged in 1 h`} />
        <${Card} testid="card-latency" title=${`p99 · ${mins} min`} value=${r.p99Ms === null ? '–' : `${r.p99Ms >= 10 ? Math.round(r.p99Ms) : r.p99Ms} ms`}
          tone=${r.p99Ms === null ? '' : r.p99Ms >= 1000 ? 'bad' : r.p99Ms >= 250 ? 'warn' : 'ok'} sub=${`${num(r.requests)} requests here`} />
        <${Card} testid="card-jobs" title="Job backlog" value=${num((jobs.queued || 0) + (jobs.running || 0))}
          tone=${jobs.dead ? 'bad' : jobs.due > 100 ? 'warn' : 'ok'} sub=${`${num(jobs.due)} due · ${num(jobs.running)} running · ${num(jobs.dead)} dead`} />
        <${Card} testid="card-outbox" title="Outbox" value=${num((outbox.pending || 0) + (outbox.sending || 0))}
          tone=${outbox.dead ? 'bad' : outbox.pending > 100 ? 'warn' : 'ok'} sub=${`${num(outbox.dead)} dead letters · ${num(outbox.delivered)} delivered`} />
        <${Card} testid="card-blocked" title=${`Refused · ${mins} min`} value=${num(refusals)} tone=${refusals ? 'warn' : 'ok'}
          sub=${`${num(r.blocked)} blocked · ${num(r.rateLimited)} rate-limited · ${num(r.shieldRefused)} by the shield`} />
        <${Card} testid="card-approvals" title="Approvals" value=${pending === null ? 'n/a' : num(pending)} tone=${pending ? 'warn' : 'ok'}
          sub="security actions pending" />
      </div>
      <div class="charts">
        <${Chart} wide title="Requests / s" data=${[f.t, f.rps]} series=${[{ label: 'req/s', color: '#4c9aff' }]} />
        <${Chart} title="p99 latency (ms)" data=${[f.t, f.p99Ms]} series=${[{ label: 'p99 ms', color: '#b38cff' }]} minMax=${10} />
        <${Chart} title="4xx / 5xx" data=${[f.t, f.status4xx, f.status5xx]} series=${[{ label: '4xx', color: '#f5a623' }, { label: '5xx', color: '#ff5c5c' }]} />
        <${Chart} title="Blocks" data=${[f.t, f.blocked, f.shieldRefused]} series=${[{ label: 'blocklist', color: '#ff5c5c' }, { label: 'shield', color: '#f5a623' }]} />
        <${Chart} title="Rate limited (429)" data=${[f.t, f.rateLimited]} series=${[{ label: '429', color: '#e879f9' }]} />
      </div>
      <p class="muted small">Charts: this instance (${figures.instanceId}), ${figures.bucketSeconds}-second buckets over the last hour; refreshed every 10 s.</p>
      <h2>Recent operations</h2>
      ${overview.recentOperations
        ? html`<${OperationTable} rows=${overview.recentOperations} />`
        : html`<p class="muted">This key does not hold audit:read.</p>`}
    `;
  }
}

// ---- maintenance and freeze ----

class Maintenance extends Polled {
  every = 10_000;
  state = { ...this.state, mode: 'read_only', reason: '', until: '', freezeReason: '', freezeUntil: '' };
  load() {
    return api('GET', '/system/maintenance');
  }
  setMode = (e) => {
    e.preventDefault();
    const { mode, reason, until } = this.state;
    const body = { mode, reason: reason || `set from the console` };
    if (mode !== 'normal' && until) body.until = isoFrom(until);
    this.act(`Mode switched to ${mode}.`, () => api('POST', '/system/maintenance/state', body));
  };
  setFreeze = (enabled) => (e) => {
    e.preventDefault();
    const { freezeReason, freezeUntil } = this.state;
    const body = { enabled, reason: freezeReason || (enabled ? 'frozen from the console' : 'lifted from the console') };
    if (enabled && freezeUntil) body.until = isoFrom(freezeUntil);
    this.act(enabled ? 'Change freeze on.' : 'Change freeze lifted.', () => api('POST', '/system/maintenance/freeze', body));
  };
  field = (name) => ({ value: this.state[name], onInput: (e) => this.setState({ [name]: e.currentTarget.value }) });
  render() {
    const { data: d, error } = this.state;
    if (!d) return html`<${ErrorBox} error=${error} />`;
    const eff = d.effective;
    return html`
      <${ErrorBox} error=${error} />
      <div class="split">
        <section class="panel">
          <h2>Mode <${StatusBadge} value=${eff.mode} /></h2>
          <dl class="facts" data-testid="mode-state">
            <dt>effective</dt><dd data-testid="effective-mode">${eff.mode}</dd>
            <dt>decided by</dt><dd>${eff.source}${eff.windowId ? ` #${eff.windowId}` : ''}</dd>
            <dt>reason</dt><dd>${eff.reason || '–'}</dd>
            <dt>since</dt><dd>${eff.since ? `${when(eff.since)} (${ago(eff.since)})` : '–'}</dd>
            <dt>until</dt><dd>${eff.until ? `${when(eff.until)} (${ago(eff.until)})` : '–'}</dd>
            <dt>set by</dt><dd>${d.actor ? [d.actor.type, d.actor.id, d.actor.keyId].filter(Boolean).join(' / ') : '–'}</dd>
            <dt>next window</dt><dd>${d.nextWindow ? `${d.nextWindow.mode} ${when(d.nextWindow.startsAt)} → ${when(d.nextWindow.endsAt)}` : '–'}</dd>
          </dl>
          <form class="form" onSubmit=${this.setMode} data-testid="mode-form">
            <label>Mode
              <select value=${this.state.mode} onChange=${(e) => this.setState({ mode: e.currentTarget.value })} name="mode">
                <option value="normal">normal</option>
                <option value="read_only">read_only</option>
                <option value="maintenance">maintenance</option>
              </select>
            </label>
            <label>Reason <input name="reason" maxlength="500" placeholder="database upgrade" ...${this.field('reason')} /></label>
            <label>Until (optional) <input name="until" type="datetime-local" disabled=${this.state.mode === 'normal'} ...${this.field('until')} /></label>
            <button type="submit" class=${this.state.mode === 'normal' ? 'primary' : 'danger'}>Switch mode</button>
          </form>
          <p class="muted small">Read-only refuses writes; maintenance refuses everything but health, docs, the console and admin callers.</p>
        </section>
        <section class="panel">
          <h2>Change freeze <${Badge} tone=${d.freeze.enabled ? 'warn' : 'ok'}>${d.freeze.enabled ? 'frozen' : 'off'}<//></h2>
          <dl class="facts" data-testid="freeze-state">
            <dt>state</dt><dd data-testid="freeze-enabled">${d.freeze.enabled ? 'on' : 'off'}</dd>
            <dt>reason</dt><dd>${d.freeze.reason || '–'}</dd>
            <dt>since</dt><dd>${d.freeze.since ? when(d.freeze.since) : '–'}</dd>
            <dt>until</dt><dd>${d.freeze.until ? when(d.freeze.until) : '–'}</dd>
          </dl>
          <form class="form" onSubmit=${this.setFreeze(!d.freeze.enabled)}>
            <label>Reason <input name="freeze-reason" maxlength="500" placeholder="release week" ...${this.field('freezeReason')} /></label>
            ${d.freeze.enabled ? null : html`<label>Until (optional) <input name="freeze-until" type="datetime-local" ...${this.field('freezeUntil')} /></label>`}
            <button type="submit" class=${d.freeze.enabled ? 'primary' : 'danger'}>${d.freeze.enabled ? 'Lift freeze' : 'Freeze changes'}</button>
          </form>
          <p class="muted small">While frozen, config, flag, rate-limit, deployment and retention writes answer 423 unless an admin overrides with a reason.</p>
        </section>
      </div>`;
  }
}

// ---- flags ----

class Flags extends Polled {
  every = 15_000;
  state = { ...this.state, prefix: '', override: '', frozen: false, preview: { key: '', subject: 'user-42', attrs: 'country=NZ' }, result: null, drafts: {} };
  async load() {
    const q = new URLSearchParams({ limit: '500' });
    if (this.state.prefix) q.set('keyPrefix', this.state.prefix);
    const [page, maintenance] = await Promise.all([api('GET', `/system/flags?${q}`), api('GET', '/system/maintenance').catch(() => null)]);
    const preview = this.state.preview.key || !page.items.length ? this.state.preview : { ...this.state.preview, key: page.items[0].key };
    this.setState({ frozen: Boolean(maintenance && maintenance.freeze.enabled), preview });
    return page.items;
  }
  patch(flag, change, label) {
    const headers = this.state.override ? { 'x-freeze-override': this.state.override } : {};
    this.act(label, () => api('PATCH', `/system/flags/${encodeURIComponent(flag.key)}`, { ...change, expectedVersion: flag.version }, { headers }));
  }
  evaluate = async (e) => {
    e.preventDefault();
    const { key, subject, attrs } = this.state.preview;
    const q = new URLSearchParams();
    if (subject) q.set('subject', subject);
    for (const line of attrs.split(/[\n,]/)) {
      const at = line.indexOf('=');
      if (at > 0) q.append(`attr.${line.slice(0, at).trim()}`, line.slice(at + 1).trim());
    }
    try {
      const flagKey = key || (this.state.data[0] || {}).key || '';
      this.setState({ result: await api('GET', `/system/flags/${encodeURIComponent(flagKey)}/evaluate?${q}`) });
    } catch (err) {
      this.setState({ result: { error: explain(err) } });
    }
  };
  setPreview = (name) => (e) => this.setState({ preview: { ...this.state.preview, [name]: e.currentTarget.value } });
  render() {
    const { data, error, frozen, drafts, result } = this.state;
    const flags = data || [];
    const columns = [
      ['flag', (f) => html`<strong>${f.key}</strong><div class="muted small">${f.description}</div>`],
      ['type', (f) => f.type],
      ['enabled', (f) => html`<button type="button" role="switch" aria-checked=${String(f.enabled)} aria-label=${`enabled: ${f.key}`}
          class=${`switch ${f.enabled ? 'on' : ''}`} data-testid=${`flag-toggle-${f.key}`}
          onClick=${() => this.patch(f, { enabled: !f.enabled }, `${f.key} ${f.enabled ? 'disabled' : 'enabled'}.`)}><span></span></button>`],
      ['rollout', (f) => {
        const v = drafts[f.key] ?? f.rolloutPercentage;
        return html`<div class="rollout"><input type="range" min="0" max="100" step="1" value=${v} aria-label=${`rollout: ${f.key}`}
            onInput=${(e) => this.setState({ drafts: { ...drafts, [f.key]: Number(e.currentTarget.value) } })}
            onChange=${(e) => this.patch(f, { rolloutPercentage: Number(e.currentTarget.value) }, `${f.key} rolled out to ${e.currentTarget.value} %.`)} />
          <span class="pct">${v} %</span></div>`;
      }],
      ['variants', (f) => (f.variants.length ? f.variants.map((v) => html`<span class="chip">${v.key} ${v.weight}%</span>`) : html`<span class="muted">on/off</span>`)],
      ['rules', (f) => (f.rules.length ? `${f.rules.length} rule${f.rules.length > 1 ? 's' : ''}` : '–')],
      ['v', (f) => f.version],
      ['', (f) => (f.enabled ? html`<button type="button" class="danger small" onClick=${() => this.patch(f, { enabled: false }, `Kill switch: ${f.key} is off.`)}>Kill</button>` : html`<${Badge} tone="bad">off<//>`)],
    ];
    return html`
      <${ErrorBox} error=${error} />
      <section class="panel">
        <h2>Feature flags ${frozen ? html`<${Badge} tone="warn">change freeze on<//>` : null}</h2>
        <form class="form inline" onSubmit=${(e) => (e.preventDefault(), this.refresh())}>
          <label>Key starts with <input value=${this.state.prefix} onInput=${(e) => this.setState({ prefix: e.currentTarget.value })} maxlength="128" /></label>
          <button type="submit">Filter</button>
          ${frozen ? html`<label>Freeze override reason (admin) <input value=${this.state.override} onInput=${(e) => this.setState({ override: e.currentTarget.value })} maxlength="500" placeholder="hotfix for incident 42" /></label>` : null}
        </form>
        <${Table} testid="flags" columns=${columns} rows=${flags} rowKey=${(f) => f.key} empty="no flags" />
      </section>
      <section class="panel">
        <h2>Evaluation preview</h2>
        <form class="form inline" onSubmit=${this.evaluate}>
          <label>Flag <select value=${this.state.preview.key} onChange=${this.setPreview('key')}>
            ${flags.map((f) => html`<option value=${f.key}>${f.key}</option>`)}
          </select></label>
          <label>Subject key <input value=${this.state.preview.subject} onInput=${this.setPreview('subject')} maxlength="200" /></label>
          <label>Attributes (name=value, comma-separated) <input value=${this.state.preview.attrs} onInput=${this.setPreview('attrs')} size="30" /></label>
          <button type="submit">Evaluate</button>
        </form>
        ${result ? (result.error ? html`<p class="panel-error">${result.error}</p>` : html`<dl class="facts" data-testid="evaluation">
            <dt>value</dt><dd><code>${JSON.stringify(result.value)}</code></dd>
            <dt>variant</dt><dd>${result.variant ?? '–'}</dd>
            <dt>reason</dt><dd>${result.reason}${result.errorCode ? ` (${result.errorCode})` : ''}${result.ruleIndex !== undefined ? ` · rule ${result.ruleIndex}` : ''}</dd>
          </dl>`) : null}
      </section>`;
  }
}

// ---- security ----

class Security extends Polled {
  every = 15_000;
  state = { ...this.state, window: '1h', comment: '' };
  load() {
    return api('GET', `/system/security/dashboard?window=${encodeURIComponent(this.state.window)}`);
  }
  decide(action, decision) {
    const body = { decision };
    if (this.state.comment) body.comment = this.state.comment;
    this.act((a) => `Action #${action.id} (${action.type}): ${decision === 'approve' ? 'approved' : 'rejected'}, now ${a.status}.`, () => api('POST', `/system/security/actions/${action.id}/approvals`, body));
  }
  render() {
    const { data: d, error } = this.state;
    const windowPicker = html`<select value=${this.state.window} aria-label="Window" onChange=${(e) => this.setState({ window: e.currentTarget.value }, () => this.refresh())}>
      <option value="1h">last hour</option><option value="24h">last 24 hours</option><option value="7d">last 7 days</option>
    </select>`;
    if (!d) return html`<${ErrorBox} error=${error} />`;
    const counts = (record) => Object.entries(record || {}).map(([name, count]) => ({ name, count }));
    const pending = d.pendingActions;
    return html`
      <${ErrorBox} error=${error} />
      <div class="toolbar"><h2>Security dashboard</h2>${windowPicker}<span class="muted small">${when(d.since)} → ${when(d.until)}</span></div>
      <div class="cards">
        <${Card} title="Blocked" value=${num(d.blocked.total)} tone=${d.blocked.total ? 'warn' : 'ok'} sub=${`${num(d.monitored)} would be (monitor mode)`} />
        <${Card} title="Rate-limited" value=${num(d.rateLimited)} tone=${d.rateLimited ? 'warn' : 'ok'} sub="429 answers" />
        <${Card} title="Auth failures" value=${num(d.authFailures)} tone=${d.authFailures ? 'warn' : 'ok'} sub="401 answers" />
        <${Card} title="Honeypot hits" value=${num(d.honeypotHits.total)} tone=${d.honeypotHits.total ? 'bad' : 'ok'} sub=${`${d.honeypotHits.byHoneypot.length} honeypots hit`} />
        <${Card} title="Active rules" value=${num(d.activeRules.total)} sub=${counts(d.activeRules.byType).map((c) => `${c.name} ${c.count}`).join(' · ') || 'none'} />
        <${Card} title="Pending approvals" value=${pending ? num(pending.count) : 'n/a'} tone=${pending && pending.count ? 'warn' : 'ok'} sub="need another person's decision" />
      </div>
      <section class="panel">
        <h2>Pending approvals</h2>
        <label class="inline-label">Comment for your decision (optional) <input value=${this.state.comment} maxlength="1000" onInput=${(e) => this.setState({ comment: e.currentTarget.value })} /></label>
        <${Table} testid="pending-actions" rows=${pending ? pending.items : []} rowKey=${(a) => a.id} empty=${pending ? 'nothing waiting' : 'the security-actions pack is not loaded'} columns=${[
          ['#', (a) => a.id],
          ['type', (a) => html`<code>${a.type}</code>`],
          ['severity', (a) => html`<${StatusBadge} value=${a.severity} />`],
          ['approvals', (a) => `${a.approvals} / ${a.requiredApprovals}`],
          ['reason', (a) => a.reason],
          ['expires', (a) => ago(a.expiresAt)],
          ['', (a) => html`<span class="buttons"><button type="button" class="primary small" data-testid=${`approve-${a.id}`} onClick=${() => this.decide(a, 'approve')}>Approve</button>
            <button type="button" class="danger small" data-testid=${`reject-${a.id}`} onClick=${() => this.decide(a, 'reject')}>Reject</button></span>`],
        ]} />
      </section>
      <div class="split">
        <section class="panel">
          <h2>Top addresses</h2>
          <${Table} rows=${d.topAddresses} columns=${[
            ['address', (a) => html`<code>${a.address}</code>`], ['total', (a) => num(a.total)], ['blocked', (a) => num(a.blocked)],
            ['429', (a) => num(a.rateLimited)], ['401', (a) => num(a.authFailures)], ['honeypot', (a) => num(a.honeypotHits)],
          ]} />
        </section>
        <section class="panel">
          <h2>Active rules and blocks</h2>
          <${Table} rows=${counts(d.activeRules.byOrigin)} columns=${[['rule origin', (r) => r.name], ['active', (r) => num(r.count)]]} empty="no active rules" />
          <${Table} rows=${counts(d.blocked.byRuleType)} columns=${[['blocked by rule type', (r) => r.name], ['requests', (r) => num(r.count)]]} empty="nothing blocked" />
          <${Table} rows=${d.blocked.byPolicy} columns=${[['blocked by policy', (r) => r.name || (r.policyId === null ? '(no policy)' : `#${r.policyId}`)], ['requests', (r) => num(r.count)]]} empty="no policy blocked anything" />
        </section>
      </div>
      <section class="panel">
        <h2>Recent incidents</h2>
        <${Table} rows=${d.recentIncidents} columns=${[
          ['when', (i) => when(i.createdAt)], ['kind', (i) => i.kind], ['severity', (i) => html`<${StatusBadge} value=${i.severity} />`],
          ['source', (i) => i.sourceIp || ''], ['summary', (i) => i.summary],
        ]} empty="no incidents" />
      </section>`;
  }
}

// ---- notifications ----

class Notifications extends Polled {
  every = 10_000;
  state = { ...this.state, status: '' };
  async load() {
    const q = new URLSearchParams({ limit: '100' });
    if (this.state.status) q.set('status', this.state.status);
    const [page, overview] = await Promise.all([api('GET', `/system/notify?${q}`), api('GET', '/system/admin')]);
    return { items: page.items, figures: overview.sections.notifications || {} };
  }
  render() {
    const { data, error } = this.state;
    if (!data) return html`<${ErrorBox} error=${error} />`;
    const fig = data.figures;
    return html`
      <${ErrorBox} error=${error} />
      <div class="cards">
        ${['pending', 'sending', 'delivered', 'dead'].map((s) => html`<${Card} title=${s === 'dead' ? 'dead letters' : s} value=${num(fig[s])} tone=${s === 'dead' && fig[s] ? 'bad' : s === 'pending' && fig[s] > 100 ? 'warn' : ''} sub="outbox rows" />`)}
      </div>
      <section class="panel">
        <div class="toolbar"><h2>Outbox</h2>
          <select aria-label="Status" value=${this.state.status} onChange=${(e) => this.setState({ status: e.currentTarget.value }, () => this.refresh())}>
            <option value="">every status</option><option value="pending">pending</option><option value="sending">sending</option>
            <option value="delivered">delivered</option><option value="dead">dead letters</option>
          </select></div>
        <${Table} testid="outbox" rows=${data.items} rowKey=${(o) => o.id} empty="the outbox is empty" columns=${[
          ['#', (o) => o.id], ['event', (o) => html`<code>${o.eventType}</code>`], ['channel', (o) => (o.channelId === null ? 'deleted' : `#${o.channelId}`)],
          ['status', (o) => html`<${StatusBadge} value=${o.status} />`], ['attempts', (o) => `${o.attempts} / ${o.maxAttempts}`],
          ['last error', (o) => (o.lastError ? `${o.lastStatusCode ? `${o.lastStatusCode} ` : ''}${o.lastError}` : '')],
          ['next attempt', (o) => (o.status === 'pending' ? ago(o.nextAttemptAt) : '')], ['created', (o) => when(o.createdAt)],
          ['', (o) => (o.status === 'dead' ? html`<button type="button" class="small" onClick=${() => this.act(`Outbox row #${o.id} queued again.`, () => api('POST', `/system/notify/${o.id}/retry`, {}))}>Retry</button>` : null)],
        ]} />
      </section>`;
  }
}

// ---- exports ----

async function download(exp) {
  const res = await api('GET', `/system/exports/${exp.id}/download`, undefined, { raw: true });
  const blob = await res.blob();
  const named = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') || '');
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = named ? named[1] : `export-${exp.id}.${exp.format}`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

class Exports extends Polled {
  every = 3_000;
  state = { ...this.state, dataset: 'admin_operations', format: 'ndjson', since: '', until: '' };
  async load() {
    if (!this.datasets) this.datasets = (await api('GET', '/system/exports/datasets')).items;
    return (await api('GET', '/system/exports?limit=50')).items;
  }
  start = (e) => {
    e.preventDefault();
    const { dataset, format, since, until } = this.state;
    const body = { dataset };
    if (dataset === 'snapshot') body.format = 'json';
    else body.format = format;
    if (since) body.since = isoFrom(since);
    if (until) body.until = isoFrom(until);
    this.act((x) => `Export #${x.id} of ${x.dataset} queued.`, () => api('POST', '/system/exports', body));
  };
  render() {
    const { data, error, dataset } = this.state;
    const items = data || [];
    return html`
      <${ErrorBox} error=${error} />
      <section class="panel">
        <h2>New export</h2>
        <form class="form inline" onSubmit=${this.start}>
          <label>Dataset <select value=${dataset} onChange=${(e) => this.setState({ dataset: e.currentTarget.value })}>
            <option value="snapshot">snapshot (control-plane settings)</option>
            ${(this.datasets || []).map((d) => html`<option value=${d.name}>${d.name}</option>`)}
          </select></label>
          ${dataset === 'snapshot' ? null : html`
            <label>Format <select value=${this.state.format} onChange=${(e) => this.setState({ format: e.currentTarget.value })}><option value="ndjson">NDJSON</option><option value="csv">CSV</option></select></label>
            <label>Since <input type="datetime-local" value=${this.state.since} onInput=${(e) => this.setState({ since: e.currentTarget.value })} /></label>
            <label>Until <input type="datetime-local" value=${this.state.until} onInput=${(e) => this.setState({ until: e.currentTarget.value })} /></label>`}
          <button type="submit" class="primary">Start export</button>
        </form>
        <p class="muted small">${(this.datasets || []).find((d) => d.name === dataset)?.description || ''}</p>
      </section>
      <section class="panel">
        <h2>Exports</h2>
        <${Table} testid="exports" rows=${items} rowKey=${(x) => x.id} empty="no exports yet" columns=${[
          ['#', (x) => x.id], ['dataset', (x) => x.dataset], ['format', (x) => x.format], ['status', (x) => html`<${StatusBadge} value=${x.expired ? 'expired' : x.status} />`],
          ['rows', (x) => html`${num(x.rowsExported)}${x.status === 'running' ? html` <progress></progress>` : null}`], ['size', (x) => bytes(x.sizeBytes)],
          ['requested', (x) => `${when(x.createdAt)} by ${x.requestedBy}`], ['note', (x) => x.error || (x.expiresAt && !x.expired ? `file kept until ${when(x.expiresAt)}` : '')],
          ['', (x) => html`<span class="buttons">
            ${x.status === 'succeeded' && !x.expired ? html`<button type="button" class="small primary" onClick=${() => download(x).catch((err) => this.props.say(explain(err), 'bad'))}>Download</button>` : null}
            ${x.status === 'queued' || x.status === 'running' ? html`<button type="button" class="small" onClick=${() => this.act(`Export #${x.id} cancelled.`, () => api('POST', `/system/exports/${x.id}/status`, { status: 'cancelled' }))}>Cancel</button>` : null}
          </span>`],
        ]} />
      </section>`;
  }
}

// ---- audit trail ----

function OperationTable({ rows, onOpen, open }) {
  return html`<${Table} testid="operations" rows=${rows} rowKey=${(o) => o.id} columns=${[
    ['#', (o) => o.id], ['when', (o) => html`<span class="nowrap">${when(o.occurredAt)}</span>`], ['actor', (o) => [o.actorType, o.actorId, o.keyId].filter(Boolean).join(' / ')],
    ['operation', (o) => html`<code>${o.operation}</code>`], ['target', (o) => [o.targetType, o.targetId].filter(Boolean).join(' ')],
    ['result', (o) => html`<${StatusBadge} value=${o.result} />`], ['reason', (o) => o.reason || ''],
    ...(onOpen ? [['', (o) => html`<button type="button" class="small" onClick=${() => onOpen(o.id)}>${open === o.id ? 'Hide' : 'Details'}</button>`]] : []),
  ]} />
  ${onOpen && open !== null ? rows.filter((o) => o.id === open).map((o) => html`<div class="detail" data-testid="operation-detail">
      <h3>Entry #${o.id}: ${o.operation} · correlation ${o.correlationId || '–'} · hash ${o.hash.slice(0, 16)}…</h3>
      <div class="diff"><div><h3>before</h3><pre>${JSON.stringify(o.before, null, 2)}</pre></div><div><h3>after</h3><pre>${JSON.stringify(o.after, null, 2)}</pre></div></div>
    </div>`) : null}`;
}

class Audit extends Polled {
  state = { ...this.state, prefix: '', verify: null, open: null };
  async load() {
    const q = new URLSearchParams({ limit: '50' });
    if (this.state.prefix.trim()) q.set('operationPrefix', this.state.prefix.trim());
    const page = await api('GET', `/system/admin/operations?${q}`);
    return page;
  }
  more = async () => {
    const q = new URLSearchParams({ limit: '50', cursor: this.state.data.nextCursor });
    if (this.state.prefix.trim()) q.set('operationPrefix', this.state.prefix.trim());
    try {
      const page = await api('GET', `/system/admin/operations?${q}`);
      this.setState({ data: { items: [...this.state.data.items, ...page.items], nextCursor: page.nextCursor } });
    } catch (err) {
      this.props.say(explain(err), 'bad');
    }
  };
  verify = async () => {
    this.setState({ verify: { checking: true } });
    try {
      this.setState({ verify: await api('GET', '/system/admin/operations/verify') });
    } catch (err) {
      this.setState({ verify: { ok: false, detail: explain(err) } });
    }
  };
  render() {
    const { data, error, verify } = this.state;
    return html`
      <${ErrorBox} error=${error} />
      <section class="panel">
        <div class="toolbar">
          <h2>Audit trail</h2>
          <button type="button" onClick=${this.verify} data-testid="verify">Verify hash chain</button>
          ${verify ? (verify.checking ? html`<span class="muted">checking…</span>` : html`<${Badge} tone=${verify.ok ? 'ok' : 'bad'}>${verify.ok ? 'chain intact' : 'chain broken'}<//> <span data-testid="verify-detail">${verify.detail}</span>`) : null}
        </div>
        <form class="form inline" onSubmit=${(e) => (e.preventDefault(), this.refresh())}>
          <label>Operation starts with <input value=${this.state.prefix} maxlength="200" placeholder="feature-flag." onInput=${(e) => this.setState({ prefix: e.currentTarget.value })} /></label>
          <button type="submit">Search</button>
        </form>
        ${data ? html`<${OperationTable} rows=${data.items} open=${this.state.open} onOpen=${(id) => this.setState({ open: this.state.open === id ? null : id })} />
          ${data.nextCursor ? html`<button type="button" onClick=${this.more}>More</button>` : null}` : null}
      </section>`;
  }
}

// ---- the app ----

const VIEWS = [
  ['overview', 'Overview', Overview],
  ['maintenance', 'Mode & freeze', Maintenance],
  ['flags', 'Flags', Flags],
  ['security', 'Security', Security],
  ['notifications', 'Notifications', Notifications],
  ['exports', 'Exports', Exports],
  ['audit', 'Audit trail', Audit],
];

class App extends Component {
  constructor() {
    super();
    const view = location.hash.slice(1);
    this.state = { hasKey: Boolean(apiKey()), view: VIEWS.some(([v]) => v === view) ? view : 'overview', notice: null, instance: null, keyInput: '' };
    onKeyRejected = (err) => this.forget(`The API key was refused (${err.message}). It has been removed from this tab; enter a valid key.`);
    window.addEventListener('hashchange', () => {
      const v = location.hash.slice(1);
      if (VIEWS.some(([name]) => name === v)) this.setState({ view: v, notice: null });
    });
  }
  say = (text, tone) => this.setState({ notice: text ? { text, tone } : null });
  forget = (why) => {
    sessionStorage.removeItem(KEY_STORAGE);
    this.setState({ hasKey: false, instance: null, notice: why ? { text: why, tone: 'bad' } : null });
  };
  useKey = async (e) => {
    e.preventDefault();
    const key = this.state.keyInput.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    this.setState({ keyInput: '' });
    try {
      // Every console key must read the overview (system:read); a key that cannot is not kept.
      await api('GET', '/system/admin');
      this.setState({ hasKey: true, notice: null });
    } catch (err) {
      if (err.status === 401 || err.status === 403) this.forget(`The API key was refused (${err.message}). It has been removed from this tab.`);
      else this.say(explain(err), 'bad');
    }
  };
  render() {
    const { hasKey, view, notice, instance } = this.state;
    const current = VIEWS.find(([v]) => v === view);
    const View = current[2];
    return html`
      <header class="top">
        <div class="brand">Valhalla <span>console</span></div>
        ${instance ? html`<div class="instance" data-testid="instance">${instance.id} · v${instance.version} · ${instance.driver} · up ${ago(new Date(Date.now() - instance.uptimeSeconds * 1000).toISOString()).replace(' ago', '')}${instance.draining ? ' · draining' : ''}</div>` : null}
        <div class="key">
          ${hasKey
            ? html`<span class="muted">key set for this tab</span><button type="button" onClick=${() => this.forget()}>Forget key</button>`
            : null}
        </div>
      </header>
      ${hasKey ? html`<nav class="tabs">${VIEWS.map(([v, label]) => html`<a href=${`#${v}`} class=${v === view ? 'active' : ''} aria-current=${v === view ? 'page' : undefined}>${label}</a>`)}</nav>` : null}
      ${notice ? html`<p id="notice" role="status" class=${`notice ${notice.tone || ''}`}>${notice.text}<button type="button" class="close" aria-label="dismiss" onClick=${() => this.say('')}>×</button></p>` : null}
      <main>
        ${hasKey
          ? html`<${View} key=${view} say=${this.say} onInstance=${(i) => this.setState({ instance: i })} />`
          : html`<form class="login panel" onSubmit=${this.useKey} autocomplete="off">
              <h2>Sign in with an API key</h2>
              <p class="muted">The key stays in this tab (sessionStorage) and is sent only to this server. What you can see and change is what its scopes allow.</p>
              <input id="key" type="password" placeholder="vhk_…" maxlength="200" aria-label="API key" value=${this.state.keyInput} onInput=${(e) => this.setState({ keyInput: e.currentTarget.value })} />
              <button type="submit" class="primary">Use key</button>
            </form>`}
      </main>`;
  }
}

render(html`<${App} />`, document.getElementById('app'));

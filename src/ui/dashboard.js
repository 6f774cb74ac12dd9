// The request-log dashboard. Logged content is untrusted: everything is put on the page
// with textContent / DOM nodes, never as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'gateway-admin-token';
const state = { page: 1, totalPages: 1, timer: null, openId: null, keysJson: '', keyOptions: '', keysFailed: false };

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY) || '';
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(path, { method = 'GET', body } = {}) {
  const headers = { authorization: `Bearer ${token()}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const answer = await res.json().catch(() => ({}));
  if (res.status === 401) { showLogin(answer.error?.message || 'The token was refused.'); throw new Error('unauthorized'); }
  if (!res.ok) throw new Error(answer.error?.message || `HTTP ${res.status}`);
  return answer;
}

function showLogin(message = '') {
  hideNewKey();
  $('app').hidden = true;
  $('detail').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message;
  stopTimer();
}

function showApp() {
  $('login').hidden = true;
  $('app').hidden = false;
  refresh();
  startTimer();
}

const fmtMs = (v) => (v === null || v === undefined ? '–' : `${Math.round(v)} ms`);
const fmtNum = (v) => (v === null || v === undefined ? '–' : Number(v).toLocaleString());
const ok = (row) => row.status < 400 && !row.error;

function badge(row) {
  const text = row.error && row.status < 400 ? `${row.status} ⚠` : String(row.status);
  return el('span', { class: `badge ${ok(row) ? 'ok' : 'bad'}`, text, title: row.error || '' });
}

async function loadStats() {
  const s = await api(`/api/stats?window=${encodeURIComponent($('window').value)}`);
  $('s-total').textContent = fmtNum(s.total);
  $('s-rate').textContent = s.success_rate === null ? '–' : `${s.success_rate}%`;
  $('s-avg').textContent = fmtMs(s.avg_latency_ms);
  $('s-pct').textContent = `${fmtMs(s.p50_latency_ms)} / ${fmtMs(s.p95_latency_ms)}`;
  $('s-ttfb').textContent = fmtMs(s.avg_first_byte_ms);
  $('s-ttft').textContent = fmtMs(s.avg_first_token_ms);
  $('s-tokens').textContent = fmtNum(s.total_tokens);
  $('s-refused').textContent = fmtNum(s.refused ?? 0);
  fillGroups($('by-model'), s.by_model);
  fillGroups($('by-provider'), s.by_provider);
  fillGroups($('by-upstream'), s.by_upstream);
  drawChart(s.timeline);
}

function fillGroups(tbody, groups) {
  tbody.replaceChildren(...groups.map((g) => el('tr', {},
    el('td', { text: g.name, title: g.name }), el('td', { class: 'num', text: fmtNum(g.count) }),
    el('td', { class: 'num', text: fmtNum(g.errors) }), el('td', { class: 'num', text: g.avg_latency_ms ?? '–' }))));
  if (!groups.length) tbody.append(el('tr', {}, el('td', { class: 'muted', text: 'no calls yet', colspan: '4' })));
}

function drawChart(timeline) {
  const svg = $('chart');
  const ns = 'http://www.w3.org/2000/svg';
  const W = 600, H = 180, pad = 22;
  const values = timeline.map((b) => b.avg_latency_ms);
  const max = Math.max(1, ...values.filter((v) => v !== null));
  const x = (i) => pad + (i * (W - 2 * pad)) / Math.max(1, timeline.length - 1);
  const y = (v) => H - pad - (v / max) * (H - 2 * pad);
  const nodes = [];
  const line = (x1, y1, x2, y2, color) => {
    const l = document.createElementNS(ns, 'line');
    Object.entries({ x1, y1, x2, y2, stroke: color, 'stroke-width': 1 }).forEach(([k, v]) => l.setAttribute(k, v));
    return l;
  };
  nodes.push(line(pad, H - pad, W - pad, H - pad, 'currentColor'));
  const label = document.createElementNS(ns, 'text');
  label.setAttribute('x', pad); label.setAttribute('y', 14); label.setAttribute('font-size', 11); label.setAttribute('fill', 'currentColor');
  label.textContent = `max ${Math.round(max)} ms`;
  nodes.push(label);
  let d = '';
  timeline.forEach((b, i) => {
    if (b.avg_latency_ms === null) return;
    d += `${d ? 'L' : 'M'}${x(i).toFixed(1)},${y(b.avg_latency_ms).toFixed(1)} `;
    const dot = document.createElementNS(ns, 'circle');
    dot.setAttribute('cx', x(i)); dot.setAttribute('cy', y(b.avg_latency_ms)); dot.setAttribute('r', 3);
    dot.setAttribute('fill', b.errors ? '#d33a2c' : '#3b6ff5');
    const tip = document.createElementNS(ns, 'title');
    tip.textContent = `${new Date(b.start_ms).toLocaleString()}: ${b.count} calls, avg ${b.avg_latency_ms} ms, ${b.errors} errors`;
    dot.append(tip);
    nodes.push(dot);
  });
  if (d) {
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('d', d); path.setAttribute('fill', 'none'); path.setAttribute('stroke', '#3b6ff5'); path.setAttribute('stroke-width', 2);
    nodes.splice(2, 0, path);
  }
  svg.replaceChildren(...nodes);
}

// Answers can arrive out of order (an auto-refresh in flight while the filter changes):
// only the newest request's answer may fill the table or the detail.
let rowsSeq = 0;
let detailSeq = 0;

async function loadRows() {
  const seq = ++rowsSeq;
  const params = new URLSearchParams({ page: state.page, page_size: 20 });
  for (const id of ['search', 'status', 'model', 'upstream']) if ($(id).value.trim()) params.set(id, $(id).value.trim());
  if ($('key-filter').value) params.set('key', $('key-filter').value);
  const list = await api(`/api/requests?${params}`);
  if (seq !== rowsSeq) return;
  state.totalPages = Math.max(1, list.total_pages);
  $('pageinfo').textContent = `page ${list.page} of ${state.totalPages} · ${list.total} ${list.total === 1 ? 'request' : 'requests'}`;
  $('prev').disabled = state.page <= 1;
  $('next').disabled = state.page >= state.totalPages;
  const rows = list.data.map((r) => {
    const tr = el('tr', { class: 'entry', 'data-id': String(r.id), tabindex: '0' },
      el('td', { class: 'muted', text: String(r.id) }),
      el('td', { text: new Date(r.created_ms).toLocaleString(), title: r.created_at }),
      el('td', {}, badge(r)),
      el('td', { class: 'key-name', text: r.key_name ?? '–', title: r.key_id ? `${r.key_name} (${r.key_id})` : 'no access key' }),
      el('td', { class: 'upstream', text: r.upstream ?? r.provider ?? '–', title: r.provider ? `kind: ${r.provider}` : '' }),
      el('td', { class: 'num attempts', text: r.attempts ? String(r.attempts) : '–' }),
      el('td', { text: r.model ?? '–' }),
      el('td', { text: r.stream ? (r.fake_stream ? 'fake stream' : 'stream') : 'json' }),
      el('td', { text: `${r.method} ${r.path}` }),
      el('td', { class: 'num', text: fmtMs(r.first_byte_ms) }),
      el('td', { class: 'num first-token', text: fmtMs(r.first_token_ms) }),
      el('td', { class: 'num', text: fmtMs(r.total_ms) }),
      el('td', { class: 'num', text: fmtNum(r.total_tokens) }));
    tr.addEventListener('click', () => openDetail(r.id));
    tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') openDetail(r.id); });
    return tr;
  });
  if (!rows.length) rows.push(el('tr', {}, el('td', { class: 'muted', colspan: '13', text: 'No requests match.' })));
  $('rows').replaceChildren(...rows);
}

function pretty(value) {
  if (value === null || value === undefined || value === '') return '(empty)';
  if (typeof value !== 'string') return JSON.stringify(value, null, 2);
  try { return JSON.stringify(JSON.parse(value), null, 2); } catch { return value; }
}

function section(title, text) {
  const pre = el('pre', { text });
  const copy = el('button', { type: 'button', text: 'Copy' });
  copy.addEventListener('click', async () => {
    try { await navigator.clipboard.writeText(text); copy.textContent = 'Copied'; } catch { copy.textContent = 'Copy failed'; }
    setTimeout(() => { copy.textContent = 'Copy'; }, 1500);
  });
  return el('div', { class: 'section' }, el('h3', {}, el('span', { text: title }), copy), pre);
}

async function openDetail(id) {
  state.openId = id;
  const seq = ++detailSeq;
  const r = await api(`/api/request/${encodeURIComponent(id)}`);
  if (seq !== detailSeq) return;
  $('d-title').textContent = `Request #${r.id} · ${r.request_id}`;
  const meta = [['Time', r.created_at], ['Status', String(r.status)], ['Upstream', r.upstream ?? '–'], ['Provider', r.provider ?? '–'],
    ['Attempts', r.attempts ? String(r.attempts) : '–'], ['Model', r.model ?? '–'],
    ['Mode', r.stream ? (r.fake_stream ? 'fake stream' : 'stream') : 'json'], ['Path', `${r.method} ${r.path}`],
    ['Access key', r.key_name ? `${r.key_name} (${r.key_id})` : '–'],
    ['First byte', fmtMs(r.first_byte_ms)], ['First token', fmtMs(r.first_token_ms)], ['Total', fmtMs(r.total_ms)],
    ['Tokens', `${fmtNum(r.prompt_tokens)} prompt · ${fmtNum(r.completion_tokens)} completion · ${fmtNum(r.total_tokens)} total`],
    ['Client', `${r.client_ip ?? '–'} ${r.origin ? `· ${r.origin}` : ''}`], ['User agent', r.user_agent ?? '–']];
  if (r.error) meta.push(['Error', r.error]);
  $('d-meta').replaceChildren(...meta.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
  const attempts = Array.isArray(r.attempt_log) ? r.attempt_log : [];
  const attemptList = el('ol', { class: 'attempts', id: 'd-attempts' }, ...attempts.map((a) => el('li', {
    text: `${a.upstream} · ${a.model} · key ${a.key ?? '(client key)'} · ${a.status ?? 'no answer'}${a.error ? ` · ${a.error}` : ''} · ${fmtMs(a.ms)}`,
  })));
  $('d-sections').replaceChildren(
    ...(attempts.length ? [el('div', { class: 'section' }, el('h3', {}, el('span', { text: `Attempts (${attempts.length})` })), attemptList)] : []),
    section('Request headers', pretty(r.request_headers)),
    section('Request body', pretty(r.request_body)),
    section('Response headers', pretty(r.response_headers)),
    section(r.stream ? 'Response (reassembled stream text)' : 'Response body', pretty(r.response_body)));
  $('detail').hidden = false;
}

// ---- access keys -------------------------------------------------------------------------

const fmtTime = (secs, none = '–') => (secs === null || secs === undefined ? none : new Date(secs * 1000).toLocaleString());
const listText = (items, none) => (items && items.length ? items.join(', ') : none);
const splitList = (value) => value.split(',').map((s) => s.trim()).filter(Boolean);
const expired = (k) => k.expires_at !== null && k.expires_at !== undefined && k.expires_at * 1000 <= Date.now();

function limitsText(k) {
  const parts = ['rpm', 'tpm', 'tpd'].filter((n) => k[n] !== null && k[n] !== undefined).map((n) => `${fmtNum(k[n])} ${n}`);
  return parts.length ? parts.join(' · ') : '–';
}

function keyStatus(k) {
  if (expired(k)) return el('span', { class: 'badge bad', text: 'expired' });
  return el('span', { class: `badge ${k.enabled ? 'ok' : 'bad'}`, text: k.enabled ? 'enabled' : 'disabled' });
}

function keyError(e) {
  if (e.message !== 'unauthorized') $('key-error').textContent = e.message;
  state.keysFailed = false;
}

/** A failed list load is shown until a load succeeds (an action's error stays until the next action). */
function keyListError(e) {
  keyError(e);
  state.keysFailed = e.message !== 'unauthorized';
}

let keysSeq = 0;

async function loadKeys() {
  const seq = ++keysSeq;
  const list = await api('/api/keys');
  if (seq !== keysSeq) return;
  if (state.keysFailed) { $('key-error').textContent = ''; state.keysFailed = false; }
  const keys = Array.isArray(list.data) ? list.data : [];
  fillKeyFilter(keys);
  // Unchanged answers leave the table alone, so a button is not replaced under the pointer.
  const json = `${JSON.stringify(keys)} ${keys.filter(expired).length}`;
  if (json === state.keysJson && $('key-rows').childElementCount) return;
  state.keysJson = json;
  const rows = keys.map(keyRow);
  if (!rows.length) rows.push(el('tr', {}, el('td', { class: 'muted', colspan: '12', text: 'No access keys yet.' })));
  $('key-rows').replaceChildren(...rows);
}

function keyRow(k) {
  const usage = k.usage || {};
  const toggle = el('button', { type: 'button', class: 'toggle', text: k.enabled ? 'Disable' : 'Enable' });
  toggle.addEventListener('click', () => keyAction(toggle, `/api/keys/${encodeURIComponent(k.id)}`, { method: 'PATCH', body: { enabled: !k.enabled } }));
  const del = el('button', { type: 'button', class: 'delete', text: 'Delete' });
  del.addEventListener('click', () => {
    if (!confirm(`Delete the key "${k.name}"? Clients using it are refused from now on.`)) return;
    keyAction(del, `/api/keys/${encodeURIComponent(k.id)}`, { method: 'DELETE' });
  });
  return el('tr', { class: 'key', 'data-id': k.id },
    el('td', { class: 'name', text: k.name, title: k.id }),
    el('td', {}, el('code', { class: 'hint', text: k.hint ?? '–' })),
    el('td', { class: `models${k.models?.length ? '' : ' muted'}`, text: listText(k.models, 'all'), title: listText(k.models, 'all models') }),
    el('td', { class: `origins${k.origins?.length ? '' : ' muted'}`, text: listText(k.origins, 'any'), title: listText(k.origins, 'any origin') }),
    el('td', { class: 'limits', text: limitsText(k) }),
    el('td', { class: 'expires', text: fmtTime(k.expires_at, 'never') }),
    el('td', { class: 'status' }, keyStatus(k)),
    el('td', { class: 'num calls', text: fmtNum(usage.calls ?? 0) }),
    el('td', { class: 'num tokens', text: fmtNum(usage.tokens ?? 0) }),
    el('td', { class: 'num errors', text: fmtNum(usage.errors ?? 0) }),
    el('td', { class: 'last-used', text: fmtTime(usage.last_used_at) }),
    el('td', { class: 'actions' }, toggle, del));
}

/** One admin call with its button disabled meanwhile: errors go to #key-error, the list reloads. */
async function keyCall(button, call) {
  $('key-error').textContent = '';
  button.disabled = true;
  try {
    await call();
  } catch (e) {
    keyError(e);
  } finally {
    button.disabled = false;
  }
  await loadKeys().catch(keyListError);
}

function keyAction(button, path, options) {
  return keyCall(button, () => api(path, options));
}

/** The request list's key filter: one option per key, the choice kept across refreshes. */
function fillKeyFilter(keys) {
  const select = $('key-filter');
  const current = select.value;
  const options = JSON.stringify(keys.map((k) => [k.id, k.name]));
  if (options === state.keyOptions) return;
  state.keyOptions = options;
  select.replaceChildren(el('option', { value: '', text: 'all keys' }), ...keys.map((k) => el('option', { value: k.id, text: k.name })));
  if (keys.some((k) => k.id === current)) select.value = current;
  else if (current) { select.value = ''; state.page = 1; loadRows().catch(() => {}); }
}

function keyBody() {
  const body = { name: $('key-name').value.trim() };
  for (const [id, field] of [['key-models', 'models'], ['key-origins', 'origins']]) {
    const items = splitList($(id).value);
    if (items.length) body[field] = items;
  }
  for (const field of ['rpm', 'tpm', 'tpd']) {
    const value = $(`key-${field}`).value.trim();
    if (value) body[field] = Number(value);
  }
  const expires = $('key-expires').value;
  // datetime-local is local time; the API takes RFC 3339 (UTC, whole seconds).
  if (expires) body.expires_at = new Date(expires).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return body;
}

function createKey(e) {
  e.preventDefault();
  return keyCall($('key-form').querySelector('button[type=submit]'), async () => {
    const created = await api('/api/keys', { method: 'POST', body: keyBody() });
    $('key-form').reset();
    showNewKey(created.key);
  });
}

function showNewKey(secret) {
  $('new-key-value').textContent = secret;
  $('copy-key').textContent = 'Copy';
  $('new-key').hidden = false;
}

/** Takes the secret off the page for good. */
function hideNewKey() {
  $('new-key').hidden = true;
  $('new-key-value').textContent = '';
  window.getSelection()?.removeAllRanges();
}

async function copyKey() {
  const node = $('new-key-value');
  const button = $('copy-key');
  try {
    await navigator.clipboard.writeText(node.textContent);
    button.textContent = 'Copied';
  } catch {
    // No clipboard access (e.g. not a secure context): select the text for Ctrl+C.
    window.getSelection().selectAllChildren(node);
    button.textContent = document.execCommand('copy') ? 'Copied' : 'Selected: press Ctrl+C';
  }
  setTimeout(() => { button.textContent = 'Copy'; }, 2000);
}

async function refresh() {
  loadKeys().catch(keyListError);
  try {
    await Promise.all([loadStats(), loadRows()]);
    $('error').textContent = '';
    $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (e.message !== 'unauthorized') $('error').textContent = e.message;
  }
}

function startTimer() {
  stopTimer();
  if ($('auto').checked) state.timer = setInterval(refresh, 5000);
}
function stopTimer() { if (state.timer) clearInterval(state.timer); state.timer = null; }

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const value = $('token').value.trim();
  sessionStorage.setItem(TOKEN_KEY, value);
  if ($('remember').checked) localStorage.setItem(TOKEN_KEY, value); else localStorage.removeItem(TOKEN_KEY);
  showApp();
});
$('logout').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); localStorage.removeItem(TOKEN_KEY); showLogin(); });
$('filters').addEventListener('submit', (e) => { e.preventDefault(); state.page = 1; loadRows().catch((err) => { $('error').textContent = err.message; }); });
$('prev').addEventListener('click', () => { state.page = Math.max(1, state.page - 1); loadRows(); });
$('next').addEventListener('click', () => { state.page = Math.min(state.totalPages, state.page + 1); loadRows(); });
$('window').addEventListener('change', () => loadStats());
$('auto').addEventListener('change', startTimer);
$('key-filter').addEventListener('change', () => { state.page = 1; loadRows().catch((err) => { $('error').textContent = err.message; }); });
$('key-form').addEventListener('submit', createKey);
$('keys-refresh').addEventListener('click', () => loadKeys().catch(keyListError));
$('copy-key').addEventListener('click', copyKey);
$('dismiss-key').addEventListener('click', hideNewKey);
$('close').addEventListener('click', () => { $('detail').hidden = true; state.openId = null; });
document.addEventListener('keydown', (e) => { if (e.key === 'Escape') $('detail').hidden = true; });

if (token()) showApp(); else showLogin();

// The request-log dashboard. Logged content is untrusted: everything is put on the page
// with textContent / DOM nodes, never as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'gateway-admin-token';
const state = { page: 1, totalPages: 1, timer: null, openId: null };

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

async function api(path) {
  const res = await fetch(path, { headers: { authorization: `Bearer ${token()}` } });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) { showLogin(body.error?.message || 'The token was refused.'); throw new Error('unauthorized'); }
  if (!res.ok) throw new Error(body.error?.message || `HTTP ${res.status}`);
  return body;
}

function showLogin(message = '') {
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
  if (!rows.length) rows.push(el('tr', {}, el('td', { class: 'muted', colspan: '12', text: 'No requests match.' })));
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

async function refresh() {
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
$('close').addEventListener('click', () => { $('detail').hidden = true; state.openId = null; });
document.addEventListener('keydown', (e) => { if (e.key === 'Escape') $('detail').hidden = true; });

if (token()) showApp(); else showLogin();

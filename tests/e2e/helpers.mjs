// Shared helpers for the end-to-end tests: gateway URLs, mock scenarios, SSE reading.
import { randomUUID } from 'node:crypto';

export const GATEWAY = process.env.GATEWAY_URL;
export const PUBLIC_GATEWAY = process.env.PUBLIC_GATEWAY_URL;
export const MOCK = process.env.MOCK_URL;
export const LOG_GATEWAY = process.env.LOG_GATEWAY_URL;
/** Same settings as GATEWAY, for tests whose client disconnects mid-response. */
export const DISCONNECT_GATEWAY = process.env.DISCONNECT_GATEWAY_URL;
export const STOP_GATEWAY = process.env.STOP_GATEWAY_URL;
export const ADMIN_TOKEN = 'test-admin-token';
export const ACCESS_TOKEN = 'test-access-token';
export const SERVER_KEY = 'sk-server-secret-key';
if (!GATEWAY || !PUBLIC_GATEWAY || !MOCK || !LOG_GATEWAY) {
  throw new Error('run the end-to-end tests through `npm test` (tests/run.mjs starts the servers)');
}

/** Registers a mock scenario and returns the tag to put in a message. */
export async function scenario(knobs = {}) {
  const id = `s${randomUUID().replaceAll('-', '')}`;
  const res = await fetch(`${MOCK}/__mock/scenario`, {
    method: 'POST', body: JSON.stringify({ id, ...knobs }),
  });
  if (!res.ok) throw new Error('mock scenario registration failed');
  return `mock:${id}`;
}

/** What the mock upstream received for a tag. */
export async function received(tag) {
  const res = await fetch(`${MOCK}/__mock/requests?tag=${tag.slice('mock:'.length)}`);
  return res.json();
}

export async function waitFor(predicate, { timeoutMs = 5000, stepMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export function chatBody(tag, extra = {}) {
  return { model: 'gpt-test', messages: [{ role: 'user', content: `Say hello ${tag}` }], ...extra };
}

/** POSTs JSON to the gateway with the access token unless headers say otherwise. */
export function post(path, body, { base = GATEWAY, headers = {}, signal } = {}) {
  return fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ACCESS_TOKEN}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal,
  });
}

/**
 * Reads an SSE response to the end. Returns every item with its arrival time:
 * { kind: 'comment' | 'data', text, at }.
 */
export async function readSse(response, onItem) {
  const decoder = new TextDecoder();
  const items = [];
  let buffer = '';
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) !== -1) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const at = Date.now();
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) items.push({ kind: 'comment', text: line.slice(1).trim(), at });
      }
      const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      if (data) items.push({ kind: 'data', text: data, at });
      if (onItem) onItem(items[items.length - 1], items);
    }
  }
  return items;
}

/** Joins the content deltas of parsed chunks (choice 0). */
export function contentOf(items) {
  return items
    .filter((i) => i.kind === 'data' && i.text !== '[DONE]')
    .map((i) => JSON.parse(i.text))
    .map((c) => c.choices?.[0]?.delta?.content ?? '')
    .join('');
}

// ---- trust tests ----------------------------------------------------------------------------

/** Same settings as GATEWAY with MAX_RESPONSE_BYTES=65536. */
export const LIMIT_GATEWAY = process.env.LIMIT_GATEWAY_URL;

/** Hits of the mock's /__mock/stolen route (a redirect target that must never be fetched). */
export async function stolenHits() {
  return (await fetch(`${MOCK}/__mock/stolen_hits`)).json();
}

/** Sets or clears the mock's model-list redirect switch (see tests/mock/upstream.mjs). */
export async function modelsRedirect(settings) {
  const res = await fetch(`${MOCK}/__mock/models_redirect`, { method: 'POST', body: JSON.stringify(settings) });
  if (!res.ok) throw new Error('mock models_redirect switch failed');
}

/** The request-log row of a call (by its X-Request-Id), waiting for the deferred write. */
export async function logRow(requestId, { base = GATEWAY, token = ADMIN_TOKEN, timeoutMs = 8000 } = {}) {
  return waitFor(async () => {
    const res = await fetch(`${base}/api/request/${encodeURIComponent(requestId)}`, { headers: { authorization: `Bearer ${token}` } });
    return res.status === 200 ? res.json() : null;
  }, { timeoutMs, stepMs: 100 });
}

// ---- router tests (tests/e2e/router.test.mjs) -------------------------------------------

/** Many upstreams, key pools, retries and fallbacks; UPSTREAMS/ROUTES as JSON strings. */
export const ROUTER_GATEWAY = process.env.ROUTER_GATEWAY_URL;
/** UPSTREAMS as a TOML array of tables, ROUTES as a TOML table (a generated wrangler config). */
export const TOML_GATEWAY = process.env.TOML_GATEWAY_URL;
/** ROUTES names an upstream that does not exist. */
export const BADCONFIG_GATEWAY = process.env.BADCONFIG_GATEWAY_URL;
/** Two more mock upstreams (own ports, own scenarios and records) and a port nobody listens on. */
export const MOCK_B = process.env.MOCK_B_URL;
export const MOCK_C = process.env.MOCK_C_URL;
export const DEAD = process.env.DEAD_URL;

/**
 * Registers one tag on several mocks, each with its own knobs — `{[mockUrl]: knobs}` — so the
 * same call can fail on one upstream and be answered by another. Returns the tag.
 */
export async function scenarioOn(knobsByMock) {
  const id = `s${randomUUID().replaceAll('-', '')}`;
  for (const [mock, knobs] of Object.entries(knobsByMock)) {
    const res = await fetch(`${mock}/__mock/scenario`, { method: 'POST', body: JSON.stringify({ id, ...knobs }) });
    if (!res.ok) throw new Error(`mock scenario registration on ${mock} failed`);
  }
  return `mock:${id}`;
}

/** What one mock upstream received for a tag, in arrival order (each record has `key`). */
export async function receivedOn(mock, tag) {
  const res = await fetch(`${mock}/__mock/requests?tag=${tag.slice('mock:'.length)}`);
  return (await res.json()).sort((a, b) => a.seq - b.seq);
}

// CORS on every response; preflight answers what was asked; unlisted origins get nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GATEWAY, PUBLIC_GATEWAY, scenario, chatBody, post } from './helpers.mjs';

const ALLOWED = 'http://allowed.example:3000';

function preflight(base, origin, headers = 'authorization, content-type') {
  return fetch(`${base}/v1/chat/completions`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': headers },
  });
}

test('preflight from an allowed origin', async () => {
  const res = await preflight(GATEWAY, ALLOWED, 'authorization, content-type, x-stainless-os');
  assert.equal(res.status, 204);
  assert.equal(res.headers.get('access-control-allow-origin'), ALLOWED);
  assert.equal(res.headers.get('access-control-allow-headers'), 'authorization, content-type, x-stainless-os');
  assert.match(res.headers.get('access-control-allow-methods'), /POST/);
  assert.equal(res.headers.get('access-control-max-age'), '86400');
  assert.match(res.headers.get('vary'), /Origin/);
});

test('an origin outside ALLOWED_ORIGINS gets no allow header', async () => {
  const res = await preflight(GATEWAY, 'http://evil.example');
  assert.equal(res.headers.get('access-control-allow-origin'), null);
  assert.equal(res.headers.get('access-control-allow-headers'), null);
  const tag = await scenario();
  const actual = await post('/v1/chat/completions', chatBody(tag), { headers: { origin: 'http://evil.example' } });
  assert.equal(actual.headers.get('access-control-allow-origin'), null);
});

test('actual responses and errors carry CORS headers', async () => {
  const tag = await scenario();
  const ok = await post('/v1/chat/completions', chatBody(tag), { headers: { origin: ALLOWED } });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('access-control-allow-origin'), ALLOWED);
  assert.match(ok.headers.get('access-control-expose-headers'), /X-Request-Id/);
  assert.match(ok.headers.get('access-control-expose-headers'), /Retry-After.*X-RateLimit-Remaining-Requests/, 'browsers can read the upstream back-off headers');
  const err = await post('/v1/chat/completions', '{bad', { headers: { origin: ALLOWED } });
  assert.equal(err.status, 400);
  assert.equal(err.headers.get('access-control-allow-origin'), ALLOWED);
  const missing = await fetch(`${GATEWAY}/nope`, { headers: { origin: ALLOWED } });
  assert.equal(missing.headers.get('access-control-allow-origin'), ALLOWED);
});

test('ALLOWED_ORIGINS=* answers any origin with *', async () => {
  const res = await preflight(PUBLIC_GATEWAY, 'https://anything.example');
  assert.equal(res.status, 204);
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  const health = await fetch(`${PUBLIC_GATEWAY}/health`, { headers: { origin: 'https://x.example' } });
  assert.equal(health.headers.get('access-control-allow-origin'), '*');
});

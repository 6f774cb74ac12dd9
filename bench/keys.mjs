// What access keys add to a call's latency, locally: the same non-streaming chat call made
// with the master token (no lookup, no limiter), with an access key without limits (a cached
// key lookup), and with keys whose limits cost one round trip to the limiter Durable Object
// (rpm), plus the token charge after the call (rpm + tpm). Runs the real worker under
// `wrangler dev` against the local mock upstream; loopback only, bounded in count.
//
//   node bench/keys.mjs [--calls N]      (npm run bench runs it after bench/gateway.mjs)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMockUpstream } from '../tests/mock/upstream.mjs';
import { freePort } from '../tests/ports.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argCalls = process.argv.indexOf('--calls');
const CALLS = argCalls > 0 ? Number(process.argv[argCalls + 1]) : 200;
const WARMUP = 20;
const wrangler = path.join(root, 'node_modules', '.bin', 'wrangler');

function run(args, env) {
  return new Promise((resolve) => {
    const child = spawn(wrangler, args, { cwd: root, env, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('exit', (code) => resolve(code));
  });
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const mock = await startMockUpstream();
const state = fs.mkdtempSync(path.join(os.tmpdir(), 'gateway-bench-'));
const env = { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true', NO_COLOR: '1' };
const vars = {
  SOURCE_API_URL: mock.url, OPENAI_API_KEY: 'sk-bench-server-key', AUTH_TOKEN: 'bench-master-token',
  ADMIN_TOKEN: 'bench-admin-token', FAKE_STREAM: 'off', LOG_REQUESTS: 'false',
};
const envFile = path.join(state, 'bench.env');
fs.writeFileSync(envFile, Object.entries(vars).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join('\n'));
if (await run(['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', state], env) !== 0) {
  throw new Error('applying the D1 migrations failed');
}
const port = await freePort();
const worker = spawn(wrangler, ['dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(await freePort()),
  '--env-file', envFile, '--persist-to', state, '--show-interactive-dev-session=false', '--live-reload=false'], {
  cwd: root, detached: true, stdio: 'ignore', env: { ...env, GATEWAY_SKIP_BUILD: process.env.GATEWAY_SKIP_BUILD || "" },
});
const url = `http://127.0.0.1:${port}`;
try {
  const deadline = Date.now() + 180_000;
  for (;;) {
    try { if ((await fetch(`${url}/health`)).ok) break; } catch { /* starting */ }
    if (Date.now() > deadline) throw new Error('wrangler dev did not start');
    await new Promise((r) => setTimeout(r, 300));
  }
  const createKey = async (fields) => {
    const res = await fetch(`${url}/api/keys`, {
      method: 'POST', headers: { authorization: 'Bearer bench-admin-token', 'content-type': 'application/json' },
      body: JSON.stringify(fields),
    });
    if (res.status !== 201) throw new Error(`creating a key: ${res.status} ${await res.text()}`);
    return (await res.json()).key;
  };
  const modes = [
    ['master token (AUTH_TOKEN)', 'bench-master-token'],
    ['access key, no limits', await createKey({ name: 'bench-plain' })],
    ['access key, rpm (1 limiter round trip)', await createKey({ name: 'bench-rpm', rpm: 1_000_000 })],
    ['access key, rpm + tpm (+ charge after)', await createKey({ name: 'bench-tpm', rpm: 1_000_000, tpm: 1_000_000_000 })],
  ];
  const body = JSON.stringify({ model: 'gpt-bench', messages: [{ role: 'user', content: 'hello' }] });
  const call = async (credential) => {
    const started = performance.now();
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST', headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' }, body,
    });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`call answered ${res.status}`);
    return performance.now() - started;
  };
  const results = [];
  for (const [name, credential] of modes) {
    for (let i = 0; i < WARMUP; i++) await call(credential);
  }
  // Interleaved rounds, so drift of the machine hits every mode alike.
  const times = modes.map(() => []);
  for (let i = 0; i < CALLS; i++) {
    for (const [m, [, credential]] of modes.entries()) times[m].push(await call(credential));
  }
  for (const [m, [name]] of modes.entries()) {
    const sorted = times[m].sort((a, b) => a - b);
    results.push({ name, p50: percentile(sorted, 50), p95: percentile(sorted, 95), mean: sorted.reduce((a, b) => a + b, 0) / sorted.length });
  }
  const base = results[0];
  console.log(`\naccess keys: ${CALLS} non-streaming chat calls per mode (after ${WARMUP} warm-up), wrangler dev, mock upstream on loopback`);
  console.log(`${'mode'.padEnd(42)} ${'p50 ms'.padStart(8)} ${'p95 ms'.padStart(8)} ${'mean ms'.padStart(8)} ${'Δ p50'.padStart(8)}`);
  for (const r of results) {
    const delta = r === base ? '' : `${r.p50 - base.p50 >= 0 ? '+' : ''}${(r.p50 - base.p50).toFixed(2)}`;
    console.log(`${r.name.padEnd(42)} ${r.p50.toFixed(2).padStart(8)} ${r.p95.toFixed(2).padStart(8)} ${r.mean.toFixed(2).padStart(8)} ${delta.padStart(8)}`);
  }
} finally {
  try { process.kill(-worker.pid, 'SIGTERM'); } catch { /* gone */ }
  await mock.close();
  fs.rmSync(state, { recursive: true, force: true });
}

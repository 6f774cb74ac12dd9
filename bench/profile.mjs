// Where a call's CPU goes: serves the built gateway on bare workerd with its V8 inspector on,
// drives one scenario with autocannon while the sampling profiler runs, and prints self time
// by group (Rust in wasm, wasm-bindgen glue, runtime built-ins, GC) and the top functions.
// Names of wasm functions need a build that keeps them:
//   CARGO_PROFILE_RELEASE_STRIP=false npm run build
//
//   node --experimental-websocket bench/profile.mjs [json|stream|fake|gemini] [--duration S] [--top N] [--baseline]
//
// `--baseline` profiles the minimal JS pass-through Worker (bench/baseline.js) instead: what
// any Worker pays for the same call.
//
// Writes the raw profile to bench/last.cpuprofile (Chrome DevTools reads it; not committed).
import fs from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import { freePort } from '../tests/ports.mjs';
import {
  arg, CLIENT_KEY, GATEWAY_MODULES, gatewayBindings, root, scenarioBody, SERVER_KEY, startMock, startWorkerd, stopAll,
} from './workerd.mjs';

const scenario = process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : 'json';
const DURATION = arg('duration', 5);
const TOP = arg('top', 40);
const body = scenarioBody(scenario);
if (typeof WebSocket === 'undefined') throw new Error('run with node --experimental-websocket');

/** A minimal Chrome DevTools Protocol session. */
async function inspect(port) {
  let targets;
  for (let tries = 0; ; tries++) {
    try {
      targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
      break;
    } catch (error) {
      if (tries > 50) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const socket = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = reject; });
  let next = 0;
  const pending = new Map();
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.id && pending.has(message.id)) {
      pending.get(message.id)(message);
      pending.delete(message.id);
    }
  };
  return {
    send: (method, params = {}) => new Promise((resolve, reject) => {
      const id = ++next;
      pending.set(id, (m) => (m.error ? reject(new Error(`${method}: ${m.error.message}`)) : resolve(m.result)));
      socket.send(JSON.stringify({ id, method, params }));
    }),
    close: () => socket.close(),
  };
}

function group(frame) {
  const name = frame.functionName || '(anonymous)';
  if (name === '(garbage collector)') return 'GC';
  if (name === '(program)' || name === '(idle)' || name === '(root)') return name;
  if (frame.url.startsWith('wasm://') || /^\$?func\d+|^wasm-function/.test(name)) return 'Rust (wasm)';
  if (frame.url.endsWith('index.js')) return 'wasm-bindgen / worker glue (index.js)';
  if (!frame.url) return 'runtime built-ins';
  return frame.url;
}

try {
  const mock = await startMock();
  const inspectorPort = await freePort();
  const baseline = process.argv.includes('--baseline');
  const modules = baseline ? [['baseline.js', 'esModule', path.join(root, 'bench', 'baseline.js')]] : GATEWAY_MODULES;
  const gateway = await startWorkerd(baseline ? 'baseline' : 'gateway', modules, {
    UPSTREAM: mock, UPSTREAM_KEY: SERVER_KEY, ...gatewayBindings(mock),
  }, { flags: ['enable_request_signal'], inspectorPort });
  const run = (duration) => autocannon({
    url: `${gateway.url}/v1/chat/completions`, method: 'POST', connections: 20, duration,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}` },
    body: JSON.stringify(body),
  });
  await run(2);
  const session = await inspect(inspectorPort);
  await session.send('Profiler.enable');
  await session.send('Profiler.setSamplingInterval', { interval: 50 });
  await session.send('Profiler.start');
  const result = await run(DURATION);
  const { profile } = await session.send('Profiler.stop');
  session.close();
  fs.writeFileSync(path.join(root, 'bench', 'last.cpuprofile'), JSON.stringify(profile));

  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfSamples = new Map();
  for (const id of profile.samples) selfSamples.set(id, (selfSamples.get(id) || 0) + 1);
  const groups = new Map();
  const functions = new Map();
  let busy = 0;
  for (const [id, count] of selfSamples) {
    const frame = byId.get(id).callFrame;
    const g = group(frame);
    if (g === '(idle)' || g === '(root)') continue;
    busy += count;
    groups.set(g, (groups.get(g) || 0) + count);
    const key = `${frame.functionName || '(anonymous)'}  [${g}]`;
    functions.set(key, (functions.get(key) || 0) + count);
  }
  const calls = result['2xx'];
  const interval = (profile.endTime - profile.startTime) / profile.samples.length; // µs per sample
  const pct = (n) => `${((100 * n) / busy).toFixed(1).padStart(5)}%`;
  const perCall = (n) => `${((n * interval) / calls).toFixed(1).padStart(7)} µs/call`;
  console.log(`${scenario}: ${calls} calls in ${DURATION} s, ${(busy * interval / calls).toFixed(0)} µs of JS-thread CPU per call (sampled)`);
  for (const [g, n] of [...groups].sort((a, b) => b[1] - a[1])) console.log(`${pct(n)} ${perCall(n)}  ${g}`);
  console.log(`\ntop ${TOP} functions by self time:`);
  for (const [f, n] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${pct(n)} ${perCall(n)}  ${f}`);
} finally {
  stopAll();
}

// What the gateway costs next to a minimal JS pass-through Worker (bench/baseline.js) and a JS
// Worker that reads what it relays as any gateway must — the client's body, every chunk of a
// stream, a non-streaming answer whole (bench/baseline-transform.js) — and, for non-streaming
// calls, a JS Worker running the gateway's own JS (bench/baseline-glue.js: src/runtime/glue.js's
// upstream call with its timeout and abort, header lines, one-call response), the floor for
// any Worker doing what glue.js does, in JS or Rust; for non-streaming calls and passthrough
// streams, a JS gateway doing the same work as the gateway (bench/baseline-js-gateway.js):
// all on bare workerd (one process each, so each one's CPU time is its own), side by side against one
// fast mock upstream (bench/mock.mjs, its own process), driven by autocannon. The request-log
// delta needs D1, which bare workerd lacks: it is measured on Miniflare, log on vs off, so
// Miniflare's own per-request cost cancels out. Loopback only, bounded in time.
//
//   node bench/gateway.mjs [--duration SECONDS] [--connections N]   (npm run bench runs it)
//
// Prints one table and writes bench/results.json.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import autocannon from 'autocannon';
import {
  arg, CLIENT_KEY, cpuMicros, GATEWAY_MODULES, gatewayBindings, memory, root, SCENARIOS, scenarioBody, startMock,
  SERVER_KEY, startMiniflare, startWorkerd, stopAll, workerdBinary,
} from './workerd.mjs';

const DURATION = arg('duration', 10);
const CONNECTIONS = arg('connections', 50);
// `--only json` (or stream, fake, gemini, log): that scenario alone, nothing written; for quick looks.
const ONLY = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : null;

async function load(target, body, duration) {
  const before = cpuMicros(target.pid);
  const result = await autocannon({
    url: `${target.url}/v1/chat/completions`,
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}` },
    body: JSON.stringify(body),
    connections: CONNECTIONS,
    duration,
  });
  const cpu = cpuMicros(target.pid) - before;
  const ok = result['2xx'];
  if (result.non2xx || result.errors) {
    throw new Error(`${target.name}: ${result.non2xx} non-2xx answers, ${result.errors} errors`);
  }
  return {
    requests_per_s: result.requests.average,
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    cpu_us_per_call: ok ? cpu / ok : null,
    calls: ok,
    rss_mib: memory(target.pid).rss,
  };
}

/** One streamed call read to its end; returns how many bytes came. The gateway's must end with [DONE]. */
async function drain(target, model) {
  const res = await fetch(`${target.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}` },
    body: JSON.stringify({ model, stream: true, messages: [{ role: 'user', content: 'x' }] }),
  });
  if (res.status !== 200) throw new Error(`${target.name}: ${model} answered ${res.status}`);
  let bytes = 0;
  let tail = '';
  for await (const part of res.body) {
    bytes += part.length;
    tail = (tail + Buffer.from(part).toString('latin1')).slice(-64);
  }
  if (target.name.startsWith('gateway') && !tail.includes('data: [DONE]')) throw new Error(`${target.name}: no [DONE] after ${model}`);
  return bytes;
}

/** Peak RSS growth for one 20 MiB answer (`huge-*`: streamed; `giant-*`: JSON, fake-streamed by the gateway), on a fresh process. */
async function hugeStream(target, model = 'huge-bench') {
  const before = memory(target.pid).peak;
  const bytes = await drain(target, model);
  if (bytes < 20 * 1024 * 1024) throw new Error(`${target.name}: the ${model} answer ended after ${bytes} bytes`);
  return memory(target.pid).peak - before;
}

/** A 1 MiB answer replayed as a fake stream, calls one at a time: CPU and wall time per call. */
async function replay(target, calls = 10) {
  const model = 'big-bench';
  await drain(target, model);
  const cpuBefore = cpuMicros(target.pid);
  const started = performance.now();
  for (let i = 0; i < calls; i += 1) {
    const bytes = await drain(target, model);
    if (bytes < 1024 * 1024) throw new Error(`${target.name}: the 1 MiB answer came as ${bytes} bytes`);
  }
  return { cpu_ms_per_call: (cpuMicros(target.pid) - cpuBefore) / calls / 1000, wall_ms_per_call: (performance.now() - started) / calls };
}

function bundleSize() {
  const gz = (file) => zlib.gzipSync(fs.readFileSync(path.join(root, 'build', file)), { level: 9 }).length;
  return {
    wasm_raw_kib: fs.statSync(path.join(root, 'build', 'index_bg.wasm')).size / 1024,
    gzip_kib: (gz('index_bg.wasm') + gz('index.js')) / 1024,
  };
}

/**
 * Log off, then on: CPU per call of each and the difference. `db`: where the logging side
 * writes. Every call the gateway answered must have become a row (a write that failed would
 * cost less); for the JS Workers, whose failed writes are only dropped, the rows written are
 * reported.
 */
async function pair(off, on, db = on.db, { strict = false } = {}) {
  const json = SCENARIOS[0].body;
  const rows = async () => {
    // Miniflare's proxy for Node may find its idle connection closed: then once more.
    for (let tries = 1; ; tries++) {
      try {
        return (await db.prepare('SELECT COUNT(*) AS n FROM requests').first()).n;
      } catch (error) {
        if (tries === 3) throw error;
      }
    }
  };
  await load(off, json, 2);
  const before = await rows();
  const warm = await load(on, json, 2);
  const measured = { off: await load(off, json, DURATION), on: await load(on, json, DURATION) };
  // Writes still queued at the database (one query at a time) land within seconds.
  let written = 0;
  for (let waited = 0; waited < 30_000; waited += 500) {
    await new Promise((resolve) => { setTimeout(resolve, 500); });
    written = (await rows()) - before;
    if (written >= warm.calls + measured.on.calls) break;
  }
  const logged = warm.calls + measured.on.calls;
  if (strict && written < logged) throw new Error(`${on.name}: ${logged} calls logged, ${written} rows written`);
  if (written < logged) console.log(`${on.name}: ${logged} calls logged, ${written} rows written`);
  await off.dispose?.();
  await on.dispose?.();
  return {
    ...measured,
    extra_cpu_us_per_call: measured.on.cpu_us_per_call - measured.off.cpu_us_per_call,
    rows_written_share: Math.min(1, written / logged),
  };
}

/**
 * The request log as deployed: on bare workerd, its `DB` binding reaching a database in another
 * process (bench/d1-remote.js on Miniflare), so the figure is the Worker's own side of the log
 * — building, binding and sending its rows — without the database's work. The same for the
 * JS Workers.
 */
async function measureLogRemote(mock, settings) {
  const remote = await startMiniflare('d1-remote', {}, { js: 'd1-remote.js' });
  const d1 = remote.url.replace('http://', '');
  // Every row kept, so that each call's row can be counted.
  const logged = { ...settings, LOG_REQUESTS: 'true', ADMIN_TOKEN: 'bench-admin', MAX_REQUESTS_HISTORY: '1000000' };
  const gateway = await pair(
    await startWorkerd('log-off', GATEWAY_MODULES, settings, { flags: ['enable_request_signal'], d1 }),
    await startWorkerd('log-on', GATEWAY_MODULES, logged, { flags: ['enable_request_signal'], d1 }),
    remote.db,
    { strict: true },
  );
  const jsOff = () => startWorkerd(`js-off-${Math.random().toString(36).slice(2, 8)}`, jsModules('baseline.js'), baselineSettings(mock), { d1 });
  const js = await pair(await jsOff(),
    await startWorkerd('js-log-on', jsModules('baseline-log.js', 'baseline.js'), baselineSettings(mock), { d1 }), remote.db);
  const jsBatched = await pair(await jsOff(),
    await startWorkerd('js-log-batched', jsModules('baseline-log-batched.js', 'baseline-log.js', 'baseline.js'), baselineSettings(mock), { d1 }),
    remote.db);
  await remote.dispose();
  return { ...gateway, js_worker: js, js_worker_batched: jsBatched };
}

/**
 * The request log: the gateway on Miniflare with D1, log off then on, and the same D1 work
 * done by a JS Worker (bench/baseline.js vs bench/baseline-log.js on Miniflare), one row per
 * call and batched as the gateway batches them (bench/baseline-log-batched.js); then the same
 * as deployed (`measureLogRemote`).
 */
async function measureLog(mock, settings) {
  const gateway = await pair(
    await startMiniflare('log-off', { ...settings }),
    await startMiniflare('log-on', { ...settings, LOG_REQUESTS: 'true', ADMIN_TOKEN: 'bench-admin', MAX_REQUESTS_HISTORY: '1000000' }),
    undefined,
    { strict: true },
  );
  const js = await pair(
    await startMiniflare('js-log-off', baselineSettings(mock), { js: 'baseline.js' }),
    await startMiniflare('js-log-on', baselineSettings(mock), { js: 'baseline-log.js' }),
  );
  const jsBatched = await pair(
    await startMiniflare('js-log-off-2', baselineSettings(mock), { js: 'baseline.js' }),
    await startMiniflare('js-log-batched', baselineSettings(mock), { js: 'baseline-log-batched.js' }),
  );
  return {
    off: gateway.off, on: gateway.on, extra_cpu_us_per_call: gateway.extra_cpu_us_per_call,
    rps_ratio: gateway.on.requests_per_s / gateway.off.requests_per_s, js_worker: js, js_worker_batched: jsBatched,
    remote_d1: await measureLogRemote(mock, settings),
  };
}

const fmt = (n, digits = 0) => (n === null || n === undefined ? '–' : n.toFixed(digits));

/** One row of the printed table. */
const WIDTHS = [48, 10, 8, 8, 9, 8, 9, 9];
const line = (cells) => cells.map((c, i) => (i === 0 ? String(c).padEnd(WIDTHS[i]) : String(c).padStart(WIDTHS[i]))).join(' ');

/** A JS Worker's extra CPU, and the share of its rows written when not all were. */
const jsExtra = (m) => `+${fmt(m.extra_cpu_us_per_call)} µs${m.rows_written_share < 1 ? ` (${fmt(m.rows_written_share * 100)}% of rows written)` : ''}`;

function printLog(log) {
  const { off, on } = log;
  const remote = log.remote_d1;
  console.log(line(['request log, D1 in another process: off', fmt(remote.off.requests_per_s), fmt(remote.off.p50_ms, 1), fmt(remote.off.p99_ms, 1), fmt(remote.off.cpu_us_per_call), fmt(remote.off.rss_mib), '', '']));
  console.log(line(['  on', fmt(remote.on.requests_per_s), fmt(remote.on.p50_ms, 1), fmt(remote.on.p99_ms, 1), fmt(remote.on.cpu_us_per_call), fmt(remote.on.rss_mib),
    `+${fmt(remote.extra_cpu_us_per_call)} µs`, fmt(remote.on.requests_per_s / remote.off.requests_per_s, 2)]));
  console.log(line(['  JS Worker, a D1 call per row: +', '', '', '', '', '', jsExtra(remote.js_worker), '']));
  console.log(line(['  JS Worker, rows batched: +', '', '', '', '', '', jsExtra(remote.js_worker_batched), '']));
  console.log(line(['request log (Miniflare + D1): off', fmt(off.requests_per_s), fmt(off.p50_ms, 1), fmt(off.p99_ms, 1), fmt(off.cpu_us_per_call), fmt(off.rss_mib), '', '']));
  console.log(line(['  on', fmt(on.requests_per_s), fmt(on.p50_ms, 1), fmt(on.p99_ms, 1), fmt(on.cpu_us_per_call), fmt(on.rss_mib),
    `+${fmt(log.extra_cpu_us_per_call)} µs`, fmt(log.rps_ratio, 2)]));
  console.log(line(['  JS Worker logging each call to D1: +', '', '', '', '', '', jsExtra(log.js_worker), '']));
  console.log(line(['  the same, rows batched as the gateway does: +', '', '', '', '', '', jsExtra(log.js_worker_batched), '']));
}

/** A JS Worker's modules: files of bench/ (the Worker's first). */
const jsModules = (...files) => files.map((file) => [file, 'esModule', path.join(root, 'bench', file)]);
/** The gateway's own glue.js, for the JS Worker that runs it (bench/baseline-glue.js). */
const GLUE_MODULE = ['glue.js', 'esModule', path.join(root, 'src', 'runtime', 'glue.js')];

/** The JS Workers' settings: where to forward, with which key. */
const baselineSettings = (mock) => ({ UPSTREAM: mock, UPSTREAM_KEY: SERVER_KEY });

try {
  if (!fs.existsSync(path.join(root, 'build', 'index.js'))) throw new Error('build first: npm run build');
  const mock = await startMock();
  const settings = gatewayBindings(mock);
  if (ONLY === 'log') {
    printLog(await measureLog(mock, settings));
    stopAll();
    process.exit(0);
  }
  const gateway = await startWorkerd('gateway', GATEWAY_MODULES, settings, { flags: ['enable_request_signal'] });
  const baseline = await startWorkerd('baseline', jsModules('baseline.js'), baselineSettings(mock));
  const transform = await startWorkerd('transform', jsModules('baseline-transform.js'), baselineSettings(mock));
  const glue = await startWorkerd('glue', [...jsModules('baseline-glue.js'), GLUE_MODULE], baselineSettings(mock),
    { flags: ['enable_request_signal'] });
  const jsGateway = await startWorkerd('js-gateway', jsModules('baseline-js-gateway.js'), baselineSettings(mock),
    { flags: ['enable_request_signal'] });
  // The yardsticks beyond the first two, by scenario: glue.js makes whole answers only; the JS
  // gateway does non-streaming calls and passthrough streams.
  const extras = (id) => ({ json: [glue, jsGateway], stream: [null, jsGateway] }[id] || []);

  const rows = [];
  if (ONLY) {
    const scenario = { id: ONLY, body: scenarioBody(ONLY) };
    const targets = [gateway, baseline, transform, ...extras(ONLY).filter(Boolean)];
    for (const target of targets) await load(target, scenario.body, 2);
    for (const target of targets) {
      const m = await load(target, scenario.body, DURATION);
      console.log(`${scenario.id} ${target.name}: ${fmt(m.requests_per_s)} req/s, ${fmt(m.cpu_us_per_call)} µs CPU per call, p50 ${m.p50_ms} ms`);
    }
  }
  if (!ONLY) {
  const memoryGrowth = {
    gateway: await hugeStream(gateway), baseline: await hugeStream(baseline), transform: await hugeStream(transform),
  };
  // A 20 MiB JSON answer fake-streamed, on a gateway process of its own (peak RSS is a high-water mark).
  const fakeGateway = await startWorkerd('gateway-fake', GATEWAY_MODULES, settings, { flags: ['enable_request_signal'] });
  const fakeGrowth = await hugeStream(fakeGateway, 'giant-bench');
  const replayed = { gateway: await replay(gateway), baseline: await replay(baseline) };
  for (const scenario of SCENARIOS) {
    // Warm both up, then measure them one after the other.
    const targets = [gateway, baseline, transform, ...extras(scenario.id)];
    for (const target of targets) if (target) await load(target, scenario.body, 2);
    const measured = [];
    for (const target of targets) measured.push(target ? await load(target, scenario.body, DURATION) : null);
    const [gw, base, touched, glued, js] = measured;
    rows.push({ scenario: scenario.id, label: scenario.label, gateway: gw, baseline: base, transform: touched ?? null,
      glue: glued ?? null, js_gateway: js ?? null,
      cpu_ratio_js_gateway: js ? gw.cpu_us_per_call / js.cpu_us_per_call : null,
      rps_ratio_js_gateway: js ? gw.requests_per_s / js.requests_per_s : null,
      cpu_ratio: gw.cpu_us_per_call / base.cpu_us_per_call, rps_ratio: gw.requests_per_s / base.requests_per_s,
      cpu_ratio_transform: touched ? gw.cpu_us_per_call / touched.cpu_us_per_call : null,
      rps_ratio_transform: touched ? gw.requests_per_s / touched.requests_per_s : null,
      glue_cpu_ratio_baseline: glued ? glued.cpu_us_per_call / base.cpu_us_per_call : null,
      cpu_ratio_glue: glued ? gw.cpu_us_per_call / glued.cpu_us_per_call : null });
  }

  const requestLog = await measureLog(mock, settings);
  const results = {
    ran_at: new Date().toISOString(),
    machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, memory_gib: Math.round(os.totalmem() / 2 ** 30), node: process.version,
      workerd: execFileSync(workerdBinary, ['--version']).toString().trim() },
    settings: { duration_s: DURATION, connections: CONNECTIONS },
    bundle: bundleSize(),
    scenarios: rows,
    request_log: requestLog,
    memory_20mib_stream_mib: { ...memoryGrowth, ratio_transform: memoryGrowth.gateway / Math.max(memoryGrowth.transform, 1) },
    memory_20mib_fake_stream_mib: fakeGrowth,
    fake_replay_1mib: replayed,
  };
  fs.writeFileSync(path.join(root, 'bench', 'results.json'), `${JSON.stringify(results, null, 2)}\n`);

  console.log(`\ngateway vs minimal JS Worker, bare workerd, ${CONNECTIONS} connections, ${DURATION} s per run; ${results.machine.cores} × ${results.machine.cpu}`);
  console.log(line(['scenario / worker', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs', 'RSS MiB', 'CPU ×', 'req/s ×']));
  for (const row of rows) {
    console.log(line([`${row.label}: gateway`, fmt(row.gateway.requests_per_s), fmt(row.gateway.p50_ms, 1), fmt(row.gateway.p99_ms, 1),
      fmt(row.gateway.cpu_us_per_call), fmt(row.gateway.rss_mib), fmt(row.cpu_ratio, 2), fmt(row.rps_ratio, 2)]));
    console.log(line(['  minimal JS Worker (pass-through)', fmt(row.baseline.requests_per_s), fmt(row.baseline.p50_ms, 1), fmt(row.baseline.p99_ms, 1),
      fmt(row.baseline.cpu_us_per_call), fmt(row.baseline.rss_mib), '', '']));
    if (row.transform) {
      console.log(line(['  JS Worker reading what it relays', fmt(row.transform.requests_per_s), fmt(row.transform.p50_ms, 1), fmt(row.transform.p99_ms, 1),
        fmt(row.transform.cpu_us_per_call), fmt(row.transform.rss_mib), '', '']));
      console.log(line(['  gateway ÷ JS Worker reading what it relays', '', '', '', '', '', fmt(row.cpu_ratio_transform, 2), fmt(row.rps_ratio_transform, 2)]));
    }
    if (row.glue) {
      console.log(line(['  JS Worker running glue.js (÷ pass-through)', fmt(row.glue.requests_per_s), fmt(row.glue.p50_ms, 1), fmt(row.glue.p99_ms, 1),
        fmt(row.glue.cpu_us_per_call), fmt(row.glue.rss_mib), fmt(row.glue_cpu_ratio_baseline, 2), '']));
      console.log(line(['  gateway ÷ JS Worker running glue.js', '', '', '', '', '', fmt(row.cpu_ratio_glue, 2), '']));
    }
    if (row.js_gateway) {
      console.log(line(['  JS gateway doing the same work', fmt(row.js_gateway.requests_per_s), fmt(row.js_gateway.p50_ms, 1), fmt(row.js_gateway.p99_ms, 1),
        fmt(row.js_gateway.cpu_us_per_call), fmt(row.js_gateway.rss_mib), '', '']));
      console.log(line(['  gateway ÷ JS gateway doing the same work', '', '', '', '', '', fmt(row.cpu_ratio_js_gateway, 2), fmt(row.rps_ratio_js_gateway, 2)]));
    }
  }
  printLog(requestLog);
  console.log(`20 MiB passthrough stream, peak RSS growth: gateway ${fmt(memoryGrowth.gateway)} MiB, minimal JS Worker ${fmt(memoryGrowth.baseline)} MiB, JS Worker reading what it relays ${fmt(memoryGrowth.transform)} MiB`);
  console.log(`20 MiB JSON answer fake-streamed, peak RSS growth: gateway ${fmt(fakeGrowth)} MiB`);
  console.log(`1 MiB answer fake-streamed, one call at a time: gateway ${fmt(replayed.gateway.cpu_ms_per_call, 1)} ms CPU, ${fmt(replayed.gateway.wall_ms_per_call, 1)} ms wall per call (minimal JS Worker forwarding the JSON: ${fmt(replayed.baseline.cpu_ms_per_call, 1)} ms CPU)`);
  console.log(`bundle: wasm ${fmt(results.bundle.wasm_raw_kib)} KiB raw, gzip(wasm + js) ${fmt(results.bundle.gzip_kib)} KiB`);
  console.log('written: bench/results.json');
  }
} finally {
  stopAll();
}

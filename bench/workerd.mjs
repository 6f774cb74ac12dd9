// What the benchmarks share: bare workerd from tests/workerd.mjs, and the fast mock upstream
// (bench/mock.mjs) in its own process.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from '../tests/ports.mjs';
import { adopt, COMPATIBILITY_DATE, root } from '../tests/workerd.mjs';

export * from '../tests/workerd.mjs';

const chat = (model, stream) => ({ model, ...(stream ? { stream: true } : {}), messages: [{ role: 'user', content: 'hello' }] });

/** What every benchmark tool sends, by scenario (bench/mock.mjs answers by model). */
export const SCENARIOS = [
  { id: 'json', label: 'non-streaming JSON', body: chat('gpt-bench', false) },
  { id: 'stream', label: 'passthrough stream (20 events)', body: chat('gpt-bench', true) },
  { id: 'fake', label: 'fake stream (1 KB, 300 ms upstream, 100 ms heartbeats)', body: chat('slow-bench', true) },
  { id: 'gemini', label: 'Gemini native stream, translated (20 events)', body: chat('gemini-bench', true) },
];

/** A scenario's request body by id; an unknown id is an error naming the known ones. */
export function scenarioBody(id) {
  const scenario = SCENARIOS.find((s) => s.id === id);
  if (!scenario) throw new Error(`unknown scenario ${id}: one of ${SCENARIOS.map((s) => s.id).join(', ')}`);
  return scenario.body;
}

// Keys shaped like real ones (random characters): the scrubber searches every answer for
// them, and keys sharing words with the mock's ids ("bench") would make that search look
// far costlier than with real keys.
export const SERVER_KEY = 'sk-proj-4fJq9ZtW2mKx7LrV1bNc8HdY';
export const CLIENT_KEY = 'gw-cl-Qz7Hq2Lp9Xw4Tn6R';

/** The gateway's settings in every benchmark: server keys, fake streaming for `slow-*`, `big-*` and `giant-*` only, log off. */
export const gatewayBindings = (mock) => ({
  SOURCE_API_URL: mock, OPENAI_API_KEY: SERVER_KEY, GEMINI_BASE_URL: mock,
  GEMINI_API_KEY: 'AIzaSyD3v9QkLm2Xw7PzT1rBn5Hc8Jq0Ue4sGfY', FAKE_STREAM: 'slow-*,big-*,giant-*', HEARTBEAT_INTERVAL_MS: '100',
  LOG_REQUESTS: 'false', MAX_RESPONSE_BYTES: String(64 * 1024 * 1024),
});

/** Starts bench/mock.mjs; returns its base URL. */
export async function startMock() {
  const child = adopt(spawn(process.execPath, [path.join(root, 'bench', 'mock.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const port = await new Promise((resolve, reject) => {
    child.stdout.on('data', (data) => {
      const found = /listening (\d+)/.exec(data.toString());
      if (found) resolve(Number(found[1]));
    });
    child.on('exit', () => reject(new Error('the mock upstream exited')));
  });
  return `http://127.0.0.1:${port}`;
}

/**
 * Starts the gateway on Miniflare with a D1 `DB` (migrations applied), for what needs D1 (the
 * request log); returns its workerd.
 */
export async function startMiniflare(name, bindings, { js, build = path.join(root, 'build') } = {}) {
  // `js`: a JS Worker's main module in bench/ instead of the gateway (of `build`).
  const { Miniflare } = await import('miniflare');
  const worker = js
    ? {
      modules: [...new Set([js, 'baseline.js', 'baseline-log.js'])].map((file) => ({ type: 'ESModule', path: path.join(root, 'bench', file) })),
      modulesRoot: path.join(root, 'bench'),
    }
    : {
      modules: [
        { type: 'ESModule', path: path.join(build, 'index.js') },
        { type: 'CompiledWasm', path: path.join(build, 'index_bg.wasm') },
      ],
      modulesRoot: build,
      durableObjects: { LIMITER: 'KeyLimiter' },
    };
  const mf = new Miniflare({
    host: '127.0.0.1',
    port: await freePort(),
    ...worker,
    compatibilityDate: COMPATIBILITY_DATE,
    compatibilityFlags: ['enable_request_signal'],
    bindings,
    d1Databases: ['DB'],
  });
  const url = (await mf.ready).toString().replace(/\/$/, '');
  const db = await mf.getD1Database('DB');
  for (const file of fs.readdirSync(path.join(root, 'migrations')).sort()) {
    const sql = fs.readFileSync(path.join(root, 'migrations', file), 'utf8')
      .split('\n').filter((line) => !line.trim().startsWith('--')).join('\n');
    const statements = sql.split(';').map((s) => s.trim()).filter(Boolean);
    await db.batch(statements.map((s) => db.prepare(s)));
  }
  // Miniflare's workerd is a child of this process.
  const pid = Number(execFileSync('pgrep', ['-n', '-P', String(process.pid), 'workerd']).toString().trim());
  return { name, url, pid, db, dispose: () => mf.dispose() };
}

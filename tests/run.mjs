// End-to-end test runner: starts the mock upstream and the real worker under `wrangler dev`
// (local workerd) in the configurations the tests need, then runs the Node tests (official
// `openai` npm SDK, raw HTTP/SSE) and the Python tests (official `openai` Python SDK)
// against them. Everything listens on loopback only.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMockUpstream } from './mock/upstream.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stateDir = path.join(root, '.wrangler', 'test');
const artifacts = path.join(root, 'test-artifacts');
fs.mkdirSync(stateDir, { recursive: true });
fs.mkdirSync(artifacts, { recursive: true });
for (const f of fs.readdirSync(artifacts)) {
  if (/^wrangler-.*\.failed-start\.log$/.test(f)) fs.rmSync(path.join(artifacts, f));
}

/** The gateway configurations under test; each becomes one `wrangler dev`. */
function instances(mockUrl, frontendPort) {
  const guarded = {
    SOURCE_API_URL: mockUrl,
    OPENAI_API_KEY: 'sk-server-secret-key',
    OPENAI_MODEL_PATTERNS: 'gpt-*,fake-*,o1*',
    GEMINI_BASE_URL: `${mockUrl}/v1beta`,
    GEMINI_API_KEY: 'gm-server-secret-key',
    DASHSCOPE_BASE_URL: mockUrl,
    AUTH_TOKEN: 'test-access-token',
    ADMIN_TOKEN: 'test-admin-token',
    FAKE_STREAM: 'fake-*,o1*,gemini-fake-*',
    HEARTBEAT_INTERVAL_MS: '200',
    UPSTREAM_TIMEOUT_MS: '4000',
    MAX_REQUEST_BYTES: '65536',
    // The cross-origin browser test serves its frontend from this origin.
    ALLOWED_ORIGINS: `http://allowed.example:3000,http://127.0.0.1:${frontendPort}`,
  };
  return {
    // Access-token mode with server keys for OpenAI and Gemini (none for DashScope),
    // fake streaming for some models, strict CORS, a closed OpenAI model list.
    GATEWAY_URL: guarded,
    // Tests in which the client goes away mid-response get instances of their own:
    // wrangler's dev proxy can exit after a client disconnect (workers-sdk #15447/#15448),
    // which must not take down the instance every other test uses.
    DISCONNECT_GATEWAY_URL: guarded,
    STOP_GATEWAY_URL: guarded,
    // Public-service mode for OpenAI and Gemini (clients' own keys forwarded), a server key
    // for DashScope; fake stream always.
    PUBLIC_GATEWAY_URL: {
      SOURCE_API_URL: `${mockUrl}/v1`,
      GEMINI_BASE_URL: mockUrl,
      DASHSCOPE_BASE_URL: `${mockUrl}/api/v1`,
      DASHSCOPE_API_KEY: 'ds-server-secret-key',
      FAKE_STREAM: 'always',
      HEARTBEAT_INTERVAL_MS: '200',
      ALLOWED_ORIGINS: '*',
      LOG_REQUESTS: 'false',
    },
    // The guarded settings with a small MAX_RESPONSE_BYTES, for the response-size tests
    // (tests/e2e/trust.test.mjs), and Gemini fake streaming by pattern.
    LIMIT_GATEWAY_URL: { ...guarded, MAX_RESPONSE_BYTES: '65536', FAKE_STREAM: 'fake-*,gemini-fake-*' },
    // The memory test's own instance (tests/e2e/memory.test.mjs): its workerd is measured, so
    // nothing else runs on it; its wrangler pid is passed on as MEMORY_GATEWAY_PID.
    MEMORY_GATEWAY_URL: { ...guarded, FAKE_STREAM: 'always', LOG_REQUESTS: 'false', UPSTREAM_TIMEOUT_MS: '60000' },
    // Logging without bodies.
    QUIET_GATEWAY_URL: {
      SOURCE_API_URL: mockUrl,
      OPENAI_API_KEY: 'sk-quiet-server-key',
      ADMIN_TOKEN: 'quiet-admin-token',
      LOG_BODIES: 'false',
      FAKE_STREAM: 'off',
    },
    // The request-log tests' own instance: exact row counts, small retention and bodies.
    LOG_GATEWAY_URL: {
      SOURCE_API_URL: mockUrl,
      OPENAI_API_KEY: 'sk-log-server-key',
      GEMINI_BASE_URL: mockUrl,
      GEMINI_API_KEY: 'gm-log-server-key',
      AUTH_TOKEN: 'log-access-token',
      ADMIN_TOKEN: 'log-admin-token',
      MAX_REQUESTS_HISTORY: '6',
      LOG_MAX_BODY_BYTES: '2048',
      FAKE_STREAM: 'fake-*',
      HEARTBEAT_INTERVAL_MS: '100',
    },
  };
}

/** Credentials the tests send as clients (tests/e2e/trust.test.mjs), besides the configured ones. */
const CLIENT_SECRETS = {
  'public-mode client key (OpenAI)': 'sk-client-own-key-123',
  'public-mode client key (Gemini)': 'gm-client-own-key-456',
  'public-mode client key (models redirect)': 'sk-models-redirect-key-789',
  'X-Auth-Token header': 'tok-header-secret-1',
  'Api-Key header': 'apikey-header-2',
  'Proxy-Authorization header': 'cHJveHk6c2VjcmV0',
};
const SECRET_VARS = ['OPENAI_API_KEY', 'GEMINI_API_KEY', 'DASHSCOPE_API_KEY', 'AUTH_TOKEN', 'ADMIN_TOKEN'];

/**
 * Every `test-artifacts/wrangler-*.log` must be free of every secret in play (as is and
 * percent-encoded). Returns the findings as `file: NAME` lines — never the secret itself.
 */
function scanLogsForSecrets(configs) {
  const secrets = [];
  for (const [instance, vars] of Object.entries(configs)) {
    for (const name of SECRET_VARS) {
      if (vars[name]) secrets.push({ name: `${name} of ${instance}`, value: vars[name] });
    }
  }
  for (const [name, value] of Object.entries(CLIENT_SECRETS)) secrets.push({ name, value });
  const findings = [];
  for (const file of fs.readdirSync(artifacts).filter((f) => /^wrangler-.*\.log$/.test(f))) {
    const text = fs.readFileSync(path.join(artifacts, file), 'utf8');
    for (const { name, value } of secrets) {
      if (text.includes(value) || text.includes(encodeURIComponent(value))) findings.push(`${file}: ${name}`);
    }
  }
  return findings;
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

function run(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: 'inherit', ...opts });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

async function waitForHealth(url, child, logFile, timeoutMs = 180_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`wrangler dev at ${url} did not become healthy; see ${logFile}:\n${fs.readFileSync(logFile, 'utf8').slice(-3000)}`);
}

async function startWorker(name, vars, retried = false) {
  const port = await freePort();
  const inspectorPort = await freePort();
  const envFile = path.join(stateDir, `${name}.env`);
  fs.writeFileSync(envFile, Object.entries(vars).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join('\n') + '\n');
  const logFile = path.join(artifacts, `wrangler-${name}.log`);
  const log = fs.openSync(logFile, 'w');
  const child = spawn(path.join(root, 'node_modules', '.bin', 'wrangler'), [
    'dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspectorPort),
    '--env-file', envFile, '--persist-to', path.join(stateDir, name),
    '--show-interactive-dev-session=false', '--live-reload=false',
  ], {
    cwd: root,
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, GATEWAY_SKIP_BUILD: '1', WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' },
  });
  const url = `http://127.0.0.1:${port}`;
  const worker = { name, url, child, logFile };
  worker.ready = waitForHealth(url, child, logFile).catch(async (error) => {
    // A port picked free can be taken by the time workerd binds it (wrangler restarts the
    // runtime once after its custom build, and eight instances pick ports at once): start
    // this instance again on fresh ports, once.
    if (retried || !/Address already in use/.test(fs.readFileSync(logFile, 'utf8'))) throw error;
    stop(child);
    fs.copyFileSync(logFile, logFile.replace(/\.log$/, '.failed-start.log'));
    const again = await startWorker(name, vars, true);
    await again.ready;
    Object.assign(worker, { url: again.url, child: again.child });
  });
  return worker;
}

/** Applies the D1 migrations to an instance's local state, before it starts. */
async function migrate(name) {
  const code = await run(path.join(root, 'node_modules', '.bin', 'wrangler'), [
    'd1', 'migrations', 'apply', 'DB', '--local', '--persist-to', path.join(stateDir, name),
  ], { cwd: root, env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true' }, stdio: ['ignore', 'ignore', 'inherit'] });
  if (code !== 0) throw new Error(`applying D1 migrations for ${name} failed`);
}

function stop(child) {
  try { process.kill(-child.pid, 'SIGTERM'); } catch { /* already gone */ }
}

const mock = await startMockUpstream();
const frontendPort = await freePort();
const workers = [];
const configs = instances(mock.url, frontendPort);
let code = 1;
try {
  for (const [name, vars] of Object.entries(configs)) {
    // Fresh state each run, so the request-log tests start from an empty table.
    fs.rmSync(path.join(stateDir, name), { recursive: true, force: true });
    await migrate(name);
    workers.push(await startWorker(name, vars));
  }
  await Promise.all(workers.map((w) => w.ready));
  const env = { ...process.env, MOCK_URL: mock.url, FRONTEND_PORT: String(frontendPort), TEST_STATE_DIR: stateDir };
  for (const w of workers) env[w.name] = w.url;
  // The memory test measures the workerd processes under this wrangler.
  env.MEMORY_GATEWAY_PID = String(workers.find((w) => w.name === 'MEMORY_GATEWAY_URL').child.pid);
  console.log(`mock upstream ${mock.url}; ${workers.map((w) => `${w.name}=${w.url}`).join(' ')}`);

  const only = process.argv.slice(2);
  const nodeTests = fs.readdirSync(path.join(root, 'tests', 'e2e'))
    .filter((f) => f.endsWith('.test.mjs'))
    .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
    .map((f) => path.join('tests', 'e2e', f));
  const nodeCode = nodeTests.length
    ? await run(process.execPath, ['--test', '--test-concurrency=4', ...nodeTests], { cwd: root, env })
    : 0;
  const python = path.join(root, '.venv', 'bin', 'python');
  const pyCode = only.length === 0 || only.some((o) => o.includes('py'))
    ? await run(python, ['-m', 'pytest', '-q', 'tests/python'], { cwd: root, env })
    : 0;
  code = nodeCode || pyCode;
} catch (error) {
  console.error(error);
  code = 1;
} finally {
  workers.forEach((w) => stop(w.child));
  await mock.close();
}
// Wait for the wranglers to flush their logs, then check no secret reached them.
await new Promise((r) => setTimeout(r, 1000));
const leaks = scanLogsForSecrets(configs);
if (leaks.length) {
  console.error(`secrets found in the wrangler logs (values not shown):\n  ${leaks.join('\n  ')}`);
  code = code || 1;
} else {
  console.log('wrangler logs checked: no configured or client secret in them');
}
process.exit(code);

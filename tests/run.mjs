// End-to-end test runner: starts the mock upstream and the real worker under `wrangler dev`
// (local workerd) in the configurations the tests need, then runs the Node tests (official
// `openai` npm SDK, raw HTTP/SSE) and the Python tests (official `openai` Python SDK)
// against them. Everything listens on loopback only.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMockUpstream } from './mock/upstream.mjs';
import { freePort, reservePort } from './ports.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stateDir = path.join(root, '.wrangler', 'test');
const artifacts = path.join(root, 'test-artifacts');
fs.mkdirSync(stateDir, { recursive: true });
fs.mkdirSync(artifacts, { recursive: true });
for (const f of fs.readdirSync(artifacts)) {
  if (/^wrangler-.*\.failed-start\.log$/.test(f)) fs.rmSync(path.join(artifacts, f));
}

/**
 * The router instance's upstreams (tests/e2e/router.test.mjs). mock = the main mock, mockB and
 * mockC = two more mock upstreams on their own ports with their own scenarios, dead = a port
 * nobody listens on. Every upstream that a test's key state (cooldowns, disabled keys) could
 * touch has its own keys secret and its own route, so tests cannot disturb one another.
 */
function routerUpstreams({ mock, mockB, mockC, dead }) {
  return [
    { name: 'alpha', kind: 'openai', base_url: `${mock}/v1`, keys: 'ALPHA_KEYS', models: ['alpha-*'] },
    // A Zhipu-like upstream at a non-/v1 base, with a model map and a fixed model list.
    { name: 'zhipu', kind: 'openai', base_url: `${mockB}/api/paas/v4`, keys: 'ZHIPU_KEYS', models: ['glm-*'],
      model_map: { 'glm-public': 'glm-4-flash' }, list_models: ['glm-4-flash', 'glm-4-air'] },
    // An OpenRouter-like upstream: static extra headers and a model map to a slashed name.
    { name: 'charlie', kind: 'openai', base_url: `${mockC}/v1`, keys: 'CHARLIE_KEYS', models: ['gpt-router*', 'charlie-*'],
      model_map: { 'gpt-router': 'vendor/gpt-router:free' },
      headers: { 'HTTP-Referer': 'https://gateway.test/app', 'X-Title': 'Edge Gateway Tests' }, weight: 1 },
    { name: 'dead', kind: 'openai', base_url: `${dead}/v1`, keys: 'DEAD_KEYS', models: ['dead-*'] },
    { name: 'slow', kind: 'openai', base_url: `${mock}/v1`, keys: 'SLOW_KEYS', models: ['slow-*'], timeout_ms: 800 },
    { name: 'gem', kind: 'gemini', base_url: mock, keys: 'GEM_KEYS', models: ['gemini-*'] },
    { name: 'pool401', kind: 'openai', base_url: `${mock}/v1`, keys: 'POOL401_KEYS', models: ['p401-*'] },
    { name: 'pool403', kind: 'openai', base_url: `${mockC}/v1`, keys: 'POOL403_KEYS', models: ['p403-*'] },
    { name: 'pool429', kind: 'openai', base_url: `${mockB}/api/paas/v4`, keys: 'POOL429_KEYS', models: ['p429-*'] },
    { name: 'solo429', kind: 'openai', base_url: `${mock}/v1`, keys: 'SOLO429_KEYS', models: ['s429-*'] },
    { name: 'solo429b', kind: 'openai', base_url: `${mock}/v1`, keys: 'SOLO429B_KEYS', models: ['s429b-*'] },
    // `fake_stream: true` replaces FAKE_STREAM for calls routed here.
    { name: 'fakeup', kind: 'openai', base_url: `${mockC}/v1`, keys: 'FAKEUP_KEYS', models: ['fakeup-*'], fake_stream: true },
    // `keys` names a secret that is not set.
    { name: 'nokeys', kind: 'openai', base_url: `${mock}/v1`, keys: 'UNSET_POOL_KEYS', models: ['nokeys-*'] },
    // Embeddings through the router (tests/e2e/embeddings.test.mjs): a revoked key first in its pool.
    { name: 'embpool', kind: 'openai', base_url: `${mock}/v1`, keys: 'EMBPOOL_KEYS', models: ['ep-*'] },
    { name: 'dsemb', kind: 'dashscope', base_url: mock, keys: 'DSEMB_KEYS', models: ['text-embedding-v*'] },
    // Serves the Responses API itself: /v1/responses calls pass through untranslated.
    { name: 'nativeresp', kind: 'openai', base_url: `${mock}/v1`, keys: 'NATIVERESP_KEYS', models: ['nr-*'], native_responses: true },
  ];
}

/** The router instance's routes: public model name -> targets. */
const ROUTER_ROUTES = {
  'r-fallback': ['alpha/alpha-fb', 'zhipu/glm-fb'],
  'r-dead': { targets: ['dead/dead-x', 'alpha/alpha-dead'], strategy: 'fallback' },
  'r-slow': ['slow/slow-x', 'charlie/charlie-slow'],
  'r-gemini': ['dead/dead-g', 'gem/gemini-router-flash'],
  'r-400': ['alpha/alpha-400', 'zhipu/glm-400'],
  'r-allfail': ['alpha/alpha-af', 'zhipu/glm-af', 'charlie/charlie-af', 'slow/slow-af'],
  'r-single': ['alpha/alpha-single'],
  'r-stream': ['alpha/alpha-stream', 'zhipu/glm-stream'],
  'fake-route': ['alpha/alpha-fake', 'zhipu/glm-fake'],
  'r-429-solo': ['solo429/s429-x'],
  'r-429-big': ['solo429b/s429b-x'],
  'r-429-pool': ['pool429/p429-x'],
  'r-401-pool': ['pool401/p401-x'],
  'r-403-pool': ['pool403/p403-x'],
  'r-weighted': { targets: ['alpha/alpha-w', 'charlie/charlie-w'], strategy: 'weighted' },
  'r-python': ['alpha/alpha-py', 'zhipu/glm-py'],
  'r-embed': ['dead/dead-embed', 'alpha/alpha-embed'],
  'r-embed-503': ['alpha/alpha-embed-503', 'zhipu/glm-embed'],
  'r-embed-gemini': ['dead/dead-ge', 'gem/gemini-embedding-001'],
  'r-embed-pool': ['embpool/ep-embed'],
  'r-embed-dashscope': ['dead/dead-de', 'dsemb/text-embedding-v4'],
  // A Claude model name for Anthropic clients (tests/e2e/messages.test.mjs), served elsewhere.
  'claude-sonnet-4-5': ['dead/dead-claude', 'alpha/alpha-claude'],
};

/** The TOML instance's [vars] UPSTREAMS (an array of tables) and ROUTES (a table). */
function tomlSettings({ mockB, mockC }) {
  return {
    UPSTREAMS: [
      { name: 'tomb', kind: 'openai', base_url: `${mockB}/api/paas/v4`, keys: 'TOML_B_KEYS', models: ['glm-*'],
        model_map: { 'glm-toml-public': 'glm-4-toml' } },
      { name: 'tomc', kind: 'openai', base_url: `${mockC}/v1`, keys: 'TOML_C_KEYS', models: ['toml-*'], timeout_ms: 2000,
        headers: { 'X-Title': 'toml gateway' } },
    ],
    ROUTES: {
      'toml-route': ['tomb/glm-toml', 'tomc/toml-c'],
      'toml-object': { targets: ['tomc/toml-obj'], strategy: 'fallback' },
    },
  };
}

/** The gateway configurations under test; each becomes one `wrangler dev`. */
function instances(mockUrl, frontendPort, { mockB, mockC, dead }) {
  const hosts = { mock: mockUrl, mockB, mockC, dead };
  const guarded = {
    SOURCE_API_URL: mockUrl,
    OPENAI_API_KEY: 'sk-server-secret-key',
    OPENAI_MODEL_PATTERNS: 'gpt-*,fake-*,o1*,text-embedding-3-*',
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
    // which must not take down the instance every other test uses. Its fake streams pause
    // between replayed chunks (tests/e2e/fake-stream.test.mjs).
    DISCONNECT_GATEWAY_URL: { ...guarded, FAKE_STREAM_CHUNK_DELAY_MS: '40' },
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
    // Many upstreams, key pools, retries and fallbacks (tests/e2e/router.test.mjs and
    // tests/python/test_router.py only): UPSTREAMS and ROUTES as JSON strings, keys in secrets.
    ROUTER_GATEWAY_URL: {
      AUTH_TOKEN: 'router-access-token',
      ADMIN_TOKEN: 'router-admin-token',
      UPSTREAMS: JSON.stringify(routerUpstreams(hosts)),
      ROUTES: JSON.stringify(ROUTER_ROUTES),
      ALPHA_KEYS: 'sk-alpha-key-1',
      ZHIPU_KEYS: 'zk-zhipu-key-1',
      CHARLIE_KEYS: 'sk-or-charlie-key-1',
      DEAD_KEYS: 'sk-dead-key-1',
      SLOW_KEYS: 'sk-slow-key-1',
      GEM_KEYS: 'gm-router-key-1',
      POOL401_KEYS: 'sk-pool401-good-one,bad-pool401-revoked,sk-pool401-good-two',
      POOL403_KEYS: 'sk-pool403-a,sk-pool403-b',
      // Newline-separated, as a pasted key list would be.
      POOL429_KEYS: 'sk-pool429-one\nsk-pool429-two',
      SOLO429_KEYS: 'sk-solo429-only',
      SOLO429B_KEYS: 'sk-solo429b-only',
      FAKEUP_KEYS: 'sk-fakeup-key-1',
      EMBPOOL_KEYS: 'bad-embpool-revoked,sk-embpool-good',
      DSEMB_KEYS: 'ds-router-emb-key',
      NATIVERESP_KEYS: 'sk-native-resp-key',
      MAX_ATTEMPTS: '3',
      RETRY_MAX_WAIT_MS: '3000',
      // Hosted/server tools are refused here (tests/e2e/messages.test.mjs, responses.test.mjs).
      UNSUPPORTED_TOOLS: 'reject',
      FAKE_STREAM: 'fake-*,*-fake',
      HEARTBEAT_INTERVAL_MS: '100',
      UPSTREAM_TIMEOUT_MS: '3000',
      ALLOWED_ORIGINS: '*',
    },
    // UPSTREAMS as a TOML array of tables and ROUTES as a TOML table in [vars] of a generated
    // wrangler config (tomlSettings); the keys still come from the env file.
    TOML_GATEWAY_URL: {
      AUTH_TOKEN: 'toml-access-token',
      ADMIN_TOKEN: 'toml-admin-token',
      TOML_B_KEYS: 'zk-toml-b-key',
      TOML_C_KEYS: 'sk-toml-c-key',
    },
    // LOG_SAMPLE_RATE=0: only errors become rows (tests/e2e/request-log.test.mjs).
    SAMPLED_GATEWAY_URL: {
      SOURCE_API_URL: mockUrl,
      OPENAI_API_KEY: 'sk-sampled-server-key',
      ADMIN_TOKEN: 'sampled-admin-token',
      LOG_SAMPLE_RATE: '0',
      FAKE_STREAM: 'off',
    },
    // Access keys (tests/e2e/keys.test.mjs, keys-dashboard.test.mjs, tests/python/test_keys.py):
    // the master token, server keys, fake streaming by pattern.
    KEYS_GATEWAY_URL: {
      SOURCE_API_URL: mockUrl,
      OPENAI_API_KEY: 'sk-keys-server-key',
      AUTH_TOKEN: 'keys-master-token',
      ADMIN_TOKEN: 'keys-admin-token',
      FAKE_STREAM: 'fake-*',
      HEARTBEAT_INTERVAL_MS: '100',
      ALLOWED_ORIGINS: '*',
    },
    // Access keys with the request log off: charging must not depend on it.
    KEYSNOLOG_GATEWAY_URL: {
      SOURCE_API_URL: mockUrl,
      OPENAI_API_KEY: 'sk-keysnolog-server-key',
      AUTH_TOKEN: 'keysnolog-master-token',
      ADMIN_TOKEN: 'keysnolog-admin-token',
      LOG_REQUESTS: 'false',
      FAKE_STREAM: 'off',
    },
    // Public mode with PUBLIC_RPM: clients' own keys, three calls a minute per client IP.
    PUBLICRPM_GATEWAY_URL: {
      SOURCE_API_URL: `${mockUrl}/v1`,
      PUBLIC_RPM: '3',
      FAKE_STREAM: 'off',
      LOG_REQUESTS: 'false',
    },
    // A route naming an upstream that does not exist: every request answers 500.
    BADCONFIG_GATEWAY_URL: {
      AUTH_TOKEN: 'badconfig-access-token',
      UPSTREAMS: JSON.stringify([{ name: 'only', kind: 'openai', base_url: `${mockUrl}/v1`, keys: 'ONLY_KEYS' }]),
      ROUTES: JSON.stringify({ broken: ['missing/some-model'] }),
      ONLY_KEYS: 'sk-badconfig-only-key',
    },
  };
}

/** Instances started with a generated wrangler config instead of wrangler.toml. */
const TOML_INSTANCE = 'TOML_GATEWAY_URL';
/** Instances whose settings are invalid: ready when /health answers at all. */
const BROKEN_INSTANCES = new Set(['BADCONFIG_GATEWAY_URL']);

/** A TOML value: strings, numbers, booleans, arrays and inline tables. */
function tomlValue(value) {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(tomlValue).join(', ')}]`;
  return `{ ${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)} = ${tomlValue(v)}`).join(', ')} }`;
}

/**
 * Writes wrangler.test-toml.toml in the repo root (gitignored): wrangler.toml with its [vars]
 * replaced by the TOML instance's settings, UPSTREAMS as [[vars.UPSTREAMS]] tables and ROUTES
 * as [vars.ROUTES] — so `main`, the D1 binding, migrations_dir and the compatibility flags stay
 * those of wrangler.toml.
 */
function writeTomlConfig(hosts) {
  const { UPSTREAMS, ROUTES } = tomlSettings(hosts);
  const lines = ['[vars]', 'HEARTBEAT_INTERVAL_MS = "100"', 'FAKE_STREAM = "off"', 'ALLOWED_ORIGINS = "*"', 'MAX_ATTEMPTS = "3"', ''];
  for (const upstream of UPSTREAMS) {
    lines.push('[[vars.UPSTREAMS]]');
    for (const [k, v] of Object.entries(upstream)) lines.push(`${k} = ${tomlValue(v)}`);
    lines.push('');
  }
  lines.push('[vars.ROUTES]');
  for (const [name, route] of Object.entries(ROUTES)) if (Array.isArray(route)) lines.push(`${JSON.stringify(name)} = ${tomlValue(route)}`);
  lines.push('');
  for (const [name, route] of Object.entries(ROUTES)) {
    if (Array.isArray(route)) continue;
    lines.push(`[vars.ROUTES.${JSON.stringify(name)}]`);
    for (const [k, v] of Object.entries(route)) lines.push(`${k} = ${tomlValue(v)}`);
    lines.push('');
  }
  const base = fs.readFileSync(path.join(root, 'wrangler.toml'), 'utf8');
  // [vars] runs until the next table header that is not a vars.* table.
  const replaced = base.replace(/^\[vars\][\s\S]*?(?=^\[(?!vars[.\]])|(?![\s\S]))/m, `${lines.join('\n')}\n`);
  if (replaced === base) throw new Error('wrangler.toml has no [vars] section to replace');
  const file = path.join(root, 'wrangler.test-toml.toml');
  fs.writeFileSync(file, `# Generated by tests/run.mjs for TOML_GATEWAY_URL; do not edit.\n${replaced}`);
  return file;
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
function scanLogsForSecrets(configs, hosts) {
  const secrets = [];
  for (const [instance, vars] of Object.entries(configs)) {
    for (const name of SECRET_VARS) {
      if (vars[name]) secrets.push({ name: `${name} of ${instance}`, value: vars[name] });
    }
    // Key-pool secrets named by the upstreams' `keys`, each key of the list on its own.
    for (const name of keySecretNames(instance, vars, hosts)) {
      if (!vars[name]) continue;
      vars[name].split(/[,\n]/).map((k) => k.trim()).filter(Boolean)
        .forEach((value, i) => secrets.push({ name: `${name} of ${instance} (key ${i + 1})`, value }));
    }
  }
  for (const [name, value] of Object.entries(CLIENT_SECRETS)) secrets.push({ name, value });
  // Access keys the tests created (tests/e2e/keys*.test.mjs write them here, one per line).
  const created = path.join(stateDir, 'created-secrets.txt');
  if (fs.existsSync(created)) {
    fs.readFileSync(created, 'utf8').split('\n').filter(Boolean)
      .forEach((value, i) => secrets.push({ name: `access key created by a test (${i + 1})`, value }));
  }
  const findings = [];
  for (const file of fs.readdirSync(artifacts).filter((f) => /^wrangler-.*\.log$/.test(f))) {
    const text = fs.readFileSync(path.join(artifacts, file), 'utf8');
    for (const { name, value } of secrets) {
      if (text.includes(value) || text.includes(encodeURIComponent(value))) findings.push(`${file}: ${name}`);
    }
  }
  return findings;
}

/** The secret names an instance's upstreams take their keys from. */
function keySecretNames(instance, vars, hosts) {
  let upstreams = [];
  if (instance === TOML_INSTANCE) upstreams = tomlSettings(hosts).UPSTREAMS;
  else if (typeof vars.UPSTREAMS === 'string') {
    try { upstreams = JSON.parse(vars.UPSTREAMS); } catch { upstreams = []; }
  }
  return upstreams.map((u) => u.keys).filter((k) => typeof k === 'string');
}

function run(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: 'inherit', ...opts });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

async function waitForHealth(url, child, logFile, anyAnswer = false, timeoutMs = 180_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok || (anyAnswer && res.status >= 400 && res.status < 600 && res.headers.get('content-type')?.includes('json'))) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`wrangler dev at ${url} did not become healthy; see ${logFile}:\n${fs.readFileSync(logFile, 'utf8').slice(-3000)}`);
}

/**
 * A value as wrangler's dotenv reads it back: double-quoted (dotenv turns `\n` back into a
 * newline but leaves `\"` as it is), single-quoted as is when the value holds double quotes
 * (JSON settings such as UPSTREAMS).
 */
function envValue(name, value) {
  if (!value.includes('"')) return JSON.stringify(value);
  if (/['\r\n]/.test(value)) throw new Error(`${name}: a value with double quotes cannot also hold ' or a newline in an env file`);
  return `'${value}'`;
}

/** Starts one `wrangler dev`; `config` is a wrangler config file other than wrangler.toml. */
async function startWorker(name, vars, config = null, retried = false) {
  const port = await freePort();
  const inspectorPort = await freePort();
  const envFile = path.join(stateDir, `${name}.env`);
  fs.writeFileSync(envFile, Object.entries(vars).map(([k, v]) => `${k}=${envValue(k, v)}`).join('\n') + '\n');
  const logFile = path.join(artifacts, `wrangler-${name}.log`);
  const log = fs.openSync(logFile, 'w');
  const child = spawn(path.join(root, 'node_modules', '.bin', 'wrangler'), [
    'dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspectorPort),
    '--env-file', envFile, '--persist-to', path.join(stateDir, name),
    '--show-interactive-dev-session=false', '--live-reload=false',
    ...(config ? ['-c', config] : []),
  ], {
    cwd: root,
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, GATEWAY_SKIP_BUILD: '1', WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' },
  });
  const url = `http://127.0.0.1:${port}`;
  const worker = { name, url, child, logFile };
  worker.ready = waitForHealth(url, child, logFile, BROKEN_INSTANCES.has(name)).catch(async (error) => {
    // A port picked free can be taken by the time workerd binds it (wrangler restarts the
    // runtime once after its custom build, and eight instances pick ports at once): start
    // this instance again on fresh ports, once.
    if (retried || !/Address already in use/.test(fs.readFileSync(logFile, 'utf8'))) throw error;
    stop(child);
    fs.copyFileSync(logFile, logFile.replace(/\.log$/, '.failed-start.log'));
    const again = await startWorker(name, vars, config, true);
    await again.ready;
    Object.assign(worker, { url: again.url, child: again.child });
  });
  return worker;
}

/** Applies the D1 migrations to an instance's local state, before it starts. */
async function migrate(name, config = null) {
  const code = await run(path.join(root, 'node_modules', '.bin', 'wrangler'), [
    'd1', 'migrations', 'apply', 'DB', '--local', '--persist-to', path.join(stateDir, name),
    ...(config ? ['-c', config] : []),
  ], { cwd: root, env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true' }, stdio: ['ignore', 'ignore', 'inherit'] });
  if (code !== 0) throw new Error(`applying D1 migrations for ${name} failed`);
}

function stop(child) {
  try { process.kill(-child.pid, 'SIGTERM'); } catch { /* already gone */ }
}

const mock = await startMockUpstream();
// Two more mock upstreams with scenarios of their own (one upstream fails while another
// answers), and a port nobody listens on (connection refused).
const mockB = await startMockUpstream();
const mockC = await startMockUpstream();
const hosts = { mock: mock.url, mockB: mockB.url, mockC: mockC.url, dead: `http://127.0.0.1:${await freePort()}` };
// The cross-origin test's frontend port is named in ALLOWED_ORIGINS before any instance
// starts: it stays held until the tests run, so no instance can be given it.
const frontend = await reservePort();
const frontendPort = frontend.port;
const workers = [];
const configs = instances(mock.url, frontendPort, hosts);
fs.rmSync(path.join(stateDir, 'created-secrets.txt'), { force: true });
const tomlConfig = writeTomlConfig(hosts);
let code = 1;
try {
  for (const [name, vars] of Object.entries(configs)) {
    // Fresh state each run, so the request-log tests start from an empty table.
    fs.rmSync(path.join(stateDir, name), { recursive: true, force: true });
    const config = name === TOML_INSTANCE ? tomlConfig : null;
    await migrate(name, config);
    workers.push(await startWorker(name, vars, config));
  }
  await Promise.all(workers.map((w) => w.ready));
  const env = {
    ...process.env, MOCK_URL: mock.url, MOCK_B_URL: mockB.url, MOCK_C_URL: mockC.url, DEAD_URL: hosts.dead,
    FRONTEND_PORT: String(frontendPort), TEST_STATE_DIR: stateDir,
  };
  for (const w of workers) env[w.name] = w.url;
  // The memory test measures the workerd processes under this wrangler.
  env.MEMORY_GATEWAY_PID = String(workers.find((w) => w.name === 'MEMORY_GATEWAY_URL').child.pid);
  console.log(`mock upstreams ${mock.url} ${mockB.url} ${mockC.url}, dead ${hosts.dead}; ${workers.map((w) => `${w.name}=${w.url}`).join(' ')}`);

  const only = process.argv.slice(2);
  const nodeTests = fs.readdirSync(path.join(root, 'tests', 'e2e'))
    .filter((f) => f.endsWith('.test.mjs'))
    .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
    .map((f) => path.join('tests', 'e2e', f));
  await frontend.release();
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
  await Promise.all([mock.close(), mockB.close(), mockC.close()]);
}
// Wait for the wranglers to flush their logs, then check no secret reached them.
await new Promise((r) => setTimeout(r, 1000));
const leaks = scanLogsForSecrets(configs, hosts);
if (leaks.length) {
  console.error(`secrets found in the wrangler logs (values not shown):\n  ${leaks.join('\n  ')}`);
  code = code || 1;
} else {
  console.log('wrangler logs checked: no configured or client secret in them');
}
process.exit(code);

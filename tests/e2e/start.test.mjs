// `npm start` as a new user runs it: a scratch clone of this repository with no .dev.vars.
// The start script writes a random ADMIN_TOKEN into .dev.vars, turns the built-in demo
// upstream on and prints a banner; then the official SDKs, the dashboard sign-in and the
// try-it page's four timings all work against a demo model without any key.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { launch } from './browser.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

async function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// The scratch clone: committed files only (no .dev.vars), the installed packages and the
// already-built Worker borrowed from this checkout.
const clone = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-start-'));
execFileSync('git', ['clone', '--quiet', root, clone]);
fs.symlinkSync(path.join(root, 'node_modules'), path.join(clone, 'node_modules'));
fs.cpSync(path.join(root, 'build'), path.join(clone, 'build'), { recursive: true });
assert.ok(!fs.existsSync(path.join(clone, '.dev.vars')), 'a fresh clone has no .dev.vars');
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const child = spawn('bash', ['scripts/start.sh'], {
  cwd: clone, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
  env: { ...process.env, PORT: String(port), GATEWAY_SKIP_BUILD: '1', WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' },
});
let output = '';
child.stdout.on('data', (d) => { output += d; });
child.stderr.on('data', (d) => { output += d; });
const ready = await new Promise((resolve) => {
  const timer = setTimeout(() => resolve(false), 150_000);
  const check = setInterval(() => {
    if (output.includes('is ready')) { clearTimeout(timer); clearInterval(check); resolve(true); }
  }, 200);
  child.on('exit', () => { clearTimeout(timer); clearInterval(check); resolve(output.includes('is ready')); });
});
const browser = await launch();
after(async () => {
  await browser.close();
  try { process.kill(-child.pid, 'SIGTERM'); } catch { /* already gone */ }
  await new Promise((r) => setTimeout(r, 500));
  try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
  fs.rmSync(clone, { recursive: true, force: true });
});
const devVars = () => fs.readFileSync(path.join(clone, '.dev.vars'), 'utf8');
const adminToken = () => devVars().match(/^ADMIN_TOKEN=(.+)$/m)?.[1];
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'no-key-needed', maxRetries: 0 });

test('npm start on a fresh clone: a local ADMIN_TOKEN in .dev.vars, and a banner with every URL and upstream, no key', () => {
  assert.ok(ready, `the gateway started:\n${output.slice(-3000)}`);
  assert.match(devVars(), /^ADMIN_TOKEN=local-[0-9a-f]{32}\n$/);
  assert.match(output, /wrote a random local ADMIN_TOKEN/);
  assert.ok(output.includes(`try-it page   ${base}/\n`), 'banner names the try-it page');
  for (const url of [`${base}/dashboard`, `${base}/v1`]) assert.ok(output.includes(url), `banner names ${url}`);
  assert.match(output, /demo\s+demo\s+built in, needs no key/);
  assert.match(output, /openai\s+openai\s+no key/);
  assert.ok(!output.includes(adminToken()), 'the banner never shows the token itself');
});

test('the official SDK against a demo model: JSON, stream (fake, with heartbeats), tools, usage, errors', async () => {
  const models = await client.models.list();
  assert.ok(models.data.some((m) => m.id === 'demo-chat'), 'demo models are listed');
  const completion = await client.chat.completions.create({ model: 'demo-chat', temperature: 0.2, messages: [{ role: 'user', content: 'What does the gateway do?' }] });
  const text = completion.choices[0].message.content;
  assert.match(text, /demo upstream/);
  assert.match(text, /You asked: "What does the gateway do\?"/);
  assert.match(text, /temperature=0.2/);
  assert.ok(completion.usage.total_tokens > 0);

  // wrangler.toml fake-streams every model: the heartbeat comes at once, the answer after the think time.
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'demo-chat', stream: true, messages: [{ role: 'user', content: 'stream it' }] }),
  });
  assert.equal(res.headers.get('x-gateway-fake-stream'), 'true');
  const raw = await res.text();
  assert.match(raw, /^: heartbeat/m);
  const replayed = raw.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)).choices[0]?.delta?.content ?? '').join('');
  assert.match(replayed, /You asked: "stream it"/);
  assert.match(raw, /data: \[DONE\]/);
  const stream = await client.chat.completions.create({ model: 'demo-chat', stream: true, messages: [{ role: 'user', content: 'via the SDK' }] }, { headers: { 'x-fake-stream': 'false' } });
  let streamed = '';
  for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? '';
  assert.match(streamed, /You asked: "via the SDK"/);

  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
  const called = await client.chat.completions.create({ model: 'demo-chat', tools, messages: [{ role: 'user', content: 'Bern' }] });
  assert.equal(called.choices[0].finish_reason, 'tool_calls');
  assert.equal(called.choices[0].message.tool_calls[0].function.name, 'get_weather');
  await assert.rejects(client.chat.completions.create({ model: 'demo-error-429', messages: [{ role: 'user', content: 'x' }] }), (e) => e.status === 429);
});

test('the dashboard: a sign-in page in the browser, the token from .dev.vars lets in, the demo calls are there', async () => {
  const page = await browser.newPage();
  await page.goto(`${base}/dashboard`);
  assert.equal(await page.isVisible('#login'), true, 'a sign-in form, not JSON');
  await page.fill('#token', adminToken());
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#rows tr.entry');
  assert.match(await page.textContent('#rows'), /demo-chat/);
  assert.equal(await page.evaluate(() => sessionStorage.length > 0), true, 'the token is kept in sessionStorage');
  await page.close();
  const api = await fetch(`${base}/api/requests`);
  assert.equal(api.status, 401, 'API clients still get the JSON error');
  assert.equal((await api.json()).error.code, 'missing_api_key');
});

test('the try-it page preselects the demo model and shows its four timings apart', async () => {
  const page = await browser.newPage();
  await page.goto(`${base}/`);
  await page.waitForFunction(() => document.getElementById('model').value === 'demo-chat');
  await page.check('input[name=mode][value=stream]');
  await page.click('#send');
  await page.waitForFunction(() => document.getElementById('m-total').textContent.endsWith('ms'), null, { timeout: 20_000 });
  const read = async (id) => Number((await page.textContent(id)).replace(/\D/g, ''));
  const [headers, heartbeat, token, total] = [await read('#m-headers'), await read('#m-first-heartbeat'), await read('#m-first-token'), await read('#m-total')];
  // The demo thinks about a second (DEMO_THINK_MS): headers and the first heartbeat come
  // before it, the first token after.
  assert.ok(heartbeat < 900 && headers < 900, `headers ${headers} ms, heartbeat ${heartbeat} ms`);
  assert.ok(token >= 900 && token <= total, `first token ${token} ms, total ${total} ms`);
  assert.ok(Number(await page.textContent('#m-heartbeats')) >= 1);
  assert.match(await page.textContent('#answer'), /demo upstream/);
  await page.close();
});

test('the request log keeps first byte (the fake stream\'s first heartbeat) and first token apart', async () => {
  const auth = { headers: { authorization: `Bearer ${adminToken()}` } };
  const found = await (await fetch(`${base}/api/requests?search=${encodeURIComponent('stream it')}`, auth)).json();
  assert.equal(found.total, 1);
  const row = found.data[0];
  assert.equal(row.fake_stream, 1);
  assert.ok(row.first_byte_ms < 900, `first byte ${row.first_byte_ms} ms: the heartbeat went out at once`);
  assert.ok(row.first_token_ms >= 900, `first token ${row.first_token_ms} ms: after the demo's think time`);
  const stats = await (await fetch(`${base}/api/stats`, auth)).json();
  assert.ok(stats.avg_first_token_ms > 0);
  const page = await browser.newPage();
  await page.goto(`${base}/dashboard`);
  await page.fill('#token', adminToken());
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#rows tr.entry td.first-token');
  await page.waitForFunction(() => document.getElementById('s-ttft').textContent.endsWith('ms'));
  await page.close();
});

// Last: a client that exits mid-connection can take wrangler's dev proxy down with it
// (workers-sdk #15447).
test("the README's quick-start examples (curl, Python, JS) run unchanged against it", async () => {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Quick start'), readme.indexOf('### The demo upstream'));
  const block = (lang) => {
    const match = section.match(new RegExp('```' + lang + '\\n([\\s\\S]*?)```'));
    assert.ok(match, `a ${lang} example`);
    // Only the port differs from the README's: this gateway listens on a free one.
    return match[1].replaceAll('127.0.0.1:8787', `127.0.0.1:${port}`);
  };
  const shell = section.match(/```sh\n(curl[\s\S]*?)```/)[1].replaceAll('127.0.0.1:8787', `127.0.0.1:${port}`);
  const curl = JSON.parse(execFileSync('bash', ['-c', shell], { encoding: 'utf8', timeout: 30_000 }));
  assert.match(curl.choices[0].message.content, /You asked: "Hello"/);
  const python = execFileSync(path.join(root, '.venv', 'bin', 'python'), ['-c', block('python')], { encoding: 'utf8', timeout: 30_000 });
  assert.match(python, /You asked: "Hello"/);
  const js = execFileSync(process.execPath, ['--input-type=module', '-e', block('js')], { cwd: root, encoding: 'utf8', timeout: 30_000 });
  assert.match(js, /You asked: "Hello"/);
});

// The built-in try-it page in real headless Chromium against the mock upstream.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { GATEWAY, STOP_GATEWAY, ACCESS_TOKEN, scenario, received, waitFor } from './helpers.mjs';
import { launch, ARTIFACTS } from './browser.mjs';

const browser = await launch();
after(() => browser.close());

async function openPage({ model = 'gpt-test', user, stream = true, fake = '', base = GATEWAY }) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const res = await page.goto(`${base}/`);
  assert.match(res.headers()['content-security-policy'], /script-src 'self'(;|$)/);
  await page.fill('#key', ACCESS_TOKEN);
  await page.fill('#model', model);
  await page.fill('#user', user);
  await page.check(`input[name=mode][value=${stream ? 'stream' : 'json'}]`);
  await page.selectOption('#fake', fake);
  return { page, errors };
}

test('non-stream: the answer, usage and timings are shown; the snippet uses the gateway URL', async () => {
  const tag = await scenario({ content: 'Hello <b>not bold</b> 你好 🌍' });
  const { page, errors } = await openPage({ user: `hi ${tag}`, stream: false });
  const snippet = await page.textContent('#snippet');
  assert.ok(snippet.includes(`${GATEWAY}/v1/chat/completions`), snippet);
  await page.click('[data-lang=python]');
  assert.match(await page.textContent('#snippet'), new RegExp(`base_url="${GATEWAY}/v1"`));
  await page.click('[data-lang=js]');
  assert.match(await page.textContent('#snippet'), /new OpenAI\(\{ baseURL: /);

  await page.click('#send');
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('Done'));
  assert.equal(await page.textContent('#answer'), 'Hello <b>not bold</b> 你好 🌍');
  assert.equal(await page.locator('#answer b').count(), 0, 'answers are text, never HTML');
  assert.match(await page.textContent('#m-tokens'), /^11 \/ \d+$/);
  assert.match(await page.textContent('#m-total'), /ms$/);
  const [upstream] = await received(tag);
  assert.equal(upstream.body.stream, undefined);
  assert.deepEqual(errors, []);
  await page.screenshot({ path: path.join(ARTIFACTS, 'try-page-json.png') });
  await page.close();
});

test('stream: text renders progressively, before the upstream has finished', async () => {
  const content = 'one two three four five six seven eight nine ten';
  const tag = await scenario({ content, chunk_chars: 4, chunk_delay_ms: 250 });
  const { page } = await openPage({ user: `count ${tag}` });
  await page.click('#send');
  await page.waitForFunction(() => document.getElementById('answer').textContent.length > 0);
  const partialAt = Date.now();
  const partial = await page.textContent('#answer');
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('Done'));
  assert.equal(await page.textContent('#answer'), content);
  assert.ok(partial.length < content.length, `partial text "${partial}" seen before the end`);
  const [upstream] = await received(tag);
  assert.ok(partialAt < upstream.finishedAt, 'content was visible before the upstream finished');
  assert.equal(upstream.body.stream, true);
  assert.ok(Number(await page.textContent('#m-chunks')) > 5);
  await page.close();
});

test('fake stream: heartbeats are shown, then the content', async () => {
  const tag = await scenario({ content: 'after the wait', delay_ms: 1200 });
  const { page } = await openPage({ model: 'fake-try', user: tag });
  await page.click('#send');
  await page.waitForFunction(() => Number(document.getElementById('m-heartbeats').textContent) >= 3);
  assert.equal(await page.textContent('#answer'), '', 'no content yet while heartbeats arrive');
  assert.match(await page.textContent('#status'), /Fake stream/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'try-page-heartbeats.png') });
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('Done'));
  assert.equal(await page.textContent('#answer'), 'after the wait');
  assert.equal((await received(tag))[0].body.stream, false);
  await page.screenshot({ path: path.join(ARTIFACTS, 'try-page-fake-stream.png') });
  await page.close();
});

test('an upstream error is shown in its OpenAI shape', async () => {
  const error = { error: { message: 'Rate limit reached for gpt-test', type: 'requests', param: null, code: 'rate_limit_exceeded' } };
  const tag = await scenario({ status: 429, error_body: JSON.stringify(error) });
  const { page } = await openPage({ user: tag, stream: false });
  await page.click('#send');
  await page.waitForSelector('#error-box:not([hidden])');
  assert.deepEqual(JSON.parse(await page.textContent('#error')), error);
  assert.match(await page.textContent('#status'), /Rate limit reached/);

  // Errors after a fake stream's 200 too.
  const tag2 = await scenario({ status: 500, delay_ms: 300 });
  await page.fill('#user', tag2);
  await page.fill('#model', 'fake-err');
  await page.check('input[name=mode][value=stream]');
  await page.click('#send');
  await page.waitForFunction(() => document.getElementById('error').textContent.includes('mock error 500'));
  await page.waitForFunction(() => !document.getElementById('send').disabled);
  assert.match(await page.textContent('#status'), /mock error 500/, 'the error stays the status after [DONE]');
  await page.screenshot({ path: path.join(ARTIFACTS, 'try-page-error.png') });
  await page.close();
});

test('stop aborts the request, and the gateway aborts the upstream', async () => {
  const tag = await scenario({ hang: true });
  const { page } = await openPage({ model: 'fake-stop', user: tag, base: STOP_GATEWAY });
  await page.click('#send');
  await page.waitForFunction(() => Number(document.getElementById('m-heartbeats').textContent) >= 1);
  await page.click('#stop');
  await page.waitForFunction(() => document.getElementById('status').textContent === 'Stopped.');
  const aborted = await waitFor(async () => (await received(tag))[0]?.aborted, { timeoutMs: 8000 });
  assert.ok(aborted, 'upstream request aborted');
  assert.equal(await page.isDisabled('#send'), false);
  await page.close();
});

test('models load from /v1/models into the picker; the key is stored only when asked', async () => {
  const { page } = await openPage({ user: 'x' });
  await page.click('#load-models');
  await page.waitForFunction(() => document.querySelectorAll('#models option').length > 0);
  const ids = await page.$$eval('#models option', (os) => os.map((o) => o.value));
  assert.ok(ids.includes('gemini-2.5-pro') && ids.includes('gpt-mock-1'), ids.join(','));
  assert.equal(await page.evaluate(() => localStorage.getItem('gateway-try-key')), null);
  await page.check('#remember');
  await page.fill('#user', await scenario());
  await page.check('input[name=mode][value=json]');
  await page.click('#send');
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('Done'));
  assert.equal(await page.evaluate(() => localStorage.getItem('gateway-try-key')), ACCESS_TOKEN);
  await page.evaluate(() => localStorage.clear());
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: path.join(ARTIFACTS, 'try-page-mobile.png'), fullPage: true });
  await page.close();
});

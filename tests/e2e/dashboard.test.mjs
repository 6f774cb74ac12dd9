// The dashboard in real headless Chromium: token, stats, list, search, detail, and logged
// content that tries to run script is shown as text and runs nothing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import OpenAI from 'openai';
import { GATEWAY, ACCESS_TOKEN, ADMIN_TOKEN, scenario, waitFor } from './helpers.mjs';
import { launch, ARTIFACTS } from './browser.mjs';

const browser = await launch();
after(() => browser.close());
const client = new OpenAI({ baseURL: `${GATEWAY}/v1`, apiKey: ACCESS_TOKEN, maxRetries: 0 });

const HOSTILE = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">';

test('dashboard shows calls and stats, search narrows, detail shows hostile content as text', async () => {
  const marker = `dash${Date.now()}`;
  // A call with a wrong access token is only counted (the card "Refused").
  const wrong = await fetch(`${GATEWAY}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer not-the-token' },
    body: JSON.stringify({ model: 'gpt-dashboard', messages: [{ role: 'user', content: 'hi' }] }),
  });
  assert.equal(wrong.status, 401);
  const tag = await scenario({ content: `answer with ${HOSTILE}` });
  await client.chat.completions.create({ model: 'gpt-dashboard', messages: [{ role: 'user', content: `${marker} ${HOSTILE} ${tag}` }] });
  for (let i = 0; i < 2; i++) {
    await client.chat.completions.create({ model: 'gpt-dashboard', messages: [{ role: 'user', content: `${await scenario()} filler ${i}` }] });
  }
  // Wait until the log has the call (writes happen after the response).
  const logged = await waitFor(async () => {
    const res = await fetch(`${GATEWAY}/api/requests?search=${marker}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    return (await res.json()).total === 1;
  }, { timeoutMs: 10_000 });
  assert.ok(logged);

  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const response = await page.goto(`${GATEWAY}/dashboard`);
  assert.match(response.headers()['content-security-policy'], /script-src 'self'/);
  await page.fill('#token', ADMIN_TOKEN);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#rows tr.entry');
  await page.waitForFunction(() => document.getElementById('s-total').textContent !== '–');
  const total = Number((await page.textContent('#s-total')).replace(/\D/g, ''));
  assert.ok(total >= 3, `stats show the calls (${total})`);
  const refused = Number((await page.textContent('#s-refused')).replace(/\D/g, ''));
  assert.ok(refused >= 1, `the refused call is counted (${refused})`);
  assert.match(await page.textContent('#by-model'), /gpt-dashboard/);
  assert.ok(await page.locator('#chart circle').count() >= 1, 'latency chart drawn');
  const before = await page.locator('#rows tr.entry').count();
  assert.ok(before >= 3);

  // Auto-refresh: a new call shows up without any click (filtered, since other tests
  // keep calling this gateway and would push it off the first page).
  const fresh = `fresh${Date.now()}`;
  await page.fill('#search', fresh);
  await page.click('#filters button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#rows tr.entry').length === 0);
  await client.chat.completions.create({ model: 'gpt-dashboard-refresh', messages: [{ role: 'user', content: `${fresh} ${await scenario()}` }] });
  await page.waitForFunction(() => document.getElementById('rows').textContent.includes('gpt-dashboard-refresh'), null, { timeout: 15_000 });
  // No refresh may be in flight when the page closes later.
  await page.uncheck('#auto');

  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-list.png'), fullPage: true });
  await page.fill('#search', marker);
  await page.click('#filters button[type=submit]');
  // The "fresh" search above also shows exactly one row: wait for the marker's own row.
  await page.waitForFunction(() => {
    const rows = document.querySelectorAll('#rows tr.entry');
    const text = document.getElementById('rows').textContent;
    return rows.length === 1 && text.includes('gpt-dashboard') && !text.includes('gpt-dashboard-refresh');
  });
  assert.match(await page.textContent('#pageinfo'), /· 1 request$/);

  await page.click('#rows tr.entry');
  await page.waitForSelector('#detail:not([hidden])');
  const detailText = await page.textContent('#detail');
  assert.ok(detailText.includes('<script>window.__xss = 1</script>'), 'hostile request body shown as text');
  assert.ok(detailText.includes('onerror'), 'hostile response shown as text');
  assert.match(detailText, /Bearer sha256:/);
  assert.ok(!detailText.includes(ACCESS_TOKEN));
  assert.equal(await page.locator('#detail img, #detail script').count(), 0, 'no element was created from logged content');
  await page.waitForTimeout(200);
  assert.equal(await page.evaluate(() => window.__xss), undefined, 'nothing ran');
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: false });

  await page.click('#close');
  assert.equal(await page.isHidden('#detail'), true);
  assert.deepEqual(pageErrors, []);
  await page.close();
});

test('the dashboard asks again for a token the API refuses', async () => {
  const page = await browser.newPage();
  await page.goto(`${GATEWAY}/dashboard`);
  await page.fill('#token', 'not-the-token');
  await page.click('#login-form button[type=submit]');
  await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0);
  assert.match(await page.textContent('#login-error'), /not valid/);
  assert.equal(await page.isVisible('#login'), true);
  await page.close();
});

test('without ADMIN_TOKEN a browser gets a page saying how to set it; API clients keep the JSON error', async () => {
  const { PUBLIC_GATEWAY } = await import('./helpers.mjs');
  const page = await browser.newPage();
  const response = await page.goto(`${PUBLIC_GATEWAY}/dashboard`);
  assert.equal(response.status(), 403);
  assert.match(response.headers()['content-type'], /text\/html/);
  assert.match(await page.textContent('#dashboard-disabled'), /ADMIN_TOKEN/);
  assert.match(await page.textContent('#dashboard-disabled'), /wrangler secret put ADMIN_TOKEN/);
  await page.close();
  const api = await fetch(`${PUBLIC_GATEWAY}/dashboard`);
  assert.equal(api.status, 403);
  assert.equal((await api.json()).error.code, 'dashboard_disabled');
});

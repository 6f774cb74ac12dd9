// Access keys in the dashboard, in real headless Chromium: a key made through the form is
// shown once (copy, then gone from the page and from the API), works with the official SDK
// for the models it allows, its usage shows up in its row, the request list filters by it,
// and disable / enable / delete in the table take effect on the next call.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { scenario, waitFor } from './helpers.mjs';
import { launch, ARTIFACTS } from './browser.mjs';

const KEYS = process.env.KEYS_GATEWAY_URL;
const KEYS_ADMIN_TOKEN = 'keys-admin-token';
const KEYS_MASTER_TOKEN = 'keys-master-token';
if (!KEYS) throw new Error('KEYS_GATEWAY_URL is not set: run the end-to-end tests through `npm test`');

const browser = await launch();
after(() => browser.close());

const admin = (p) => fetch(`${KEYS}${p}`, { headers: { authorization: `Bearer ${KEYS_ADMIN_TOKEN}` } });
const clientWith = (apiKey) => new OpenAI({ baseURL: `${KEYS}/v1`, apiKey, maxRetries: 0 });
const chat = async (client, model = 'gpt-keys-dash') =>
  client.chat.completions.create({ model, messages: [{ role: 'user', content: `keys dashboard ${await scenario()}` }] });
const digits = (text) => Number(String(text).replace(/\D/g, '') || 0);

async function assertRefused(client, status) {
  await assert.rejects(chat(client), (e) => {
    assert.equal(e.status, status, `refused with ${status}: ${e.message}`);
    return true;
  });
}

/** The secret is on no part of the page (text or markup). */
async function assertNotOnPage(page, secret, what) {
  const { text, html } = await page.evaluate(() => ({ text: document.body.innerText, html: document.documentElement.outerHTML }));
  assert.ok(!text.includes(secret), `${what}: key not in the page text`);
  assert.ok(!html.includes(secret), `${what}: key not in the page markup`);
}

/** GET /api/keys and GET /api/keys/{id} never carry the secret. */
async function assertNotInApi(id, secret) {
  const list = await admin('/api/keys');
  assert.equal(list.status, 200);
  const listText = await list.text();
  assert.ok(!listText.includes(secret), 'GET /api/keys does not contain the key');
  const one = await admin(`/api/keys/${encodeURIComponent(id)}`);
  assert.equal(one.status, 200);
  assert.ok(!(await one.text()).includes(secret), 'GET /api/keys/{id} does not contain the key');
  return JSON.parse(listText);
}

test('dashboard keys: create, copy once, usage, filter the request list, disable, enable, delete', async () => {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 }, permissions: ['clipboard-read', 'clipboard-write'] });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('dialog', (d) => d.accept());
  const name = `dash-key-${Date.now()}`;
  try {
    await page.goto(`${KEYS}/dashboard`);
    await page.fill('#token', KEYS_ADMIN_TOKEN);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#keys');
    assert.equal(await page.isVisible('#key-form'), true, 'the keys view is on the page after login');

    // Create through the form.
    await page.fill('#key-name', name);
    await page.fill('#key-models', 'gpt-*');
    await page.fill('#key-rpm', '100');
    await page.fill('#key-expires', '2099-01-01T12:00');
    await page.click('#key-form button[type=submit]');
    await page.waitForSelector('#new-key:not([hidden])');
    const secret = (await page.textContent('#new-key-value')).trim();
    // For the secret scan of the wrangler logs (tests/run.mjs).
    fs.appendFileSync(path.join(process.env.TEST_STATE_DIR, 'created-secrets.txt'), `${secret}\n`);
    assert.ok(secret.startsWith('sk-gw-'), `the new key is shown (${secret.slice(0, 8)}…)`);
    assert.match(await page.textContent('#new-key'), /not be shown again/);
    assert.equal(await page.textContent('#key-error'), '');
    assert.equal(await page.inputValue('#key-name'), '', 'the form is cleared');

    // Its row: id, hint, settings.
    const row = page.locator('#key-rows tr.key', { hasText: name });
    await row.waitFor();
    const id = await row.getAttribute('data-id');
    assert.match(id, /^key_/);
    const sel = `#key-rows tr.key[data-id="${id}"]`;
    const hint = (await page.textContent(`${sel} code.hint`)).trim();
    assert.notEqual(hint, secret);
    const [head, tail] = hint.split('…');
    assert.ok(head.startsWith('sk-gw-') && tail && secret.startsWith(head) && secret.endsWith(tail), `hint ${hint} matches the key`);
    assert.equal((await page.textContent(`${sel} td.models`)).trim(), 'gpt-*');
    assert.equal((await page.textContent(`${sel} td.origins`)).trim(), 'any');
    assert.match(await page.textContent(`${sel} td.limits`), /100 rpm/);
    assert.match(await page.textContent(`${sel} td.expires`), /2099/);
    assert.equal((await page.textContent(`${sel} td.status`)).trim(), 'enabled');
    assert.equal((await page.textContent(`${sel} button.toggle`)).trim(), 'Disable');
    assert.equal(await page.locator(`#key-filter option[value="${id}"]`).textContent(), name);
    const listed = (await assertNotInApi(id, secret)).data.find((k) => k.id === id);
    assert.deepEqual(listed.models, ['gpt-*']);
    assert.equal(listed.rpm, 100);
    // 2099-01-01T12:00 local time, sent as UTC: within a day of noon UTC.
    assert.ok(Math.abs(listed.expires_at - Date.UTC(2099, 0, 1, 12) / 1000) <= 86_400, `expires_at ${listed.expires_at}`);

    // Copy, then dismiss: the key leaves the page.
    await page.click('#copy-key');
    await page.waitForFunction(() => document.getElementById('copy-key').textContent === 'Copied');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret, 'the clipboard holds the key');
    await page.click('#dismiss-key');
    assert.equal(await page.isHidden('#new-key'), true);
    await assertNotOnPage(page, secret, 'after dismissing');

    // Calls with the key: two allowed, one for a model outside `gpt-*`.
    const keyClient = clientWith(secret);
    for (let i = 0; i < 2; i++) {
      const answer = await chat(keyClient);
      assert.ok(answer.choices[0].message.content, 'answered');
    }
    await assert.rejects(chat(keyClient, 'other-keys-dash'), (e) => {
      assert.equal(e.status, 403, e.message);
      assert.equal(e.code, 'model_not_allowed');
      return true;
    });
    // A master-token call: not the key's, so the key filter below leaves it out.
    await chat(clientWith(KEYS_MASTER_TOKEN));

    // Usage shows up in the key's row.
    const usage = await waitFor(async () => {
      await page.click('#keys-refresh');
      await page.waitForTimeout(150);
      const u = {
        calls: digits(await page.textContent(`${sel} td.calls`)),
        tokens: digits(await page.textContent(`${sel} td.tokens`)),
        errors: digits(await page.textContent(`${sel} td.errors`)),
      };
      return u.calls >= 3 && u.errors >= 1 && u.tokens > 0 ? u : null;
    }, { timeoutMs: 15_000, stepMs: 250 });
    assert.ok(usage, `usage counted: ${await page.textContent(sel)}`);
    assert.notEqual((await page.textContent(`${sel} td.last-used`)).trim(), '–');

    // The request list filtered by the key: its calls only, each showing its name.
    await page.selectOption('#key-filter', id);
    const shown = await waitFor(async () => {
      await page.click('#filters button[type=submit]');
      await page.waitForTimeout(150);
      const names = await page.$$eval('#rows tr.entry td.key-name', (cells) => cells.map((c) => c.textContent));
      return names.length >= 2 && names.every((n) => n === name) ? names : null;
    }, { timeoutMs: 15_000, stepMs: 250 });
    assert.ok(shown, `filtered rows show the key: ${await page.textContent('#rows')}`);
    await page.click('#rows tr.entry');
    await page.waitForSelector('#detail:not([hidden])');
    assert.ok((await page.textContent('#d-meta')).includes(name), 'the detail names the key');
    await page.click('#close');
    await page.screenshot({ path: path.join(ARTIFACTS, 'keys-dashboard.png'), fullPage: true });

    // Disable: refused; enable: works again.
    await page.click(`${sel} button.toggle`);
    await page.waitForFunction((s) => document.querySelector(`${s} td.status`)?.textContent === 'disabled'
      && document.querySelector(`${s} button.toggle`)?.textContent === 'Enable', sel);
    await assertRefused(keyClient, 401);
    await page.click(`${sel} button.toggle`);
    await page.waitForFunction((s) => document.querySelector(`${s} td.status`)?.textContent === 'enabled'
      && document.querySelector(`${s} button.toggle`)?.textContent === 'Disable', sel);
    assert.ok((await chat(keyClient)).choices[0].message.content, 'works again once enabled');
    await assertNotInApi(id, secret);

    // Delete (the confirm dialog is accepted): the row and the filter option go, the key is refused.
    await page.click(`${sel} button.delete`);
    await page.waitForSelector(sel, { state: 'detached' });
    assert.equal(await page.locator(`#key-filter option[value="${id}"]`).count(), 0);
    assert.equal(await page.inputValue('#key-filter'), '', 'the filter falls back to all keys');
    await assertRefused(keyClient, 401);
    assert.equal(await page.textContent('#key-error'), '');
    const remaining = await (await admin('/api/keys')).text();
    assert.ok(!remaining.includes(secret));
    assert.ok(!JSON.parse(remaining).data.some((k) => k.id === id), 'gone from GET /api/keys');

    await assertNotOnPage(page, secret, 'at the end');
    // No refresh may be in flight when the page closes.
    await page.uncheck('#auto');
    assert.deepEqual(pageErrors, []);
  } catch (e) {
    await page.screenshot({ path: path.join(ARTIFACTS, 'keys-dashboard-failure.png'), fullPage: true }).catch(() => {});
    throw e;
  } finally {
    await context.close();
  }
});

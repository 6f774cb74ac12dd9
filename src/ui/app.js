// The try-it page: sends Chat Completions to this gateway and shows the answer live.
// Everything from the network is shown with textContent, never as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
const KEY_STORE = 'gateway-try-key';
const state = { controller: null, lang: 'curl' };

function settings() {
  const body = { model: $('model').value.trim(), messages: [] };
  if ($('system').value.trim()) body.messages.push({ role: 'system', content: $('system').value });
  body.messages.push({ role: 'user', content: $('user').value });
  if ($('temperature').value !== '') body.temperature = Number($('temperature').value);
  if ($('max-tokens').value !== '') body.max_tokens = Number($('max-tokens').value);
  const stream = document.querySelector('input[name=mode]:checked').value === 'stream';
  if (stream) {
    body.stream = true;
    body.stream_options = { include_usage: true };
  }
  return { body, stream, fake: $('fake').value };
}

function headers(fake) {
  const h = { 'content-type': 'application/json' };
  const key = $('key').value.trim();
  if (key) h.authorization = `Bearer ${key}`;
  if (fake) h['x-fake-stream'] = fake;
  return h;
}

function setStatus(text, kind = '') {
  $('status').textContent = text;
  $('status').className = kind;
}

function showError(error) {
  $('error-box').hidden = false;
  $('error').textContent = JSON.stringify(error, null, 2);
  setStatus(error?.error?.message || 'Request failed', 'error');
}

function reset() {
  $('answer').textContent = '';
  $('reasoning').textContent = '';
  $('error-box').hidden = true;
  $('error').textContent = '';
  for (const [id, v] of [['m-heartbeats', '0'], ['m-headers', '–'], ['m-first-heartbeat', '–'], ['m-first-token', '–'], ['m-total', '–'], ['m-chunks', '0'], ['m-tokens', '–']]) $(id).textContent = v;
}

const ms = (t) => `${Math.round(t)} ms`;

function showUsage(usage) {
  if (usage) $('m-tokens').textContent = `${usage.prompt_tokens ?? '?'} / ${usage.completion_tokens ?? '?'}`;
}

async function send(event) {
  event.preventDefault();
  if (state.controller) return;
  const { body, stream, fake } = settings();
  if ($('remember').checked) localStorage.setItem(KEY_STORE, $('key').value.trim());
  else localStorage.removeItem(KEY_STORE);
  reset();
  const controller = new AbortController();
  state.controller = controller;
  $('send').disabled = true;
  $('stop').disabled = false;
  setStatus(stream ? 'Waiting for the stream…' : 'Waiting for the answer…');
  const started = performance.now();
  // Four moments, shown apart so fake streaming's effect is visible: the response headers,
  // the first heartbeat, the first content token, the end.
  const marks = {};
  const mark = (name, id) => {
    if (marks[name] === undefined) {
      marks[name] = performance.now() - started;
      $(id).textContent = ms(marks[name]);
    }
  };
  const markFirstByte = () => mark('token', 'm-first-token');
  const markHeartbeat = () => mark('heartbeat', 'm-first-heartbeat');
  try {
    const res = await fetch('/v1/chat/completions', {
      method: 'POST', headers: headers(fake), body: JSON.stringify(body), signal: controller.signal,
    });
    mark('headers', 'm-headers');
    const contentType = res.headers.get('content-type') || '';
    if (!res.ok || !contentType.includes('text/event-stream')) {
      const payload = await res.json().catch(() => ({ error: { message: `HTTP ${res.status}`, type: 'invalid_response' } }));
      markFirstByte();
      if (!res.ok || payload.error) {
        showError(payload);
      } else {
        const message = payload.choices?.[0]?.message ?? {};
        if (message.reasoning_content) $('reasoning').textContent = message.reasoning_content;
        $('answer').textContent = message.content ?? '';
        if (message.tool_calls) $('answer').textContent += `\n${JSON.stringify(message.tool_calls, null, 2)}`;
        showUsage(payload.usage);
        setStatus(`Done (${payload.choices?.[0]?.finish_reason ?? 'no finish reason'}).`, 'ok');
      }
    } else {
      setStatus(res.headers.get('x-gateway-fake-stream') ? 'Fake stream: waiting for the upstream…' : 'Streaming…');
      await readStream(res, markFirstByte, markHeartbeat);
    }
  } catch (error) {
    if (error.name === 'AbortError') setStatus('Stopped.', 'error');
    else showError({ error: { message: `Network error: ${error.message}`, type: 'network_error' } });
  } finally {
    $('m-total').textContent = ms(performance.now() - started);
    state.controller = null;
    $('send').disabled = false;
    $('stop').disabled = true;
  }
}

/** Reads an SSE body: comments are heartbeats, data events are chunks. */
async function readStream(res, markFirstByte, markHeartbeat) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let heartbeats = 0;
  let chunks = 0;
  const toolCalls = [];
  let finish = null;
  let failed = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
    let cut;
    while ((cut = buffer.indexOf('\n\n')) !== -1) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const lines = block.split('\n');
      if (lines.some((l) => l.startsWith(':'))) {
        markHeartbeat();
        $('m-heartbeats').textContent = String(++heartbeats);
      }
      const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      if (!data) continue;
      if (data === '[DONE]') {
        // After an error event the error stays the status.
        if (!failed) setStatus(`Done (${finish ?? 'no finish reason'}).`, finish ? 'ok' : '');
        continue;
      }
      let chunk;
      try { chunk = JSON.parse(data); } catch { continue; }
      if (chunk.error) { failed = true; showError(chunk); continue; }
      $('m-chunks').textContent = String(++chunks);
      const choice = chunk.choices?.[0];
      const delta = choice?.delta ?? {};
      // The first token: the first chunk that carries content, not the role chunk.
      if (delta.content || delta.reasoning_content || delta.tool_calls?.length) markFirstByte();
      if (delta.reasoning_content) $('reasoning').textContent += delta.reasoning_content;
      if (delta.content) $('answer').textContent += delta.content;
      for (const call of delta.tool_calls ?? []) {
        toolCalls[call.index] ??= { id: '', name: '', arguments: '' };
        if (call.id) toolCalls[call.index].id = call.id;
        toolCalls[call.index].name += call.function?.name ?? '';
        toolCalls[call.index].arguments += call.function?.arguments ?? '';
      }
      if (choice?.finish_reason) finish = choice.finish_reason;
      showUsage(chunk.usage);
      if (chunks === 1) setStatus('Streaming…');
    }
  }
  if (toolCalls.length) $('answer').textContent += `\n${JSON.stringify(toolCalls, null, 2)}`;
}

async function loadModels() {
  const list = $('models');
  try {
    const res = await fetch('/v1/models', { headers: headers('') });
    const body = await res.json();
    if (!res.ok) return showError(body);
    list.replaceChildren(...body.data.map((m) => Object.assign(document.createElement('option'), { value: m.id })));
    setStatus(`${body.data.length} models available.`, 'ok');
  } catch (error) {
    setStatus(`Could not load models: ${error.message}`, 'error');
  }
}

/** On load: when the built-in demo upstream is on (a fresh local clone), its model is
 * preselected, so the first try works without any key. Quiet when the list needs a key. */
async function preselectDemo() {
  try {
    const res = await fetch('/v1/models', { headers: headers('') });
    if (!res.ok) return;
    const body = await res.json();
    const ids = body.data.map((m) => m.id);
    $('models').replaceChildren(...ids.map((id) => Object.assign(document.createElement('option'), { value: id })));
    if (ids.includes('demo-chat') && $('model').value === 'gpt-4o-mini') {
      $('model').value = 'demo-chat';
      setStatus('Demo model selected: the built-in demo upstream answers without any key.', 'ok');
      renderSnippet();
    }
  } catch { /* the page works without the list */ }
}

function snippet() {
  const { body, fake } = settings();
  const url = `${location.origin}/v1/chat/completions`;
  const json = JSON.stringify(body, null, 2);
  const fakeHeader = fake ? fake : null;
  if (state.lang === 'curl') {
    return [`curl ${url} \\`, '  -H "Authorization: Bearer $GATEWAY_KEY" \\', '  -H "Content-Type: application/json" \\',
      ...(fakeHeader ? [`  -H "X-Fake-Stream: ${fakeHeader}" \\`] : []),
      ...(body.stream ? ['  -N \\'] : []), `  -d '${JSON.stringify(body).replace(/'/g, "'\\''")}'`].join('\n');
  }
  const { model, messages, stream, stream_options: _so, ...rest } = body;
  if (state.lang === 'python') {
    const args = [`    model=${JSON.stringify(model)},`, `    messages=${JSON.stringify(messages)},`,
      ...Object.entries(rest).map(([k, v]) => `    ${k}=${JSON.stringify(v)},`),
      ...(stream ? ['    stream=True,'] : []),
      ...(fakeHeader ? [`    extra_headers={"X-Fake-Stream": "${fakeHeader}"},`] : [])];
    const call = `client.chat.completions.create(\n${args.join('\n')}\n)`;
    return ['import os', 'from openai import OpenAI', '',
      `client = OpenAI(base_url="${location.origin}/v1", api_key=os.environ["GATEWAY_KEY"])`,
      stream ? `for chunk in ${call}:\n    if chunk.choices:\n        print(chunk.choices[0].delta.content or "", end="", flush=True)`
        : `completion = ${call}\nprint(completion.choices[0].message.content)`].join('\n');
  }
  const options = fakeHeader ? `, { headers: { 'X-Fake-Stream': '${fakeHeader}' } }` : '';
  return ["import OpenAI from 'openai';", '',
    `const client = new OpenAI({ baseURL: '${location.origin}/v1', apiKey: process.env.GATEWAY_KEY });`,
    stream ? `const stream = await client.chat.completions.create(${json}${options});\nfor await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? '');`
      : `const completion = await client.chat.completions.create(${json}${options});\nconsole.log(completion.choices[0].message.content);`].join('\n');
}

function renderSnippet() { $('snippet').textContent = snippet(); }

$('form').addEventListener('submit', send);
$('form').addEventListener('input', renderSnippet);
$('form').addEventListener('change', renderSnippet);
$('stop').addEventListener('click', () => state.controller?.abort());
$('load-models').addEventListener('click', loadModels);
$('copy').addEventListener('click', async () => {
  try { await navigator.clipboard.writeText($('snippet').textContent); $('copy').textContent = 'Copied'; } catch { $('copy').textContent = 'Copy failed'; }
  setTimeout(() => { $('copy').textContent = 'Copy'; }, 1500);
});
for (const tab of document.querySelectorAll('[data-lang]')) {
  tab.addEventListener('click', () => {
    state.lang = tab.dataset.lang;
    document.querySelectorAll('[data-lang]').forEach((t) => t.setAttribute('aria-selected', String(t === tab)));
    renderSnippet();
  });
}
$('origin-label').textContent = location.origin;
const saved = localStorage.getItem(KEY_STORE);
if (saved) { $('key').value = saved; $('remember').checked = true; }
renderSnippet();
preselectDemo();

// Bounded memory: a 20 MiB answer fake-streamed (and translated from Gemini) must not grow the
// local workerd past a fixed bound, and the stream must end with [DONE]. Before the lazy
// replay this aborted the isolate (Rust OOM) and grew workerd to several GB.
//
// The bound: MEMORY_BOUND_MIB of resident memory above the instance's resident memory right
// before each answer (after a warm-up call),
// summed over every workerd process of the instance. Measured on the test machine
// (wrangler 4.86): a plain passthrough of the same 20 MiB answer, which holds nothing in the
// Worker, already grows workerd by ~270 MiB (the runtime's and wrangler's own stream buffers
// and garbage not yet collected); the fake-streamed answer by 430–470 MiB (the upstream body,
// the parsed answer and the lazily made frames on top). The old replay grew it by several
// GB and crashed the isolate, far past this bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { ACCESS_TOKEN, scenario } from './helpers.mjs';

const MEMORY_GATEWAY = process.env.MEMORY_GATEWAY_URL;
const ROOT_PID = Number(process.env.MEMORY_GATEWAY_PID);
const ANSWER_BYTES = 20 * 1024 * 1024;
const MEMORY_BOUND_MIB = 600;

/** Every descendant pid of `root` (Linux /proc). */
function descendants(root) {
  const children = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(entry));
    } catch { /* gone */ }
  }
  const out = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift();
    for (const child of children.get(pid) || []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

function workerdPids() {
  return descendants(ROOT_PID).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('workerd');
    } catch { return false; }
  });
}

/** Resident memory of the instance's workerd processes, in MiB. */
function rssMib(pids) {
  let kib = 0;
  for (const pid of pids) {
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      kib += Number(status.match(/VmRSS:\s+(\d+)/)?.[1] || 0);
    } catch { /* gone */ }
  }
  return kib / 1024;
}

/** Streams one chat call to the end, sampling workerd's memory; returns what arrived. */
async function streamWhileSampling(model, tag, pids) {
  let peak = 0;
  const sampler = setInterval(() => { peak = Math.max(peak, rssMib(pids)); }, 50);
  try {
    const res = await fetch(`${MEMORY_GATEWAY}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ACCESS_TOKEN}` },
      body: JSON.stringify({ model, stream: true, messages: [{ role: 'user', content: `long answer ${tag}` }] }),
    });
    assert.equal(res.status, 200);
    const decoder = new TextDecoder();
    let buffer = '';
    let contentBytes = 0;
    let last = '';
    let errors = 0;
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\n\n')) !== -1) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (!block.startsWith('data:')) continue;
        const data = block.slice(5).trim();
        last = data;
        if (data === '[DONE]') continue;
        const parsed = JSON.parse(data);
        if (parsed.error) errors += 1;
        const content = parsed.choices?.[0]?.delta?.content;
        if (content) contentBytes += Buffer.byteLength(content);
      }
      peak = Math.max(peak, rssMib(pids));
    }
    return { peak, contentBytes, last, errors };
  } finally {
    clearInterval(sampler);
  }
}

test('a 20 MiB answer is fake-streamed and translated within a bounded workerd memory', { timeout: 120_000 }, async (t) => {
  if (!MEMORY_GATEWAY || !ROOT_PID) {
    assert.fail('MEMORY_GATEWAY_URL / MEMORY_GATEWAY_PID are not set: run through tests/run.mjs');
  }
  const pids = workerdPids();
  assert.ok(pids.length > 0, 'found the instance\'s workerd processes');
  // Warm up: the first call compiles the Worker and allocates its steady state.
  const warm = await scenario({ content: 'warm up' });
  await streamWhileSampling('gpt-memory', warm, pids);
  for (const model of ['gpt-memory', 'gemini-memory']) {
    // Measured before each answer: memory the runtime kept from the previous one (RSS does
    // not shrink after a collection) is reused, not grown again.
    const baseline = rssMib(pids);
    const tag = await scenario({ huge_content_bytes: ANSWER_BYTES });
    const { peak, contentBytes, last, errors } = await streamWhileSampling(model, tag, pids);
    t.diagnostic(`${model}: baseline ${baseline.toFixed(0)} MiB, peak ${peak.toFixed(0)} MiB`);
    assert.equal(errors, 0, `${model}: no error event`);
    assert.equal(last, '[DONE]', `${model}: the stream ends with [DONE]`);
    assert.equal(contentBytes, ANSWER_BYTES, `${model}: every byte of the answer arrived`);
    assert.ok(
      peak - baseline < MEMORY_BOUND_MIB,
      `${model}: workerd grew ${Math.round(peak - baseline)} MiB, bound ${MEMORY_BOUND_MIB} MiB`,
    );
  }
});

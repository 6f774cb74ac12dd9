// The real coding agents from npm against the gateway and the mock upstream: Claude Code
// (`claude -p`, Anthropic Messages) and Codex CLI (`codex exec`, OpenAI Responses), each
// completing a prompt with one tool round trip — the agent really runs the command — on an
// OpenAI-compatible upstream and on a Gemini 3 model (thought signatures returned).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GATEWAY, ACCESS_TOKEN, scenario, received } from './helpers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = (name) => path.join(root, 'node_modules', '.bin', name);
const MARKER = 'gateway-tool-ok';

/** Runs a command with a clean environment and a time limit; resolves {code, stdout, stderr}. */
function run(command, args, { env, cwd, timeoutMs = 120_000 }) {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd,
      env: { PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin`, TERM: 'dumb', SHELL: '/bin/bash', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

function scratch(name) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `gw-${name}-`));
}

/** The tool results and (Gemini) thought signatures the upstream saw on the second turn. */
function secondTurn(records) {
  assert.equal(records.length, 2, `two upstream calls: ${records.map((r) => r.path).join(', ')}`);
  return records[1].body;
}

async function claude(model, extra = {}) {
  const call = { id: 'toolu_gw_1', type: 'function', function: { name: 'Bash', arguments: JSON.stringify({ command: `echo ${MARKER}`, description: 'Print the marker' }) }, ...extra };
  const tag = await scenario({ tool_calls: [call], then_content: `The command printed ${MARKER}.` });
  const home = scratch('claude-home');
  const work = scratch('claude-work');
  const result = await run(bin('claude'), ['-p', `Run the marker command. ${tag}`, '--output-format', 'json', '--allowedTools', 'Bash'], {
    cwd: work,
    env: {
      HOME: home, ANTHROPIC_BASE_URL: GATEWAY, ANTHROPIC_AUTH_TOKEN: ACCESS_TOKEN, ANTHROPIC_MODEL: model,
      DISABLE_TELEMETRY: '1', CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1', DISABLE_ERROR_REPORTING: '1',
    },
  });
  assert.equal(result.code, 0, `claude exited ${result.code}: ${result.stderr.slice(-2000)} ${result.stdout.slice(-2000)}`);
  const out = JSON.parse(result.stdout);
  assert.equal(out.is_error, false, result.stdout);
  assert.equal(out.result, `The command printed ${MARKER}.`);
  assert.equal(out.num_turns, 2);
  return received(tag);
}

async function codex(model, extra = {}) {
  const call = { id: 'call_gw_1', type: 'function', function: { name: 'exec_command', arguments: JSON.stringify({ cmd: `echo ${MARKER}` }) }, ...extra };
  const tag = await scenario({ tool_calls: [call], then_content: `Codex saw ${MARKER}.` });
  const home = scratch('codex-home');
  const work = scratch('codex-work');
  fs.writeFileSync(path.join(home, 'config.toml'), [
    `model = "${model}"`, 'model_provider = "gw"', '',
    '[model_providers.gw]', 'name = "gw"', `base_url = "${GATEWAY}/v1"`, 'wire_api = "responses"', 'env_key = "GW_KEY"',
    'request_max_retries = 0', 'stream_max_retries = 0', '',
  ].join('\n'));
  const result = await run(bin('codex'), ['exec', '--skip-git-repo-check', '--dangerously-bypass-approvals-and-sandbox', `Run the marker command. ${tag}`], {
    cwd: work, env: { HOME: home, CODEX_HOME: home, GW_KEY: ACCESS_TOKEN },
  });
  assert.equal(result.code, 0, `codex exited ${result.code}: ${result.stderr.slice(-3000)}`);
  assert.match(result.stdout, new RegExp(`Codex saw ${MARKER}\\.`));
  return received(tag);
}

test('Claude Code completes a tool round trip through /v1/messages on an OpenAI-compatible upstream', { timeout: 180_000 }, async () => {
  const records = await claude('gpt-claude-agent');
  assert.match(records[0].path, /\/chat\/completions$/);
  const second = secondTurn(records);
  const tool = second.messages.find((m) => m.role === 'tool');
  assert.equal(tool.tool_call_id, 'toolu_gw_1');
  assert.match(tool.content, new RegExp(MARKER), 'Claude Code ran the command and sent its output back');
  const assistant = second.messages.find((m) => m.tool_calls);
  assert.equal(assistant.tool_calls[0].function.name, 'Bash');
});

test('Claude Code on a Gemini 3 model: the thought signature comes back with the call', { timeout: 180_000 }, async () => {
  const records = await claude('gemini-3-pro-preview', { thought_signature: 'sig-claude-code-g3==' });
  assert.match(records[0].path, /gemini-3-pro-preview:streamGenerateContent/);
  const second = secondTurn(records);
  const model = second.contents.find((c) => c.role === 'model' && c.parts.some((p) => p.functionCall));
  const callPart = model.parts.find((p) => p.functionCall);
  assert.equal(callPart.functionCall.name, 'Bash');
  assert.equal(callPart.thoughtSignature, 'sig-claude-code-g3==');
  const result = second.contents.flatMap((c) => c.parts).find((p) => p.functionResponse);
  assert.match(JSON.stringify(result.functionResponse.response), new RegExp(MARKER));
});

test('Codex CLI completes a tool round trip through /v1/responses on an OpenAI-compatible upstream', { timeout: 180_000 }, async () => {
  const records = await codex('gpt-codex-agent');
  assert.match(records[0].path, /\/chat\/completions$/);
  assert.equal(records[0].body.stream, true);
  const second = secondTurn(records);
  const tool = second.messages.find((m) => m.role === 'tool');
  assert.equal(tool.tool_call_id, 'call_gw_1');
  assert.match(tool.content, new RegExp(MARKER), 'Codex ran the command and sent its output back');
});

test('Codex CLI on a Gemini 3 model: the signature survives through the reasoning item', { timeout: 180_000 }, async () => {
  const records = await codex('gemini-3-pro-preview', { thought_signature: 'sig-codex-g3==' });
  const second = secondTurn(records);
  const callPart = second.contents.flatMap((c) => c.parts).find((p) => p.functionCall);
  assert.equal(callPart.functionCall.name, 'exec_command');
  assert.equal(callPart.thoughtSignature, 'sig-codex-g3==');
  const result = second.contents.flatMap((c) => c.parts).find((p) => p.functionResponse);
  assert.match(JSON.stringify(result.functionResponse.response), new RegExp(MARKER));
});

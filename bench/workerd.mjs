// What the benchmarks share: bare workerd from tests/workerd.mjs, and the fast mock upstream
// (bench/mock.mjs) in its own process.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { adopt, root } from '../tests/workerd.mjs';

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

// What the benchmarks share: bare workerd from tests/workerd.mjs, and the fast mock upstream
// (bench/mock.mjs) in its own process.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { adopt, root } from '../tests/workerd.mjs';

export * from '../tests/workerd.mjs';

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

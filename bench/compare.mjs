// Two builds of the gateway side by side on bare workerd, loaded in turn (so drift and noise
// hit both alike): median CPU µs per call of each and their ratio. For judging one change:
//   cp -r build /tmp/before; (change, npm run build); node bench/compare.mjs /tmp/before build [json|stream|fake|gemini|log] [rounds]
// `log`: non-streaming calls with the request log on, on Miniflare with D1 (bare workerd has no D1).
// A JS Worker's file (`*.js`, given UPSTREAM and UPSTREAM_KEY as bench/baseline.js is) can stand
// for either build: `node bench/compare.mjs bench/baseline.js build json` weighs the gateway
// against it with the same alternation.
import fs from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import { cpuMicros, gatewayBindings, root, scenarioBody, SERVER_KEY, startMiniflare, startMock, startWorkerd, stopAll } from './workerd.mjs';
const [dirA, dirB] = [path.resolve(process.argv[2]), path.resolve(process.argv[3])];
const scenario = process.argv[4] || 'json';
const rounds = Number(process.argv[5] || 5);
const logged = scenario === 'log';
const body = scenarioBody(logged ? 'json' : scenario);
const started = [];
try {
  const mock = await startMock();
  const bind = gatewayBindings(mock);
  const mods = (d) => [['index.js', 'esModule', path.join(d, 'index.js')], ['index_bg.wasm', 'wasm', path.join(d, 'index_bg.wasm')]];
  const start = (name, dir) => {
    if (dir.endsWith('.js')) {
      // glue.js beside it (bench/baseline-glue.js runs the gateway's own JS): the one in the
      // JS Worker's folder if there is one (to weigh a change to glue.js), else src/runtime's.
      const besides = path.join(path.dirname(dir), 'glue.js');
      const glue = ['glue.js', 'esModule', fs.existsSync(besides) ? besides : path.join(root, 'src', 'runtime', 'glue.js')];
      return startWorkerd(name, [[path.basename(dir), 'esModule', dir], glue], { UPSTREAM: mock, UPSTREAM_KEY: SERVER_KEY },
        { flags: ['enable_request_signal'] });
    }
    return logged
      ? startMiniflare(name, { ...bind, LOG_REQUESTS: 'true', ADMIN_TOKEN: 'bench-admin' }, { build: dir })
      : startWorkerd(name, mods(dir), bind, { flags: ['enable_request_signal'] });
  };
  const a = await start('a', dirA);
  started.push(a);
  const b = await start('b', dirB);
  started.push(b);
  const run = async (t, d) => {
    const before = cpuMicros(t.pid);
    const r = await autocannon({ url: `${t.url}/v1/chat/completions`, method: 'POST', connections: 20, duration: d,
      headers: { 'content-type': 'application/json', authorization: 'Bearer x' }, body: JSON.stringify(body) });
    return (cpuMicros(t.pid) - before) / r['2xx'];
  };
  await run(a, 2); await run(b, 2);
  const ra = [], rb = [];
  for (let i = 0; i < rounds; i++) { ra.push(await run(a, 3)); rb.push(await run(b, 3)); }
  const med = (x) => x.sort((p, q) => p - q)[Math.floor(x.length / 2)];
  console.log(`${scenario}: A ${med(ra).toFixed(0)} µs  B ${med(rb).toFixed(0)} µs  B/A ${(med(rb) / med(ra)).toFixed(3)}   A=${ra.map((x) => x.toFixed(0))} B=${rb.map((x) => x.toFixed(0))}`);
} finally {
  for (const t of started) await t.dispose?.();
  stopAll();
}

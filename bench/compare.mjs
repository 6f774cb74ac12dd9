// Two builds of the gateway side by side on bare workerd, loaded in turn (so drift and noise
// hit both alike): median CPU µs per call of each and their ratio. For judging one change:
//   cp -r build /tmp/before; (change, npm run build); node bench/compare.mjs /tmp/before build [json|stream|fake|gemini] [rounds]
import path from 'node:path';
import autocannon from 'autocannon';
import { cpuMicros, gatewayBindings, scenarioBody, startMock, startWorkerd, stopAll } from './workerd.mjs';
const [dirA, dirB] = [path.resolve(process.argv[2]), path.resolve(process.argv[3])];
const scenario = process.argv[4] || 'json';
const rounds = Number(process.argv[5] || 5);
const body = scenarioBody(scenario);
try {
  const mock = await startMock();
  const bind = gatewayBindings(mock);
  const mods = (d) => [['index.js', 'esModule', path.join(d, 'index.js')], ['index_bg.wasm', 'wasm', path.join(d, 'index_bg.wasm')]];
  const a = await startWorkerd('a', mods(dirA), bind, { flags: ['enable_request_signal'] });
  const b = await startWorkerd('b', mods(dirB), bind, { flags: ['enable_request_signal'] });
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
} finally { stopAll(); }

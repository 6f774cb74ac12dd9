// Prints one short banner once the local gateway answers: where the try-it page, the
// dashboard and the API are, how to sign in, and each upstream with whether it has a key —
// never a key. Usage: node scripts/banner.mjs <base URL> <.dev.vars path>
import fs from 'node:fs';

const [base, devVars] = process.argv.slice(2);
const deadline = Date.now() + 180_000;
let status = null;
while (Date.now() < deadline) {
  try {
    const res = await fetch(`${base}/api/status`);
    if (res.ok) { status = await res.json(); break; }
  } catch { /* not up yet */ }
  await new Promise((r) => setTimeout(r, 500));
}
if (!status) {
  console.error(`start: the gateway did not answer at ${base} within 3 minutes`);
  process.exit(1);
}
const hasAdminToken = fs.existsSync(devVars) && /^ADMIN_TOKEN=/m.test(fs.readFileSync(devVars, 'utf8'));
const lines = [
  '',
  `  edge-llm-gateway ${status.version} is ready`,
  `    try-it page   ${base}/`,
  `    dashboard     ${base}/dashboard${hasAdminToken ? '   (sign in with ADMIN_TOKEN from .dev.vars)' : ''}`,
  `    API base      ${base}/v1   (OpenAI, /v1/messages, /v1/responses)`,
  '    upstreams',
  ...(status.upstreams ?? []).map((u) => {
    const key = u.kind === 'demo' ? 'built in, needs no key' : u.keys > 0 ? `${u.keys} key${u.keys > 1 ? 's' : ''}` : 'no key (clients bring their own)';
    return `      ${u.name.padEnd(12)} ${String(u.kind).padEnd(10)} ${key}`;
  }),
  '',
];
console.log(lines.join('\n'));

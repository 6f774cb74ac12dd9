// Bare workerd (the binary wrangler runs, from the `workerd` npm package) serving one Worker
// per process from a generated config, without `wrangler dev`'s proxy in front: for the
// benchmarks (one process each, so each one's CPU time is its own) and for tests that need
// the runtime to see the client's connection itself. Also readings of a process's CPU time
// and memory.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import workerdPackage from 'workerd';
import { freePort } from './ports.mjs';

/** The workerd binary (the package is CommonJS: its default export). */
export const workerdBinary = workerdPackage.default ?? workerdPackage;
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const COMPATIBILITY_DATE = '2026-04-01';
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'gateway-workerd-'));
const children = [];

/** The built gateway as workerd modules. */
export const GATEWAY_MODULES = [
  ['index.js', 'esModule', path.join(root, 'build', 'index.js')],
  ['index_bg.wasm', 'wasm', path.join(root, 'build', 'index_bg.wasm')],
];

/** Numeric `--name value` command-line argument. */
export function arg(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}

/** CPU time (user + system) of a process so far, in microseconds. */
export function cpuMicros(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS;
}

/** Resident memory now and at its peak, in MiB. */
export function memory(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}

async function waitUntilUp(url, child) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${url}: the server exited (${child.exitCode})`);
    try {
      await (await fetch(url)).arrayBuffer();
      return;
    } catch { /* starting */ }
    if (Date.now() > deadline) throw new Error(`${url} did not come up`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const capnpString = (s) => JSON.stringify(s);

/**
 * Starts one workerd serving one Worker; `modules` are [name, kind, file], `bindings` text
 * vars. With `inspectorPort`, workerd serves the V8 inspector there (bench/profile.mjs).
 */
export async function startWorkerd(name, modules, bindings, { flags = [], inspectorPort, d1 } = {}) {
  const port = await freePort();
  // `d1`: "host:port" of a server speaking D1's binding protocol (bench/d1-remote.js): the
  // `DB` binding then reaches a database in another process, as a deployed D1 is.
  const config = `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "internet", network = (allow = ["public", "private", "local"])),
${d1 ? `    (name = "d1", external = (address = ${capnpString(d1)}, http = ())),` : ''}
  ],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const worker :Workerd.Worker = (
  modules = [
${modules.map(([module, kind]) => `    (name = ${capnpString(module)}, ${kind} = embed ${capnpString(`${name}/${module}`)}),`).join('\n')}
  ],
  compatibilityDate = ${capnpString(COMPATIBILITY_DATE)},
  compatibilityFlags = [${flags.map(capnpString).join(', ')}],
  bindings = [
${Object.entries(bindings).map(([k, v]) => `    (name = ${capnpString(k)}, text = ${capnpString(v)}),`).join('\n')}
${d1 ? '    (name = "DB", wrapped = (moduleName = "cloudflare-internal:d1-api", innerBindings = [(name = "fetcher", service = "d1")])),' : ''}
  ],
  globalOutbound = "internet",
);
`;
  // `embed` paths are relative to the config file.
  // Recursive: a stopAll before this one removed the scratch directory itself.
  fs.mkdirSync(path.join(scratch, name), { recursive: true });
  for (const [module, , source] of modules) fs.copyFileSync(source, path.join(scratch, name, module));
  const file = path.join(scratch, `${name}.capnp`);
  fs.writeFileSync(file, config);
  // Its log (clients closing keep-alive sockets at the end of a run are logged as errors).
  const log = fs.openSync(path.join(scratch, `${name}.log`), 'w');
  const args = ['serve', file, ...(inspectorPort ? [`--inspector-addr=127.0.0.1:${inspectorPort}`] : [])];
  const child = adopt(spawn(workerdBinary, args, { stdio: ['ignore', log, log] }));
  const url = `http://127.0.0.1:${port}`;
  await waitUntilUp(`${url}/health`, child);
  return { name, url, pid: child.pid };
}

/** Keeps `child` to be stopped by stopAll. */
export function adopt(child) {
  children.push(child);
  return child;
}

/** Stops every process started here and removes the scratch directory. */
export function stopAll() {
  for (const child of children.splice(0)) child.kill('SIGTERM');
  fs.rmSync(scratch, { recursive: true, force: true });
}

// `npm run bench` (part): how long `npm start` of an unchanged tree takes to be ready (issue 15: ≤ 2 s to
// /readyz 200), with the embedded Postgres and the built-in simulator (no DATABASE_URL, no XYRA_API_URL).
//
//   node dist/bench/startup.js [--runs 10] [--port 3990] [--dir DIR ...]
//
// Each run spawns `npm start` in DIR (default this package; the tree is built once first, so no run builds),
// polls GET /readyz every 20 ms from the spawn until it answers 200, then stops the process group with SIGTERM
// and waits for its exit (the embedded Postgres stops with it). Several --dir (e.g. a checkout of the base
// branch) run in turn, A B A B …, so a drift of the machine's speed hits each alike. Printed per tree: min,
// median and max of the time to ready and of its phases (from the service's own log lines: the embedded
// Postgres up, DBOS launched), and the load average before and after. Figures are printed, never asserted.
// The Postgres phases are when the service saw pg_ctl return: since main.ts loads its modules meanwhile, that
// can be after the server was up (an upper bound, not the server's own start time).
import { spawn, spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { PACKAGE_ROOT } from '../src/version.js';

const POLL_MS = 20;
const TIMEOUT_MS = 120_000;

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    port: { type: 'string', default: '3990' },
    dir: { type: 'string', multiple: true },
  },
});
const runs = Number(values.runs);
const port = Number(values.port);
const dirs = (values.dir ?? [PACKAGE_ROOT]).map((d) => path.resolve(d));

interface Phases {
  ready: number;
  /** The embedded Postgres's own start (its log line's `ms`). */
  postgres?: number;
  /** From the spawn to the log line saying the embedded Postgres is up. */
  postgresUp?: number;
  /** From the spawn to DBOS's "DBOS launched!". */
  dbosLaunched?: number;
}

async function answersReady(): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false; // not listening yet
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false; // ESRCH: no process left in the group
  }
}

async function startOnce(dir: string): Promise<Phases> {
  const spawnedAt = Date.now();
  const t0 = performance.now();
  const child = spawn('npm', ['start'], {
    cwd: dir,
    env: { ...process.env, PORT: String(port), LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group: npm, the service and anything they started stop together
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  let gone = false;
  void exited.then(() => (gone = true));

  let ready: number | undefined;
  while (ready === undefined) {
    if (gone) throw new Error(`npm start in ${dir} exited before it was ready:\n${output}`);
    if (performance.now() - t0 > TIMEOUT_MS) throw new Error(`npm start in ${dir} not ready in ${TIMEOUT_MS} ms`);
    if (await answersReady()) ready = performance.now() - t0;
    else await new Promise((r) => setTimeout(r, POLL_MS));
  }
  process.kill(-child.pid!, 'SIGTERM');
  await exited;
  // npm exits on SIGTERM at once; the service drains and stops its Postgres after it, holding the port till then.
  while (groupAlive(child.pid!)) await new Promise((r) => setTimeout(r, POLL_MS));

  const phases: Phases = { ready };
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    const log = JSON.parse(line) as { msg?: string; time?: string; ms?: number };
    const at = log.time ? Date.parse(log.time) - spawnedAt : undefined;
    if (log.msg === 'DATABASE_URL not set: started the embedded Postgres') {
      phases.postgres = log.ms;
      phases.postgresUp = at;
    } else if (log.msg === 'DBOS launched!') phases.dbosLaunched = at;
  }
  return phases;
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const f = (x: number | undefined) => (x === undefined ? '-' : (x / 1000).toFixed(3));
  return `min ${f(s[0])}  median ${f(s[Math.floor((s.length - 1) / 2)])}  max ${f(s[s.length - 1])}`;
};

for (const dir of dirs) {
  const build = spawnSync(process.execPath, ['scripts/build-if-changed.mjs'], { cwd: dir, stdio: 'inherit' });
  if (build.status !== 0) throw new Error(`the build of ${dir} failed`);
  await startOnce(dir); // warm-up: a first start may initialise the cluster, and fills the file cache
}
const loadBefore = os.loadavg()[0]!;
const results = new Map<string, Phases[]>(dirs.map((d) => [d, []]));
for (let i = 0; i < runs; i++) for (const dir of dirs) results.get(dir)!.push(await startOnce(dir));
const loadAfter = os.loadavg()[0]!;

console.log(
  `npm start of an unchanged tree to /readyz 200, ${runs} runs each (seconds; load ${loadBefore.toFixed(2)} → ${loadAfter.toFixed(2)}, ${os.cpus().length} cores)`,
);
for (const [dir, phases] of results) {
  console.log(dir);
  console.log(`  ready            ${stats(phases.map((p) => p.ready))}`);
  const phase = (name: string, pick: (p: Phases) => number | undefined) => {
    const xs = phases.map(pick).filter((x): x is number => x !== undefined);
    if (xs.length > 0) console.log(`  ${name.padEnd(16)} ${stats(xs)}`);
  };
  phase('postgres start', (p) => p.postgres);
  phase('postgres up', (p) => p.postgresUp);
  phase('DBOS launched', (p) => p.dbosLaunched);
}

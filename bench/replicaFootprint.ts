// A replica as the container runs it (`dbos start` → the service, with DATABASE_URL and the compose
// environment): idle RSS of the whole process tree, and how long SIGTERM takes to end it (and its exit code).
// Prints figures; asserts nothing. Needs a Postgres server (BENCH_DATABASE_URL, default the local one).
//   npm run build && node dist/bench/replicaFootprint.js [--idle-s 20] [--runs 3]
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { withDatabase } from '../src/runtime/databases.js';
import { PACKAGE_ROOT } from '../src/version.js';

const serverUrl = process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** `root` and its descendants, with their RSS in kB (from /proc). */
function tree(root: number): Array<{ pid: number; rssKb: number; cmd: string }> {
  const procs = fs
    .readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .flatMap((n) => {
      try {
        const stat = fs.readFileSync(`/proc/${n}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        const rssKb = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${n}/status`, 'utf8'))?.[1] ?? 0);
        const cmd = fs.readFileSync(`/proc/${n}/cmdline`, 'utf8').split('\0').join(' ').trim();
        return [{ pid: Number(n), ppid, rssKb, cmd }];
      } catch {
        return [];
      }
    });
  const found = procs.filter((p) => p.pid === root);
  for (let i = 0; i < found.length; i++) found.push(...procs.filter((p) => p.ppid === found[i]!.pid));
  return found;
}

async function once(idleMs: number): Promise<{ rssMb: number; stopMs: number; code: number | null; parts: string[] }> {
  const db = `bench_replica_${randomBytes(4).toString('hex')}`;
  await admin(`create database ${db}`);
  const appUrl = withDatabase(serverUrl, db);
  try {
    const child = spawn(path.join(PACKAGE_ROOT, 'node_modules/.bin/dbos'), ['start'], {
      cwd: PACKAGE_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        NODE_ENV: 'production',
        DATABASE_URL: appUrl,
        XYRA_API_URL: 'http://127.0.0.1:9/', // never called: the cron below does not fire while we measure
        BATCH_CRON: '0 0 1 1 *',
        PORT: '0',
        EXECUTOR_ID: db,
        OTEL_METRICS_EXPORTER: 'otlp', // as compose runs it (loads the exporter)
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
        SHUTDOWN_TIMEOUT_MS: '20000',
      },
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 60_000;
    while (!out.includes('xyra-scheduler ready')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`not ready:\n${out.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, idleMs));
    const procs = tree(child.pid!);
    const t0 = performance.now();
    child.kill('SIGTERM');
    const code = await exited;
    const stopMs = performance.now() - t0;
    return {
      rssMb: procs.reduce((s, p) => s + p.rssKb, 0) / 1024,
      stopMs,
      code,
      parts: procs.map((p) => `${(p.rssKb / 1024).toFixed(0)} MB ${p.cmd.slice(0, 60)}`),
    };
  } finally {
    await admin(`drop database if exists ${db}`);
    await admin(`drop database if exists ${db}_dbos_sys`);
  }
}

const { values } = parseArgs({
  options: { 'idle-s': { type: 'string', default: '20' }, runs: { type: 'string', default: '3' } },
});
const idleMs = Number(values['idle-s']) * 1000;
console.log(
  `replica footprint: dbos start → service, DATABASE_URL on ${new URL(serverUrl).host}, idle ${idleMs / 1000} s`,
);
for (let i = 0; i < Number(values.runs); i++) {
  const r = await once(idleMs);
  console.log(
    `  run ${i + 1}: idle RSS of the tree ${r.rssMb.toFixed(0)} MB; SIGTERM → exit ${r.code} in ${r.stopMs.toFixed(0)} ms`,
  );
  for (const part of r.parts) console.log(`      ${part}`);
}
console.log('  (in the image, tini as PID 1 adds about 1 MB)');

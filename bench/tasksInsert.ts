// The chunk's tasks write on its own: the same rows through the JSON parameter (`jsonb_to_recordset`, what chunks
// that carry their records still use) and through COPY (chunks by reference), alternating, on one connection.
//
//   node dist/bench/tasksInsert.js [--rows 1000] [--chunks 30] [--rounds 2]
//
// Prints, per form, the wall time and the Postgres backend's CPU (from /proc, so the server must be local) per
// chunk transaction. Figures only, nothing is asserted. Scratch database on BENCH_DATABASE_URL (default local).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { generateRecord, seededRandom } from '../src/pipeline/generator.js';
import { tasksJson, writeChunkIn, type TasksToWrite, type TaskRow } from '../src/pipeline/records.js';
import { uppercaseDeep, type JsonValue } from '../src/pipeline/transform.js';
import { createKnex, migrateLatest } from '../src/runtime/migrations.js';
import { withDatabase } from '../src/runtime/databases.js';

const server = process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

function cpuMs(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // clock ticks (USER_HZ 100) → ms
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rows: { type: 'string', default: '1000' },
      chunks: { type: 'string', default: '30' },
      rounds: { type: 'string', default: '2' },
    },
  });
  const rows = Number(values.rows);
  const chunks = Number(values.chunks);
  const db = `xyra_bench_tasks_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await admin.query(`create database ${db}`);
  const knex = createKnex(withDatabase(server, db), 1);
  try {
    await migrateLatest(knex);
    const rand = seededRandom(42);
    let next = 0;
    const chunkRows = (): TaskRow[] =>
      Array.from({ length: rows }, () => {
        next += 1;
        const record = JSON.parse(JSON.stringify(generateRecord(next, rand))) as JsonValue;
        return { task_key: `bench:${next}`, title: null, data: uppercaseDeep(record), position: next };
      });
    const pid = (await knex.raw<{ rows: Array<{ pid: number }> }>('select pg_backend_pid() as pid')).rows[0]?.pid ?? 0;
    const forms: Array<[string, (r: TaskRow[]) => TasksToWrite]> = [
      ['json parameter', (r) => ({ json: tasksJson(r), count: r.length })],
      ['copy', (r) => ({ rows: r })],
    ];
    console.log(`uptime: ${fs.readFileSync('/proc/loadavg', 'utf8').trim()}`);
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const [name, form] of forms) {
        let wall = 0;
        const cpuBefore = cpuMs(pid);
        for (let c = 0; c < chunks; c++) {
          const tasks = form(chunkRows());
          const started = performance.now();
          await knex.transaction((trx) =>
            writeChunkIn(trx, {
              ingestion: 'bench',
              chunk: next,
              records: rows,
              tasks,
              errors: [],
              originalRecord: () => null,
              errorKeyOf: (p) => `bench@x#${p}`,
            }),
          );
          wall += performance.now() - started;
        }
        const cpu = cpuMs(pid) - cpuBefore;
        console.log(
          `${name.padEnd(15)} ${rows} rows: wall ${(wall / chunks).toFixed(1)} ms, Postgres CPU ${(cpu / chunks).toFixed(1)} ms per chunk`,
        );
      }
    }
    console.log(`uptime: ${fs.readFileSync('/proc/loadavg', 'utf8').trim()}`);
  } finally {
    await knex.destroy();
    await admin.query(`drop database if exists ${db} with (force)`);
    await admin.end();
  }
}

await main();

// The pipeline's promise, checked on random data: every record of a dataset ends as exactly one outcome
// (a tasks row holding its data, or an errors row of the right kind), and that outcome is a function of the
// file alone. Seeded datasets mix numeric and string ids, 5 and "5", duplicates, id-less objects, non-objects,
// broken NDJSON lines, NUL characters, null and wrong-typed titles and deep nesting. Run A ingests them with a
// small chunk size and concurrency 3 on a real service, SIGKILLs it at a random moment, restarts it and
// re-ingests; run B ingests them on a fresh database with another chunk size, concurrency and no kill. Both
// must equal the model below, record for record. A failure prints its seed: set INVARIANT_SEED to replay it.
import fs from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { seededRandom } from '../src/pipeline/generator.js';
import { enqueueDataset, waitForDataset, type Accounting } from '../src/pipeline/ingest.js';
import { withDbosClient } from '../src/runtime/dbosClient.js';
import { createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import type { ServiceProcess } from './support/serviceProcess.js';
import { startPipelineService, tempDir } from './pipelineSupport.js';

const SEED = Number(process.env.INVARIANT_SEED ?? 20261123);
const CASES = 3;
const FAIL_ID = '7';

type Outcome = { kind: 'task'; title: string | null; data: unknown } | { kind: string };

let dir: string;
const running: ServiceProcess[] = [];
beforeAll(async () => {
  dir = await tempDir('invariant');
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop('SIGKILL')));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

function deep(depth: number, leaf: unknown): unknown {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 === 0 ? { level: i, inner: v, label: `l${i}` } : [v, 'x'];
  return v;
}

/** One record's text; `ndjson` allows texts that are not JSON at all. */
function randomRecordText(rand: () => number, ndjson: boolean): string {
  const r = rand();
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const numeric = 1 + Math.floor(rand() * 60);
  const id = rand() < 0.3 ? String(numeric) : numeric; // 5 and "5" are the same id
  if (r < 0.45)
    return JSON.stringify({
      id,
      title: `task ${numeric} ${pick(['alpha', 'Beta', 'ça'])}`,
      tags: [pick(['a', 'b'])],
      n: numeric,
    });
  if (r < 0.55) return JSON.stringify({ id: `s-${Math.floor(rand() * 20)}`, title: null, note: 'null title' });
  if (r < 0.65) return JSON.stringify({ title: `no id ${Math.floor(rand() * 5)}`, body: 'same text twice is fine' });
  if (r < 0.7) return JSON.stringify(pick<unknown>([42, 'a string', [1, 2], null, true]));
  if (r < 0.75 && ndjson) return pick(['{broken', '{"id": 1,', 'nope']);
  if (r < 0.8) return JSON.stringify({ id: 1000 + Math.floor(rand() * 5), title: 'has a NUL: \u0000 here' });
  if (r < 0.85) return JSON.stringify({ id: 2000 + Math.floor(rand() * 30), title: 7 });
  if (r < 0.9) return JSON.stringify({ id: { not: 'scalar' }, title: 'bad id' });
  return JSON.stringify({ id: `deep-${Math.floor(rand() * 10)}`, title: 'deep', tree: deep(30, 'leaf') });
}

interface Case {
  name: string;
  file: string;
  texts: string[];
  ndjson: boolean;
}

async function writeCase(i: number, rand: () => number): Promise<Case> {
  const ndjson = i % 3 !== 2;
  const count = 200 + Math.floor(rand() * 150);
  // The first record must parse: a file whose first element is not JSON is rejected as a whole (not this test's subject).
  const texts = [
    JSON.stringify({ id: 'first', title: 'first' }),
    ...Array.from({ length: count }, () => randomRecordText(rand, ndjson)),
  ];
  const name = `inv${i}.s${SEED}`;
  const file = path.join(dir, `${name}.${ndjson ? 'ndjson' : 'json'}`);
  await fs.writeFile(file, ndjson ? `${texts.join('\n')}\n` : `[\n${texts.join(',\n')}\n]\n`);
  return { name, file, texts, ndjson };
}

function upperDeep(v: unknown): unknown {
  if (typeof v === 'string') return v.toUpperCase();
  if (Array.isArray(v)) return v.map(upperDeep);
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, upperDeep(x)]));
  return v;
}

function hasNul(v: unknown): boolean {
  if (typeof v === 'string') return v.includes('\u0000');
  if (Array.isArray(v)) return v.some(hasNul);
  if (v !== null && typeof v === 'object') return Object.entries(v).some(([k, x]) => k.includes('\u0000') || hasNul(x));
  return false;
}

/** The contract, written out independently of the implementation: position → (key, outcome). */
function expectedOutcomes(c: Case): Map<string, Outcome> {
  const out = new Map<string, Outcome>();
  const firstOf = new Map<string, number>();
  c.texts.forEach((text, i) => {
    const position = i + 1; // no blank lines: element number = line number
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      out.set(`${c.name}#${position}|${position}`, { kind: 'invalid_record' });
      return;
    }
    const isObject = value !== null && typeof value === 'object' && !Array.isArray(value);
    const rawId = isObject ? (value as Record<string, unknown>).id : undefined;
    const id =
      typeof rawId === 'number'
        ? String(rawId)
        : typeof rawId === 'string' && !rawId.includes('\u0000')
          ? rawId
          : undefined;
    const key = id === undefined ? `${c.name}#${position}` : `${c.name}:${id}`;
    const at = `${key}|${position}`;
    if (id !== undefined && firstOf.has(id)) return out.set(at, { kind: 'duplicate_id' });
    if (id !== undefined) firstOf.set(id, position);
    const title = isObject ? (value as Record<string, unknown>).title : undefined;
    const validTitle = title === undefined || title === null || typeof title === 'string';
    const validId = rawId === undefined || typeof rawId === 'number' || typeof rawId === 'string';
    if (!isObject || hasNul(value) || !validTitle || !validId) return out.set(at, { kind: 'invalid_record' });
    if (id === FAIL_ID) return out.set(at, { kind: 'transform_failed' });
    out.set(at, { kind: 'task', title: title ?? null, data: upperDeep(value) });
  });
  return out;
}

/** What the tables hold, in the same shape: tasks by key (their first occurrence's position), errors by key and position. */
async function actualOutcomes(appUrl: string, c: Case, expected: Map<string, Outcome>): Promise<Map<string, Outcome>> {
  const positionOfTask = new Map(
    [...expected.entries()].filter(([, o]) => o.kind === 'task').map(([k]) => [k.split('|')[0], k]),
  );
  const out = new Map<string, Outcome>();
  const tasks = await query<{ task_key: string; title: string | null; data: unknown }>(
    appUrl,
    `select task_key, title, data from tasks where starts_with(task_key, $1 || ':') or starts_with(task_key, $1 || '#')`,
    [c.name],
  );
  for (const t of tasks)
    out.set(positionOfTask.get(t.task_key) ?? `${t.task_key}|?`, { kind: 'task', title: t.title, data: t.data });
  const errors = await query<{ message: { task_key: string; position: number; kind: string } }>(
    appUrl,
    "select message from errors where starts_with(error_key, $1 || '@')",
    [c.name],
  );
  for (const e of errors) {
    const at = `${e.message.task_key}|${e.message.position}`;
    expect(out.has(at), `two outcomes for ${at}`).toBe(false);
    out.set(at, { kind: e.message.kind });
  }
  return out;
}

function countKinds(outcomes: Map<string, Outcome>): Record<string, number> {
  const counts: Record<string, number> = { invalid_record: 0, transform_failed: 0, duplicate_id: 0, key_conflict: 0 };
  for (const o of outcomes.values()) if (o.kind !== 'task') counts[o.kind] = (counts[o.kind] ?? 0) + 1;
  return counts;
}

async function ingestAll(appUrl: string, cases: Case[], chunkSize: number, wait: boolean): Promise<Accounting[]> {
  const logger = createLogger('warn', new PassThrough());
  const db = new pg.Client({ connectionString: appUrl });
  await db.connect();
  try {
    return await withDbosClient(systemDatabaseUrlOf(appUrl), logger, async (client) => {
      const results: Accounting[] = [];
      for (const c of cases) {
        const plan = await enqueueDataset(client, db, c.file, { chunkSize });
        if (wait) results.push(await waitForDataset(client, db, plan, { pollMs: 100, timeoutMs: 40_000 }));
      }
      return results;
    });
  } finally {
    await db.end();
  }
}

function expectAccounted(accounting: Accounting[], cases: Case[], expected: Map<string, Outcome>[]): void {
  accounting.forEach((a, i) => {
    const want = expected[i] as Map<string, Outcome>;
    const byKind = countKinds(want);
    expect(a.records).toBe(cases[i]?.texts.length);
    expect(a.tasks + a.errors.total).toBe(a.records);
    expect({
      tasks: a.tasks,
      byKind: a.errors.by_kind,
      noOutcome: a.noOutcome,
      failed: a.failedChunks,
      cancelled: a.cancelledChunks,
    }).toEqual({
      tasks: [...want.values()].filter((o) => o.kind === 'task').length,
      byKind,
      noOutcome: 0,
      failed: [],
      cancelled: [],
    });
  });
}

it(`random datasets (seed ${SEED}): SIGKILL mid-work at a random point, restart, re-ingest; the same (key → outcome) map as a clean run`, async () => {
  const rand = seededRandom(SEED);
  const cases: Case[] = [];
  for (let i = 0; i < CASES; i++) cases.push(await writeCase(i, rand));
  const expected = cases.map(expectedOutcomes);
  // The generated data must exercise every kind, or the test proves less than it says.
  const allKinds = expected.reduce(
    (acc, m) => ({ ...acc, ...Object.fromEntries(Object.entries(countKinds(m)).filter(([, n]) => n > 0)) }),
    {},
  );
  expect(Object.keys(allKinds).sort()).toEqual(['duplicate_id', 'invalid_record', 'transform_failed']);

  // Run A: chunk size 7, concurrency 3, killed at a seeded random moment.
  const appA = await createTestDatabase('invariant_a');
  const envA = { EXECUTOR_ID: 'invariant-a', PIPELINE_CONCURRENCY: '3', PIPELINE_FAIL_IDS: FAIL_ID };
  const first = await startPipelineService(appA, envA);
  running.push(first);
  await ingestAll(appA, cases, 7, false);
  // Kill once a seeded random number of records (up to half of them) have their outcome: always mid-work.
  const total = cases.reduce((n, c) => n + c.texts.length, 0);
  const killAt = 1 + Math.floor(rand() * (total / 2));
  const outcomes = async () =>
    Number(
      (await query<{ n: string }>(appA, 'select (select count(*) from tasks) + (select count(*) from errors) as n'))[0]
        ?.n,
    );
  const deadline = Date.now() + 30_000;
  while ((await outcomes()) < killAt && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await first.stop('SIGKILL');
  const atKill = await outcomes();
  expect(atKill).toBeGreaterThanOrEqual(killAt);
  expect(atKill).toBeLessThan(total);
  running.splice(running.indexOf(first), 1);
  running.push(await startPipelineService(appA, envA)); // same executor: recovers what was PENDING
  const accountingA = await ingestAll(appA, cases, 7, true);
  expectAccounted(accountingA, cases, expected);

  // Run B: another chunk size and concurrency, no kill.
  const appB = await createTestDatabase('invariant_b');
  running.push(
    await startPipelineService(appB, {
      EXECUTOR_ID: 'invariant-b',
      PIPELINE_CONCURRENCY: '2',
      PIPELINE_FAIL_IDS: FAIL_ID,
    }),
  );
  const accountingB = await ingestAll(appB, cases, 13, true);
  expectAccounted(accountingB, cases, expected);

  for (const [i, c] of cases.entries()) {
    const a = await actualOutcomes(appA, c, expected[i] as Map<string, Outcome>);
    const b = await actualOutcomes(appB, c, expected[i] as Map<string, Outcome>);
    expect(a).toEqual(expected[i]);
    expect(b).toEqual(a);
  }
}, 240_000); // two service starts, a SIGKILL and ~900 records in chunks of 7 and 13: minutes at load average 30 on 2 cores

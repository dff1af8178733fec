// `xyra datasets` and `xyra generate`, loaded only when one of them runs (pipeline/commands.ts lists them).
import path from 'node:path';
import { parseArgs } from 'node:util';
import { positiveInt, UsageError, withDb, type CliContext } from '../cliCommand.js';
import { resolveDatabasesForClient } from '../runtime/databases.js';
import { listDatasets, type DatasetReport } from './datasetsReport.js';
import { writeDataset, type GeneratedFormat } from './generator.js';

function datasetLine(d: DatasetReport): string {
  const kinds = Object.entries(d.errors.by_kind)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k}=${n}`)
    .join(' ');
  return (
    `${d.started_at}  ${d.state.padEnd(7)} ${d.dataset} (${path.basename(d.file_name)}, sha256 ${d.sha256_prefix})  ` +
    `records ${d.records_done}/${d.records}  tasks ${d.tasks}  errors ${d.errors.total}${kinds ? ` (${kinds})` : ''}  ` +
    `chunks ${d.chunks.done}/${d.chunks.total} done, ${d.chunks.failed} failed, ${d.chunks.cancelled} cancelled  ${d.records_per_s} records/s`
  );
}

export async function datasets(args: string[], ctx: CliContext): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { limit: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  const limit = positiveInt('limit', values.limit, 20);
  const databases = await resolveDatabasesForClient(ctx.config);
  const report = await withDb(databases.appDatabaseUrl, (app) =>
    withDb(databases.systemDatabaseUrl, (sys) => listDatasets(sys, app, { limit })),
  );
  if (values.json) ctx.out(JSON.stringify(report));
  else if (report.length === 0) ctx.out('no ingestions yet');
  else for (const d of report) ctx.out(datasetLine(d));
  return 0;
}

export async function generate(args: string[], ctx: CliContext): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      records: { type: 'string' },
      seed: { type: 'string', default: '1' },
      out: { type: 'string' },
      format: { type: 'string', default: 'json' },
    },
  });
  const records = positiveInt('records', values.records, 0);
  if (records === 0) throw new UsageError('--records N is required');
  const seed = positiveInt('seed', values.seed, 1);
  if (values.format !== 'json' && values.format !== 'ndjson') throw new UsageError('--format must be json or ndjson');
  const format: GeneratedFormat = values.format;
  const file = path.resolve(values.out ?? path.join('data', `generated_${records}_s${seed}.${format}`));
  await writeDataset(file, records, seed, format);
  ctx.out(`wrote ${records} records (seed ${seed}) to ${file}`);
  return 0;
}

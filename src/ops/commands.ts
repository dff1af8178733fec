// Operator commands as `xyra` lists them: summary and usage here, their code in commandRuns.ts, loaded only when
// one of them runs (so `xyra --help` and `xyra ingest` never load the ops modules).
import type { CliCommand } from '../cliCommand.js';

const run = (name: string) => async () => (await import('./commandRuns.js')).opsRuns[name]!.run;

export const opsCommands: Record<string, CliCommand> = {
  history: {
    summary: 'batch runs, newest first (slot, start, delay, duration, status, counts, attempts)',
    usage: 'xyra history [--schedule NAME] [--limit N] [--status S] [--json [--events]]',
    load: run('history'),
  },
  stats: {
    summary:
      'batch run figures over a window: statuses, success rate, duration/delay percentiles, retries, missed slots',
    usage: 'xyra stats [--since 24h] [--json]',
    load: run('stats'),
  },
  errors: {
    summary: 'latest rows of the pipeline errors table',
    usage: 'xyra errors [--limit N] [--json]',
    load: run('errors'),
  },
  trigger: {
    summary: 'run an evaluation batch now, outside the cron slots (the running service executes it)',
    usage: 'xyra trigger [--schedule NAME] [--wait] [--timeout SECONDS] [--json]',
    load: run('trigger'),
  },
  schedule: {
    summary:
      'manage schedules (create, update, delete, list, apply) and show, pause, resume, list the next slots of, or backfill one',
    usage:
      'xyra schedule create NAME --cron EXPR [--timezone TZ] [--payload JSON] [--catch-up P] [--catch-up-window D] [--overlap O] ' +
      '[--pause-after-failures N] [--start-at ISO] [--end-at ISO] [--note TEXT] [--json] | update NAME [same options] | delete NAME | ' +
      'list [--json] | apply FILE [--prune] [--dry-run] [--json] | ' +
      'status [--schedule NAME] [--json] | pause [--schedule NAME] [--note TEXT] | resume [--schedule NAME] | ' +
      'next [--schedule NAME] [--count N] [--from ISO] [--json] | backfill [--schedule NAME] --from ISO --to ISO [--json]',
    load: run('schedule'),
  },
};

// `xyra schedule apply FILE [--prune] [--dry-run]`: the declarative way. FILE (YAML or JSON, one document
// `{schedules: [schedule, ...]}`) says what the schedules are; we create and update to match (a field left
// out takes its default, as on create), and with --prune delete what FILE no longer holds (never
// `evaluation-batch`, which BATCH_* declare). Applying the same file twice changes nothing.
import {
  parseScheduleSpec,
  sameSpec,
  ScheduleValidationError,
  type ScheduleDefaults,
  type ScheduleSpec,
} from '../evaluation/scheduleSpec.js';
import {
  createSchedule,
  deleteSchedule,
  listScheduleRows,
  specOf,
  updateSchedule,
  type ClientSource,
} from '../evaluation/scheduleStore.js';
import { DEFAULT_SCHEDULE } from '../evaluation/slotContext.js';
import type { Queryable } from '../runtime/databases.js';

export interface ApplyPlan {
  create: ScheduleSpec[];
  update: Array<{ spec: ScheduleSpec; fields: string[] }>;
  delete: string[];
  unchanged: string[];
}

export interface ApplySummary {
  created: string[];
  updated: string[];
  deleted: string[];
  unchanged: string[];
  dry_run: boolean;
}

/**
 * Parses FILE's text; throws ScheduleValidationError naming `schedules[i].field`. The YAML parser loads here, on
 * the one command that reads YAML: every other command starts without it (~75 ms).
 */
export async function parseApplyFile(text: string, defaults: ScheduleDefaults): Promise<ScheduleSpec[]> {
  const { parse: parseYaml } = await import('yaml');
  let doc: unknown;
  try {
    doc = parseYaml(text); // YAML 1.2 is a superset of JSON
  } catch (e) {
    throw new ScheduleValidationError('file', `not YAML or JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  if (doc === null || typeof doc !== 'object' || !Array.isArray((doc as { schedules?: unknown }).schedules)) {
    throw new ScheduleValidationError('schedules', 'the file must hold {"schedules": [ ... ]}');
  }
  const specs: ScheduleSpec[] = [];
  const seen = new Set<string>();
  (doc as { schedules: unknown[] }).schedules.forEach((raw, i) => {
    let spec: ScheduleSpec;
    try {
      spec = parseScheduleSpec(raw, defaults);
    } catch (e) {
      if (e instanceof ScheduleValidationError)
        throw new ScheduleValidationError(`schedules[${i}].${e.field}`, e.message.slice(e.field.length + 2));
      throw e;
    }
    if (seen.has(spec.name)) throw new ScheduleValidationError(`schedules[${i}].name`, `"${spec.name}" appears twice`);
    seen.add(spec.name);
    specs.push(spec);
  });
  return specs;
}

export async function planApply(db: Queryable, specs: ScheduleSpec[], prune: boolean): Promise<ApplyPlan> {
  const existing = new Map((await listScheduleRows(db)).map((r) => [r.name, r]));
  const plan: ApplyPlan = { create: [], update: [], delete: [], unchanged: [] };
  for (const spec of specs) {
    const row = existing.get(spec.name);
    if (!row) plan.create.push(spec);
    else if (sameSpec(specOf(row), spec)) plan.unchanged.push(spec.name);
    else {
      const before = specOf(row);
      const fields = (Object.keys(spec) as Array<keyof ScheduleSpec>).filter(
        (f) => JSON.stringify(before[f]) !== JSON.stringify(spec[f]),
      );
      plan.update.push({ spec, fields });
    }
  }
  if (prune) {
    const wanted = new Set(specs.map((s) => s.name));
    for (const name of existing.keys()) if (!wanted.has(name) && name !== DEFAULT_SCHEDULE) plan.delete.push(name);
  }
  return plan;
}

export async function executeApply(pool: ClientSource, plan: ApplyPlan): Promise<ApplySummary> {
  const summary: ApplySummary = {
    created: [],
    updated: [],
    deleted: [],
    unchanged: [...plan.unchanged],
    dry_run: false,
  };
  for (const spec of plan.create) {
    await createSchedule(pool, spec, 'file');
    summary.created.push(spec.name);
  }
  for (const { spec } of plan.update) {
    const { name, ...patch } = spec;
    const result = await updateSchedule(pool, name, patch, 'file');
    (result.changed ? summary.updated : summary.unchanged).push(name);
  }
  for (const name of plan.delete) {
    await deleteSchedule(pool, name, 'file');
    summary.deleted.push(name);
  }
  return summary;
}

export function planSummary(plan: ApplyPlan): ApplySummary {
  return {
    created: plan.create.map((s) => s.name),
    updated: plan.update.map((u) => u.spec.name),
    deleted: [...plan.delete],
    unchanged: [...plan.unchanged],
    dry_run: true,
  };
}

// Backfill, the workflow side: one durable workflow per `xyra schedule backfill` request starts the slot
// runs one after another, each under its slot's own ID (`sched-evaluation-batch-<ISO>`), waiting for each
// to finish before the next. Starting a workflow whose ID exists starts nothing, so a slot that already
// has a run keeps it and its outcome, and a repeated backfill adds no run. No extra queue is polled: the
// request runs from DBOS's internal queue (see DBOS_INTERNAL_QUEUE for why not the batch queue).
import { DBOS } from '@dbos-inc/dbos-sdk';
import { EvaluationBatch } from './evaluationBatch.js';
import { DEFAULT_SCHEDULE, slotWorkflowIdOf, type SlotContext } from './slotContext.js';

export const BACKFILL_WORKFLOW = { workflowName: 'run', workflowClassName: 'EvaluationBackfill' } as const;

/** The slot run's workflow ID, the same DBOS gives a slot it fires. */
export function slotWorkflowId(slot: Date, schedule: string = DEFAULT_SCHEDULE): string {
  return slotWorkflowIdOf(schedule, slot);
}

/** The backfill request's own ID: one per range, so asking twice for the same range is one request. */
export function backfillWorkflowId(from: Date, to: Date, schedule: string = DEFAULT_SCHEDULE): string {
  return `backfill-${schedule}-${from.toISOString()}-${to.toISOString()}`;
}

export interface BackfillOutcome {
  slot: string;
  workflow_id: string;
  status: string;
}

export class EvaluationBackfill {
  @DBOS.workflow()
  static async run(slotsIso: string[], schedule: string = DEFAULT_SCHEDULE): Promise<BackfillOutcome[]> {
    const outcomes: BackfillOutcome[] = [];
    const context: SlotContext = { schedule, backfill: true };
    for (const iso of slotsIso) {
      const slot = new Date(iso);
      const workflowId = slotWorkflowId(slot, schedule);
      const handle = await DBOS.startWorkflow(EvaluationBatch, { workflowID: workflowId }).trigger(slot, context);
      // One at a time: the next slot starts when this one has an outcome.
      const result = await handle.getResult().then(
        (r) => r.status.status as string,
        (e: unknown) => `error: ${e instanceof Error ? e.message : String(e)}`,
      );
      outcomes.push({ slot: iso, workflow_id: workflowId, status: result });
    }
    return outcomes;
  }
}

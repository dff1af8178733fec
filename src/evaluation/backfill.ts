// Backfill, the workflow side: one durable workflow per `xyra schedule backfill` request starts the slot
// runs one after another, each under its slot's own ID (`sched-evaluation-batch-<ISO>`), waiting for each
// to finish before the next. Starting a workflow whose ID exists starts nothing, so a slot that already
// has a run keeps it and its outcome, and a repeated backfill adds no run. No extra queue is polled: the
// request runs from DBOS's internal queue (see DBOS_INTERNAL_QUEUE for why not the batch queue).
import { DBOS } from '@dbos-inc/dbos-sdk';
import { BACKFILL_CONTEXT } from './backfillContext.js';
import { EvaluationBatch, SCHEDULE_NAME } from './evaluationBatch.js';

export const BACKFILL_WORKFLOW = { workflowName: 'run', workflowClassName: 'EvaluationBackfill' } as const;

/** The slot run's workflow ID, the same DBOS gives a slot it fires. */
export function slotWorkflowId(slot: Date): string {
  return `sched-${SCHEDULE_NAME}-${slot.toISOString()}`;
}

/** The backfill request's own ID: one per range, so asking twice for the same range is one request. */
export function backfillWorkflowId(from: Date, to: Date): string {
  return `backfill-${SCHEDULE_NAME}-${from.toISOString()}-${to.toISOString()}`;
}

export interface BackfillOutcome {
  slot: string;
  workflow_id: string;
  status: string;
}

export class EvaluationBackfill {
  @DBOS.workflow()
  static async run(slotsIso: string[]): Promise<BackfillOutcome[]> {
    const outcomes: BackfillOutcome[] = [];
    for (const iso of slotsIso) {
      const slot = new Date(iso);
      const workflowId = slotWorkflowId(slot);
      const handle = await DBOS.startWorkflow(EvaluationBatch, { workflowID: workflowId }).trigger(slot, BACKFILL_CONTEXT);
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

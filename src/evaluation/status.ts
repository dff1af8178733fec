// The `batch_evaluation_status` event (contract in ARCHITECTURE.md) and the workflow's output.
import { z } from 'zod';

export const BATCH_STATUS_EVENT = 'batch_evaluation_status';

export const batchStatusSchema = z.object({
  workflow_id: z.string(),
  status: z.enum(['triggered', 'completed', 'skipped', 'failed']),
  processed: z.number().int().nonnegative(),
  succeeded: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  scheduled_time: z.string(),
  actual_time: z.string(),
  message: z.string().optional(),
  error: z.string().optional(),
});

export type BatchStatus = z.infer<typeof batchStatusSchema>;
export type BatchStatusName = BatchStatus['status'];

/** What history shows beyond the event: what was sent and a summary of what came back. */
export interface BatchRunOutput {
  status: BatchStatus;
  request?: { workflow_id: string; triggered_at: string; batch_size_limit: number };
  response?: {
    status_code: number | null;
    body_bytes: number;
    duration_ms: number;
    attempts: number;
    total_duration_ms: number;
  };
  /**
   * Why the run did not call the API: `missed` (catch-up policy), `in_progress` (overlap guard), `paused`
   * (the slot fell in a pause), `not_a_slot` (not a slot of the schedule's current spec) or `superseded` (a slot
   * of a spec version that is no longer current, or of a deleted schedule).
   */
  skipped_reason?: 'missed' | 'in_progress' | 'paused' | 'not_a_slot' | 'superseded';
}

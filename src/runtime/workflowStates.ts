// DBOS's workflow states that it never leaves on its own. They are public (the SDK's `StatusString`), so code that
// only reads the system tables uses them without loading the SDK: an operator command starts ~0.35 s faster (the
// SDK and the YAML parser it loads) and DBOS's private formats stay in dbosInternals.ts.
import type { WorkflowStatusString } from '@dbos-inc/dbos-sdk';

/** Workflow states DBOS never leaves on its own: finished runs, and the only ones retention may delete. */
export const FINISHED_WORKFLOW_STATES = [
  'SUCCESS',
  'ERROR',
  'CANCELLED',
  'MAX_RECOVERY_ATTEMPTS_EXCEEDED',
] as const satisfies readonly WorkflowStatusString[];

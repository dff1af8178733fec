// The latest rows of the pipeline's `errors` table (app database), for `xyra errors`.
import type pg from 'pg';
import { z } from 'zod';

/** The JSONB message as the pipeline writes it; unknown keys are kept, missing ones tolerated. */
const errorMessageSchema = z.looseObject({
  error: z.unknown().optional(),
  kind: z.string().optional(),
  task_key: z.string().optional(),
  attempts: z.number().optional(),
  record: z.unknown().optional(),
});

export const errorRowSchema = z.object({
  id: z.union([z.number(), z.string()]).transform(String),
  error_key: z.string(),
  message: errorMessageSchema,
  created_at: z.date().transform((d) => d.toISOString()),
});

export type ErrorRow = z.infer<typeof errorRowSchema>;

export async function latestErrors(db: pg.ClientBase, limit: number): Promise<ErrorRow[]> {
  const { rows } = await db.query(
    'select id, error_key, message, created_at from errors order by created_at desc, id desc limit $1',
    [limit],
  );
  return rows.map((r) => errorRowSchema.parse(r));
}

/** The error text, whether the pipeline stored a string or an `{message}` object. */
export function errorText(row: ErrorRow): string {
  const e = row.message.error;
  if (typeof e === 'string') return e;
  if (e && typeof e === 'object' && 'message' in e && typeof e.message === 'string') return e.message;
  return JSON.stringify(e ?? row.message);
}

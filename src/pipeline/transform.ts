// The pipeline's transform: every string value uppercased, deeply; keys, numbers, booleans and nulls unchanged.
// Pure, so a replayed or retried chunk always produces the same rows.

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Thrown for records listed in PIPELINE_FAIL_IDS (the error-path demo). */
export class SimulatedTransformError extends Error {
  constructor(readonly recordId: string) {
    super(`simulated transform failure for record id ${recordId}`);
    this.name = 'SimulatedTransformError';
  }
}

export function uppercaseDeep(value: JsonValue): JsonValue {
  if (typeof value === 'string') return value.toUpperCase();
  if (Array.isArray(value)) return value.map(uppercaseDeep);
  if (value !== null && typeof value === 'object') {
    const out: { [key: string]: JsonValue } = {};
    for (const [k, v] of Object.entries(value)) out[k] = uppercaseDeep(v);
    return out;
  }
  return value;
}

/** Transform one record; `failIds` are compared as strings against String(record.id). */
export function transformRecord(
  record: { [key: string]: JsonValue },
  failIds: ReadonlySet<string>,
): { [key: string]: JsonValue } {
  const id = record.id;
  if (id !== undefined && failIds.has(String(id))) throw new SimulatedTransformError(String(id));
  return uppercaseDeep(record) as { [key: string]: JsonValue };
}

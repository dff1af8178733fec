// Record identity: which key a record is stored under, and which occurrence of an id is "the" record.
// Pure functions of the file's content, shared by the ingest pass (duplicates) and the chunk workflow (keys).

/** The record's id as a key part: a number or a string (`5` and `"5"` are the same id); else none. */
export function recordId(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const id = (value as Record<string, unknown>).id;
  if (typeof id === 'number') return String(id);
  // A key holding U+0000 cannot be stored in a Postgres text column: such an id is not usable.
  if (typeof id === 'string' && !id.includes('\u0000')) return id;
  return undefined;
}

/** `<dataset>:<id>` with an id, `<dataset>#<position>` without: the two forms never collide. */
export function taskKey(dataset: string, position: number, id: string | undefined): string {
  return id === undefined ? `${dataset}#${position}` : `${dataset}:${id}`;
}

/**
 * The `errors.error_key` of the record at `position` of one file's content: unique per (dataset, content,
 * position), so a re-run of the same file finds its own rows again whatever the chunk size, and an error never
 * shares its key with a task or with another file's error.
 */
export function errorKey(dataset: string, fileSha: string, position: number): string {
  return `${dataset}@${fileSha}#${position}`;
}

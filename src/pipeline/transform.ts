// The pipeline's transform: every string value uppercased, deeply; keys, numbers, booleans and nulls unchanged.
// Pure, so a replayed or retried chunk always produces the same rows.
import { CLOSE_BRACE, CLOSE_BRACKET, COLON, COMMA, isJsonSpace, OPEN_BRACE, OPEN_BRACKET, QUOTE } from './jsonChars.js';

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

/** A record transformed on its JSON text: what transformRecord gives, as JSON text, with the record's id and title. */
export interface TextTransform {
  /** The record's id as a key part (recordId's form), or undefined without one. */
  id: string | undefined;
  title: string | null;
  /** JSON text of the transformed record: the same JSONB as JSON.stringify(transformRecord(record)). */
  data: string;
}

/**
 * The transform done on the text of a record, without building the record: every string value uppercased in place,
 * keys and everything else left as written. Parsing, walking and re-serializing each record cost the pipeline more
 * CPU than anything else. Only for texts where this is exactly the same JSONB as the parse → transformRecord →
 * JSON.stringify path; undefined for every other text, which then takes that path (it also gives the verdicts):
 *   - the text must be a JSON object that JSON.parse accepts (the caller knows: staging parsed it), nested at most
 *     `maxDepth` levels, whose top-level `id` is a number or string and `title` a string or null when present;
 *   - no backslash anywhere: a string's text is then its value (no escapes), so uppercasing the text uppercases
 *     the value, and nothing can spell U+0000 or `__proto__` in disguise;
 *   - every number written as JSON.stringify writes it back (`1.0`, `1e3`, `-0`, 17-digit or out-of-range
 *     numbers change in a parse and re-serialization; Postgres would keep them as written);
 *   - no key `__proto__` (JSON.parse makes it an own property, the transform's copy drops it);
 *   - its id not in `failIds` (a simulated failure is thrown by transformRecord).
 * Whitespace, key order and duplicate keys need no care: JSONB ignores the first two and, like JSON.parse, keeps the
 * last of duplicate keys.
 */
export function transformRecordText(
  text: string,
  failIds: ReadonlySet<string>,
  maxDepth: number,
): TextTransform | undefined {
  if (text.charCodeAt(0) !== OPEN_BRACE || text.includes('\\')) return undefined;
  const parts: string[] = [];
  let copied = 0;
  let depth = 0;
  let topKey: string | undefined; // the top-level key whose value comes next
  let id: string | undefined;
  let title: string | null = null;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (isJsonSpace(c) || c === COLON || c === COMMA) continue;
    if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (depth === 1 && (topKey === 'id' || topKey === 'title')) return undefined;
      if (++depth > maxDepth) return undefined;
      continue;
    }
    if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
      continue;
    }
    if (c === QUOTE) {
      const close = text.indexOf('"', i + 1);
      if (close === -1) return undefined;
      const value = text.slice(i + 1, close);
      let j = close + 1;
      while (j < n && isJsonSpace(text.charCodeAt(j))) j++;
      if (text.charCodeAt(j) === COLON) {
        if (value === '__proto__') return undefined;
        if (depth === 1) topKey = value;
      } else {
        if (depth === 1 && topKey === 'id') id = value;
        else if (depth === 1 && topKey === 'title') title = value;
        const upper = value.toUpperCase();
        if (upper !== value) {
          parts.push(text.slice(copied, i + 1), upper);
          copied = close;
        }
      }
      i = close;
      continue;
    }
    // A number or a literal: up to the next delimiter.
    let end = i + 1;
    while (end < n) {
      const d = text.charCodeAt(end);
      if (isJsonSpace(d) || d === COMMA || d === CLOSE_BRACE || d === CLOSE_BRACKET) break;
      end++;
    }
    const token = text.slice(i, end);
    if (token === 'true' || token === 'false' || token === 'null') {
      if (depth === 1 && topKey === 'id') return undefined; // id must be a number or a string
      if (depth === 1 && topKey === 'title') {
        if (token !== 'null') return undefined;
        title = null;
      }
    } else {
      if (String(Number(token)) !== token) return undefined;
      if (depth === 1 && topKey === 'title') return undefined;
      if (depth === 1 && topKey === 'id') id = token;
    }
    i = end - 1;
  }
  if (depth !== 0) return undefined;
  if (id !== undefined && failIds.size > 0 && failIds.has(id)) return undefined;
  parts.push(text.slice(copied));
  return { id, title, data: parts.join('') };
}

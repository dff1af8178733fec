// Datasets: a JSON array of records or NDJSON, told apart by the first non-whitespace character, read as a
// stream (never the whole file in memory). A top-level array is split into element texts by a small
// tokenizer that tracks strings, escapes and bracket depth; each element (or line) is JSON.parsed on its own.
//
// File-level problems (not JSON at all, unterminated array, junk after it, not a regular file) raise
// DatasetError; an element that is valid JSON but not a valid record is a per-record problem handled downstream
// (an `errors` row). So is a record over MAX_RECORD_BYTES or nested deeper than MAX_RECORD_DEPTH: the splitters
// never hold more than the limit of one record (a 50 MB line costs a preview, not 50 MB per copy), and the
// transform and checks, which recurse, never see a record deeper than the limit.
import fs from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { z } from 'zod';
import { DatasetError } from '../errors.js';
import {
  BACKSLASH,
  CLOSE_BRACE,
  CLOSE_BRACKET,
  COMMA,
  isJsonSpace,
  OPEN_BRACE,
  OPEN_BRACKET,
  QUOTE,
} from './jsonChars.js';

export type DatasetFormat = 'json-array' | 'ndjson';

/** One element/line of the file, still as text. `position` is the 1-based line (NDJSON) or element number. */
export interface DatasetElement {
  index: number;
  position: number;
  text: string;
}

/** A record as the pipeline accepts it: an object, `id` a number or string when given, `title` a string or null. */
export const recordSchema = z
  .object({
    id: z.union([z.number(), z.string()]).optional(),
    title: z.string().nullable().optional(),
  })
  .catchall(z.unknown());
export type DatasetRecord = z.infer<typeof recordSchema>;

/** The dataset name is the file's base name without its last extension (`orders.2026-11.ndjson` → `orders.2026-11`). */
export function datasetName(file: string): string {
  const base = path.basename(file);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(0, dot) : base;
}

/**
 * A record's text may be this long (bytes of UTF-8); a longer one becomes one `invalid_record` row with a
 * preview. Fixed, not an environment variable: both passes of an ingestion (and every re-run) must cut at the
 * same place, since the cut is part of the chunk digests (docs/security.md).
 */
export const MAX_RECORD_BYTES = 1024 * 1024;
/** Arrays/objects nested deeper than this make a record invalid (the recursive transform stays far from the stack limit). */
export const MAX_RECORD_DEPTH = 100;
/** How much of an oversized record is kept, as its preview in the `errors` row. */
export const RECORD_PREVIEW_CHARS = 1_000;
/**
 * An oversized record travels as this mark, its size and its preview instead of its text. A control character
 * cannot start valid JSON, so no valid record is ever mistaken for one; U+001F (not U+0000) because the text may
 * be stored in Postgres, which refuses U+0000.
 */
const OVERSIZE_MARK = '\u001fxyra-oversize:';

function oversizeText(bytes: number, preview: string): string {
  return `${OVERSIZE_MARK}${bytes}:${preview.slice(0, RECORD_PREVIEW_CHARS)}`;
}

/** Collects one record's text from pieces, in linear time, keeping at most `limit` bytes (then only a preview). */
class RecordText {
  private parts: string[] = [];
  private bytes = 0;

  constructor(private readonly limit: number) {}

  add(piece: string): void {
    if (piece === '') return;
    const size = Buffer.byteLength(piece);
    if (this.bytes <= this.limit) {
      if (this.bytes + size <= this.limit) this.parts.push(piece);
      else this.parts = [this.parts.join('').concat(piece).slice(0, RECORD_PREVIEW_CHARS)]; // over: keep a preview only
    }
    this.bytes += size;
  }

  /** The text (trimmed), or the oversize mark with the preview; resets for the next record. */
  take(): string {
    const text = this.parts.join('');
    const over = this.bytes > this.limit;
    const bytes = this.bytes;
    this.parts = [];
    this.bytes = 0;
    return over ? oversizeText(bytes, text.trimStart()) : text.trim();
  }
}

/** Between a file's elements a byte-order mark is skipped like whitespace. */
function isWhitespace(c: number): boolean {
  return isJsonSpace(c) || c === 0xfeff;
}

/** Splits the text of a top-level JSON array into element texts, fed piecewise. */
class ArraySplitter {
  private started = false;
  private closed = false;
  private depth = 0;
  private inString = false;
  private escape = false;
  private element: RecordText;
  private count = 0;
  private sawComma = false;

  constructor(
    private readonly file: string,
    maxRecordBytes: number,
  ) {
    this.element = new RecordText(maxRecordBytes);
  }

  push(text: string, emit: (element: string) => void): void {
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (this.closed) {
        if (!isWhitespace(c)) throw new DatasetError(this.file, 'unexpected content after the closing ] of the array');
        continue;
      }
      if (!this.started) {
        if (isWhitespace(c)) continue;
        if (c !== OPEN_BRACKET) throw new DatasetError(this.file, 'expected a JSON array');
        this.started = true;
        start = i + 1;
        continue;
      }
      if (this.inString) {
        if (this.escape) this.escape = false;
        else if (c === BACKSLASH) this.escape = true;
        else if (c === QUOTE) this.inString = false;
        continue;
      }
      if (c === QUOTE) this.inString = true;
      else if (c === OPEN_BRACE || c === OPEN_BRACKET) this.depth++;
      else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && this.depth > 0) this.depth--;
      else if (this.depth === 0 && (c === CLOSE_BRACKET || c === COMMA)) {
        this.element.add(text.slice(start, i));
        start = i + 1;
        this.finishElement(c === COMMA, emit);
        if (c === CLOSE_BRACKET) this.closed = true;
      }
    }
    if (this.started && !this.closed && start < text.length) this.element.add(text.slice(start));
  }

  private finishElement(byComma: boolean, emit: (element: string) => void): void {
    const element = this.element.take();
    if (element === '') {
      // `[]` is an empty dataset; `[,` `[1,,2]` `[1,]` are broken arrays.
      if (byComma || this.sawComma)
        throw new DatasetError(this.file, `empty element at position ${this.count + 1} of the array`);
      return;
    }
    this.sawComma = this.sawComma || byComma;
    this.count++;
    emit(element);
  }

  end(): void {
    if (!this.closed) throw new DatasetError(this.file, 'unterminated JSON array (no closing ])');
  }
}

/**
 * Splits NDJSON text into lines, fed piecewise; blank lines are skipped. Linear in the file size: the
 * unfinished line is kept as pieces (never re-copied per read), and never more than the record limit of it.
 */
class LineSplitter {
  private current: RecordText;
  line = 0;

  constructor(maxRecordBytes: number) {
    this.current = new RecordText(maxRecordBytes);
  }

  push(text: string, emit: (line: string, lineNo: number) => void): void {
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      this.line++;
      this.current.add(text.slice(start, nl));
      const line = this.current.take();
      if (line !== '') emit(line, this.line);
      start = nl + 1;
    }
    this.current.add(text.slice(start));
  }

  end(emit: (line: string, lineNo: number) => void): void {
    this.line++;
    const line = this.current.take();
    if (line !== '') emit(line, this.line);
  }
}

export interface ReadOptions {
  /** Sees every raw byte of the file, e.g. to hash it. */
  onBytes?: (bytes: Buffer) => void;
  /** Called once the format is known. */
  onFormat?: (format: DatasetFormat) => void;
  /** Tests only: a smaller record limit than MAX_RECORD_BYTES. */
  maxRecordBytes?: number;
}

/**
 * Stream the elements of a dataset file as texts. Throws DatasetError for file-level problems (including an
 * empty file). Elements are not parsed here: see parseElement.
 */
/** DatasetError unless `file` is a readable regular file: a device or pipe (/dev/zero, /dev/stdin) may never end,
 * and an ingestion reads its file twice (its hash, then the records). */
export async function assertReadableFile(file: string): Promise<void> {
  let stat: fs.Stats;
  try {
    await fs.promises.access(file, fs.constants.R_OK);
    stat = await fs.promises.stat(file);
  } catch (e) {
    throw new DatasetError(file, `cannot read file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (!stat.isFile())
    throw new DatasetError(file, 'not a regular file (a device, pipe or directory cannot be a dataset)');
}

/**
 * The file's bytes, read into one buffer that is reused for every read: each yielded view is valid only until the
 * next one is asked for (consumers hash or decode it at once). A 200 MB file read through a stream allocates a new
 * buffer per read; V8 frees those only at its next full collection, and they held tens of MB of the CLI's RSS.
 */
export async function* readFileBytes(file: string, bufferBytes: number): AsyncGenerator<Buffer> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, 'r');
  } catch (e) {
    throw new DatasetError(file, `cannot read file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  try {
    const buffer = Buffer.allocUnsafe(bufferBytes);
    for (;;) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await handle.read(buffer, 0, bufferBytes, null));
      } catch (e) {
        throw new DatasetError(file, `cannot read file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
      }
      if (bytesRead === 0) return;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

/**
 * Bytes per read. Each read is decoded into one string that the records' texts are cut from; smaller strings are
 * cheaper to keep young (measured: a few MB less peak RSS than 256 KB reads at 1,000,000 records).
 */
const READ_BYTES = 64 * 1024;

export async function* readElements(file: string, options: ReadOptions = {}): AsyncGenerator<DatasetElement> {
  await assertReadableFile(file);
  const maxRecordBytes = options.maxRecordBytes ?? MAX_RECORD_BYTES;
  const decoder = new StringDecoder('utf8');
  let format: DatasetFormat | undefined;
  let array: ArraySplitter | undefined;
  const lines = new LineSplitter(maxRecordBytes);
  let index = 0;
  const pending: DatasetElement[] = [];
  const onArrayElement = (text: string) => pending.push({ index, position: ++index, text });
  const onLine = (text: string, lineNo: number) => pending.push({ index: index++, position: lineNo, text });

  const feed = (text: string) => {
    if (format === undefined) {
      const first = firstNonWhitespace(text);
      if (first === undefined) {
        lines.push(text, onLine); // only whitespace so far: keep line numbering right
        return;
      }
      format = first === '[' ? 'json-array' : 'ndjson';
      options.onFormat?.(format);
      if (format === 'json-array') array = new ArraySplitter(file, maxRecordBytes);
    }
    if (array) array.push(text, onArrayElement);
    else lines.push(text, onLine);
  };

  for await (const bytes of readFileBytes(file, READ_BYTES)) {
    options.onBytes?.(bytes);
    feed(decoder.write(bytes));
    yield* pending.splice(0);
  }
  feed(decoder.end());
  if (format === undefined) throw new DatasetError(file, 'empty file: not JSON');
  if (array) array.end();
  else lines.end(onLine);
  yield* pending.splice(0);
}

function firstNonWhitespace(text: string): string | undefined {
  for (let i = 0; i < text.length; i++) {
    if (!isWhitespace(text.charCodeAt(i))) return text[i];
  }
  return undefined;
}

/**
 * Not ok: the text is not JSON, or (`limit` set) it is over a record limit; `preview` is then what the
 * `errors` row keeps of it.
 */
export type ParsedElement = { ok: true; value: unknown } | { ok: false; error: string; limit?: { preview: string } };

/** How deep arrays/objects nest in a JSON text, outside strings; stops counting past `max`. Linear, no recursion. */
export function nestingDepth(text: string, max: number = MAX_RECORD_DEPTH): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > deepest) deepest = depth;
      if (deepest > max) return deepest;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
  }
  return deepest;
}

/**
 * The record's text breaks a record limit (over MAX_RECORD_BYTES: the splitter's oversize mark; nested deeper than
 * MAX_RECORD_DEPTH): the parse result saying so, with the preview its `errors` row keeps; undefined otherwise.
 * Separate from parseElement so a record whose parse error was stored (staging) still gets its limit verdict.
 */
export function recordLimitViolation(text: string): (ParsedElement & { ok: false }) | undefined {
  if (text.startsWith(OVERSIZE_MARK)) {
    const rest = text.slice(OVERSIZE_MARK.length);
    const colon = rest.indexOf(':');
    return {
      ok: false,
      error: `record too large: ${rest.slice(0, colon)} bytes (limit ${MAX_RECORD_BYTES}); only a preview is kept`,
      limit: { preview: rest.slice(colon + 1) },
    };
  }
  if (nestingDepth(text) > MAX_RECORD_DEPTH) {
    return {
      ok: false,
      error: `record nested deeper than ${MAX_RECORD_DEPTH} levels`,
      limit: { preview: text.slice(0, RECORD_PREVIEW_CHARS) },
    };
  }
  return undefined;
}

export function parseElement(text: string): ParsedElement {
  const overLimit = recordLimitViolation(text);
  if (overLimit) return overLimit;
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

/** The first element decides whether the file is JSON at all: if it does not parse, the file is rejected. */
export function assertFirstElementParses(file: string, element: DatasetElement, format: DatasetFormat): void {
  if (element.index !== 0) return;
  const parsed = parseElement(element.text);
  // Over a record limit is that record's problem (an `errors` row), not the file's.
  if (!parsed.ok && parsed.limit === undefined) {
    const where = format === 'ndjson' ? `line ${element.position}` : 'the first element of the array';
    throw new DatasetError(file, `not JSON: ${where} does not parse (${parsed.error})`);
  }
}

/** A record as staging reads it: its element, parsed (or why it does not parse, or is over a record limit). */
export interface ReadRecord {
  element: DatasetElement;
  parsed: ParsedElement;
}

/**
 * The file's records in file order, each parsed once. Throws DatasetError for a file that is not JSON records at
 * all (its first element does not parse) and for every file-level problem of readElements.
 */
export async function* readRecords(file: string, options: ReadOptions = {}): AsyncGenerator<ReadRecord> {
  let format: DatasetFormat = 'ndjson';
  for await (const element of readElements(file, {
    ...options,
    onFormat: (f) => {
      format = f;
      options.onFormat?.(f);
    },
  })) {
    assertFirstElementParses(file, element, format);
    yield { element, parsed: parseElement(element.text) };
  }
}

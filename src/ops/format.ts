// Plain-text rendering for operator commands: aligned columns, short durations and times.

/**
 * C0/C1 control characters (ESC, CSI …) and bidi overrides: from an API message or a dataset id they could
 * move the cursor, rewrite the screen or hide text in an operator's terminal.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** Text safe to print on a terminal: every control character shown as `?`. */
export function printable(text: string): string {
  return text.replace(CONTROL, '?');
}

/** Renders rows as left-aligned columns under a header; the last column is never padded. Cells are made printable. */
export function renderTable(header: string[], cells: string[][]): string[] {
  const rows = cells.map((r) => r.map(printable));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** 950 → "950ms", 12_300 → "12.3s", 125_000 → "2m05s"; null → "-". */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  const sign = ms < 0 ? '-' : '';
  const a = Math.abs(ms);
  if (a < 1_000) return `${sign}${Math.round(a)}ms`;
  if (a < 60_000) return `${sign}${(a / 1_000).toFixed(1)}s`;
  if (a < 3_600_000)
    return `${sign}${Math.floor(a / 60_000)}m${String(Math.floor((a % 60_000) / 1_000)).padStart(2, '0')}s`;
  return `${sign}${Math.floor(a / 3_600_000)}h${String(Math.floor((a % 3_600_000) / 60_000)).padStart(2, '0')}m`;
}

/** ISO → "2025-01-15 10:00:00Z" (seconds kept, milliseconds dropped; UTC like the stored values). */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '-';
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}Z`;
}

/** ISO → "10:00:03.120" for a time on the same day as a slot shown next to it. */
export function formatClock(iso: string | null | undefined): string {
  if (!iso) return '-';
  return iso.slice(11, 23);
}

export function formatRate(rate: number | null): string {
  return rate === null ? '-' : `${(rate * 100).toFixed(1)}%`;
}

/** One line, at most `max` characters, for free-text columns. */
export function oneLine(text: string | null | undefined, max = 80): string {
  if (!text) return '';
  const flat = printable(text.replace(/\s+/g, ' ').trim());
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

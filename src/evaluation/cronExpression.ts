// The crontab language as cron(8) (Vixie cron / cronie) reads it, as a pure wall-clock matcher: read in UTC,
// it answers "which wall times match?" with instants standing for wall times. src/evaluation/cron.ts adds time
// zones and the daylight-saving rules on top. Our own code, not DBOS's TimeMatcher: DBOS ANDs day-of-month
// and day-of-week and accepts backwards ranges, cron(8) does neither (issue 14).
//
// Grammar: 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first); each field a comma
// list of `*`, `N`, `A-B`, with an optional `/STEP` after `*` or a range (`N/STEP` means `N-max/STEP`, an
// extension cronie shares); month and weekday names (`JAN`, `mon`); `7` is Sunday; `?` is `*`; nicknames
// `@yearly` `@annually` `@monthly` `@weekly` `@daily` `@midnight` `@hourly`.
// Day rule (cron(8)): when day-of-month and day-of-week are both restricted (neither starts with `*` or `?`),
// a day matches if EITHER matches; otherwise both must (the unrestricted one matches every day).

export class CronSyntaxError extends Error {}

export const CRON_NICKNAMES: Readonly<Record<string, string>> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: string[];
  /** Value the names start at (months: 1). */
  nameBase?: number;
}

const SECOND: FieldSpec = { name: 'second', min: 0, max: 59 };
const MINUTE: FieldSpec = { name: 'minute', min: 0, max: 59 };
const HOUR: FieldSpec = { name: 'hour', min: 0, max: 23 };
const DOM: FieldSpec = { name: 'day-of-month', min: 1, max: 31 };
const MONTH: FieldSpec = { name: 'month', min: 1, max: 12, names: MONTHS, nameBase: 1 };
// 0-7, 7 folded onto 0 (Sunday) after parsing.
const DOW: FieldSpec = { name: 'day-of-week', min: 0, max: 7, names: DAYS, nameBase: 0 };

export interface ParsedCron {
  seconds: boolean[];
  minutes: boolean[];
  hours: boolean[];
  daysOfMonth: boolean[];
  months: boolean[];
  daysOfWeek: boolean[];
  /** Field text starts with `*` or `?`: the field does not restrict the day. */
  domStar: boolean;
  dowStar: boolean;
  /** The 5/6-field form (nicknames expanded). */
  fields: string[];
}

/** The 5- or 6-field form of `expression`, nicknames expanded; throws CronSyntaxError. */
export function cronFields(expression: string): string[] {
  const trimmed = expression.trim();
  if (trimmed.startsWith('@')) {
    const expanded = CRON_NICKNAMES[trimmed.toLowerCase()];
    if (!expanded)
      throw new CronSyntaxError(`unknown nickname "${trimmed}" (use @yearly, @monthly, @weekly, @daily or @hourly)`);
    return expanded.split(' ');
  }
  const fields = trimmed.split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) {
    throw new CronSyntaxError(`expected 5 or 6 fields, got ${trimmed === '' ? 0 : fields.length}`);
  }
  return fields;
}

function value(text: string, spec: FieldSpec): number {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n < spec.min || n > spec.max)
      throw new CronSyntaxError(`${spec.name} value ${n} out of range ${spec.min}-${spec.max}`);
    return n;
  }
  const index = spec.names?.indexOf(text.toLowerCase()) ?? -1;
  if (index < 0) throw new CronSyntaxError(`${spec.name}: "${text}" is not a number${spec.names ? ' or a name' : ''}`);
  return index + (spec.nameBase ?? 0);
}

function parseField(text: string, spec: FieldSpec): boolean[] {
  const set = new Array<boolean>(spec.max + 1).fill(false);
  if (text === '') throw new CronSyntaxError(`${spec.name}: empty field`);
  for (const item of text.split(',')) {
    const m = /^([^/]+)(?:\/(\d+))?$/.exec(item);
    if (!m) throw new CronSyntaxError(`${spec.name}: cannot read "${item}"`);
    const [, base, stepText] = m;
    const step = stepText === undefined ? 1 : Number(stepText);
    if (step < 1) throw new CronSyntaxError(`${spec.name}: step must be at least 1 in "${item}"`);
    let lo: number;
    let hi: number;
    if (base === '*' || base === '?') {
      lo = spec.min;
      hi = spec.max;
    } else if (base!.includes('-')) {
      const parts = base!.split('-');
      if (parts.length !== 2) throw new CronSyntaxError(`${spec.name}: cannot read "${item}"`);
      lo = value(parts[0]!, spec);
      hi = value(parts[1]!, spec);
      if (hi < lo) throw new CronSyntaxError(`${spec.name}: range "${base}" runs backwards`);
    } else {
      lo = value(base!, spec);
      hi = stepText === undefined ? lo : spec.max;
    }
    for (let v = lo; v <= hi; v += step) set[v] = true;
  }
  return set;
}

/** Parses a cron expression; throws CronSyntaxError naming the field at fault. */
export function parseCron(expression: string): ParsedCron {
  const fields = cronFields(expression);
  const six = fields.length === 6 ? fields : ['0', ...fields];
  const [s, mi, h, dom, mo, dow] = six as [string, string, string, string, string, string];
  const daysOfWeek = parseField(dow, DOW);
  if (daysOfWeek[7]) daysOfWeek[0] = true;
  daysOfWeek.length = 7;
  const parsed: ParsedCron = {
    seconds: parseField(s, SECOND),
    minutes: parseField(mi, MINUTE),
    hours: parseField(h, HOUR),
    daysOfMonth: parseField(dom, DOM),
    months: parseField(mo, MONTH),
    daysOfWeek,
    domStar: dom.startsWith('*') || dom.startsWith('?'),
    dowStar: dow.startsWith('*') || dow.startsWith('?'),
    fields,
  };
  if (neverFires(parsed)) throw new CronSyntaxError(`"${expression}" never fires (no month has such a day)`);
  return parsed;
}

/** Throws CronSyntaxError when `expression` is not a cron(8) expression that ever fires. */
export function validateCron(expression: string): void {
  parseCron(expression);
}

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Only day-of-month restricts the day and no chosen month has any chosen day (e.g. `0 0 30 2 *`). */
function neverFires(c: ParsedCron): boolean {
  if (c.domStar || !c.dowStar) return false;
  for (let m = 1; m <= 12; m++) {
    if (!c.months[m]) continue;
    for (let d = 1; d <= DAYS_IN_MONTH[m - 1]!; d++) if (c.daysOfMonth[d]) return false;
  }
  return true;
}

export function dayMatches(c: ParsedCron, dayOfMonth: number, dayOfWeek: number): boolean {
  const dom = c.daysOfMonth[dayOfMonth] === true;
  const dow = c.daysOfWeek[dayOfWeek] === true;
  if (c.domStar || c.dowStar) return dom && dow;
  return dom || dow;
}

function firstFrom(set: boolean[], from: number): number {
  for (let v = from; v < set.length; v++) if (set[v]) return v;
  return -1;
}

/** Searching further than this finds nothing new (a leap day on a given weekday recurs within 28 years). */
const SEARCH_YEARS = 30;

export interface WallClockMatcher {
  /** The first matching wall time strictly after `wallMs`, or null when the cron can never match. */
  nextWallTime(wallMs: number): number | null;
}

export function cronMatcher(expression: string): WallClockMatcher {
  const c = parseCron(expression);
  return { nextWallTime: (wallMs) => nextWallTime(c, wallMs) };
}

export function nextWallTime(c: ParsedCron, wallMs: number): number | null {
  const start = new Date(Math.floor(wallMs / 1000) * 1000 + 1000);
  let y = start.getUTCFullYear();
  let mo = start.getUTCMonth() + 1;
  let d = start.getUTCDate();
  let h = start.getUTCHours();
  let mi = start.getUTCMinutes();
  let s = start.getUTCSeconds();
  const lastYear = y + SEARCH_YEARS;
  while (y <= lastYear) {
    if (!c.months[mo]) {
      const m = firstFrom(c.months, mo + 1);
      if (m < 0) {
        y += 1;
        mo = firstFrom(c.months, 1);
      } else mo = m;
      d = 1;
      h = mi = s = 0;
      continue;
    }
    const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
    if (d > daysInMonth || !dayMatches(c, d, new Date(Date.UTC(y, mo - 1, d)).getUTCDay())) {
      d += 1;
      h = mi = s = 0;
      if (d > daysInMonth) {
        d = 1;
        mo += 1;
        if (mo > 12) {
          mo = 1;
          y += 1;
        }
      }
      continue;
    }
    const hh = firstFrom(c.hours, h);
    if (hh < 0) {
      d += 1;
      h = mi = s = 0;
      continue; // the day overflow is handled above
    }
    if (hh !== h) {
      h = hh;
      mi = s = 0;
    }
    const mm = firstFrom(c.minutes, mi);
    if (mm < 0) {
      h += 1;
      mi = s = 0;
      if (h > 23) {
        d += 1;
        h = 0;
      }
      continue;
    }
    if (mm !== mi) {
      mi = mm;
      s = 0;
    }
    const ss = firstFrom(c.seconds, s);
    if (ss < 0) {
      mi += 1;
      s = 0;
      if (mi > 59) {
        h += 1;
        mi = 0;
        if (h > 23) {
          d += 1;
          h = 0;
        }
      }
      continue;
    }
    return Date.UTC(y, mo - 1, d, h, mi, ss);
  }
  return null;
}

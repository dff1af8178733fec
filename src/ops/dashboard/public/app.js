// The dashboard: fetches /api/* every few seconds and redraws in place. Everything shown goes through
// textContent or attributes (never innerHTML), so a `<script>` inside an error message stays text.
// Unknown fields are ignored and missing ones shown as "–", so the API may grow without breaking the page.
'use strict';

/** Every 3 s; `?refresh=SECONDS` (at least 1) changes it for this tab. */
const REFRESH_MS = (() => {
  const asked = Number(new URLSearchParams(location.search).get('refresh'));
  return Number.isFinite(asked) && asked >= 1 ? asked * 1000 : 3000;
})();
const TOKEN_KEY = 'xyra-dashboard-token';
const TIMELINE_RUNS = 120;
const SVG_NS = 'http://www.w3.org/2000/svg';

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'class') node.className = v;
    else node.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function setText(id, value) {
  $(id).textContent = value === undefined || value === null || value === '' ? '–' : String(value);
}

function fmtMs(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '–';
  if (Math.abs(ms) < 1000) return `${Math.round(ms)} ms`;
  if (Math.abs(ms) < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

function fmtTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, {
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
}

function fmtNum(n) {
  return typeof n === 'number' && Number.isFinite(n) ? n.toLocaleString() : '–';
}

/** The colour class of a run: the five outcomes an operator tells apart. */
function outcomeOf(run) {
  if (run.skipped_reason === 'missed') return 'missed';
  switch (run.status) {
    case 'completed':
    case 'failed':
    case 'skipped':
      return run.status;
    case 'error':
    case 'cancelled':
      return 'failed';
    default:
      return 'triggered'; // triggered, enqueued, running: not decided yet
  }
}

// ---- token gate -------------------------------------------------------------------------------------------

let token = sessionStorage.getItem(TOKEN_KEY);

class Unauthorized extends Error {}

async function api(path) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`/api/${path}`, { headers, cache: 'no-store' });
  if (res.status === 401) throw new Unauthorized();
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error((body && body.error) || `HTTP ${res.status}`);
  return body;
}

function showLogin(message) {
  $('dashboard').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('token').focus();
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  token = $('token').value;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('token').value = '';
  refresh();
});

// ---- sections ---------------------------------------------------------------------------------------------

function renderSchedule(s) {
  setText('cron', s.cron);
  setText('tz', s.timezone);
  const status = String(s.status || 'unknown');
  setText('status', status.toLowerCase());
  const badge = $('schedule-badge');
  badge.textContent = status.toLowerCase();
  badge.className = `badge ${status === 'ACTIVE' ? 'ok' : 'warn'}`;
  const streak = typeof s.consecutive_failures === 'number' ? s.consecutive_failures : null;
  setText('streak', streak);
  $('streak').className = streak ? 'bad' : '';
  $('next-slots').replaceChildren(
    ...(Array.isArray(s.next_slots) ? s.next_slots : []).map((t) => el('li', {}, fmtTime(t))),
  );
  const note = $('pause-note');
  if (s.status !== 'ACTIVE' && (s.paused_at || s.paused_reason)) {
    note.hidden = false;
    note.textContent = `Paused ${fmtTime(s.paused_at)}${s.paused_by ? ` by ${s.paused_by}` : ''}: ${s.paused_reason || '(no note)'}`;
  } else {
    note.hidden = true;
    note.textContent = '';
  }
}

function renderStats(st) {
  const rate = typeof st.success_rate === 'number' ? `${(st.success_rate * 100).toFixed(1)} %` : '–';
  setText('success-rate', rate);
  $('success-rate').className = `big ${typeof st.success_rate === 'number' && st.success_rate < 0.9 ? 'bad' : ''}`;
  const byStatus = st.by_status && typeof st.by_status === 'object' ? st.by_status : {};
  $('by-status').replaceChildren(
    ...Object.entries(byStatus).map(([k, v]) =>
      el('li', { class: outcomeOf({ status: k }) }, el('b', {}, fmtNum(v)), ` ${k}`),
    ),
  );
  const items = st.items || {};
  $('items').textContent =
    `${fmtNum(st.runs)} runs · items ${fmtNum(items.succeeded)} ok / ${fmtNum(items.failed)} failed`;
  const lag = st.delay_ms || {};
  const dur = st.duration_ms || {};
  setText('lag-p50', fmtMs(lag.p50));
  setText('lag-p95', fmtMs(lag.p95));
  setText('lag-max', fmtMs(lag.max));
  setText('dur-p50', fmtMs(dur.p50));
  setText('dur-p95', fmtMs(dur.p95));
  setText('dur-max', fmtMs(dur.max));
  const r = st.retries || {};
  $('retries').textContent =
    `retried runs ${fmtNum(r.runs_with_retries)} of ${fmtNum(r.api_runs)} · missed slots ${fmtNum(st.missed_slots)}`;
}

function runSummary(run) {
  const lines = [
    `${outcomeOf(run)} · ${run.workflow_id}`,
    `slot ${fmtTime(run.scheduled_time)}${run.manual ? ' (manual)' : ''}`,
    `processed ${fmtNum(run.processed)} · succeeded ${fmtNum(run.succeeded)} · failed ${fmtNum(run.failed)}`,
    `lag ${fmtMs(run.delay_ms)} · duration ${fmtMs(run.duration_ms)} · attempts ${fmtNum(run.attempts)}`,
  ];
  if (run.skipped_reason) lines.push(`skipped: ${run.skipped_reason}`);
  if (run.error) lines.push(`error: ${run.error}`);
  else if (run.message) lines.push(run.message);
  return lines.join('\n');
}

let selectedRun = null;

function showRun(run) {
  selectedRun = run.workflow_id;
  const box = $('run-detail');
  box.hidden = false;
  box.replaceChildren(el('pre', {}, runSummary(run)));
  for (const m of document.querySelectorAll('.mark.selected')) m.classList.remove('selected');
  const mark = document.querySelector(`.mark[data-workflow-id="${CSS.escape(run.workflow_id)}"]`);
  if (mark) mark.classList.add('selected');
}

function renderRuns(runs) {
  // Oldest left, newest right: time reads like a chart.
  const ordered = runs.slice(0, TIMELINE_RUNS).reverse();
  $('timeline').replaceChildren(
    ...ordered.map((run) => {
      const mark = el('button', {
        type: 'button',
        class: `mark ${outcomeOf(run)}${run.workflow_id === selectedRun ? ' selected' : ''}`,
        role: 'listitem',
        'data-workflow-id': run.workflow_id,
        'data-status': run.status,
        title: runSummary(run),
        'aria-label': `${outcomeOf(run)} run ${run.workflow_id}`,
      });
      mark.addEventListener('click', () => showRun(run));
      return mark;
    }),
  );
  const first = ordered[0];
  const last = ordered[ordered.length - 1];
  $('timeline-range').textContent = first
    ? `${fmtTime(first.scheduled_time)} → ${fmtTime(last.scheduled_time)} (${ordered.length} runs)`
    : '(no runs yet)';
  const selected = runs.find((r) => r.workflow_id === selectedRun);
  if (selected) $('run-detail').replaceChildren(el('pre', {}, runSummary(selected)));

  const failures = runs.filter((r) => outcomeOf(r) === 'failed').slice(0, 8);
  $('failures').replaceChildren(
    ...(failures.length
      ? failures.map((r) =>
          el(
            'li',
            { 'data-workflow-id': r.workflow_id },
            el(
              'div',
              { class: 'failure-head' },
              el('span', { class: 'when' }, fmtTime(r.scheduled_time)),
              el('code', {}, r.workflow_id),
            ),
            el('div', { class: 'error-text' }, r.error || r.message || r.status),
          ),
        )
      : [el('li', { class: 'muted' }, 'no failed runs among the recent ones')]),
  );
  drawChart(ordered);
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/** Lag and duration per run on one time axis; the y axis is shared and labelled at its maximum. */
function drawChart(ordered) {
  const chart = $('chart');
  const W = 900,
    H = 180,
    PAD = 24;
  const points = ordered.filter((r) => r.scheduled_time);
  const children = [svg('line', { x1: PAD, y1: H - PAD, x2: W, y2: H - PAD, class: 'axis' })];
  if (points.length >= 2) {
    const t0 = Date.parse(points[0].scheduled_time);
    const t1 = Date.parse(points[points.length - 1].scheduled_time);
    const values = points.flatMap((r) => [r.delay_ms, r.duration_ms]).filter((v) => typeof v === 'number');
    const yMax = Math.max(1, ...values);
    const x = (r) => PAD + ((Date.parse(r.scheduled_time) - t0) / Math.max(1, t1 - t0)) * (W - PAD - 4);
    const y = (v) => H - PAD - (Math.max(0, v) / yMax) * (H - 2 * PAD);
    for (const [key, cls] of [
      ['delay_ms', 'lag'],
      ['duration_ms', 'duration'],
    ]) {
      const pts = points
        .filter((r) => typeof r[key] === 'number')
        .map((r) => `${x(r).toFixed(1)},${y(r[key]).toFixed(1)}`);
      if (pts.length) children.push(svg('polyline', { points: pts.join(' '), class: `series ${cls}` }));
    }
    const top = svg('text', { x: PAD + 4, y: PAD - 8, class: 'tick' });
    top.textContent = fmtMs(yMax);
    const left = svg('text', { x: PAD, y: H - 6, class: 'tick' });
    left.textContent = fmtTime(points[0].scheduled_time);
    const right = svg('text', { x: W - 4, y: H - 6, class: 'tick end' });
    right.textContent = fmtTime(points[points.length - 1].scheduled_time);
    children.push(svg('line', { x1: PAD, y1: PAD, x2: W, y2: PAD, class: 'grid' }), top, left, right);
  }
  chart.replaceChildren(...children);
}

function renderDatasets(list) {
  const box = $('datasets');
  if (!Array.isArray(list) || list.length === 0) {
    box.replaceChildren(el('p', { class: 'muted' }, 'no datasets ingested yet'));
    return;
  }
  box.replaceChildren(
    ...list.map((d) => {
      const total = typeof d.records === 'number' ? d.records : null;
      const done = typeof d.records_done === 'number' ? d.records_done : null;
      const pct = total && done !== null ? Math.min(100, (done / total) * 100) : 0;
      const byKind = d.errors && typeof d.errors.by_kind === 'object' && d.errors.by_kind ? d.errors.by_kind : {};
      const kinds = Object.entries(byKind).filter(([, v]) => v > 0);
      const bar = el('div', {
        class: 'bar',
        role: 'progressbar',
        'aria-valuemin': 0,
        'aria-valuemax': total ?? 0,
        'aria-valuenow': done ?? 0,
      });
      const fill = el('span');
      fill.style.width = `${pct.toFixed(1)}%`; // CSSOM, not a style attribute: the CSP forbids inline styles
      bar.append(fill);
      return el(
        'div',
        { class: `dataset ${d.state || ''}`, 'data-dataset': d.dataset, 'data-records-done': done ?? '' },
        el(
          'div',
          { class: 'dataset-head' },
          el('b', {}, d.dataset || '(unnamed)'),
          el('span', { class: `state ${d.state || ''}` }, d.state || ''),
        ),
        bar,
        el(
          'div',
          { class: 'muted' },
          `${fmtNum(done)} of ${fmtNum(total)} records · ${d.records_per_s ? `${fmtNum(d.records_per_s)} records/s` : '– records/s'}`,
        ),
        el(
          'div',
          { class: 'kinds' },
          kinds.length ? kinds.map(([k, v]) => `${k} ${fmtNum(v)}`).join(' · ') : 'no errors',
        ),
      );
    }),
  );
}

function errorTextOf(row) {
  const m = row.message || {};
  const e = m.error;
  if (typeof e === 'string') return e;
  if (e && typeof e === 'object' && typeof e.message === 'string') return e.message;
  return JSON.stringify(e ?? m);
}

function renderErrors(rows) {
  $('errors').replaceChildren(
    ...(Array.isArray(rows) && rows.length
      ? rows.map((r) => {
          const m = r.message || {};
          return el(
            'tr',
            { 'data-error-key': r.error_key },
            el('td', { class: 'when' }, fmtTime(r.created_at)),
            el('td', {}, el('code', {}, m.task_key || r.error_key)),
            el('td', {}, m.kind || '–'),
            el('td', {}, m.attempts ?? '–'),
            el('td', { class: 'error-text' }, errorTextOf(r)),
          );
        })
      : [el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'no errors recorded'))]),
  );
}

function renderSchedules(list) {
  $('schedules').replaceChildren(
    ...(Array.isArray(list) && list.length
      ? list.map((s) =>
          el(
            'tr',
            { 'data-schedule': s.name },
            el('td', {}, el('code', {}, s.name)),
            el(
              'td',
              { class: s.status === 'PAUSED' ? 'error-text' : '' },
              s.status + (s.paused_reason ? ` (${s.paused_reason})` : ''),
            ),
            el('td', {}, el('code', {}, s.cron), ` ${s.timezone}`),
            el('td', { class: 'when' }, s.next_slots && s.next_slots.length ? fmtTime(s.next_slots[0]) : '–'),
            el('td', {}, s.last_run ? s.last_run.status : '–'),
            el('td', {}, String(s.consecutive_failures)),
            el('td', {}, el('code', {}, JSON.stringify(s.payload))),
          ),
        )
      : [el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'no schedules'))]),
  );
}

// ---- refresh loop -----------------------------------------------------------------------------------------

const SECTIONS = [
  ['schedule', renderSchedule, 'schedule-card'],
  ['schedules', renderSchedules, 'schedules'],
  ['stats?since=24h', renderStats, 'rate-card'],
  [`runs?limit=${TIMELINE_RUNS}`, renderRuns, 'timeline'],
  ['datasets', renderDatasets, 'datasets'],
  ['errors?limit=20', renderErrors, 'errors'],
];

let timer = null;
let refreshes = 0;

async function refresh() {
  clearTimeout(timer);
  const results = await Promise.allSettled(SECTIONS.map(([path]) => api(path)));
  if (results.some((r) => r.status === 'rejected' && r.reason instanceof Unauthorized)) {
    const hadToken = Boolean(token);
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(hadToken ? 'That token was not accepted.' : '');
    return; // no polling while locked: the form restarts it
  }
  $('login').hidden = true;
  $('dashboard').hidden = false;
  results.forEach((r, i) => {
    const [path, render, sectionId] = SECTIONS[i];
    const section = $(sectionId);
    if (r.status === 'fulfilled') {
      section.removeAttribute('data-error');
      try {
        render(r.value);
      } catch (e) {
        console.warn(`rendering ${path} failed`, e);
      }
    } else {
      section.setAttribute('data-error', String(r.reason && r.reason.message));
    }
  });
  const failed = results.filter((r) => r.status === 'rejected').length;
  $('refreshed').textContent =
    `updated ${new Date().toLocaleTimeString()}${failed ? ` · ${failed} source(s) unavailable` : ''}`;
  // A counter people never see, so a test can wait for "the next refresh" instead of guessing a delay.
  document.body.dataset.refreshes = String(++refreshes);
  timer = setTimeout(refresh, REFRESH_MS);
}

refresh();

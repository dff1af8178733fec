// `/api/schedules`: schedules as data over HTTP (contract in ARCHITECTURE.md). Reads are like the rest of
// `/api` (DASHBOARD_TOKEN when set); every mutation needs `Authorization: Bearer <ADMIN_TOKEN>`, compared in
// constant time: without ADMIN_TOKEN configured mutations answer 403, and DASHBOARD_TOKEN never authorizes
// one. Bodies over 64 KB answer 413; a bad field 400 {"error", "field"}; an existing name 409; an unknown one
// 404. Every change goes through the schedules store (audit row + NOTIFY in the same transaction).
import { createHash, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import { DBOS } from '@dbos-inc/dbos-sdk';
import type pg from 'pg';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { EvaluationBackfill, backfillWorkflowId, slotWorkflowId } from '../evaluation/backfill.js';
import { BATCH_QUEUE } from '../evaluation/slotContext.js';
import { EvaluationBatch } from '../evaluation/evaluationBatch.js';
import { recordScheduleEvent } from '../evaluation/scheduleEvents.js';
import {
  parseSchedulePatch,
  parseScheduleSpec,
  scheduleDefaults,
  ScheduleValidationError,
} from '../evaluation/scheduleSpec.js';
import {
  createSchedule,
  deleteSchedule,
  getScheduleRow,
  pauseScheduleRow,
  resumeScheduleRow,
  ScheduleExistsError,
  UnknownScheduleError,
  updateSchedule,
} from '../evaluation/scheduleStore.js';
import { manualWorkflowIdOf, type SlotContext } from '../evaluation/slotContext.js';
import { DBOS_INTERNAL_QUEUE } from '../runtime/dbosInternals.js';
import { MAX_BACKFILL_SLOTS, planBackfill } from './backfill.js';
import { listScheduleViews, scheduleView } from './scheduleViews.js';
import type { RouteHook } from './httpServer.js';
import { BodyTooLargeError, hasBody, MAX_BODY_BYTES, readBody } from './readBody.js';

export interface SchedulesApiDeps {
  config: Config;
  systemPool: pg.Pool;
  appPool: pg.Pool;
  logger: Logger;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** 405 with the methods this route does answer. */
class MethodNotAllowedError extends HttpError {
  constructor(readonly allow: readonly string[]) {
    super(405, 'method not allowed');
  }
}

function bearerIs(header: string | undefined, token: string): boolean {
  const match = /^Bearer (.+)$/.exec(header ?? '');
  if (!match) return false;
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(match[1] ?? ''), digest(token));
}

/** The body as JSON (empty → {}), read through the bounded reader: 413 past MAX_BODY_BYTES, 400 when not JSON. */
async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const text = (await readBody(req, MAX_BODY_BYTES)).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, 'the body is not valid JSON', 'body');
  }
}

const ROUTE = /^\/api\/schedules(?:\/([^/]+)(?:\/(pause|resume|trigger|backfill))?)?\/?$/;

export function createSchedulesApi(deps: SchedulesApiDeps): RouteHook {
  const { config, appPool, systemPool } = deps;
  const defaults = scheduleDefaults(config);

  async function handle(
    req: http.IncomingMessage,
    name: string | undefined,
    action: string | undefined,
  ): Promise<{ status: number; body?: unknown }> {
    const method = req.method ?? 'GET';
    const isRead = (method === 'GET' || method === 'HEAD') && action === undefined;
    if (isRead) {
      if (hasBody(req)) await readBody(req, MAX_BODY_BYTES); // bounded, then dropped: reads take no body
      const auth = req.headers.authorization;
      if (
        config.dashboardToken !== undefined &&
        !bearerIs(auth, config.dashboardToken) &&
        !(config.adminToken && bearerIs(auth, config.adminToken))
      ) {
        throw new HttpError(401, 'unauthorized: send Authorization: Bearer <DASHBOARD_TOKEN>');
      }
      if (name === undefined) return { status: 200, body: await listScheduleViews(systemPool, appPool) };
      const row = await getScheduleRow(appPool, name);
      if (!row) throw new HttpError(404, `schedule "${name}" not found`);
      return { status: 200, body: await scheduleView(row, systemPool, appPool) };
    }
    const allowed =
      name === undefined
        ? ['GET', 'HEAD', 'POST']
        : action === undefined
          ? ['GET', 'HEAD', 'PATCH', 'DELETE']
          : ['POST'];
    if (!allowed.includes(method)) throw new MethodNotAllowedError(allowed);
    if (!config.adminToken) throw new HttpError(403, 'schedule changes over HTTP are disabled: ADMIN_TOKEN is not set');
    if (!bearerIs(req.headers.authorization, config.adminToken)) {
      throw new HttpError(
        req.headers.authorization ? 403 : 401,
        'send Authorization: Bearer <ADMIN_TOKEN> to change schedules',
      );
    }
    const body = await readJson(req);
    if (body === null || typeof body !== 'object' || Array.isArray(body))
      throw new HttpError(400, 'expected a JSON object', 'body');
    const fields = body as Record<string, unknown>;

    if (name === undefined) {
      const spec = parseScheduleSpec(body, defaults);
      const row = await createSchedule(appPool, spec, 'api');
      return { status: 201, body: await scheduleView(row, systemPool, appPool) };
    }
    if (action === undefined && method === 'PATCH') {
      if (fields.name !== undefined && fields.name !== name)
        throw new ScheduleValidationError('name', 'cannot be changed');
      const patch = parseSchedulePatch(body);
      const result = await updateSchedule(appPool, name, patch, 'api');
      return { status: 200, body: await scheduleView(result.schedule!, systemPool, appPool) };
    }
    if (action === undefined && method === 'DELETE') {
      await deleteSchedule(appPool, name, 'api');
      return { status: 204 };
    }
    if (action === 'pause' || action === 'resume') {
      const note = fields.note;
      if (note !== undefined && note !== null && typeof note !== 'string')
        throw new ScheduleValidationError('note', 'must be a string');
      const result =
        action === 'pause'
          ? await pauseScheduleRow(appPool, name, { note: note ?? null, by: 'api' })
          : await resumeScheduleRow(appPool, name, 'api');
      return { status: 200, body: await scheduleView(result.schedule!, systemPool, appPool) };
    }
    if (action === 'trigger') {
      if (!(await getScheduleRow(appPool, name))) throw new UnknownScheduleError(name);
      const now = new Date();
      const workflowID = manualWorkflowIdOf(name, now);
      const context: SlotContext = { schedule: name, manual: true };
      await DBOS.startWorkflow(EvaluationBatch.trigger, { workflowID, queueName: BATCH_QUEUE })(now, context);
      return { status: 202, body: { workflow_id: workflowID } };
    }
    // backfill
    const instant = (field: 'from' | 'to'): Date => {
      const v = fields[field];
      if (typeof v !== 'string' || !/^\d{4}-\d\d-\d\dT.*(Z|[+-]\d\d:\d\d)$/.test(v) || Number.isNaN(Date.parse(v))) {
        throw new ScheduleValidationError(field, 'expected an ISO-8601 instant with a zone');
      }
      return new Date(v);
    };
    const from = instant('from');
    const to = instant('to');
    if (from >= to) throw new ScheduleValidationError('to', 'must be after from');
    if (to.getTime() > Date.now())
      throw new ScheduleValidationError('to', 'is in the future; slots to come fire on their own');
    const plan = await planBackfill(appPool, from, to, name);
    if (plan.slots.length > MAX_BACKFILL_SLOTS)
      throw new ScheduleValidationError('from', `the range holds more than ${MAX_BACKFILL_SLOTS} slots`);
    const ids = plan.slots.map((s) => slotWorkflowId(s, name));
    const existing = new Set(
      (await DBOS.listWorkflows({ workflowIDs: ids, loadInput: false, loadOutput: false })).map((w) => w.workflowID),
    );
    const toRun = plan.slots.filter((s) => !existing.has(slotWorkflowId(s, name))).map((s) => s.toISOString());
    const requestId = toRun.length > 0 ? backfillWorkflowId(from, to, name) : null;
    if (requestId)
      await DBOS.startWorkflow(EvaluationBackfill, { workflowID: requestId, queueName: DBOS_INTERNAL_QUEUE }).run(
        toRun,
        name,
      );
    await recordScheduleEvent(appPool, {
      scheduleName: name,
      kind: 'backfill',
      note: `backfill ${from.toISOString()} → ${to.toISOString()}: ${toRun.length} slots to run, ${plan.slots.length - toRun.length} already run`,
      details: {
        from: from.toISOString(),
        to: to.toISOString(),
        slots: plan.slots.length,
        enqueued: toRun.length,
        request_id: requestId,
        by: 'api',
      },
    });
    return { status: 202, body: { request_id: requestId, slots: plan.slots.length, enqueued: toRun } };
  }

  return (req, res, url) => {
    const m = ROUTE.exec(url.pathname);
    if (!m) return undefined;
    const send = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
      if (res.headersSent) return;
      if (status === 204) {
        res.writeHead(204, { 'cache-control': 'no-store' });
        res.end();
        return;
      }
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
      res.end(JSON.stringify(body));
    };
    let name: string | undefined;
    try {
      name = m[1] === undefined ? undefined : decodeURIComponent(m[1]);
    } catch {
      send(400, { error: 'unparsable schedule name in the path', field: 'name' });
      return Promise.resolve();
    }
    return handle(req, name, m[2]).then(
      (r) => send(r.status, r.body),
      (e: unknown) => {
        if (e instanceof ScheduleValidationError) return send(400, { error: e.message, field: e.field });
        if (e instanceof ScheduleExistsError) return send(409, { error: e.message, field: 'name' });
        if (e instanceof UnknownScheduleError) return send(404, { error: e.message });
        // The unread rest of a refused body goes with the connection.
        if (e instanceof BodyTooLargeError) return send(413, { error: e.message }, { connection: 'close' });
        if (e instanceof MethodNotAllowedError)
          return send(405, { error: e.message }, { allow: e.allow.join(', '), connection: 'close' });
        if (e instanceof HttpError) return send(e.status, { error: e.message, ...(e.field ? { field: e.field } : {}) });
        // Anything else (a database error, a timeout) is the server's generic 5xx: an error id, detail in the log.
        throw e;
      },
    );
  };
}

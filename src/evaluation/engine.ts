// The schedule engine: the one answer to "which slots fire". Every replica runs one. It holds every schedule
// row in memory (re-read on each NOTIFY from the store, so an edit reaches it within milliseconds, and in full
// every RELOAD_MS as a safety net), sleeps on ONE timer until the next due slot across all schedules, and at
// that instant starts each due slot's run under its slot workflow ID (`sched-<name>-<ISO>`): all replicas
// start the same IDs, DBOS's workflow-status insert lets exactly one of them run. A schedule that is not due
// costs nothing (no poll); the timer is re-armed when a change arrives.
//
// After downtime, the missed slots are decided by our cron rules too (never DBOS's matcher): every slot in
// (fired_through, now] of each ACTIVE schedule gets a run, enqueued on the batch queue, and each run's gate
// applies the schedule's catch-up policy. Slots older than the schedule's catch_up_window are summed up in
// one `missed_summary` event instead (one replica wins the compare-and-set of fired_through).
import { DBOS } from '@dbos-inc/dbos-sdk';
import pg from 'pg';
import { parseDuration } from '../config.js';
import type { Logger } from '../logger.js';
import { markScheduledRun } from '../runtime/dbosInternals.js';
import { forgetScheduleTimer, initScheduleMetrics, recordMissedSlots, recordNextSlot, recordSchedulePaused } from '../telemetry/metrics.js';
import { EvaluationBatch } from './evaluationBatch.js';
import { recordScheduleEvent } from './scheduleEvents.js';
import { SpecSlots } from './scheduleSpec.js';
import {
  advanceFiredThrough,
  getScheduleRow,
  listScheduleRows,
  replaceFiredThrough,
  SCHEDULES_CHANNEL,
  type ScheduleRow,
} from './scheduleStore.js';
import { slotWorkflowIdOf, type SlotContext } from './slotContext.js';
import { systemClock, type Clock } from './slotFiring.js';

export const BATCH_QUEUE = 'evaluation-batch';
/** Safety net behind LISTEN/NOTIFY (a notification lost with a broken connection): a full re-read. */
const RELOAD_MS = 30_000;
/**
 * The run is started this long before its slot and waits for the slot inside the workflow (before it records
 * its actual start), so the start's commits are not part of the slot's lag.
 */
export const FIRE_LEAD_MS = 50;
/** At most this many missed slots of one schedule are created one by one at start-up. */
const MAX_CATCH_UP_SLOTS = 10_000;

export interface EngineDeps {
  appPool: pg.Pool;
  systemPool: pg.Pool;
  /** For the LISTEN connection (a dedicated client, outside the pool). */
  appDatabaseUrl: string;
  logger: Logger;
  clock?: Clock;
  /**
   * Called once per schedule the first time this engine learns of it (start-up or created at runtime):
   * service.ts seeds its gauges from the history there (the engine's layer does not read the history).
   */
  onScheduleLearned?(name: string): void;
}

interface Entry {
  row: ScheduleRow;
  slots: SpecSlots;
  /** The next slot this engine will fire, or null (paused, ended). */
  next: Date | null;
}

export class ScheduleEngine {
  private readonly entries = new Map<string, Entry>();
  private readonly stopController = new AbortController();
  private wake = new AbortController();
  private listener: pg.Client | undefined;
  private loop: Promise<void> | undefined;
  private reloadTimer: NodeJS.Timeout | undefined;
  private readonly clock: Clock;
  /** While starting: plan from this instant, not the clock's now. */
  private planFrom: number | undefined;
  /** Slots fired by this engine, for tests and the bench. */
  firedCount = 0;

  constructor(private readonly deps: EngineDeps) {
    this.clock = deps.clock ?? systemClock;
  }

  /**
   * LISTEN first, then read: a change committed in between is not lost. Fires every slot strictly after
   * `from`; slots up to `from` are catchUp(from)'s (call it with the same instant).
   */
  async start(from: Date = new Date(this.clock.now())): Promise<void> {
    await this.listen();
    this.planFrom = from.getTime();
    await this.reloadAll();
    this.planFrom = undefined;
    this.reloadTimer = setInterval(() => {
      this.reloadAll().catch((e: unknown) => this.deps.logger.warn({ err: String(e) }, 'schedule reload failed'));
    }, RELOAD_MS);
    this.reloadTimer.unref();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopController.abort();
    this.wake.abort();
    if (this.reloadTimer) clearInterval(this.reloadTimer);
    await this.loop;
    await this.listener?.end().catch(() => undefined);
  }

  /** The schedules as this engine sees them (name → version), for tests. */
  versions(): Map<string, number> {
    return new Map([...this.entries].map(([k, e]) => [k, e.row.version]));
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.deps.appDatabaseUrl, application_name: 'xyra-schedules-listen' });
    client.on('error', (e) => {
      this.deps.logger.warn({ err: e.message }, 'schedule LISTEN connection lost: reconnecting');
      this.listener = undefined;
      void this.relisten();
    });
    client.on('notification', (n) => {
      if (n.channel !== SCHEDULES_CHANNEL || !n.payload) return;
      this.reloadOne(n.payload).catch((e: unknown) => this.deps.logger.warn({ err: String(e), schedule: n.payload }, 'schedule re-read failed'));
    });
    await client.connect();
    await client.query(`listen ${SCHEDULES_CHANNEL}`);
    this.listener = client;
  }

  private async relisten(): Promise<void> {
    while (!this.stopController.signal.aborted && !this.listener) {
      try {
        await this.listen();
        await this.reloadAll();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 1_000));
      }
    }
  }

  async reloadAll(): Promise<void> {
    const rows = await listScheduleRows(this.deps.appPool);
    const seen = new Set<string>();
    for (const row of rows) {
      seen.add(row.name);
      this.put(row);
    }
    for (const name of [...this.entries.keys()]) if (!seen.has(name)) this.forget(name);
    this.rearm();
  }

  async reloadOne(name: string): Promise<void> {
    const row = await getScheduleRow(this.deps.appPool, name);
    if (row) this.put(row);
    else this.forget(name);
    this.rearm();
  }

  /** A deleted schedule: out of the plan, and its timer gauges say "no next slot" (no overdue alert). */
  private forget(name: string): void {
    if (!this.entries.delete(name)) return;
    forgetScheduleTimer(name);
  }

  private put(row: ScheduleRow): void {
    const known = this.entries.get(row.name);
    if (!known) {
      // Every schedule's series exist from the moment this engine knows it (a counter first seen at 1 shows
      // no increase); the label set is bounded by the schedules in the store.
      initScheduleMetrics(row.name);
      try {
        this.deps.onScheduleLearned?.(row.name);
      } catch (e) {
        this.deps.logger.warn({ schedule: row.name, err: String(e) }, 'metrics: schedule not seeded');
      }
    }
    recordSchedulePaused(row.name, row.status === 'PAUSED');
    if (known && known.row.version === row.version) {
      known.row = row; // fired_through moved: nothing to re-plan
      return;
    }
    const slots = new SpecSlots(row);
    // The new version fires from the first slot after it took effect (and after what was already fired).
    const after = new Date(Math.max(this.planFrom ?? this.clock.now(), Date.parse(row.effective_from), row.fired_through ? Date.parse(row.fired_through) : 0));
    const next = row.status === 'ACTIVE' ? safeNext(slots, after) : null;
    this.entries.set(row.name, { row, slots, next });
    this.recordTimer(row.name, slots, next);
  }

  /** The next slot the timer waits for and the interval after it: the `next_slot_time` / `slot_interval` gauges. */
  private recordTimer(name: string, slots: SpecSlots, next: Date | null): void {
    if (next === null) {
      forgetScheduleTimer(name, { keepInterval: true }); // paused or ended: nothing is due
      return;
    }
    const following = safeNext(slots, next);
    recordNextSlot(name, next, following);
  }

  private rearm(): void {
    this.wake.abort();
  }

  private nextDue(): number {
    let min = Infinity;
    for (const e of this.entries.values()) if (e.next && e.next.getTime() < min) min = e.next.getTime();
    return min;
  }

  private async run(): Promise<void> {
    const stop = this.stopController.signal;
    while (!stop.aborted) {
      this.wake = new AbortController();
      const due = this.nextDue();
      const signal = AbortSignal.any([stop, this.wake.signal]);
      // Nothing scheduled: sleep until a change wakes us (an hour at most, then look again).
      const target = due === Infinity ? this.clock.now() + 3_600_000 : due - FIRE_LEAD_MS;
      await this.clock.sleepUntil(target, signal);
      if (stop.aborted) break;
      if (this.wake.signal.aborted || due === Infinity || this.clock.now() < due - FIRE_LEAD_MS) continue;
      const firing: Promise<void>[] = [];
      for (const e of this.entries.values()) {
        if (!e.next || e.next.getTime() !== due) continue;
        const slot = e.next;
        e.next = safeNext(e.slots, slot);
        this.recordTimer(e.row.name, e.slots, e.next);
        firing.push(this.fire(e.row, slot, false));
      }
      await Promise.all(firing);
    }
  }

  /** Starts the slot's run (on the batch queue when caught up, at once otherwise) and moves fired_through. */
  async fire(row: ScheduleRow, slot: Date, catchUp: boolean): Promise<void> {
    const workflowID = slotWorkflowIdOf(row.name, slot);
    const context: SlotContext = { schedule: row.name, version: row.version, ...(catchUp ? { catchUp: true } : {}) };
    try {
      if (catchUp) {
        await DBOS.startWorkflow(EvaluationBatch.trigger, { workflowID, queueName: BATCH_QUEUE })(slot, context);
      } else {
        await DBOS.startWorkflow(EvaluationBatch.trigger, { workflowID })(slot, context);
        await markScheduledRun(this.deps.systemPool, workflowID, row.name, BATCH_QUEUE);
      }
      await advanceFiredThrough(this.deps.appPool, row.name, row.version, slot);
      this.firedCount += 1;
    } catch (e) {
      this.deps.logger.warn({ schedule: row.name, slot: slot.toISOString(), err: e instanceof Error ? e.message : String(e) }, 'slot not fired');
    }
  }

  /**
   * Missed slots of every ACTIVE schedule, by our rules: those in (fired_through, now] get a run each (the
   * run's catch-up policy decides), those older than the schedule's window one `missed_summary` event.
   */
  async catchUp(now: Date = new Date(this.clock.now())): Promise<number> {
    let fired = 0;
    for (const row of await listScheduleRows(this.deps.appPool)) {
      if (row.status !== 'ACTIVE' || !row.fired_through) continue;
      fired += await this.catchUpOne(row, now);
    }
    return fired;
  }

  private async catchUpOne(row: ScheduleRow, now: Date): Promise<number> {
    const slots = new SpecSlots(row);
    let from = new Date(row.fired_through!);
    const windowStart = new Date(now.getTime() - parseDuration(row.catch_up_window));
    if (from < windowStart) {
      const old = slots.between(from, windowStart, MAX_CATCH_UP_SLOTS * 100);
      if (old.length > 0 && (await replaceFiredThrough(this.deps.appPool, row.name, row.version, from, windowStart))) {
        const summary = { count: old.length, first_slot: old[0]!.toISOString(), last_slot: old[old.length - 1]!.toISOString(), window_ms: now.getTime() - windowStart.getTime() };
        await recordScheduleEvent(this.deps.appPool, {
          scheduleName: row.name,
          kind: 'missed_summary',
          note: `${old.length} slot(s) missed while no replica ran, older than the catch-up window: not run`,
          details: summary,
        });
        this.deps.logger.warn({ schedule: row.name, ...summary }, 'missed slots beyond the catch-up window summed up, not run');
        recordMissedSlots(row.name, old.length, now);
      }
      from = windowStart;
    }
    const missed = slots.between(from, now, MAX_CATCH_UP_SLOTS);
    for (const slot of missed) await this.fire(row, slot, true);
    if (missed.length > 0) this.deps.logger.info({ schedule: row.name, slots: missed.length }, 'missed slots caught up');
    return missed.length;
  }
}

function safeNext(slots: SpecSlots, after: Date): Date | null {
  try {
    return slots.next(after);
  } catch {
    return null; // a cron that never fires again
  }
}

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
//
// Behind the execution fence (runtime/executionFence.ts): while this replica's claim is unconfirmed (a
// database outage, a partition) the engine fires nothing. When the fence opens it runs the same catch-up over
// (fired_through, now] of every schedule (each slot by its fixed ID, so whoever starts it first runs it), then
// plans from that instant: every slot that fell inside the outage gets exactly one run, under its policy.
import { DBOS } from '@dbos-inc/dbos-sdk';
import pg from 'pg';
import { parseDuration } from '../config.js';
import type { Logger } from '../logger.js';
import { markScheduledRuns } from '../runtime/dbosInternals.js';
import {
  forgetScheduleTimer,
  initScheduleMetrics,
  recordMissedSlots,
  recordNextSlot,
  recordSchedulePaused,
} from '../telemetry/metrics.js';
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
import { BATCH_QUEUE, MAX_FIRE_LEAD_MS, slotWorkflowIdOf, type SlotContext } from './slotContext.js';
import { systemClock, type Clock } from './clock.js';

/** Safety net behind LISTEN/NOTIFY (a notification lost with a broken connection): a full re-read. */
const RELOAD_MS = 30_000;
/**
 * The run is started this long before its slot and waits for the slot inside the workflow (before it records
 * its actual start), so the start's commits are not part of the slot's lag.
 */
export const FIRE_LEAD_MS = 50;
/**
 * Many slots due at one instant (500 schedules at :00) take this long each to start (a workflow_status insert
 * each, on every replica) until the engine has measured its own figure. Generous: a lead too long costs nothing,
 * one too short is lag. The lead grows with the herd, so its last run starts before the slot too. Measured here:
 * ~5 ms a run on 2 quiet cores, 13–50 ms under a load of 8–10.
 */
const INITIAL_MS_PER_START = 10;
/** Headroom on the measured cost: the lead is this many times the expected start time of the herd. */
const LEAD_SAFETY = 1.5;
/** A change heard this late still fires the new version's slots since it took effect (see put). */
const LATE_CHANGE_MS = 60_000;
/** At most this many missed slots of one schedule are created one by one at start-up. */
const MAX_CATCH_UP_SLOTS = 10_000;

/** What the engine needs of the execution fence: is it open, and a nudge on every transition. */
export interface EngineFence {
  isOpen(): boolean;
  onChange(listener: (open: boolean) => void): void;
}

/** Fenced and waiting to open: how often the engine looks again (the fence can also close by time, silently). */
const FENCED_POLL_MS = 250;
/** LISTEN connection lost: first retry after this, doubling up to RELISTEN_MAX_MS. */
const RELISTEN_MIN_MS = 250;
const RELISTEN_MAX_MS = 2_000;

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
  /** Nothing fires while it is closed; when it opens the slots in between are caught up. */
  fence?: EngineFence;
  /** A connection of the engine's failed: true when an outage is already known (then said at debug only). */
  connectionLost?: (e: Error) => boolean;
  /** The engine resumed firing after a fence at this instant (slots before it were missed). */
  onResumed?: (at: Date) => void;
  /**
   * The live replicas and this one's place among them (failover's view): each starts its own share of a herd
   * first, and the rest only where its owner has not (see fireAll). Unset: one replica, it starts everything.
   */
  share?: () => { index: number; count: number };
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
  private relistening = false;
  /** Fenced, or a slot failed to start: (fired_through, now] is caught up once the fence is open. */
  private catchUpPending = false;
  private loop: Promise<void> | undefined;
  private reloadTimer: NodeJS.Timeout | undefined;
  private readonly clock: Clock;
  /** While starting: plan from this instant, not the clock's now. */
  private planFrom: number | undefined;
  /** Slots fired by this engine, for tests and the bench. */
  firedCount = 0;
  /** Runs of another replica's share of a herd that this engine started because they were not on record. */
  startsBackedUp = 0;
  /** Run starts this engine attempted (its own share of a herd, backups, single slots), for tests. */
  startsAttempted = 0;
  /** What starting one run of a herd took, last measured (a moving average): the herd's lead follows it. */
  private msPerStart = INITIAL_MS_PER_START;
  /** The lead the loop fired the current slot instant with. */
  private lead = FIRE_LEAD_MS;

  constructor(private readonly deps: EngineDeps) {
    this.clock = deps.clock ?? systemClock;
  }

  /**
   * LISTEN first, then read: a change committed in between is not lost. Fires every slot strictly after
   * `from`; slots up to `from` are catchUp(from)'s (call it with the same instant).
   */
  async start(from: Date = new Date(this.clock.now())): Promise<void> {
    this.deps.fence?.onChange(() => this.rearm());
    await this.listen();
    this.planFrom = from.getTime();
    await this.reloadAll();
    this.planFrom = undefined;
    this.reloadTimer = setInterval(() => {
      this.reloadAll().catch((e: unknown) => this.connectionTrouble(e, {}, 'schedule reload failed'));
    }, RELOAD_MS);
    this.reloadTimer.unref();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopController.abort();
    this.wake.abort();
    if (this.reloadTimer) clearInterval(this.reloadTimer);
    await this.loop;
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => undefined);
  }

  /** The schedules as this engine sees them (name → version), for tests. */
  versions(): Map<string, number> {
    return new Map([...this.entries].map(([k, e]) => [k, e.row.version]));
  }

  /** Warn, or debug while an outage is known (said once, by runtime/databaseOutage.ts). */
  private connectionTrouble(e: unknown, fields: Record<string, unknown>, msg: string): void {
    const err = e instanceof Error ? e : new Error(String(e));
    const known = this.deps.connectionLost?.(err) ?? false;
    this.deps.logger[known ? 'debug' : 'warn']({ ...fields, err: err.message }, msg);
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.deps.appDatabaseUrl,
      application_name: 'xyra-schedules-listen',
    });
    // Always listened to: an 'error' with no listener would end the process.
    const lost = (e?: Error) => {
      if (this.listener !== client) return; // not (or no longer) the live connection
      this.listener = undefined;
      client.end().catch(() => undefined);
      if (this.stopController.signal.aborted) return;
      this.connectionTrouble(e ?? new Error('connection ended'), {}, 'schedule LISTEN connection lost: re-listening');
      void this.relisten();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', (n) => {
      if (n.channel !== SCHEDULES_CHANNEL || !n.payload) return;
      this.reloadOne(n.payload).catch((e: unknown) =>
        this.connectionTrouble(e, { schedule: n.payload }, 'schedule re-read failed'),
      );
    });
    try {
      await client.connect();
      await client.query(`listen ${SCHEDULES_CHANNEL}`);
    } catch (e) {
      await client.end().catch(() => undefined);
      throw e;
    }
    this.listener = client;
  }

  /** Re-LISTEN with backoff, then re-read every schedule (notifications sent while it was down are lost). */
  private async relisten(): Promise<void> {
    if (this.relistening) return;
    this.relistening = true;
    let delay = RELISTEN_MIN_MS;
    try {
      while (!this.stopController.signal.aborted && !this.listener) {
        try {
          await this.listen();
          await this.reloadAll();
          this.deps.logger.info('schedule LISTEN connection re-established; schedules re-read');
          return;
        } catch (e) {
          this.deps.logger.debug({ err: e instanceof Error ? e.message : String(e) }, 're-LISTEN failed: retrying');
          await this.clock.sleepUntil(this.clock.now() + delay, this.stopController.signal);
          delay = Math.min(delay * 2, RELISTEN_MAX_MS);
        }
      }
    } finally {
      this.relistening = false;
    }
  }

  async reloadAll(replan = false): Promise<void> {
    const rows = await listScheduleRows(this.deps.appPool);
    const seen = new Set<string>();
    for (const row of rows) {
      seen.add(row.name);
      this.put(row, replan);
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

  private put(row: ScheduleRow, replan = false): void {
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
    if (!replan && known && known.row.version === row.version) {
      known.row = row; // fired_through moved: nothing to re-plan
      return;
    }
    const slots = new SpecSlots(row);
    // The new version fires from the first slot after it took effect (and after what was already fired), even
    // when the change reached this engine after that slot had passed (a NOTIFY handled late on a loaded
    // machine): such a slot fires at once. Within LATE_CHANGE_MS only: older slots are the catch-up's business.
    const after = new Date(
      Math.max(
        this.planFrom ?? this.clock.now() - LATE_CHANGE_MS,
        Date.parse(row.effective_from),
        row.fired_through ? Date.parse(row.fired_through) : 0,
      ),
    );
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

  /** The earliest due slot across all schedules, and how many schedules share it. */
  private nextDue(): { due: number; count: number } {
    let due = Infinity;
    let count = 0;
    for (const e of this.entries.values()) {
      const t = e.next?.getTime();
      if (t === undefined) continue;
      if (t < due) [due, count] = [t, 1];
      else if (t === due) count += 1;
    }
    return { due, count };
  }

  /**
   * How long before a slot its runs start: FIRE_LEAD_MS for one, plus the measured start time of the others for
   * a herd, so every run waits for its slot rather than the slot for the herd's starts.
   */
  leadFor(count: number): number {
    const herd = Math.ceil((count - 1) * this.msPerStart * LEAD_SAFETY);
    return Math.min(MAX_FIRE_LEAD_MS, FIRE_LEAD_MS + Math.max(0, herd));
  }

  private fenceOpen(): boolean {
    return this.deps.fence?.isOpen() ?? true;
  }

  private async run(): Promise<void> {
    const stop = this.stopController.signal;
    while (!stop.aborted) {
      this.wake = new AbortController();
      const signal = AbortSignal.any([stop, this.wake.signal]);
      if (!this.fenceOpen()) {
        if (!this.catchUpPending)
          this.deps.logger.info('slot firing held behind the execution fence until the executor claim is confirmed');
        this.catchUpPending = true;
        await this.clock.sleepUntil(this.clock.now() + FENCED_POLL_MS, signal);
        continue;
      }
      if (this.catchUpPending) {
        // Open again: every slot of every schedule in (fired_through, now] by our catch-up rules, then plan
        // from now. Retried until it gets through (the database may still be flaky).
        const at = new Date(this.clock.now());
        try {
          this.catchUpPending = false; // a slot that fails to start below sets it again
          const n = await this.catchUp(at, true);
          if (this.catchUpPending) throw new Error('a missed slot could not be started');
          this.planFrom = at.getTime();
          try {
            await this.reloadAll(true);
          } finally {
            this.planFrom = undefined;
          }
          this.deps.onResumed?.(at);
          this.deps.logger.info(
            { slots: n, at: at.toISOString() },
            'fence open: firing resumed, slots that fell while fenced caught up',
          );
        } catch (e) {
          this.catchUpPending = true;
          this.connectionTrouble(e, {}, 'catch-up after the fence failed: retrying');
          await this.clock.sleepUntil(this.clock.now() + 1_000, stop);
        }
        continue;
      }
      const { due, count } = this.nextDue();
      // Each live replica starts its share of a herd (see fireAll): the lead is that share's.
      const share = this.deps.share?.();
      const lead = this.leadFor(share && share.count > 1 ? Math.ceil(count / share.count) : count);
      this.lead = lead;
      // Nothing scheduled: sleep until a change wakes us (an hour at most, then look again).
      const target = due === Infinity ? this.clock.now() + 3_600_000 : due - lead;
      await this.clock.sleepUntil(target, signal);
      if (stop.aborted) break;
      if (this.wake.signal.aborted || due === Infinity || this.clock.now() < due - lead) continue;
      if (!this.fenceOpen()) continue; // closed (by time) while sleeping: this slot is the catch-up's
      const group: Array<{ row: ScheduleRow; slot: Date }> = [];
      for (const e of this.entries.values()) {
        if (!e.next || e.next.getTime() !== due) continue;
        group.push({ row: e.row, slot: e.next });
        e.next = safeNext(e.slots, e.next);
        this.recordTimer(e.row.name, e.slots, e.next);
      }
      await this.fireAll(group, false);
    }
  }

  /** Starts one slot's run (see fireAll). */
  async fire(row: ScheduleRow, slot: Date, catchUp: boolean, viaQueue = catchUp): Promise<void> {
    await this.fireAll([{ row, slot }], catchUp, viaQueue);
  }

  /**
   * Starts each slot's run (on the batch queue when caught up, at once otherwise), all at once, then marks the
   * started ones as scheduled runs and moves each schedule's fired_through, one statement each for the group.
   *
   * A herd on several replicas: every replica would start every run, and all but one of the starts of a slot
   * are wasted work (a workflow_status insert, deduplicated). So each replica starts its own share first (by a
   * hash of the slot's workflow ID over the live replicas), then, at the slot, looks up which of the others' runs
   * exist (one query) and starts the missing ones itself: a replica that died or lags costs its share a delay
   * (its runs start at the slot, not ahead of it), never a slot.
   */
  async fireAll(
    group: ReadonlyArray<{ row: ScheduleRow; slot: Date }>,
    catchUp: boolean,
    viaQueue = catchUp,
  ): Promise<void> {
    const share = !catchUp && group.length > 1 ? this.deps.share?.() : undefined;
    const split = share && share.count > 1 && share.index >= 0;
    const mine = split ? group.filter((g) => ownerOf(g, share.count) === share.index) : group;
    const start = (slots: typeof group) =>
      Promise.all(slots.map((g) => this.startRun(g.row, g.slot, catchUp, viaQueue)));
    const startedAt = this.clock.now();
    const startedMine = await start(mine);
    if (!catchUp && mine.length > 1) this.observeHerdStart(mine.length, this.clock.now() - startedAt, group[0]!.slot);
    const fired = mine.filter((_, i) => startedMine[i]);
    const startedHere = [...fired];
    if (split) {
      const others = group.filter((g) => ownerOf(g, share.count) !== share.index);
      // Their owners start them ahead of the slot: only what is still missing at the slot is ours to start (a
      // look any earlier races a healthy owner, and both would start the same runs).
      const slot = Math.max(...others.map((g) => g.slot.getTime()));
      if (this.clock.now() < slot) await this.clock.sleepUntil(slot, this.stopController.signal);
      // Stopping (the sleep ended early): the others' slots are left to their owners, or to the next start's
      // catch-up (their fired_through is not moved here).
      if (this.stopController.signal.aborted) others.length = 0;
      const existing = await this.existingRuns(others);
      const missing = others.filter((g) => !existing.has(slotWorkflowIdOf(g.row.name, g.slot)));
      const startedMissing = await start(missing);
      if (missing.length > 0)
        this.deps.logger.info(
          { slots: missing.length, slot: new Date(slot).toISOString() },
          "another replica's share of a herd was not started by the slot: started here",
        );
      const backedUp = missing.filter((_, i) => startedMissing[i]);
      startedHere.push(...backedUp);
      fired.push(...others.filter((g) => existing.has(slotWorkflowIdOf(g.row.name, g.slot))), ...backedUp);
      this.startsBackedUp += backedUp.length;
    }
    if (fired.length === 0) return;
    try {
      if (!viaQueue) {
        const runs = startedHere.map(({ row, slot }) => ({
          workflowId: slotWorkflowIdOf(row.name, slot),
          scheduleName: row.name,
        }));
        await markScheduledRuns(this.deps.systemPool, runs, BATCH_QUEUE);
      }
      await advanceFiredThrough(
        this.deps.appPool,
        fired.map(({ row, slot }) => ({ name: row.name, version: row.version, slot })),
      );
      this.firedCount += fired.length;
    } catch (e) {
      // fired_through stays before them: the next catch-up (when the fence is open) fires them (by the same IDs).
      this.catchUpPending = true;
      this.connectionTrouble(e, { slots: fired.length }, 'fired slots not recorded');
    }
  }

  /** A herd's own share took `took` ms to start: the next lead follows, and a start that ended after the slot says so. */
  private observeHerdStart(count: number, took: number, slot: Date): void {
    const lead = this.lead;
    this.msPerStart = 0.5 * this.msPerStart + 0.5 * (took / count);
    const late = this.clock.now() - slot.getTime();
    const fields = { slots: count, slot: slot.toISOString(), leadMs: lead, startMs: took };
    // Runs started after their slot carry the difference as lag: say so (the next lead is longer).
    if (late > 0)
      this.deps.logger.info(
        { ...fields, lateMs: late },
        'herd of slots started after its instant: their runs start late',
      );
    else this.deps.logger.debug(fields, 'herd of slots started');
  }

  /** The slot workflow IDs of `group` that are on record (started by their owner); none when the lookup fails. */
  private async existingRuns(group: ReadonlyArray<{ row: ScheduleRow; slot: Date }>): Promise<Set<string>> {
    if (group.length === 0) return new Set();
    try {
      const ids = group.map((g) => slotWorkflowIdOf(g.row.name, g.slot));
      const found = await DBOS.listWorkflows({ workflowIDs: ids, loadInput: false, loadOutput: false });
      return new Set(found.map((w) => w.workflowID));
    } catch (e) {
      this.connectionTrouble(
        e,
        { slots: group.length },
        "could not look up the other replicas' starts: starting them here",
      );
      return new Set();
    }
  }

  /** Starts the slot's run under its slot workflow ID; false (and a catch-up pending) when it could not. */
  private async startRun(row: ScheduleRow, slot: Date, catchUp: boolean, viaQueue: boolean): Promise<boolean> {
    const workflowID = slotWorkflowIdOf(row.name, slot);
    const context: SlotContext = { schedule: row.name, version: row.version, ...(catchUp ? { catchUp: true } : {}) };
    this.startsAttempted += 1;
    try {
      const start = DBOS.startWorkflow(
        EvaluationBatch.trigger,
        viaQueue ? { workflowID, queueName: BATCH_QUEUE } : { workflowID },
      );
      await start(slot, context);
      return true;
    } catch (e) {
      // fired_through stays before it: the next catch-up (when the fence is open) fires it.
      this.catchUpPending = true;
      this.connectionTrouble(e, { schedule: row.name, slot: slot.toISOString() }, 'slot not fired');
      return false;
    }
  }

  /**
   * Missed slots of every ACTIVE schedule, by our rules: those in (fired_through, now] get a run each (the
   * run's catch-up policy decides), those older than the schedule's window one `missed_summary` event.
   */
  async catchUp(now: Date = new Date(this.clock.now()), afterFence = false): Promise<number> {
    let fired = 0;
    for (const row of await listScheduleRows(this.deps.appPool)) {
      if (row.status !== 'ACTIVE' || !row.fired_through) continue;
      fired += await this.catchUpOne(row, now, afterFence);
    }
    return fired;
  }

  private async catchUpOne(row: ScheduleRow, now: Date, afterFence: boolean): Promise<number> {
    const slots = new SpecSlots(row);
    let from = new Date(row.fired_through!);
    const windowStart = new Date(now.getTime() - parseDuration(row.catch_up_window));
    if (from < windowStart) {
      const old = slots.between(from, windowStart, MAX_CATCH_UP_SLOTS * 100);
      if (old.length > 0 && (await replaceFiredThrough(this.deps.appPool, row.name, row.version, from, windowStart))) {
        const summary = {
          count: old.length,
          first_slot: old[0]!.toISOString(),
          last_slot: old[old.length - 1]!.toISOString(),
          window_ms: now.getTime() - windowStart.getTime(),
        };
        await recordScheduleEvent(this.deps.appPool, {
          scheduleName: row.name,
          kind: 'missed_summary',
          note: `${old.length} slot(s) missed while no replica ran, older than the catch-up window: not run`,
          details: summary,
        });
        this.deps.logger.warn(
          { schedule: row.name, ...summary },
          'missed slots beyond the catch-up window summed up, not run',
        );
        recordMissedSlots(row.name, old.length, now);
      }
      from = windowStart;
    }
    const missed = slots.between(from, now, MAX_CATCH_UP_SLOTS);
    // After a fence (an outage of this running process) the slots start at once, as the timer would have
    // started them, unless policy `all` needs the queue to run them one at a time: a queued run waits for
    // the next queue poll (BATCH_QUEUE_POLL_MS), which a drain may never reach.
    const viaQueue = !afterFence || row.catch_up === 'all';
    for (const slot of missed) await this.fire(row, slot, true, viaQueue);
    if (missed.length > 0)
      this.deps.logger.info({ schedule: row.name, slots: missed.length }, 'missed slots caught up');
    return missed.length;
  }
}

/** Which of `count` replicas starts this slot's run first: FNV-1a of its workflow ID (the same on every replica). */
export function ownerOf(g: { row: { name: string }; slot: Date }, count: number): number {
  let h = 0x811c9dc5;
  for (const ch of slotWorkflowIdOf(g.row.name, g.slot)) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % count;
}

function safeNext(slots: SpecSlots, after: Date): Date | null {
  try {
    return slots.next(after);
  } catch {
    return null; // a cron that never fires again
  }
}

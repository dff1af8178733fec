// The execution fence: the one gate every step of ours passes before it does anything (an API call, a write
// to our tables), and that the slot firing follows. It is open while this replica's executor claim is
// confirmed (failover.ts) and closes the moment a confirmation fails: a Postgres outage, a cut claim
// connection, a network partition. The process stays up while it is closed; steps that reach it wait.
//
// When the claim is confirmed again under the same generation, nobody adopted this replica's work (a takeover
// moves the generation, under the claim's lock), so the waiting steps go on where they were. When the
// generation moved, a peer adopted the work: the executions that were running here are stale. They are
// dropped (`abandon`): waiting ones are rejected with ExecutionAbandonedError, and from then on every
// execution that reaches the gate for the first time proves it still owns its workflow (DBOS's owner token,
// checked in the system database) before it may pass, so a stale execution that was elsewhere (mid DBOS write,
// sleeping) never starts another step. DBOS itself refuses every write of a stale execution (owner token).
import { performance } from 'node:perf_hooks';
import { isConnectionError } from './databaseOutage.js';

export class ExecutionAbandonedError extends Error {
  constructor(workflowId: string | undefined) {
    super(
      `execution of workflow ${workflowId ?? '(unknown)'} was adopted by another replica while this one was fenced; dropped here`,
    );
    this.name = 'ExecutionAbandonedError';
  }
}

/** The DBOS execution calling the gate (workflow ID and its owner token), when inside a workflow. */
export interface Execution {
  workflowId: string;
  ownerXid: string;
}

export interface ExecutionFenceOptions {
  /** A confirmation older than this closes the gate even if no failure was reported (a stuck heartbeat). */
  maxUnconfirmedMs: number;
  currentExecution(): Execution | undefined;
  /** Does `ownerXid` still own `workflowId` (PENDING, same owner token)? Read from the system database. */
  ownsWorkflow(e: Execution): Promise<boolean>;
}

type Waiter = { resolve(): void; reject(e: Error): void; workflowId: string | undefined };

/** How many verified executions are remembered after an abandonment (then verified again: one query each). */
const VERIFIED_CAP = 10_000;

export class ExecutionFence {
  #open = true;
  #reason: string | undefined;
  #confirmedAt = performance.now();
  #waiters: Waiter[] = [];
  #abandonments = 0;
  #verified = new Set<string>();
  #listeners: Array<(open: boolean, reason?: string) => void> = [];

  constructor(private readonly options: ExecutionFenceOptions) {}

  /** Open and confirmed recently enough. */
  isOpen(): boolean {
    return this.#open && performance.now() - this.#confirmedAt <= this.options.maxUnconfirmedMs;
  }

  /** Why it is closed (undefined when open). */
  get reason(): string | undefined {
    if (this.#open && !this.isOpen())
      return `executor claim not confirmed for ${Math.round(performance.now() - this.#confirmedAt)} ms`;
    return this.#open ? undefined : this.#reason;
  }

  /** Notified on every open/close transition (firing stops and starts, readiness). */
  onChange(listener: (open: boolean, reason?: string) => void): void {
    this.#listeners.push(listener);
  }

  /** The claim was confirmed under the generation this process registered: open, release the waiters. */
  confirm(): void {
    this.#confirmedAt = performance.now();
    if (this.#open) return;
    this.#open = true;
    this.#reason = undefined;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.resolve();
    for (const l of this.#listeners) l(true);
  }

  /** The claim could not be confirmed: nothing passes until `confirm` (or `abandon`). */
  close(reason: string): void {
    this.#reason = reason; // the latest reason is the one /readyz shows
    if (!this.#open) return;
    this.#open = false;
    for (const l of this.#listeners) l(false, reason);
  }

  /** A peer adopted this executor's work: every execution running here is stale. Stays closed. */
  abandon(): void {
    this.#abandonments += 1;
    this.#verified.clear();
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(new ExecutionAbandonedError(w.workflowId));
  }

  get abandonments(): number {
    return this.#abandonments;
  }

  /** Called first thing in every step: resolves when the step may run; rejects for a stale execution. */
  async pass(): Promise<void> {
    const execution = this.options.currentExecution();
    for (;;) {
      if (!this.isOpen()) {
        // Closed, or the last confirmation is too old (the heartbeat is stuck): wait for a confirmation.
        await new Promise<void>((resolve, reject) => {
          this.#waiters.push({ resolve, reject, workflowId: execution?.workflowId });
          // A stale confirmation with the gate formally open: re-check soon rather than wait for a transition.
          if (this.#open) setTimeout(() => this.#release(resolve), 50);
        });
        continue;
      }
      if (this.#abandonments === 0 || execution === undefined) return;
      const key = `${execution.workflowId}\u0000${execution.ownerXid}`;
      if (this.#verified.has(key)) return;
      const abandonmentsBefore = this.#abandonments;
      let owns: boolean;
      try {
        owns = await this.options.ownsWorkflow(execution);
      } catch {
        await new Promise((r) => setTimeout(r, 500)); // database unreachable again: ask again, never guess
        continue;
      }
      if (!owns) throw new ExecutionAbandonedError(execution.workflowId);
      if (this.#abandonments !== abandonmentsBefore || !this.isOpen()) continue; // changed while asking: ask again
      if (this.#verified.size >= VERIFIED_CAP) this.#verified.clear();
      this.#verified.add(key);
      return;
    }
  }

  #release(resolve: () => void): void {
    const i = this.#waiters.findIndex((w) => w.resolve === resolve);
    if (i < 0) return;
    this.#waiters.splice(i, 1);
    resolve();
  }
}

// The process's one fence, configured by the composition root; steps reach it through `passFence`.
let fence: ExecutionFence | undefined;

export function installExecutionFence(f: ExecutionFence | undefined): void {
  fence = f;
}

/** First thing in every step of ours. Without an installed fence (tests driving workflows directly): open. */
export async function passFence(): Promise<void> {
  if (fence) await fence.pass();
}

/**
 * A step body that touches the database: passes the fence, and when the database drops under it, closes the
 * fence at once (the heartbeat opens it again once the claim is confirmed) and runs again after that, so an
 * outage neither uses up the step's retries nor fails its workflow. Step bodies are idempotent (DBOS may
 * run one again after a crash), so running one again is safe.
 */
export async function fenced<T>(body: () => Promise<T>): Promise<T> {
  for (;;) {
    await passFence();
    try {
      return await body();
    } catch (e) {
      if (!fence || !isConnectionError(e)) throw e;
      fence.close(`a step lost its database connection: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

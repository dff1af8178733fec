// How fast the `tasks` queue is polled, decided from the database: fast while the queue holds ENQUEUED work
// (a concurrency-limited queue starts at most `limit` chunks per poll), slow while it holds none (every poll
// is a Postgres commit: idle cost). Nothing about the speed lives only in one process's memory:
//   - a process reads the backlog when it starts, so a fresh process (a restart after SIGKILL, a replica
//     joining a running ingestion) dispatches a waiting backlog at full speed from its first polls;
//   - a chunk starting here, or `xyra ingest` announcing new chunks, makes it read the backlog again;
//   - while fast, it re-reads the backlog every `recheckMs` and goes back to slow once the queue is empty.
// The speed is written to the queue's row (every replica's queue runner re-reads it) and applied at once here.
import { AsyncResource } from 'node:async_hooks';

export interface DispatchSpeedOptions {
  idleMs: number;
  busyMs: number;
  /** While fast: how often the backlog is read again. */
  recheckMs: number;
  /** True when the queue holds work waiting to be dequeued (a database read). */
  hasBacklog(): Promise<boolean>;
  /** Sets the queue's minimum polling interval (its row, and this process's queue runner). */
  apply(ms: number): Promise<void>;
  onError?(e: unknown): void;
}

export class DispatchSpeed {
  private applied: number | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /**
   * The context the control was created in (start-up, outside any workflow). A poke comes from inside a chunk
   * workflow; DBOS would record a DBOS call made in that context as a step of the chunk, shifting its step IDs.
   */
  private readonly scope = new AsyncResource('DispatchSpeed');

  constructor(private readonly options: DispatchSpeedOptions) {}

  /** The interval last applied (undefined before the first check). */
  get currentMs(): number | undefined {
    return this.applied;
  }

  /** Read the backlog now and apply the speed it calls for. Concurrent calls share one read (plus one after it). */
  check(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.checkOnce();
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Something suggests there is work (a chunk started here, an ingest announced chunks). Cheap when already fast. */
  poke(): void {
    if (this.stopped || this.applied === this.options.busyMs) return;
    this.scope.runInAsyncScope(() => void this.check());
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async checkOnce(): Promise<void> {
    if (this.stopped) return;
    const { idleMs, busyMs, recheckMs } = this.options;
    clearTimeout(this.timer);
    let busy = false;
    try {
      busy = busyMs < idleMs && (await this.options.hasBacklog());
      const target = busy ? busyMs : idleMs;
      if (target !== this.applied) {
        await this.options.apply(target);
        this.applied = target;
      }
    } catch (e) {
      this.options.onError?.(e);
      busy = true; // unknown: look again soon rather than stay wrong
    }
    if (busy && !this.stopped) {
      this.timer = setTimeout(() => void this.check(), recheckMs);
      this.timer.unref();
    }
  }
}

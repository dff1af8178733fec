// Adaptive polling of the `tasks` queue: slow while idle (idle cost: every poll is a Postgres commit), fast
// while chunks are running (throughput: a concurrency-limited queue starts at most `limit` chunks per poll).
// A chunk starting on this replica is the signal that an ingestion is under way; after `coolDownMs` without
// one the queue goes back to the idle interval. The first chunk of an ingestion waits for one idle poll
// (≤ idle interval); the switch reaches every replica through the queue's row, which DBOS re-reads each second.

export interface AdaptivePollingOptions {
  idleMs: number;
  busyMs: number;
  coolDownMs: number;
  /** Writes the queue's minimum polling interval (DBOS.registerQueue with onConflict 'always_update'). */
  apply(ms: number): Promise<void>;
  onError?(e: unknown): void;
}

export class AdaptivePolling {
  private busy = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: AdaptivePollingOptions) {}

  /** Call when a chunk starts. Cheap: writes the queue row only on a switch. */
  noteActivity(): void {
    const { idleMs, busyMs, coolDownMs } = this.options;
    if (busyMs >= idleMs) return;
    if (!this.busy) {
      this.busy = true;
      this.switchTo(busyMs);
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.busy = false;
      this.switchTo(idleMs);
    }, coolDownMs);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private switchTo(ms: number): void {
    this.options.apply(ms).catch((e: unknown) => this.options.onError?.(e));
  }
}

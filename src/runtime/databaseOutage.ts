// Says once that the database is unreachable, and once how long it was when it is back, instead of a line
// per retry from every component; counts outages and their durations (xyra.db.outages,
// xyra.db.outage_duration). Fed by failover's heartbeat: an outage is the time this replica's executor claim
// is unconfirmed. While one lasts, other components' connection noise goes to debug (`active`).
import { performance } from 'node:perf_hooks';
import type { Logger } from '../logger.js';
import { recordDbOutageEnded, recordDbOutageStarted } from '../telemetry/metrics.js';

/** After a dropped connection, other components' connection errors are quiet this long while we find out. */
const SUSPICION_MS = 10_000;

export class DatabaseOutage {
  #since: number | undefined;
  #sinceWall: string | undefined;
  #suspectedAt: number | undefined;

  constructor(private readonly logger: Logger) {}

  /** An outage is on, or a connection just dropped and the next heartbeat will tell. */
  get active(): boolean {
    if (this.#since !== undefined) return true;
    return this.#suspectedAt !== undefined && performance.now() - this.#suspectedAt < SUSPICION_MS;
  }

  /** A connection dropped (the claim's): not said yet — a heartbeat that re-takes it at once makes it no outage. */
  suspect(): void {
    this.#suspectedAt ??= performance.now();
  }

  /** The claim could not be confirmed: the first call of an outage logs and counts it, later ones nothing. */
  down(reason: string): void {
    if (this.#since !== undefined) return;
    this.#since = performance.now();
    this.#sinceWall = new Date().toISOString();
    recordDbOutageStarted();
    this.logger.error(
      { reason },
      'database unreachable (executor claim unconfirmed): fenced — no slot fired, no step started until it is back; retrying with backoff',
    );
  }

  /** Confirmed again: logs the outage's length once. Returns it (undefined when there was none). */
  up(detail: Record<string, unknown> = {}): number | undefined {
    this.#suspectedAt = undefined;
    if (this.#since === undefined) return undefined;
    const ms = Math.round(performance.now() - this.#since);
    this.#since = undefined;
    recordDbOutageEnded(ms);
    this.logger.warn(
      { outageMs: ms, since: this.#sinceWall, ...detail },
      `database reachable again after ${(ms / 1000).toFixed(1)} s: claim confirmed, fence open`,
    );
    return ms;
  }
}

/** An error that says the database could not be reached or dropped the connection (worth waiting out). */
export function isConnectionError(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown } | undefined;
  const code = typeof err?.code === 'string' ? err.code : '';
  if (/^(08|57P0[123]|53300)/.test(code)) return true; // connection exceptions, admin shutdown, too many connections
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(code))
    return true;
  const message = typeof err?.message === 'string' ? err.message : String(e);
  return /ECONNREFUSED|ECONNRESET|Connection terminated|connection timeout|timeout exceeded when trying to connect|the database system is (starting up|shutting down)|terminating connection|Client has encountered a connection error|Knex: Timeout acquiring a connection/i.test(
    message,
  );
}

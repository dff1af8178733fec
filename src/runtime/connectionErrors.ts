// Telling a lost or refused database connection from other errors. A module of its own, with no imports: `xyra
// ingest` needs it without the telemetry that databaseOutage.ts loads (the OpenTelemetry SDK: ~60 ms of start-up).

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

// `xyra ingest` tells the service that it enqueued chunks (a NOTIFY on our own channel in the app database), so
// the tasks queue goes fast at once instead of at its next idle poll (up to PIPELINE_POLL_MS, and more under
// load: measured 0.8-2.7 s from the enqueue to the first chunk's start). A hint only: the dispatch speed is still
// decided from the database (queuePolling.ts), so a notice lost with a broken connection costs one idle poll.
// Our own NOTIFY rather than a trigger on DBOS's workflow_status table.
import pg from 'pg';
import type { Logger } from '../logger.js';

export const INGEST_CHANNEL = 'xyra_ingest_enqueued';

/** Sent by `xyra ingest` once chunks of an ingestion are enqueued (the payload is not read). Never throws: a hint. */
export async function noticeEnqueued(db: pg.ClientBase): Promise<void> {
  await db.query('select pg_notify($1, $2)', [INGEST_CHANNEL, 'tasks']).catch(() => undefined);
}

const RELISTEN_MIN_MS = 250;
const RELISTEN_MAX_MS = 5_000;

/** A dedicated LISTEN connection that calls `onNotice` for every notice; re-listens with backoff when lost. */
export class IngestNoticeListener {
  private client: pg.Client | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private delay = RELISTEN_MIN_MS;

  constructor(
    private readonly url: string,
    private readonly onNotice: () => void,
    private readonly logger: Logger,
  ) {}

  /** Resolves once listening, or once the first attempt failed (it keeps trying in the background). */
  async start(): Promise<void> {
    try {
      await this.listen();
    } catch (e) {
      this.retry(e);
    }
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url, application_name: 'xyra-ingest-listen' });
    const lost = (e?: Error) => {
      if (this.client !== client) return;
      this.client = undefined;
      client.end().catch(() => undefined);
      this.retry(e ?? new Error('connection ended'));
    };
    client.on('error', lost); // an 'error' with no listener would end the process
    client.on('end', () => lost());
    client.on('notification', (n) => {
      if (n.channel === INGEST_CHANNEL) this.onNotice();
    });
    try {
      await client.connect();
      await client.query(`listen ${INGEST_CHANNEL}`);
    } catch (e) {
      await client.end().catch(() => undefined);
      throw e;
    }
    if (this.stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.delay = RELISTEN_MIN_MS;
  }

  private retry(e: unknown): void {
    if (this.stopped) return;
    this.logger.debug(
      { err: e instanceof Error ? e.message : String(e) },
      'pipeline: ingest LISTEN connection unavailable: retrying',
    );
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.listen().catch((err: unknown) => this.retry(err));
    }, this.delay);
    this.timer.unref();
    this.delay = Math.min(this.delay * 2, RELISTEN_MAX_MS);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}

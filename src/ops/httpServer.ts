// The service's one HTTP port: `/healthz` (the process is up), `/readyz` (DBOS launched, both databases
// answer), `/metrics` when the composition root passes a handler, and the read-only dashboard (`/`, its static
// files, `/api/*`). The server starts before the databases, so the API is attached once they are resolved;
// until then `/api/*` answers 503. With a dashboard token, `/` and `/api/*` need `Authorization: Bearer`;
// health and metrics stay open so probes and scrapers need no secret.
//
// Whatever a client sends, it gets an HTTP answer and the process stays up: an unparsable target is a 400, an
// unknown method a 405 with `Allow`, a body over 64 KB a 413, a malformed request line or header a 400/431
// (clientError), and anything that throws inside a route a 500 carrying only an error id; the detail (SQL,
// stack, DBOS's serialised error) goes to the log under that id. Slow or flooded connections are bounded by
// header/request timeouts and a connection cap.
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { ApiRequestError } from '../errors.js';
import { createLogger, errorDetail, type Logger } from '../logger.js';
import { loadDashboardFiles, serveDashboardFile } from './dashboard/static.js';
import { hasBody, MAX_BODY_BYTES, readBody } from './readBody.js';

export interface ReadinessCheck {
  (): Promise<{ ready: boolean; detail: Record<string, unknown> }>;
}

export type RequestHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/**
 * A route module that answers some requests itself (e.g. `/api/schedules`, with its own methods, `Allow` and
 * body reading through readBody). `undefined` for a request it does not claim; otherwise a promise of the
 * answer. It runs after the Host check; what it throws is answered like any route's (ApiRequestError under
 * 500 as itself, the rest a generic 5xx with an error id).
 */
export type RouteHook = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => Promise<void> | undefined;

/** Answers one `/api/<name>` request: the JSON body, undefined for an unknown name, ApiRequestError for a bad parameter. */
export type ApiHandler = (name: string, query: URLSearchParams) => Promise<unknown>;

export interface HttpServerOptions {
  checkReady: ReadinessCheck;
  /** The Prometheus exporter's handler, when OTEL_METRICS_EXPORTER includes `prometheus`. */
  metrics?: RequestHandler;
  /** DASHBOARD_TOKEN: when set, `/` and `/api/*` need it as a bearer token. */
  dashboardToken?: string;
  /** HOST: the address to listen on (default 127.0.0.1: nothing outside this machine reaches the port). */
  host?: string;
  /**
   * ALLOWED_HOSTS: the `Host` header names `/` and `/api/*` answer to (against DNS rebinding). Unset: on a
   * loopback address only loopback names (localhost, 127.0.0.1, ::1); on any other address every name.
   */
  allowedHosts?: readonly string[];
  /** Where 5xx details and refused requests are logged (default: nowhere). */
  logger?: Logger;
  /** Directory of the dashboard's files (tests); default the package's. */
  dashboardDir?: string;
}

export interface HttpServer {
  port: number;
  /** Serve `/api/*` from now on (before: 503). */
  attachApi(api: ApiHandler): void;
  /** Let `hook` answer the requests it claims, before any other route. */
  attachRoutes(hook: RouteHook): void;
  /** Serve `/metrics` with this handler (the Prometheus exporter, started after the server). */
  attachMetrics(handler: RequestHandler): void;
  /** Mark the service as draining: /readyz answers 503 from now on. */
  setDraining(): void;
  close(): Promise<void>;
}

/** The methods every built-in route answers; every other one gets 405 with this `Allow` (a RouteHook sets its own). */
const ALLOW = 'GET, HEAD';
/** A client must send its headers within this, and the whole request within REQUEST_TIMEOUT_MS (slowloris). */
export const HEADERS_TIMEOUT_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 30_000;
/** An idle socket (no bytes either way) is closed after this. */
const SOCKET_IDLE_MS = 60_000;
/** Connections beyond this are dropped at accept: a flood cannot exhaust the process's file descriptors. */
export const MAX_CONNECTIONS = 256;

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'];

export function isLoopbackAddress(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Constant-time comparison; hashing first makes both sides the same length without leaking the token's. */
function tokenMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer (.+)$/.exec(header ?? '');
  if (!match) return false;
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(match[1] ?? ''), digest(token));
}

/** `example.com:3000` → `example.com`, `[::1]:3000` → `::1`; lower case. */
function hostName(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') > 0 ? h.indexOf(']') : undefined);
  return h.split(':')[0];
}

/** A URL target or its path for the log: bounded and printable, whatever the client sent. */
function printable(text: string | undefined): string {
  return (text ?? '').slice(0, 200).replace(/[^\x20-\x7e]/g, '?');
}

/** Postgres cancelled the statement (statement_timeout) or the pool had no connection in time. */
function isTimeout(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown } | null;
  return (
    err?.code === '57014' ||
    (typeof err?.message === 'string' && /timeout exceeded when trying to connect/i.test(err.message))
  );
}

export async function startHttpServer(port: number, options: HttpServerOptions): Promise<HttpServer> {
  const logger = options.logger ?? createLogger('silent');
  const host = options.host ?? '127.0.0.1';
  const allowedHosts = options.allowedHosts ?? (isLoopbackAddress(host) ? LOOPBACK_NAMES : undefined);
  // Read now: a missing file fails start-up with one line, never a request.
  const dashboardFiles = loadDashboardFiles(options.dashboardDir);
  let draining = false;
  let api: ApiHandler | undefined;
  let metrics = options.metrics;
  let routes: RouteHook | undefined;

  const send = (res: http.ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}) => {
    // Serialised first: a body that cannot be serialised throws before any header is written, so it can still
    // become a 500 with an error id.
    const text = JSON.stringify(body);
    res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
    res.end(text);
  };

  /** A 5xx: the client gets an error id and a generic message; the detail goes to the log under that id. */
  const failure = (req: http.IncomingMessage, res: http.ServerResponse, e: unknown, code = 500) => {
    const errorId = randomUUID();
    const timedOut = isTimeout(e);
    logger.error(
      { errorId, method: printable(req.method), url: printable(req.url), err: errorDetail(e) },
      'HTTP request failed',
    );
    if (res.headersSent) {
      res.destroy();
      return;
    }
    try {
      send(
        res,
        timedOut ? 503 : code,
        {
          error: timedOut ? 'the query took too long; try a smaller window or limit' : 'internal error',
          error_id: errorId,
        },
        { connection: 'close' },
      );
    } catch {
      res.destroy();
    }
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return send(res, 400, { error: 'bad request: unparsable request target' }, { connection: 'close' });
    }
    const path = url.pathname;
    const isDashboard = path === '/' || path.startsWith('/api/') || dashboardFiles.has(path);
    if (isDashboard && allowedHosts !== undefined) {
      const name = hostName(req.headers.host);
      if (name === undefined || !allowedHosts.includes(name)) {
        logger.warn(
          { host: printable(req.headers.host), url: printable(req.url) },
          'refused a request for a host name not in ALLOWED_HOSTS',
        );
        return send(
          res,
          403,
          { error: 'host not allowed: add it to ALLOWED_HOSTS' },
          hasBody(req) ? { connection: 'close' } : {},
        );
      }
    }
    // A route module with its own methods (and its own bounded body reading and auth) answers what it claims.
    const claimed = routes?.(req, res, url);
    if (claimed) return claimed;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return send(res, 405, { error: 'method not allowed' }, { allow: ALLOW, connection: 'close' });
    }
    // No route takes a body; one sent anyway is read (bounded) and dropped, so it cannot pile up in memory.
    if (hasBody(req)) await readBody(req, MAX_BODY_BYTES);
    if (path === '/healthz') return send(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      if (draining) return send(res, 503, { status: 'draining' });
      let ready: Awaited<ReturnType<ReadinessCheck>>;
      try {
        ready = await options.checkReady();
      } catch (e) {
        const errorId = randomUUID();
        logger.warn({ errorId, err: errorDetail(e) }, 'readiness check failed');
        return send(res, 503, { status: 'not ready', error_id: errorId });
      }
      return send(res, ready.ready ? 200 : 503, { status: ready.ready ? 'ready' : 'not ready', ...ready.detail });
    }
    if (path === '/metrics' && metrics) return metrics(req, res);

    if (path.startsWith('/api/')) {
      // The page's login form sends the token here; a 401 carries no data.
      if (options.dashboardToken !== undefined && !tokenMatches(req.headers.authorization, options.dashboardToken)) {
        return send(
          res,
          401,
          { error: 'unauthorized: send Authorization: Bearer <DASHBOARD_TOKEN>' },
          { 'www-authenticate': 'Bearer' },
        );
      }
      if (!api) return send(res, 503, { error: 'starting: the databases are not ready yet' });
      let body: unknown;
      try {
        body = await api(path.slice('/api/'.length), url.searchParams);
      } catch (e) {
        if (e instanceof ApiRequestError && e.statusCode < 500) return send(res, e.statusCode, { error: e.message });
        return failure(req, res, e);
      }
      return body === undefined ? send(res, 404, { error: 'not found' }) : send(res, 200, body);
    }
    // The page and its assets hold no data, so a browser without the token still gets the page (with status
    // 401 for `/`): it shows its login form and sends the token to `/api/*` from then on.
    const locked =
      options.dashboardToken !== undefined &&
      path === '/' &&
      !tokenMatches(req.headers.authorization, options.dashboardToken);
    if (serveDashboardFile(dashboardFiles, path, req, res, locked ? 401 : 200)) return;
    send(res, 404, { error: 'not found' });
  };

  const server = http.createServer(
    // Timeouts are checked this often (Node's default, 30 s, would let a slow client hold a socket ~twice as long).
    { connectionsCheckingInterval: 1_000, headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS },
    (req, res) => {
      handle(req, res).catch((e: unknown) => {
        if (e instanceof ApiRequestError && e.statusCode < 500) {
          if (res.headersSent) return void res.destroy();
          return send(res, e.statusCode, { error: e.message }, { connection: 'close' });
        }
        failure(req, res, e);
      });
    },
  );
  server.keepAliveTimeout = 1000;
  server.maxConnections = MAX_CONNECTIONS;
  server.setTimeout(SOCKET_IDLE_MS, (socket: Socket) => socket.destroy());
  // A request Node's parser refuses (bad request line, header too large, invalid method, timeout) never reaches
  // the handler: answer it here, then close. Without a listener Node does much the same; with one it is ours.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? 431
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 408
          : err.code === 'HPE_INVALID_METHOD'
            ? 405
            : 400;
    const body = JSON.stringify({ error: (http.STATUS_CODES[status] ?? 'bad request').toLowerCase() });
    const allow = status === 405 ? `allow: ${ALLOW}\r\n` : '';
    socket.end(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\n${allow}content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'EADDRINUSE'
          ? new Error(`PORT ${port} is already in use: set PORT to a free port (0 picks one)`)
          : e.code === 'EADDRNOTAVAIL'
            ? new Error(`HOST ${host} is not an address of this machine`)
            : e,
      ),
    );
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    attachApi: (handler) => {
      api = handler;
    },
    attachRoutes: (hook) => {
      routes = hook;
    },
    attachMetrics: (handler) => {
      metrics = handler;
    },
    setDraining: () => {
      draining = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

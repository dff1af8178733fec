// The service's one HTTP port: `/healthz` (the process is up), `/readyz` (DBOS launched, both databases
// answer), `/metrics` when the composition root passes a handler, and the read-only dashboard (`/`, its static
// files, `/api/*`). The server starts before the databases, so the API is attached once they are resolved;
// until then `/api/*` answers 503. With a dashboard token, `/` and `/api/*` need `Authorization: Bearer`;
// health and metrics stay open so probes and scrapers need no secret.
import { timingSafeEqual, createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiRequestError } from '../errors.js';
import { serveDashboardFile } from './dashboard/static.js';

export interface ReadinessCheck {
  (): Promise<{ ready: boolean; detail: Record<string, unknown> }>;
}

export type RequestHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A route module that answers some requests itself (e.g. `/api/schedules`, any method); false for the rest. */
export type RouteHook = (req: http.IncomingMessage, res: http.ServerResponse) => boolean;

/** Answers one `/api/<name>` request: the JSON body, undefined for an unknown name, ApiRequestError for a bad parameter. */
export type ApiHandler = (name: string, query: URLSearchParams) => Promise<unknown>;

export interface HttpServerOptions {
  checkReady: ReadinessCheck;
  /** The Prometheus exporter's handler, when OTEL_METRICS_EXPORTER includes `prometheus`. */
  metrics?: RequestHandler;
  /** DASHBOARD_TOKEN: when set, `/` and `/api/*` need it as a bearer token. */
  dashboardToken?: string;
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

/** Constant-time comparison; hashing first makes both sides the same length without leaking the token's. */
function tokenMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer (.+)$/.exec(header ?? '');
  if (!match) return false;
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(match[1] ?? ''), digest(token));
}

export async function startHttpServer(port: number, options: HttpServerOptions): Promise<HttpServer> {
  let draining = false;
  let api: ApiHandler | undefined;
  let metrics = options.metrics;
  let routes: RouteHook | undefined;
  const server = http.createServer((req, res) => {
    const send = (code: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
      res.end(JSON.stringify(body));
    };
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    if (routes?.(req, res)) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: 'method not allowed' });
    if (path === '/healthz') return send(200, { status: 'ok' });
    if (path === '/readyz') {
      if (draining) return send(503, { status: 'draining' });
      options.checkReady().then(
        ({ ready, detail }) => send(ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', ...detail }),
        (e: unknown) => send(503, { status: 'not ready', error: e instanceof Error ? e.message : String(e) }),
      );
      return;
    }
    if (path === '/metrics' && metrics) return metrics(req, res);

    if (path.startsWith('/api/')) {
      // The page's login form sends the token here; a 401 carries no data.
      if (options.dashboardToken !== undefined && !tokenMatches(req.headers.authorization, options.dashboardToken)) {
        return send(401, { error: 'unauthorized: send Authorization: Bearer <DASHBOARD_TOKEN>' }, { 'www-authenticate': 'Bearer' });
      }
      if (!api) return send(503, { error: 'starting: the databases are not ready yet' });
      api(path.slice('/api/'.length), url.searchParams).then(
        (body) => (body === undefined ? send(404, { error: 'not found' }) : send(200, body)),
        (e: unknown) =>
          e instanceof ApiRequestError
            ? send(e.statusCode, { error: e.message })
            : send(500, { error: e instanceof Error ? e.message : String(e) }),
      );
      return;
    }
    // The page and its assets hold no data, so a browser without the token still gets the page (with status
    // 401 for `/`): it shows its login form and sends the token to `/api/*` from then on.
    const locked = options.dashboardToken !== undefined && path === '/' && !tokenMatches(req.headers.authorization, options.dashboardToken);
    if (serveDashboardFile(path, req, res, locked ? 401 : 200)) return;
    send(404, { error: 'not found' });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'EADDRINUSE' ? new Error(`PORT ${port} is already in use: set PORT to a free port (0 picks one)`) : e),
    );
    server.listen(port, '0.0.0.0', () => resolve());
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

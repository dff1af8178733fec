// `/healthz`: the process is up. `/readyz`: DBOS is launched and both databases answer. `/metrics`: the
// Prometheus exporter's handler, when one is given (open, like health: scrapers carry no dashboard token).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReadinessCheck {
  (): Promise<{ ready: boolean; detail: Record<string, unknown> }>;
}

export interface HealthServer {
  port: number;
  /** Mark the service as draining: /readyz answers 503 from now on. */
  setDraining(): void;
  close(): Promise<void>;
}

/** Answers GET /metrics (Prometheus text format); see telemetry/exporters.ts. */
export type MetricsHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export async function startHealthServer(port: number, checkReady: ReadinessCheck, metricsHandler?: MetricsHandler): Promise<HealthServer> {
  let draining = false;
  const server = http.createServer((req, res) => {
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: 'method not allowed' });
    if (url === '/healthz') return send(200, { status: 'ok' });
    if (url === '/readyz') {
      if (draining) return send(503, { status: 'draining' });
      checkReady().then(
        ({ ready, detail }) => send(ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', ...detail }),
        (e: unknown) => send(503, { status: 'not ready', error: e instanceof Error ? e.message : String(e) }),
      );
      return;
    }
    if (url === '/metrics' && metricsHandler) return metricsHandler(req, res);
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

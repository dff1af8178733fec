// The dashboard's static files (plain HTML/CSS/JS, no build step), served from the package. They hold no
// data: the page fetches `/api/*`. Read once at start-up, so a request never touches the disk.
import { existsSync, readFileSync } from 'node:fs';
import type http from 'node:http';
import { fileURLToPath } from 'node:url';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** The only files served: a fixed list, so no path from a request ever reaches the filesystem. */
const FILES = ['index.html', 'style.css', 'app.js', 'favicon.svg'] as const;

/**
 * `src/ops/dashboard/public` beside this module when run from source; from `dist/src/ops/dashboard/` the
 * compiled module finds the same folder in the package's `src/` (tsc does not copy non-TS files).
 */
function publicDir(): string {
  const candidates = [new URL('./public/', import.meta.url), new URL('../../../../src/ops/dashboard/public/', import.meta.url)];
  for (const c of candidates) {
    const dir = fileURLToPath(c);
    if (existsSync(`${dir}index.html`)) return dir;
  }
  throw new Error(`dashboard files not found (looked in ${candidates.map((c) => fileURLToPath(c)).join(', ')})`);
}

interface StaticFile {
  body: Buffer;
  type: string;
}

let cache: Map<string, StaticFile> | undefined;

function files(): Map<string, StaticFile> {
  if (cache) return cache;
  const dir = publicDir();
  cache = new Map(
    FILES.map((name) => [`/${name}`, { body: readFileSync(`${dir}${name}`), type: TYPES[name.slice(name.lastIndexOf('.'))] ?? 'application/octet-stream' }]),
  );
  cache.set('/', cache.get('/index.html')!);
  return cache;
}

// Scripts only from our own origin, no inline script, no framing: an injected `<script>` in data cannot run
// even if a rendering bug ever let one into the DOM.
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/** Serves `path` if it is one of the dashboard's files; false otherwise. `status` lets `/` answer 401 with the page. */
export function serveDashboardFile(path: string, req: http.IncomingMessage, res: http.ServerResponse, status = 200): boolean {
  const file = files().get(path);
  if (!file) return false;
  res.writeHead(status, { 'content-type': file.type, 'content-length': file.body.length, 'cache-control': 'no-cache', ...SECURITY_HEADERS });
  res.end(req.method === 'HEAD' ? undefined : file.body);
  return true;
}

/** Total bytes of the page and its assets, for the benchmark's page weight. */
export function dashboardWeightBytes(): number {
  let total = 0;
  for (const name of FILES) total += files().get(`/${name}`)!.body.length;
  return total;
}

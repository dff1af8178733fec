// The dashboard's static files (plain HTML/CSS/JS, no build step), served from the package. They hold no
// data: the page fetches `/api/*`. Read once at start-up, so a request never touches the disk.
import { existsSync, readFileSync } from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
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
  const candidates = [
    new URL('./public/', import.meta.url),
    new URL('../../../../src/ops/dashboard/public/', import.meta.url),
  ];
  for (const c of candidates) {
    const dir = fileURLToPath(c);
    if (existsSync(path.join(dir, 'index.html'))) return dir;
  }
  throw new Error(
    `dashboard files not found (looked in ${candidates.map((c) => fileURLToPath(c)).join(', ')}): the package is incomplete`,
  );
}

interface StaticFile {
  body: Buffer;
  type: string;
}

/** The page's files, read once at start-up: a request never touches the disk, and a missing file fails start-up. */
export type DashboardFiles = ReadonlyMap<string, StaticFile>;

/** Reads every file of the page from `dir` (default: the package's); throws one line naming a missing file. */
export function loadDashboardFiles(dir: string = publicDir()): DashboardFiles {
  const files = new Map<string, StaticFile>();
  for (const name of FILES) {
    const file = path.join(dir, name);
    let body: Buffer;
    try {
      body = readFileSync(file);
    } catch (e) {
      throw new Error(
        `dashboard file ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)}): the package is incomplete`,
      );
    }
    files.set(`/${name}`, { body, type: TYPES[name.slice(name.lastIndexOf('.'))] ?? 'application/octet-stream' });
  }
  files.set('/', files.get('/index.html')!);
  return files;
}

// Scripts only from our own origin, no inline script, no framing: an injected `<script>` in data cannot run
// even if a rendering bug ever let one into the DOM.
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/** Serves `path` if it is one of the dashboard's files; false otherwise. `status` lets `/` answer 401 with the page. */
export function serveDashboardFile(
  files: DashboardFiles,
  urlPath: string,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  status = 200,
): boolean {
  const file = files.get(urlPath);
  if (!file) return false;
  res.writeHead(status, {
    'content-type': file.type,
    'content-length': file.body.length,
    'cache-control': 'no-cache',
    ...SECURITY_HEADERS,
  });
  res.end(req.method === 'HEAD' ? undefined : file.body);
  return true;
}

/** Total bytes of the page and its assets, for the benchmark's page weight. */
export function dashboardWeightBytes(files: DashboardFiles = loadDashboardFiles()): number {
  let total = 0;
  for (const name of FILES) total += files.get(`/${name}`)!.body.length;
  return total;
}

// `npm start` and `npm test` build first. Even an incremental `tsc -b` of an unchanged tree costs 1–5 s (loading
// the compiler is most of it), which is most of a restart after an outage. This compares one hash of the build's
// inputs with the hash recorded by the last successful build and runs `tsc -b` only when they differ, so an
// unchanged tree starts at once and a changed or fresh one is always built. Contents, not mtimes: a checkout
// that touches every file without changing one does not rebuild, and an edit within the same second does.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const INPUT_DIRS = ['src', 'migrations', 'bench'];
const INPUT_FILES = ['tsconfig.json', 'tsconfig.build.json', 'package-lock.json'];
const STAMP = path.join(root, 'dist', '.inputs-hash');
const OUTPUT = path.join(root, 'dist', 'src', 'main.js');

function* filesUnder(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* filesUnder(full);
    else if (entry.isFile()) yield full;
  }
}

function inputsHash() {
  const hash = createHash('sha256');
  const files = [
    ...INPUT_DIRS.flatMap((d) => (fs.existsSync(path.join(root, d)) ? [...filesUnder(path.join(root, d))] : [])),
    ...INPUT_FILES.map((f) => path.join(root, f)).filter((f) => fs.existsSync(f)),
  ];
  for (const file of files) {
    hash.update(path.relative(root, file));
    hash.update('\0');
    hash.update(fs.readFileSync(file));
    hash.update('\0');
  }
  return hash.digest('hex');
}

/**
 * Builds when the inputs changed since the last successful build (or nothing was built yet). Returns the exit
 * status: 0 when the build is current, the compiler's status when it failed.
 */
export function buildIfChanged() {
  const current = inputsHash();
  const recorded = fs.existsSync(STAMP) ? fs.readFileSync(STAMP, 'utf8').trim() : '';
  if (recorded === current && fs.existsSync(OUTPUT)) return 0;

  fs.rmSync(STAMP, { force: true }); // a build that fails half-way must not leave the old stamp standing
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = spawnSync(process.execPath, [tsc, '-b', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) return result.status ?? 1;
  fs.writeFileSync(STAMP, `${current}\n`);
  return 0;
}

// Run as a script (`npm test`); scripts/start.mjs imports it instead, to spare `npm start` a second Node process.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.exitCode = buildIfChanged();
}

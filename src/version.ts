// The package version, used as the DBOS application version: recovery only resumes workflows of the same
// version, so it must be stable across restarts of one build (the SDK's default is a hash of the code).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageJson(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'package.json');
    if (fs.existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('package.json not found');
    dir = parent;
  }
}

export const PACKAGE_ROOT = path.dirname(findPackageJson());
export const VERSION: string = (JSON.parse(fs.readFileSync(findPackageJson(), 'utf8')) as { version: string }).version;

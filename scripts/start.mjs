// `npm start`: build when the tree changed (build-if-changed.mjs), then run the service in this same process.
// Checking from a separate `node scripts/build-if-changed.mjs` cost a whole Node start-up (~0.15 s) of every
// `npm start`; the service's Node flags (--max-semi-space-size, --max-old-space-size) stay on package.json's
// command line, and apply to this process. The compiler, when it runs, is a child process with Node's defaults.
import { buildIfChanged } from './build-if-changed.mjs';

const status = buildIfChanged();
if (status !== 0) process.exit(status);
await import('../dist/src/main.js');

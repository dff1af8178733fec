// scripts/build-if-changed.mjs (run by `npm start` and `npm test`): an unchanged tree skips the compiler, any
// change to an input builds. Exercised on a small project in a temporary directory with the real TypeScript
// compiler; taking the compiler away shows whether the script tried to run it.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xyra-build-if-changed-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const write = (file: string, text: string) => {
  fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
  fs.writeFileSync(path.join(dir, file), text);
};
const run = () =>
  spawnSync(process.execPath, [path.join(dir, 'scripts', 'build-if-changed.mjs')], { encoding: 'utf8' });
const compilerLink = path.join(dir, 'node_modules', 'typescript');
const giveCompiler = () => fs.symlinkSync(path.resolve('node_modules', 'typescript'), compilerLink, 'dir');
const takeCompiler = () => fs.rmSync(compilerLink);
// The fixture's compiler settings: no DOM library and no @types to load (tsc's default library, with the DOM, was
// most of each compile's ~4 s of CPU; with these ~1.3 s). What is built does not matter here, only whether.
const options = (module: string) =>
  JSON.stringify({ compilerOptions: { outDir: 'dist', rootDir: '.', module, lib: ['es2022'], types: [] } });

it('builds a fresh tree, skips an unchanged one, rebuilds after any change to an input', () => {
  write('scripts/build-if-changed.mjs', fs.readFileSync('scripts/build-if-changed.mjs', 'utf8'));
  write('tsconfig.json', options('nodenext'));
  write(
    'tsconfig.build.json',
    JSON.stringify({
      extends: './tsconfig.json',
      compilerOptions: { incremental: true, tsBuildInfoFile: 'dist/.tsbuildinfo' },
      include: ['src'],
    }),
  );
  write('src/main.ts', 'export const version = 1;\n');
  fs.mkdirSync(path.join(dir, 'node_modules'));
  giveCompiler();

  const fresh = run();
  expect(fresh.status, fresh.stderr + fresh.stdout).toBe(0);
  expect(fs.readFileSync(path.join(dir, 'dist/src/main.js'), 'utf8')).toMatch(/version = 1/);

  // Unchanged: it succeeds with no compiler to run, so it did not run one.
  takeCompiler();
  expect(run().status).toBe(0);
  // Touched but not changed: still nothing to build.
  fs.utimesSync(path.join(dir, 'src/main.ts'), new Date(), new Date(Date.now() + 60_000));
  expect(run().status).toBe(0);

  // Changed: it must build (without a compiler that fails, and the failure leaves no stamp behind).
  write('src/main.ts', 'export const version = 2;\n');
  expect(run().status).not.toBe(0);
  expect(run().status).not.toBe(0);
  giveCompiler();
  const rebuilt = run();
  expect(rebuilt.status, rebuilt.stderr + rebuilt.stdout).toBe(0);
  expect(fs.readFileSync(path.join(dir, 'dist/src/main.js'), 'utf8')).toMatch(/version = 2/);

  // A changed compiler setting counts as a change too.
  takeCompiler();
  write('tsconfig.json', options('node16'));
  expect(run().status).not.toBe(0);
}, 180_000); // two real compiles, each a few seconds on a quiet machine and much longer on a loaded one

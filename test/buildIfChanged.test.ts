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

// scripts/start.mjs (`npm start`): the same check in the service's own process, then the service's entry in it.
it('npm start runs the build in its own process: builds a changed tree before running it, runs an unchanged one', () => {
  const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'xyra-start-'));
  const put = (file: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(tree, file)), { recursive: true });
    fs.writeFileSync(path.join(tree, file), text);
  };
  try {
    for (const script of ['build-if-changed.mjs', 'start.mjs'])
      put(`scripts/${script}`, fs.readFileSync(`scripts/${script}`, 'utf8'));
    put('package.json', JSON.stringify({ type: 'module' }));
    put('tsconfig.json', options('nodenext'));
    put(
      'tsconfig.build.json',
      JSON.stringify({ extends: './tsconfig.json', compilerOptions: { incremental: true }, include: ['src'] }),
    );
    // The entry says which build it is and which process runs it (the launcher's, with its Node flags).
    // (Declared here: the fixture's settings load no @types.)
    const entry = (version: number) =>
      'declare const console: { log(s: string): void };\n' +
      'declare const process: { pid: number; execArgv: string[] };\n' +
      `console.log(JSON.stringify({ version: ${version}, pid: process.pid, flags: process.execArgv }));\n`;
    put('src/main.ts', entry(1));
    const link = path.join(tree, 'node_modules', 'typescript');
    fs.mkdirSync(path.dirname(link), { recursive: true });
    const start = () => {
      const r = spawnSync(process.execPath, ['--max-old-space-size=512', path.join(tree, 'scripts', 'start.mjs')], {
        encoding: 'utf8',
      });
      const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
      return {
        status: r.status,
        output: r.stdout + r.stderr,
        pid: r.pid,
        ran: line ? (JSON.parse(line) as { version: number; pid: number; flags: string[] }) : undefined,
      };
    };

    fs.symlinkSync(path.resolve('node_modules', 'typescript'), link, 'dir');
    const fresh = start();
    expect(fresh.status, fresh.output).toBe(0);
    expect(fresh.ran).toEqual({ version: 1, pid: fresh.pid, flags: ['--max-old-space-size=512'] });

    // Unchanged: no compiler needed, the built entry runs.
    fs.rmSync(link);
    const unchanged = start();
    expect(unchanged.status).toBe(0);
    expect(unchanged.ran?.version).toBe(1);

    // Changed: the build comes first; without a compiler it fails, and the old build does not run.
    put('src/main.ts', entry(2));
    const failed = start();
    expect(failed.status).not.toBe(0);
    expect(failed.ran).toBeUndefined();
    fs.symlinkSync(path.resolve('node_modules', 'typescript'), link, 'dir');
    const rebuilt = start();
    expect(rebuilt.status, rebuilt.output).toBe(0);
    expect(rebuilt.ran?.version).toBe(2);
  } finally {
    fs.rmSync(tree, { recursive: true, force: true });
  }
}, 180_000);

it("npm start's script is the launcher with the service's Node flags", () => {
  const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> };
  expect(pkg.scripts.start).toBe('node --max-semi-space-size=2 --max-old-space-size=512 scripts/start.mjs');
});

// The OpenTelemetry SDK is loaded only when an exporter is configured (~0.08 s of every start-up otherwise).
// Observed in a real Node process running the compiled service's modules, with a module-resolution hook that
// reports every module loaded; the configured case shows the hook does see the SDK when it is loaded.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, expect, it } from 'vitest';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xyra-telemetry-load-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const hooks = path.join(dir, 'hooks.mjs');
fs.writeFileSync(
  hooks,
  'export async function resolve(specifier, context, next) {\n' +
    '  const resolved = await next(specifier, context);\n' +
    '  process.stderr.write(`loaded ${resolved.url}\\n`);\n' +
    '  return resolved;\n' +
    '}\n',
);
// The service's whole module graph (as main.ts loads it), then its telemetry started as startService does.
const probe = path.join(dir, 'probe.mjs');
const dist = (file: string) => pathToFileURL(path.resolve('dist/src', file)).href;
fs.writeFileSync(
  probe,
  `await import('${dist('service.js')}');\n` +
    `const { loadConfig } = await import('${dist('config.js')}');\n` +
    `const { createLogger } = await import('${dist('logger.js')}');\n` +
    `const { startTelemetry } = await import('${dist('telemetry/metrics.js')}');\n` +
    `const telemetry = await startTelemetry(loadConfig(process.env), createLogger('silent'), 'test');\n` +
    `await telemetry.shutdown();\n` +
    `process.stderr.write('probe done\\n');\n`,
);

function modulesLoaded(env: Record<string, string>): string[] {
  const register = `data:text/javascript,import{register}from'node:module';register('${pathToFileURL(hooks).href}')`;
  const r = spawnSync(process.execPath, ['--import', register, probe], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', DATABASE_URL: 'postgres://unused@127.0.0.1/unused', ...env },
  });
  expect(r.stderr, r.stderr).toContain('probe done');
  return r.stderr
    .split('\n')
    .filter((l) => l.startsWith('loaded '))
    .map((l) => l.slice('loaded '.length));
}

const sdk = (urls: string[]) => urls.filter((u) => /@opentelemetry\/(sdk-metrics|resources)\//.test(u));

it('loads no OpenTelemetry SDK when no exporter is configured (the default)', () => {
  const loaded = modulesLoaded({});
  expect(loaded.some((u) => u.endsWith('/dist/src/service.js'))).toBe(true);
  expect(sdk(loaded)).toEqual([]);
}, 60_000);

it('loads the SDK when an exporter is configured', () => {
  expect(sdk(modulesLoaded({ OTEL_METRICS_EXPORTER: 'prometheus' })).length).toBeGreaterThan(0);
}, 60_000);

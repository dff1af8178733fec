// Deployment files: the compose file and Dockerfile pass their linters (and a broken copy fails them, so
// the CI lint step means something); .envrc.template lists every variable config.ts reads.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const bin = (name: string) => path.resolve('node_modules/.bin', name);
const lint = (tool: string, args: string[]) => spawnSync(bin(tool), args, { encoding: 'utf8' });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xyra-deploy-'));

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
    fs.writeFileSync(broken, fs.readFileSync('Dockerfile', 'utf8').replace('HEALTHCHECK --interval', 'HEALTHCHEK --interval'));
    expect(lint('dockerfile-utils', ['lint', broken]).status).not.toBe(0);
  });

  it('the image runs `npx dbos start` under tini and the entry wrapper, with a /readyz healthcheck, as non-root', () => {
    const df = fs.readFileSync('Dockerfile', 'utf8');
    expect(df).toMatch(/^CMD \["npx", "dbos", "start"\]$/m);
    expect(df).toMatch(/^ENTRYPOINT \["\/usr\/bin\/tini", "--", "node", "dist\/src\/ops\/containerInit.js"\]$/m);
    expect(df).toMatch(/^HEALTHCHECK [\s\S]*\/readyz/m);
    expect(df).toMatch(/^USER node$/m);
    expect(df).toMatch(/npm ci --omit=dev/);
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

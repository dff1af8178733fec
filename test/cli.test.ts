// The `xyra` command's own behaviour (sub-commands with a subsystem are tested with that subsystem).
import { describe, expect, it } from 'vitest';
import { runCli, startServiceProcess } from './support/serviceProcess.js';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path, { resolve } from 'node:path';
import { createTestDatabase } from './support/database.js';

describe('xyra', () => {
  it('lists its commands with --help and exits 2 on an unknown one', async () => {
    const help = await runCli(['--help'], {});
    expect(help.code).toBe(0);
    for (const c of ['start', 'migrate', 'simulator', 'ingest', 'history', 'stats', 'trigger', 'schedule']) {
      expect(help.stdout).toContain(`  ${c}`);
    }
    const unknown = await runCli(['frobnicate'], {});
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
  });

  it('runs the simulator standalone, requiring the token it is given, and exits 0 on SIGTERM', async () => {
    const sim = startServiceProcess({ XYRA_API_TOKEN: 'standalone-token-1' }, resolve('dist/src/cli.js'), [
      'simulator',
      '--port',
      '0',
      '--host',
      '127.0.0.1',
    ]);
    const line = await sim.waitForLog((l) => typeof l.url === 'string', 15_000);
    const url = String(line.url);
    const body = JSON.stringify({ workflow_id: 'wf-1', triggered_at: new Date().toISOString(), batch_size_limit: 5 });
    const post = (auth?: string) =>
      fetch(`${url}/v1/evaluation-batches`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'idempotency-key': 'wf-1',
          ...(auth ? { authorization: auth } : {}),
        },
        body,
      });
    expect((await post()).status).toBe(401);
    const ok = await post('Bearer standalone-token-1');
    expect(ok.status).toBe(200);
    const counts = (await ok.json()) as { processed: number; succeeded: number; failed: number };
    expect(counts.processed).toBeLessThanOrEqual(5);
    expect(counts.succeeded + counts.failed).toBe(counts.processed);
    expect(await sim.stop('SIGTERM')).toBe(0);
  });

  it('xyra start stops the service cleanly on a terminal Ctrl-C (SIGINT to the whole process group)', async () => {
    const appUrl = await createTestDatabase('clistart');
    const child = spawn(process.execPath, [resolve('dist/src/cli.js'), 'start'], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        DATABASE_URL: appUrl,
        PORT: '0',
        EXECUTOR_ID: 'cli-start',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group, like a shell job in a terminal
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    for (let i = 0; i < 600 && !out.includes('xyra-scheduler ready'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(out).toContain('xyra-scheduler ready');
    process.kill(-child.pid!, 'SIGINT'); // what the terminal does on Ctrl-C
    expect(await exited).toBe(0);
    expect(out).toContain('"msg":"stopped"');
    expect(out).not.toContain('second signal');
  });

  it('generates the same dataset for the same seed, a different one for another seed', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'xyra-generate-'));
    try {
      const gen = (seed: string, out: string) =>
        runCli(['generate', '--records', '50', '--seed', seed, '--out', path.join(dir, out)], {});
      for (const [seed, out] of [
        ['7', 'a.json'],
        ['7', 'b.json'],
        ['8', 'c.json'],
      ] as const)
        expect((await gen(seed, out)).code).toBe(0);
      const [a, b, c] = await Promise.all(
        ['a.json', 'b.json', 'c.json'].map((f) => fs.readFile(path.join(dir, f), 'utf8')),
      );
      expect(b).toBe(a);
      expect(c).not.toBe(a);
      const records = JSON.parse(a!) as Array<{ id: number }>;
      expect(records.map((r) => r.id)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

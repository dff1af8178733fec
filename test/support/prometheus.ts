// A real Prometheus server (the Debian package, installed by the test run's global setup, scripts/ensure-test-tools.sh, when missing) that
// scrapes one service every second and, optionally, evaluates rule files every second; and promtool.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';

const run = promisify(execFile);

export interface PromtoolResult {
  code: number;
  output: string;
}

/** Runs promtool with these arguments; its exit code and combined output (never throws on a failing check). */
export async function promtool(args: string[], cwd?: string): Promise<PromtoolResult> {
  try {
    const { stdout, stderr } = await run('promtool', args, { cwd, timeout: 60_000 });
    return { code: 0, output: stdout + stderr };
  } catch (e) {
    const err = e as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof err.code !== 'number') throw e; // promtool missing or killed: not a check result
    return { code: err.code, output: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

const vectorSchema = z.object({
  status: z.literal('success'),
  data: z.object({
    resultType: z.literal('vector'),
    result: z.array(z.object({ metric: z.record(z.string(), z.string()), value: z.tuple([z.number(), z.string()]) })),
  }),
});
export type Vector = z.infer<typeof vectorSchema>['data']['result'];

const rulesSchema = z.object({
  status: z.literal('success'),
  data: z.object({
    groups: z.array(
      z.object({
        name: z.string(),
        rules: z.array(
          z.object({
            name: z.string(),
            query: z.string(),
            health: z.string(),
            lastError: z.string().optional(),
            lastEvaluation: z.string(),
          }),
        ),
      }),
    ),
  }),
});
export type RuleGroups = z.infer<typeof rulesSchema>['data']['groups'];

const alertsSchema = z.object({
  status: z.literal('success'),
  data: z.object({ alerts: z.array(z.object({ labels: z.record(z.string(), z.string()), state: z.string() })) }),
});
export type Alerts = z.infer<typeof alertsSchema>['data']['alerts'];

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface PrometheusServer {
  url: string;
  query(expr: string): Promise<Vector>;
  rules(): Promise<RuleGroups>;
  alerts(): Promise<Alerts>;
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  targetPort: number;
  /** Where its config and TSDB go (the caller removes it). */
  workDir: string;
  jobName: string;
  /** Absolute paths of rule files to load. */
  ruleFiles?: string[];
}

export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusServer> {
  const port = await freePort();
  const configFile = path.join(options.workDir, 'prometheus.yml');
  const ruleFiles = options.ruleFiles ?? [];
  await fs.writeFile(
    configFile,
    [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      ...(ruleFiles.length > 0 ? ['rule_files:', ...ruleFiles.map((f) => `  - ${JSON.stringify(f)}`)] : []),
      'scrape_configs:',
      `  - job_name: ${options.jobName}`,
      '    metrics_path: /metrics',
      '    static_configs:',
      `      - targets: ['127.0.0.1:${options.targetPort}']`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(options.workDir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop();
      throw new Error(`prometheus did not become ready:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const api = async (p: string) => (await fetch(`${url}${p}`)).json();
  return {
    url,
    query: async (expr) => vectorSchema.parse(await api(`/api/v1/query?query=${encodeURIComponent(expr)}`)).data.result,
    rules: async () => rulesSchema.parse(await api('/api/v1/rules')).data.groups,
    alerts: async () => alertsSchema.parse(await api('/api/v1/alerts')).data.alerts,
    stop,
  };
}

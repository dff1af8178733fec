import { describe, expect, it } from 'vitest';
import { defaultSystemDatabaseUrl, loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';

function errorOf(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies the contract defaults', () => {
    const c = loadConfig({});
    expect(c.databaseUrl).toBeUndefined();
    expect(c.xyraApiUrl).toBeUndefined();
    expect(c.batch).toMatchObject({
      cron: '*/2 * * * *',
      sizeLimit: 30,
      catchUp: 'latest',
      timezone: 'UTC',
      catchUpWindowMs: 24 * 3_600_000,
      pauseAfterFailures: 0,
    });
    expect(c.failoverAfterMs).toBe(30_000);
    expect(c.historyRetentionMs).toBe(30 * 86_400_000);
    expect(c.dashboardToken).toBeUndefined();
    expect(c.metrics.otlpProtocol).toBe('http/protobuf');
    expect(c.xyra).toMatchObject({ timeoutMs: 10_000, maxAttempts: 5 });
    expect(c.port).toBe(3000);
    expect(c.logLevel).toBe('info');
    expect(c.metrics.exporters).toEqual([]);
    expect(c.pipeline.failIds).toEqual([]);
    expect(c.executorId.length).toBeGreaterThan(0);
  });

  it('parses given values', () => {
    const c = loadConfig({
      BATCH_CRON: '*/2 * * * * *',
      BATCH_CATCH_UP: 'all',
      XYRA_MAX_ATTEMPTS: '3',
      PIPELINE_FAIL_IDS: '50, 7',
      OTEL_METRICS_EXPORTER: 'console,otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/',
      EXECUTOR_ID: 'replica-1',
      BATCH_TIMEZONE: 'America/New_York',
      FAILOVER_AFTER: '45s',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/json',
    });
    expect(c.batch.timezone).toBe('America/New_York');
    expect(c.failoverAfterMs).toBe(45_000);
    expect(c.metrics.otlpProtocol).toBe('http/json');
    expect(c.batch.cron).toBe('*/2 * * * * *');
    expect(c.batch.catchUp).toBe('all');
    expect(c.xyra.maxAttempts).toBe(3);
    expect(c.pipeline.failIds).toEqual(['50', '7']);
    expect(c.metrics.exporters).toEqual(['console', 'otlp']);
    expect(c.metrics.otlpEndpoint).toBe('http://collector:4318/v1/metrics');
    expect(c.executorId).toBe('replica-1');
    expect(c.fenceExit).toBe(false);
    expect(loadConfig({ FENCE_EXIT: 'true' }).fenceExit).toBe(true);
  });

  it('treats empty strings as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', BATCH_CRON: ' ' }).batch.cron).toBe('*/2 * * * *');
  });

  it.each([
    ['BATCH_CRON', 'every minute', /BATCH_CRON/],
    ['BATCH_CRON', '* * *', /5 or 6 fields/],
    ['BATCH_CRON', '99 * * * *', /BATCH_CRON/],
    ['XYRA_MAX_ATTEMPTS', 'five', /whole number/],
    ['XYRA_MAX_ATTEMPTS', '0', /XYRA_MAX_ATTEMPTS/],
    ['BATCH_CATCH_UP', 'some', /BATCH_CATCH_UP/],
    ['DATABASE_URL', 'mysql://x', /postgres/],
    ['XYRA_API_URL', 'not a url', /http/],
    ['OTEL_METRICS_EXPORTER', 'statsd', /statsd/],
    ['OTEL_EXPORTER_OTLP_PROTOCOL', 'grpc', /http\/protobuf/],
    ['BATCH_TIMEZONE', 'Mars/Olympus', /IANA/],
    ['BATCH_CATCH_UP_WINDOW', '24 hours', /duration/],
    ['FAILOVER_AFTER', '10ms', /at least/],
    ['FENCE_EXIT', 'yes', /true or false/],
    ['HISTORY_RETENTION', 'forever', /duration/],
    ['BATCH_PAUSE_AFTER_FAILURES', '-1', /BATCH_PAUSE_AFTER_FAILURES/],
    ['PORT', '70000', /PORT/],
    ['DASHBOARD_TOKEN', 'short-tok', /at least 16 characters/],
    ['ADMIN_TOKEN', 'short-admin', /at least 16 characters/],
    ['HOST', 'http://0.0.0.0', /address to listen on/],
    ['ALLOWED_HOSTS', 'a.example, b example', /host names/],
  ])('rejects %s=%s with one line naming the variable', (variable, value, pattern) => {
    const e = errorOf({ [variable]: value });
    expect(e.variable).toBe(variable);
    expect(e.message.startsWith(`${variable}: `)).toBe(true);
    expect(e.message).toMatch(pattern);
    expect(e.message).not.toContain('\n');
    expect(e.exitCode).toBe(2);
  });

  it('listens on loopback by default; HOST and ALLOWED_HOSTS as given', () => {
    expect(loadConfig({})).toMatchObject({ host: '127.0.0.1', allowedHosts: undefined });
    expect(loadConfig({ HOST: '0.0.0.0', ALLOWED_HOSTS: 'Sched.Example.com, [::1]' })).toMatchObject({
      host: '0.0.0.0',
      allowedHosts: ['sched.example.com', '::1'],
    });
  });

  it('does not echo a too-short dashboard token in its error', () => {
    expect(errorOf({ DASHBOARD_TOKEN: 'tok-12345' }).message).not.toContain('tok-12345');
  });

  it('does not echo a database password in its error', () => {
    const e = errorOf({ DBOS_SYSTEM_DATABASE_URL: 'mysql://u:hunter2secret@h/db' });
    expect(e.message).not.toContain('hunter2secret');
  });

  it('derives the system database next to the app database', () => {
    expect(defaultSystemDatabaseUrl('postgresql://u:p@h:5432/app')).toBe('postgresql://u:p@h:5432/app_dbos_sys');
  });
});

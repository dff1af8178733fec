// The secret scrubber: registered secrets of 8 characters or more are replaced wherever they occur in log
// text; shorter ones are never scrubbed by substring (they occur in ordinary words and data); URL passwords
// are masked whatever their length.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, MIN_SCRUBBED_SECRET_LENGTH, redact, registerSecret, registerUrlSecrets } from '../src/logger.js';
import { publicRunError } from '../src/ops/api.js';
import { oneLine, renderTable } from '../src/ops/format.js';

it('scrubs long secrets by substring, never short ones, and masks URL passwords of any length', () => {
  expect(MIN_SCRUBBED_SECRET_LENGTH).toBe(8);
  registerSecret('xyra');
  registerSecret('s3cr3t-t0ken-value');
  expect(redact('the xyra scheduler sent s3cr3t-t0ken-value')).toBe('the xyra scheduler sent [REDACTED]');
  expect(redact('postgresql://postgres:xyra@db:5432/xyra')).toBe('postgresql://postgres:[REDACTED]@db:5432/xyra');
});

describe('the logger scrubs secrets inside logged objects and errors', () => {
  const capture = () => {
    const chunks: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk.toString());
        done();
      },
    });
    return { logger: createLogger('info', stream), text: () => chunks.join('') };
  };

  it('a registered secret inside an error object, a nested object and an array', () => {
    const secret = 'xyra-api-T0ken-9f2c41d7';
    registerSecret(secret);
    const { logger, text } = capture();
    const err = new Error(`request failed: Authorization: Bearer ${secret}`);
    logger.error({ err }, 'call failed');
    logger.warn({ err: err.message, detail: { headers: { 'x-echo': secret } }, list: [`a ${secret}`] }, 'echoed');
    logger.info({ reason: { cause: err } }, `message with ${secret}`);
    const out = text();
    expect(out).toContain('request failed: Authorization: Bearer [REDACTED]');
    expect(out).toContain('"x-echo":"[REDACTED]"');
    expect(out).not.toContain(secret);
  });

  it('credentials inside a URL: masked in place, and once registered, wherever they occur', () => {
    const { logger, text } = capture();
    logger.info({ url: 'http://otel-user:otlpPassw0rd-55@collector:4318/v1/metrics' }, 'exporting metrics');
    registerUrlSecrets('https://api.example/v1?api_token=QueryT0ken-abcdef12');
    registerUrlSecrets('postgres://xyra:DbPassw0rd-77aa@db:5432/xyra');
    logger.warn(
      { err: 'password authentication failed for password DbPassw0rd-77aa' },
      'pool error: token QueryT0ken-abcdef12',
    );
    const out = text();
    expect(out).toContain('http://otel-user:[REDACTED]@collector:4318/v1/metrics');
    expect(out).not.toMatch(/otlpPassw0rd-55|DbPassw0rd-77aa|QueryT0ken-abcdef12/);
  });

  it('never throws on a cyclic or very deep object', () => {
    const { logger, text } = capture();
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;
    let deep: Record<string, unknown> = {};
    for (let i = 0; i < 1_000; i++) deep = { deep };
    logger.info({ cyclic, deep }, 'odd objects');
    expect(text()).toContain('[Circular]');
  });
});

describe('terminal output', () => {
  it('shows control characters (escape sequences, bidi overrides) as ? in tables and one-line text', () => {
    const hostile = 'ok\u001b[2J\u001b]0;pwned\u0007\u009b31m\u202eevil';
    expect(oneLine(hostile)).toBe('ok?[2J?]0;pwned??31m?evil');
    expect(renderTable(['key', 'error'], [[`ds:${hostile}`, hostile]]).join('\n')).not.toMatch(
      /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/,
    );
  });
});

describe('/api/runs errors', () => {
  it("keep only the name of DBOS's serialised error (no stack, SQL or message); the batch's own messages pass", () => {
    const serialised = JSON.stringify({
      name: 'Error',
      message: 'Step failed: insert into tasks (task_key) values ($1) — password=hunter2hunter2',
      stack: 'Error: Step failed\n    at /app/dist/src/pipeline/chunk.js:12:3',
    });
    for (const error of [serialised, serialised.slice(0, 500), serialised.slice(0, 40)]) {
      const shown = publicRunError(error);
      expect(shown).toBe('the workflow failed (Error); details: xyra history --json');
    }
    expect(publicRunError('HTTP 400: bad request (gave up after 1 attempts)')).toBe(
      'HTTP 400: bad request (gave up after 1 attempts)',
    );
    expect(publicRunError(null)).toBeNull();
  });
});

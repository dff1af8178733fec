// The secret scrubber: registered secrets of 8 characters or more are replaced wherever they occur in log
// text; shorter ones are never scrubbed by substring (they occur in ordinary words and data); URL passwords
// are masked whatever their length.
import { expect, it } from 'vitest';
import { MIN_SCRUBBED_SECRET_LENGTH, redact, registerSecret } from '../src/logger.js';

it('scrubs long secrets by substring, never short ones, and masks URL passwords of any length', () => {
  expect(MIN_SCRUBBED_SECRET_LENGTH).toBe(8);
  registerSecret('xyra');
  registerSecret('s3cr3t-t0ken-value');
  expect(redact('the xyra scheduler sent s3cr3t-t0ken-value')).toBe('the xyra scheduler sent [REDACTED]');
  expect(redact('postgresql://postgres:xyra@db:5432/xyra')).toBe('postgresql://postgres:[REDACTED]@db:5432/xyra');
});

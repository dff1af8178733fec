import { describe, expect, it } from 'vitest';
import { SimulatedTransformError, transformRecord, uppercaseDeep } from '../src/pipeline/transform.js';

describe('uppercaseDeep', () => {
  it('uppercases every string value, deeply, and leaves keys and other values alone', () => {
    const input = {
      id: 7,
      title: 'Write tests',
      nested: { note: 'ok ß', list: ['a', 1, null, true, { deep: 'x' }], emptyText: '' },
      flag: false,
      nothing: null,
      camelKey: 'value',
    };
    expect(uppercaseDeep(input)).toEqual({
      id: 7,
      title: 'WRITE TESTS',
      nested: { note: 'OK SS', list: ['A', 1, null, true, { deep: 'X' }], emptyText: '' },
      flag: false,
      nothing: null,
      camelKey: 'VALUE',
    });
  });

  it('does not modify its input', () => {
    const input = { a: ['b'] };
    uppercaseDeep(input);
    expect(input).toEqual({ a: ['b'] });
  });

  it('handles top-level scalars and arrays', () => {
    expect(uppercaseDeep('abc')).toBe('ABC');
    expect(uppercaseDeep(3.5)).toBe(3.5);
    expect(uppercaseDeep(['x', ['y']])).toEqual(['X', ['Y']]);
  });
});

describe('transformRecord', () => {
  it('throws for ids listed in the fail set, compared as strings', () => {
    const fail = new Set(['50', 'abc']);
    expect(() => transformRecord({ id: 50, title: 't' }, fail)).toThrow(SimulatedTransformError);
    expect(() => transformRecord({ id: '50' }, fail)).toThrow(/record id 50/);
    expect(() => transformRecord({ id: 'abc' }, fail)).toThrow(SimulatedTransformError);
    expect(transformRecord({ id: 51, title: 't' }, fail)).toEqual({ id: 51, title: 'T' });
    expect(transformRecord({ title: 'no id' }, fail)).toEqual({ title: 'NO ID' });
  });
});

// The transform done on a record's text (transformRecordText, src/pipeline/transform.ts) must give exactly what the
// parse → transformRecord → JSON.stringify path gives, as Postgres stores it (JSONB), or decline (undefined) so the
// record takes that path. Checked on tricky texts and generated records, in JS and in a real Postgres.
import { expect, it } from 'vitest';
import { MAX_RECORD_DEPTH } from '../src/pipeline/dataset.js';
import { generateRecord, seededRandom } from '../src/pipeline/generator.js';
import { recordId } from '../src/pipeline/identity.js';
import { transformRecord, transformRecordText, type JsonValue } from '../src/pipeline/transform.js';
import { createTestDatabase, query } from './support/database.js';

const none = new Set<string>();

/** What the parse path gives for a text: the record's id, title and transformed data. */
function slow(text: string, failIds: ReadonlySet<string> = none) {
  const record = JSON.parse(text) as { [key: string]: JsonValue };
  return {
    id: recordId(record),
    title: (record.title as string | null | undefined) ?? null,
    data: transformRecord(record, failIds),
  };
}

const taken = [
  '{"id":1,"title":"Task 1: tango","tags":["a","b"],"meta":{"owner":"x","n":7.9,"z":null,"t":true}}',
  '{"id":"abc","title":null,"description":"mixed Case"}',
  '{"title":"no id"}',
  '{}',
  '{"id":5}',
  '{"id" : 12 , "title" : "spaces" ,\n\t "list" : [ 1 , "two" , [ "three" ] ] }', // staged texts are trimmed
  '{"camelKey":"value","UPPER":"up","n":-2,"f":0.5,"big":123456789012345,"small":0.000001}',
  '{"s":"straße ﬁne ǆ i ı","emoji":"😀 ok","greek":"ΐ"}', // special casing: ß → SS, ﬁ → FI, ΐ → three code points
  '{"id":1,"id":"later","title":"a","title":null}', // duplicate keys: the last one counts, as in JSON.parse
  '{"a":{"b":{"c":["deep",{"d":"er"}]}}}',
  '{"k":"colon: inside","v":"comma, inside","w":"brace } ] inside"}',
  '{"":"empty key","e":""}',
];

const declined: Array<[string, string]> = [
  ['{"s":"line\\nbreak"}', 'a backslash (escapes)'],
  ['{"s":"\\u0041"}', 'a unicode escape'],
  ['{"n":1.0}', 'a number JSON.stringify writes differently'],
  ['{"n":1e3}', 'an exponent'],
  ['{"n":-0}', 'minus zero'],
  ['{"n":12345678901234567890}', 'an integer beyond double precision'],
  ['{"n":0.1000000000000000055511151231257827}', 'more digits than a double keeps'],
  ['{"__proto__":{"x":"y"}}', 'a __proto__ key'],
  ['{"a":{"__proto__":1}}', 'a nested __proto__ key'],
  ['{"id":true}', 'a boolean id'],
  ['{"id":null}', 'a null id'],
  ['{"id":{"x":1}}', 'an object id'],
  ['{"id":[1]}', 'an array id'],
  ['{"title":5}', 'a number title'],
  ['{"title":false}', 'a boolean title'],
  ['{"title":{"a":"b"}}', 'an object title'],
  ['["not","an","object"]', 'an array'],
  ['"text"', 'a string'],
  [`{"a":${'['.repeat(MAX_RECORD_DEPTH)}${']'.repeat(MAX_RECORD_DEPTH)}}`, 'nested deeper than the limit'],
];

it('gives exactly the parse path’s id, title and data, or declines', () => {
  for (const text of taken) {
    const fast = transformRecordText(text, none, MAX_RECORD_DEPTH);
    expect(fast, text).toBeDefined();
    const expected = slow(text);
    expect({ id: fast?.id, title: fast?.title, data: JSON.parse(fast?.data ?? 'null') as unknown }, text).toEqual(
      expected,
    );
  }
  for (const [text, why] of declined) expect(transformRecordText(text, none, MAX_RECORD_DEPTH), why).toBeUndefined();
});

it('declines a record whose id is in the fail set (the parse path throws for it)', () => {
  const fail = new Set(['7', 'x']);
  expect(transformRecordText('{"id":7,"title":"t"}', fail, MAX_RECORD_DEPTH)).toBeUndefined();
  expect(transformRecordText('{"id":"x"}', fail, MAX_RECORD_DEPTH)).toBeUndefined();
  expect(transformRecordText('{"id":8}', fail, MAX_RECORD_DEPTH)?.id).toBe('8');
});

it('stores the same JSONB as the parse path, for tricky texts and 2,000 generated records', async () => {
  const rand = seededRandom(7);
  const texts = [...taken, ...Array.from({ length: 2_000 }, (_, i) => JSON.stringify(generateRecord(i + 1, rand)))];
  const pairs = texts.map((text) => {
    const fast = transformRecordText(text, none, MAX_RECORD_DEPTH);
    expect(fast, text).toBeDefined();
    return { fast: fast?.data, slow: JSON.stringify(slow(text).data) };
  });
  const url = await createTestDatabase('transform_text');
  const differing = await query<{ i: number }>(
    url,
    `select (i - 1)::int as i from jsonb_array_elements($1::jsonb) with ordinality p(pair, i)
      where (pair->>'fast')::jsonb::text is distinct from (pair->>'slow')::jsonb::text`,
    [JSON.stringify(pairs)],
  );
  expect(differing.map((d) => texts[d.i])).toEqual([]);
});

// Seeded, reproducible datasets for demos and benchmarks: the same (records, seed) always yields the same
// bytes. Written as a stream, so a million records take no more memory than ten.
import fs from 'node:fs';
import { once } from 'node:events';

const WORDS = [
  'alpha',
  'bravo',
  'charlie',
  'delta',
  'echo',
  'foxtrot',
  'golf',
  'hotel',
  'india',
  'juliet',
  'kilo',
  'lima',
  'mike',
  'november',
  'oscar',
  'papa',
  'quebec',
  'romeo',
  'sierra',
  'tango',
  'uniform',
  'victor',
  'whiskey',
  'xray',
  'yankee',
  'zulu',
  'ingest',
  'schedule',
  'review',
  'deploy',
  'measure',
  'verify',
];

/** mulberry32: tiny, fast, good enough for test data, and identical on every platform. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface GeneratedRecord {
  id: number;
  title: string;
  description: string;
  priority: number;
  done: boolean;
  tags: string[];
  meta: { owner: string; estimate_hours: number | null };
}

export function generateRecord(id: number, rand: () => number): GeneratedRecord {
  const word = () => WORDS[Math.floor(rand() * WORDS.length)] ?? 'alpha';
  const words = (n: number) => Array.from({ length: n }, word).join(' ');
  return {
    id,
    title: `Task ${id}: ${words(2)}`,
    description: words(6),
    priority: 1 + Math.floor(rand() * 5),
    done: rand() < 0.3,
    tags: Array.from({ length: 1 + Math.floor(rand() * 3) }, word),
    meta: { owner: word(), estimate_hours: rand() < 0.2 ? null : Math.round(rand() * 400) / 10 },
  };
}

export type GeneratedFormat = 'json' | 'ndjson';

/** Write `records` records (ids 1..records) to `file`. */
export async function writeDataset(
  file: string,
  records: number,
  seed: number,
  format: GeneratedFormat,
): Promise<void> {
  const rand = seededRandom(seed);
  const out = fs.createWriteStream(file);
  const write = async (text: string) => {
    if (!out.write(text)) await once(out, 'drain');
  };
  const BLOCK = 1000;
  if (format === 'json') await write('[\n');
  for (let start = 1; start <= records; start += BLOCK) {
    const lines: string[] = [];
    for (let id = start; id < start + BLOCK && id <= records; id++) {
      const text = JSON.stringify(generateRecord(id, rand));
      lines.push(format === 'json' && id < records ? `${text},` : text);
    }
    await write(`${lines.join('\n')}\n`);
  }
  if (format === 'json') await write(']\n');
  out.end();
  await once(out, 'finish');
}

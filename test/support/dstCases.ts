// Expected slots around the 2026 daylight-saving changes in New York, shared by the cron, engine-firing and
// `schedule next` tests (one table, three code paths that must agree).
/** The expected slots around the two 2026 changes in New York (EST = UTC-5, EDT = UTC-4). */
export const NEW_YORK_2026_CASES = [
  {
    cron: '30 2 * * *',
    from: '2026-03-07T00:00:00.000Z',
    // 2:30 does not exist on Mar 8: it runs at the first instant after the gap, 3:00 EDT.
    slots: ['2026-03-07T07:30:00.000Z', '2026-03-08T07:00:00.000Z', '2026-03-09T06:30:00.000Z'],
  },
  {
    cron: '30 1 * * *',
    from: '2026-03-07T00:00:00.000Z',
    slots: ['2026-03-07T06:30:00.000Z', '2026-03-08T06:30:00.000Z', '2026-03-09T05:30:00.000Z'],
  },
  {
    cron: '*/30 * * * *',
    from: '2026-03-08T05:50:00.000Z',
    // 1:00, 1:30 EST, then 3:00, 3:30 EDT: every 30 real minutes.
    slots: [
      '2026-03-08T06:00:00.000Z',
      '2026-03-08T06:30:00.000Z',
      '2026-03-08T07:00:00.000Z',
      '2026-03-08T07:30:00.000Z',
    ],
  },
  {
    cron: '30 1 * * *',
    from: '2026-10-31T00:00:00.000Z',
    // 1:30 happens twice on Nov 1: only the first (EDT) occurrence runs.
    slots: ['2026-10-31T05:30:00.000Z', '2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z'],
  },
  {
    cron: '30 2 * * *',
    from: '2026-10-31T00:00:00.000Z',
    slots: ['2026-10-31T06:30:00.000Z', '2026-11-01T07:30:00.000Z', '2026-11-02T07:30:00.000Z'],
  },
  {
    cron: '*/30 * * * *',
    from: '2026-11-01T04:50:00.000Z',
    // 1:00, 1:30 EDT, then 1:00, 1:30 EST again, then 2:00 EST: every 30 real minutes.
    slots: [
      '2026-11-01T05:00:00.000Z',
      '2026-11-01T05:30:00.000Z',
      '2026-11-01T06:00:00.000Z',
      '2026-11-01T06:30:00.000Z',
      '2026-11-01T07:00:00.000Z',
    ],
  },
] as const;

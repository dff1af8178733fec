// A vitest reporter that prints the ten slowest test files at the end of a run (wall time of each file's
// set-up, collection, hooks and tests), so a file that makes the suite slow is named where everyone sees it.
import path from 'node:path';
import type { Reporter, TestModule } from 'vitest/node';

export default class SlowestFiles implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const rows = modules
      .map((m) => {
        const d = m.diagnostic();
        return {
          file: path.relative(process.cwd(), m.moduleId),
          ms: d.prepareDuration + d.setupDuration + d.collectDuration + d.duration,
        };
      })
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 10);
    if (rows.length === 0) return;
    const width = Math.max(...rows.map((r) => r.file.length));
    const lines = rows.map((r) => `  ${r.file.padEnd(width)}  ${(r.ms / 1000).toFixed(1).padStart(6)} s`);
    process.stdout.write(`\nSlowest test files:\n${lines.join('\n')}\n`);
  }
}

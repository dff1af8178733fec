// Container entry wrapper: `node dist/src/ops/containerInit.js npx dbos start` (under tini as PID 1).
//
// Why it exists (DBOS 5.3.0 CLI, npm 10, verified here):
// - npm/npx exits on SIGTERM at once (code 143) without forwarding the signal, orphaning `dbos start`
//   and the service: the service never drains.
// - `dbos start` forwards SIGTERM to its start command's shell (our start command `exec`s node, so that
//   is the service itself), but after that child exits 0 the CLI never exits (a timer keeps it alive).
// So this wrapper delivers SIGTERM to the `dbos start` process (which hands it to the service, once),
// and exits with the service's outcome: when the CLI exits by itself (non-zero: it exits with the
// child's code) that code; when the CLI is left alive with no child (its "success" state), 0.
import { spawn } from 'node:child_process';
import fs from 'node:fs';

const POLL_MS = 250;
/** The CLI exits promptly on a failed child; alive this long after its child is gone means success. */
const HUNG_AFTER_SUCCESS_MS = 2_000;
const DBOS_START = /(^|\/)dbos(\.js)?\u0000start(\u0000|$)/;

interface Proc {
  pid: number;
  ppid: number;
  cmdline: string;
}

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      // Field 4 (ppid) follows the parenthesised command name, which may itself contain spaces.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      out.push({ pid: Number(name), ppid, cmdline: fs.readFileSync(`/proc/${name}/cmdline`, 'utf8') });
    } catch {
      // exited while we looked
    }
  }
  return out;
}

function descendants(root: number, all: Proc[]): Proc[] {
  const found: Proc[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    for (const p of all) {
      if (p.ppid === pid) {
        found.push(p);
        queue.push(p.pid);
      }
    }
  }
  return found;
}

function main(argv: string[]): void {
  const [command, ...args] = argv;
  if (!command) {
    process.stderr.write('usage: containerInit <command> [args...]   (e.g. npx dbos start)\n');
    process.exit(2);
  }
  // Own process group, so leftovers can be cleaned up as one.
  const child = spawn(command, args, { stdio: 'inherit', detached: true });
  const childPid = child.pid;
  if (childPid === undefined) {
    process.stderr.write(`containerInit: cannot start ${command}\n`);
    process.exit(1);
  }
  let signalled = false;
  let cliPid: number | undefined;
  let childlessSince: number | undefined;

  const finish = (code: number) => {
    try {
      process.kill(-childPid, 'SIGKILL');
    } catch {
      // group already gone
    }
    process.exit(code);
  };

  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) return; // one signal reaches the service once; a second would make it exit at once
    signalled = true;
    const tree = descendants(childPid, processes());
    const target = tree.find((p) => DBOS_START.test(p.cmdline))?.pid ?? childPid;
    process.stderr.write(`containerInit: ${signal} → pid ${target}\n`);
    try {
      process.kill(target, signal);
    } catch {
      finish(0);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  child.on('exit', (code, signal) => finish(code ?? (signal === 'SIGTERM' || signal === 'SIGINT' ? 0 : 1)));

  setInterval(() => {
    const all = processes();
    const tree = descendants(childPid, all);
    cliPid ??= tree.find((p) => DBOS_START.test(p.cmdline))?.pid;
    if (cliPid === undefined) return;
    const cliAlive = all.some((p) => p.pid === cliPid);
    const cliChildren = all.filter((p) => p.ppid === cliPid);
    if (!cliAlive || cliChildren.length > 0) {
      childlessSince = undefined;
      return;
    }
    childlessSince ??= Date.now();
    if (Date.now() - childlessSince >= HUNG_AFTER_SUCCESS_MS) {
      process.stderr.write('containerInit: service exited 0; `dbos start` does not exit by itself, ending it\n');
      finish(0);
    }
  }, POLL_MS);
}

main(process.argv.slice(2));

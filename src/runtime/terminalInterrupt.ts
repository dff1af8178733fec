// Ctrl-C in a terminal, taken as input instead of a signal to the whole foreground job.
//
// Typed in a shell, `npx dbos start` and `npm start` are process trees in one foreground process group
// (npm → sh → dbos CLI → service). The terminal's Ctrl-C sends SIGINT to all of them: npm's `sh` dies at
// once and npm re-raises SIGINT on itself, so the command the operator typed "exits" 130 while the service
// is still draining behind the prompt; and `dbos start` forwards its copy, so the service sees a second
// signal and exits at once. When this process is the terminal's foreground job, we turn the terminal's
// signal keys off (raw mode) and treat each Ctrl-C byte as one interrupt delivered to us alone. The rest of
// the tree then sees no signal and ends normally when the service exits. Node restores the terminal's mode
// when the process exits; after a SIGKILL, `stty sane` does.
import fs from 'node:fs';
import type tty from 'node:tty';

const CTRL_C = 0x03;

/** True when stdin is the controlling terminal and our process group is its foreground group (Linux). */
function isForegroundOfTerminal(): boolean {
  if (!process.stdin.isTTY) return false;
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    // After the parenthesised command name: state ppid pgrp session tty_nr tpgid ...
    const [, , pgrp, , ttyNr, tpgid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ttyNr !== '0' && pgrp !== undefined && pgrp === tpgid;
  } catch {
    return false; // no /proc: keep the kernel's Ctrl-C
  }
}

/**
 * Take Ctrl-C from the terminal as `onInterrupt()` calls. Returns false (and changes nothing) unless we are
 * the terminal's foreground job; a background job must not touch the terminal (it would be stopped).
 */
export function interceptTerminalInterrupt(onInterrupt: () => void): boolean {
  if (!isForegroundOfTerminal()) return false;
  const stdin = process.stdin as tty.ReadStream;
  stdin.setRawMode(true);
  stdin.on('data', (chunk: Buffer) => {
    for (const byte of chunk) if (byte === CTRL_C) onInterrupt();
  });
  stdin.on('error', () => undefined); // a terminal that goes away ends input, nothing else
  return true;
}

/** Give the terminal back its normal mode (also done by Node at exit). */
export function restoreTerminal(): void {
  const stdin = process.stdin as tty.ReadStream;
  if (stdin.isTTY && stdin.isRaw) stdin.setRawMode(false);
  stdin.pause();
}

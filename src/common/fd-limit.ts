import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * Descriptors kept back from connections for everything else a process opens — files, the
 * registry's connections, its own calls to other providers, the process's pipes: a fifth of
 * the limit, and at least 64.
 */
export function fdHeadroom(softLimit: number): number {
  return Math.max(64, Math.ceil(softLimit / 5));
}

/**
 * The process's soft limit on open files, or undefined when it is unlimited or cannot be read:
 * `/proc/self/limits` on Linux, `ulimit -n` through /bin/sh elsewhere (macOS, the BSDs).
 */
export function fdSoftLimit(): number | undefined {
  try {
    const line = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (line !== null) return parseLimit(line[1]!);
  } catch {
    // not Linux: ask the shell
  }
  try {
    return parseLimit(execFileSync('/bin/sh', ['-c', 'ulimit -n'], { encoding: 'utf8', timeout: 2000, stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    return undefined;
  }
}

function parseLimit(text: string): number | undefined {
  const value = Number(text);
  return Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

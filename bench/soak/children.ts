import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The soak's child processes and the sample lines they printed, by `name#pid`. */
export class Children {
  readonly live = new Set<ChildProcess>();
  readonly samples = new Map<string, string[]>();

  record(name: string, text: string): void {
    const list = this.samples.get(name) ?? [];
    list.push(text);
    this.samples.set(name, list);
  }

  /** Starts `script` (a file of this folder) with --expose-gc; resolves with its first JSON line once it prints it. */
  start(script: string, name: string, env: Record<string, string>): Promise<{ child: ChildProcess; ready: Record<string, unknown> }> {
    const child = spawn(process.execPath, ['--expose-gc', path.join(here, script)], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    this.live.add(child);
    child.once('exit', () => this.live.delete(child));
    return new Promise((resolve, reject) => {
      let buffered = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('utf8');
        for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
          const text = buffered.slice(0, at);
          buffered = buffered.slice(at + 1);
          if (text.startsWith('{')) resolve({ child, ready: JSON.parse(text) as Record<string, unknown> });
          else this.record(`${name}#${child.pid}`, text);
        }
      });
      child.once('exit', (code) => reject(new Error(`${script} exited with ${code} before it was ready`)));
    });
  }

  /** SIGKILLs every child still running. */
  killAll(): void {
    for (const child of this.live) child.kill('SIGKILL');
  }

  /** Prints the first, quarter, middle, three-quarter and last samples of each process whose name passes `keep`. */
  print(keep: (name: string) => boolean = () => true): void {
    for (const [name, lines] of this.samples) {
      if (!keep(name)) continue;
      console.log(`-- ${name} (${lines.length} samples)`);
      const picks = lines.length <= 5 ? lines.keys() : new Set([0, 1, 2, 3, 4].map((i) => Math.round((i * (lines.length - 1)) / 4)));
      for (const i of picks) console.log(lines[i]);
    }
  }
}

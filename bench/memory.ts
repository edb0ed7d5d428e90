// Peak memory and CPU time of a server process tree, from /proc.
// Memory comes from /proc/PID/status. VmHWM is the
// kernel's own high-water mark of a process's resident set; writing "5" to
// /proc/PID/clear_refs resets it (Linux 4.0+), so a window can be measured on
// its own. For a tree (Apache's parent and its workers) the peaks of the
// processes are added up: an upper bound of the tree's simultaneous peak,
// reported together with the largest sampled sum of VmRSS.

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

export interface MemoryPeak {
  /** Sum over the processes of their VmHWM, in bytes. */
  readonly hwmBytes: number;
  /** Largest sum of VmRSS seen by the sampler, in bytes. */
  readonly sampledRssBytes: number;
  /** Number of processes seen in the tree. */
  readonly processes: number;
  /** Whether the kernel's peak was reset at the start of the window. */
  readonly reset: boolean;
  /** Sum of VmRSS when the window started, in bytes. */
  readonly startRssBytes: number;
}

function statusOf(pid: number): { hwm: number; rss: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(text);
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(text);
    if (!hwm || !rss) return undefined;
    return { hwm: Number(hwm[1]) * 1024, rss: Number(rss[1]) * 1024 };
  } catch {
    return undefined;
  }
}

/** The pid and every descendant of it that is alive now. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // The command name is in parentheses and may contain spaces: the parent pid is the 2nd field after ")".
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // The process ended while we looked.
    }
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    found.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return found;
}

/** Clock ticks per second of /proc/PID/stat times (USER_HZ; 100 on Linux/x86 and arm64). */
const USER_HZ = 100;

/**
 * CPU seconds (user + system, all threads) used so far by the process tree:
 * robust to other load on the machine in a way wall-clock throughput is not.
 */
export function cpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Fields 14 and 15 of stat(5) (utime, stime) are 12 and 13 after the name.
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // Ended meanwhile.
    }
  }
  return ticks / USER_HZ;
}

/** The 1-minute load average and the number of cores, to tell whether the machine was busy. */
export function loadAverage(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return NaN;
  }
}

function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Samples a process tree until stop(); the kernel's peak of each process is reset at start. */
export class PeakTracker {
  readonly #root: number;
  readonly #hwm = new Map<number, number>();
  #sampledRss = 0;
  #startRss = 0;
  #reset = true;
  #timer: NodeJS.Timeout | undefined;

  constructor(root: number) {
    this.#root = root;
  }

  start(intervalMs = 50): this {
    for (const pid of processTree(this.#root)) {
      this.#startRss += statusOf(pid)?.rss ?? 0;
      this.#reset = resetPeak(pid) && this.#reset;
    }
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
    return this;
  }

  sample(): void {
    let rss = 0;
    for (const pid of processTree(this.#root)) {
      const status = statusOf(pid);
      if (!status) continue;
      rss += status.rss;
      this.#hwm.set(pid, Math.max(this.#hwm.get(pid) ?? 0, status.hwm));
    }
    this.#sampledRss = Math.max(this.#sampledRss, rss);
  }

  /** Sum of the processes' peaks so far, in bytes. */
  peakSoFar(): number {
    this.sample();
    let hwm = 0;
    for (const value of this.#hwm.values()) hwm += value;
    return hwm;
  }

  stop(): MemoryPeak {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.sample();
    let hwm = 0;
    for (const value of this.#hwm.values()) hwm += value;
    return { hwmBytes: hwm, sampledRssBytes: this.#sampledRss, processes: this.#hwm.size, reset: this.#reset, startRssBytes: this.#startRss };
  }
}

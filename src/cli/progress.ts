// A progress bar for jobs the CLI follows (key rotation, scrub). On a
// terminal: one line, redrawn in place. Otherwise (a log file, a pipe): a
// line at every tenth of the way, so the output stays short and readable.

export interface Progress {
  /** `detail` says what the numbers count, e.g. "120/300 blobs". */
  update(done: number, total: number, detail: string): void;
  /** Ends the bar's line. */
  end(): void;
}

const WIDTH = 30;

export function progressBar(stream: NodeJS.WriteStream): Progress {
  const tty = stream.isTTY === true;
  let lastTenth = -1;
  let drawn = false;
  return {
    update(done, total, detail) {
      const fraction = total > 0 ? Math.min(1, done / total) : 1;
      const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
      if (tty) {
        const filled = Math.round(fraction * WIDTH);
        stream.write(`\r[${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${percent}  ${detail}\u001b[K`);
        drawn = true;
        return;
      }
      const tenth = Math.floor(fraction * 10);
      if (tenth <= lastTenth) return;
      lastTenth = tenth;
      stream.write(`${percent}  ${detail}\n`);
    },
    end() {
      if (drawn) stream.write('\n');
      drawn = false;
    },
  };
}

export interface JobView {
  readonly running: boolean;
  readonly done: number;
  readonly total: number;
  readonly detail: string;
}

const POLL_MS = 500;

/** Reads a job's status until it stops running, drawing its progress; resolves to the last status. */
export async function follow<T>(read: () => Promise<T>, view: (status: T) => JobView, bar: Progress): Promise<T> {
  for (;;) {
    const status = await read();
    const { running, done, total, detail } = view(status);
    bar.update(done, total, detail);
    if (!running) {
      bar.end();
      return status;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** Bytes for people: 1023 B, 1.5 KiB, 12.0 MiB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Seconds between two ISO times, for "done in 1.4 s". */
export function elapsed(from: string, to: string | undefined): string {
  if (to === undefined) return '';
  return `${((Date.parse(to) - Date.parse(from)) / 1000).toFixed(1)} s`;
}

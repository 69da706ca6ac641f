/**
 * Progress bars on stderr (cli-progress), one setup for every command: shown only where someone watches
 * (a TTY, or --progress), never mixed into stdout.
 */
import cliProgress from 'cli-progress';

export interface Bar {
  /** Set the total (first call starts the bar) and the amount done, with optional payload fields. */
  update(done: number, total: number, payload?: Record<string, string>): void;
  stop(): void;
}

/**
 * A bar with `format` (cli-progress tokens: {bar} {percentage} {value} {total} {eta_formatted}, payload
 * fields as {name}); `scale` divides the raw numbers (2^20 shows bytes as MiB).
 */
export function progressBar(format: string, opts: { show?: boolean; scale?: number; minTotal?: number } = {}): Bar {
  const show = opts.show ?? process.stderr.isTTY === true;
  const scale = opts.scale ?? 1;
  let bar: cliProgress.SingleBar | null = null;
  return {
    update(done, total, payload = {}) {
      if (!show || total < (opts.minTotal ?? 0)) return;
      if (!bar) {
        bar = new cliProgress.SingleBar({ stream: process.stderr, format, hideCursor: true, clearOnComplete: false, noTTYOutput: true, notTTYSchedule: 2000, etaBuffer: 20 }, cliProgress.Presets.shades_classic);
        bar.start(Math.round(total / scale), 0, payload);
      }
      bar.update(Math.round(done / scale), payload);
    },
    stop() {
      bar?.stop();
      bar = null;
    },
  };
}

/** The loading bar of `generate` and `serve`: MiB read, for models that take a while to load. */
export function loadingBar(show?: boolean): Bar {
  return progressBar('loading [{bar}] {percentage}% | {value}/{total} MiB | ETA {eta_formatted}', { scale: 2 ** 20, minTotal: 256 * 2 ** 20, ...(show === undefined ? {} : { show }) });
}

/**
 * The fuzz harness: runs a target's inputs in a worker thread with a bounded heap, so a crash or a heap
 * blow-up ends the worker (and is counted) instead of the run, and a watchdog on the main thread counts an
 * input that does not finish within `hangMs` as a hang. After either, a fresh worker resumes at the next
 * input. Inputs are numbered; (target, seed, index) replays one exactly (`npm run fuzz -- --replay`).
 */
import { Worker } from 'node:worker_threads';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TargetName } from './targets.js';

export interface Defect {
  readonly target: TargetName;
  readonly index: number;
  /** Error class (TypeError, RangeError, …), or 'crash' / 'hang'. */
  readonly kind: string;
  readonly message: string;
}

export interface TargetReport {
  readonly target: TargetName;
  inputs: number;
  seconds: number;
  /** Outcome counts: 'ok', 'FormatError', 'ConfigError', and any other error class, 'crash', 'hang'. */
  counts: Record<string, number>;
  defects: Defect[];
}

export interface FuzzOptions {
  seed: number;
  /** Stop each target after this many inputs … */
  inputs?: number;
  /** … or after this many seconds, whichever comes first. */
  seconds?: number;
  hangMs?: number;
  /** Heap limit of the worker (MiB): beyond it the input counts as a crash. */
  heapMb?: number;
}

export interface WorkerData { target: TargetName; seed: number; start: number; end: number; deadline: number; progress: SharedArrayBuffer; dir: string }
export type WorkerMessage = { kind: 'counts'; counts: Record<string, number> } | { kind: 'defect'; index: number; cls: string; message: string } | { kind: 'done'; next: number };

export async function fuzzTarget(target: TargetName, o: FuzzOptions): Promise<TargetReport> {
  const report: TargetReport = { target, inputs: 0, seconds: 0, counts: {}, defects: [] };
  const end = o.inputs ?? Number.MAX_SAFE_INTEGER;
  const t0 = performance.now();
  const deadline = Date.now() + (o.seconds ?? 1e9) * 1000;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `grok-fuzz-${target}-`));
  const add = (k: string, n = 1) => { report.counts[k] = (report.counts[k] ?? 0) + n; };
  let start = 0;
  try {
    while (start < end && Date.now() < deadline) {
      const progress = new SharedArrayBuffer(8);
      const p = new Int32Array(progress);
      p[0] = start;
      const data: WorkerData = { target, seed: o.seed, start, end, deadline, progress, dir };
      const w = new Worker(new URL('./worker.js', import.meta.url), {
        workerData: data, execArgv: [], resourceLimits: { maxOldGenerationSizeMb: o.heapMb ?? 512 }, stderr: true, stdout: true,
      });
      const outcome = await new Promise<{ next: number; failure?: { kind: string; message: string } }>((resolve) => {
        let last = start, since = Date.now(), settled = false;
        const settle = (v: { next: number; failure?: { kind: string; message: string } }) => {
          if (settled) return;
          settled = true;
          clearInterval(watch);
          resolve(v);
        };
        const watch = setInterval(() => {
          const i = Atomics.load(p, 0);
          if (i !== last) { last = i; since = Date.now(); return; }
          if (Date.now() - since > (o.hangMs ?? 10000)) {
            void w.terminate();
            settle({ next: i + 1, failure: { kind: 'hang', message: `no progress for ${o.hangMs ?? 10000} ms` } });
          }
        }, 200);
        w.on('message', (m: WorkerMessage) => {
          if (m.kind === 'counts') for (const [k, n] of Object.entries(m.counts)) add(k, n);
          else if (m.kind === 'defect') report.defects.push({ target, index: m.index, kind: m.cls, message: m.message });
          else settle({ next: m.next });
        });
        w.on('error', (e) => settle({ next: Atomics.load(p, 0) + 1, failure: { kind: 'crash', message: `${(e as Error & { code?: string }).code ?? e.name}: ${e.message}` } }));
        w.on('exit', (code) => settle({ next: Atomics.load(p, 0) + 1, failure: { kind: 'crash', message: `worker exited with code ${code}` } }));
      });
      if (outcome.failure) {
        add(outcome.failure.kind);
        report.defects.push({ target, index: outcome.next - 1, kind: outcome.failure.kind, message: outcome.failure.message });
      }
      start = outcome.next;
      await w.terminate();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  report.inputs = Object.values(report.counts).reduce((a, b) => a + b, 0);
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}

/** Outcome classes that are clean: the file parsed, or was refused with a typed error. */
export const CLEAN = new Set(['ok', 'FormatError', 'ConfigError']);

export function formatReports(reports: readonly TargetReport[]): string {
  const classes = [...new Set(reports.flatMap((r) => Object.keys(r.counts)))].sort((a, b) => (CLEAN.has(b) ? 1 : 0) - (CLEAN.has(a) ? 1 : 0) || a.localeCompare(b));
  const lines = [['parser', 'inputs', 'seconds', ...classes].map((s, i) => (i === 0 ? s.padEnd(14) : s.padStart(12))).join('')];
  for (const r of reports) {
    lines.push([r.target.padEnd(14), String(r.inputs).padStart(12), r.seconds.toFixed(1).padStart(12), ...classes.map((c) => String(r.counts[c] ?? 0).padStart(12))].join(''));
  }
  for (const r of reports) for (const d of r.defects.slice(0, 20)) lines.push(`DEFECT ${d.target} #${d.index} ${d.kind}: ${d.message}`);
  return lines.join('\n');
}

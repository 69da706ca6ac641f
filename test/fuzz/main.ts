/**
 * `npm run fuzz -- [--seconds N] [--inputs N] [--seed S] [--parser pickle|gguf|safetensors|sentencepiece]…
 *                  [--replay INDEX]`
 * Mutation fuzzing of every parser of untrusted files (test/fuzz/targets.ts), each for N seconds or N
 * inputs; prints the outcomes by error class and every defect (an untyped error, a crash, a hang) with the
 * index that replays it. Exit status 1 when there is a defect.
 */
import { parseArgs } from 'node:util';
import { ConfigError, FormatError } from '../../src/base/errors.js';
import { formatReports, fuzzTarget, CLEAN, type TargetReport } from './harness.js';
import { makeTarget, TARGETS, type TargetName } from './targets.js';
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string' }, inputs: { type: 'string' }, seed: { type: 'string', default: '1' },
    parser: { type: 'string', multiple: true }, replay: { type: 'string' }, help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write('usage: npm run fuzz -- [--seconds N] [--inputs N] [--seed S] [--parser NAME]… [--replay INDEX]\n');
  process.exit(0);
}
const seed = Number(values.seed);
const names = (values.parser ?? [...TARGETS]) as TargetName[];
for (const n of names) if (!(TARGETS as readonly string[]).includes(n)) { process.stderr.write(`unknown parser '${n}' (one of ${TARGETS.join(', ')})\n`); process.exit(2); }

if (values.replay !== undefined) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-fuzz-replay-'));
  for (const n of names) {
    const t = makeTarget(n, dir);
    try {
      t.run(seed, Number(values.replay));
      process.stdout.write(`${n} #${values.replay}: parsed\n`);
    } catch (e) {
      const typed = e instanceof FormatError || e instanceof ConfigError;
      process.stdout.write(`${n} #${values.replay}: ${typed ? '' : 'DEFECT '}${e instanceof Error ? `${e.name}: ${e.message}${typed ? '' : `\n${e.stack}`}` : String(e)}\n`);
    } finally {
      t.close();
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}

const seconds = values.seconds === undefined ? (values.inputs === undefined ? 10 : undefined) : Number(values.seconds);
const inputs = values.inputs === undefined ? undefined : Number(values.inputs);
const reports: TargetReport[] = [];
for (const n of names) {
  const r = await fuzzTarget(n, { seed, ...(seconds === undefined ? {} : { seconds }), ...(inputs === undefined ? {} : { inputs }) });
  reports.push(r);
  process.stderr.write(`${n}: ${r.inputs} inputs in ${r.seconds.toFixed(1)} s\n`);
}
process.stdout.write(`${formatReports(reports)}\n`);
const bad = reports.some((r) => Object.keys(r.counts).some((k) => !CLEAN.has(k)));
process.exit(bad ? 1 : 0);

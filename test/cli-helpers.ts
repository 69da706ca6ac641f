/** Running `grok …` in this process (src/cli/main.ts) with stdout and stderr captured. */
import { main } from '../src/cli/main.js';

export interface CliResult { code: number; out: string; err: string }

export async function capture(f: () => Promise<number>): Promise<CliResult> {
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  let out = '';
  let err = '';
  process.stdout.write = ((s: string | Uint8Array) => ((out += String(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => ((err += String(s)), true)) as typeof process.stderr.write;
  const exit = process.exitCode;
  try {
    const code = await f();
    return { code, out, err };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
    process.exitCode = exit;
  }
}

/** `grok args…` → exit code, stdout, stderr. */
export function grok(...args: string[]): Promise<CliResult> {
  return capture(() => main(args));
}

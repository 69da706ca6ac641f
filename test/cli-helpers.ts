/**
 * Running `grok …` as users do: a child process of the built CLI, with its exit code, stdout and stderr.
 * (Not in this process: the test runner reports on this process's stdout, and capturing it would swallow
 * the report of other tests.)
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

export interface CliResult { code: number; out: string; err: string }

const CLI = path.resolve('dist/src/cli/main.js');

/** `grok args…` → exit code, stdout, stderr. */
export async function grok(...args: string[]): Promise<CliResult> {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120000, maxBuffer: 1 << 28 });
  if (r.error) throw r.error;
  return { code: r.status ?? (r.signal ? 128 : 1), out: r.stdout, err: r.stderr };
}

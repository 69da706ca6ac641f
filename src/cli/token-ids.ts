/** `--tokens 5,17,300`: comma-separated token ids, shared by the commands that take a prompt as ids. */
import { UsageError } from './errors.js';

export function parseIds(s: string, what: string): number[] {
  const parts = s.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
  if (parts.length === 0) throw new UsageError(`${what}: expected comma-separated token ids, got '${s}'`);
  return parts.map((p) => {
    if (!/^\d+$/.test(p)) throw new UsageError(`${what}: '${p}' is not a token id (a non-negative integer)`);
    return Number(p);
  });
}

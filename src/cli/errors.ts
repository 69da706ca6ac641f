/** How the CLI reports failures: one clear line for anything the user can fix, a stack only on request. */
import { ConfigError, FormatError } from '../base/errors.js';

/** A wrong command line: printed with the command's usage hint, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Print an error the way users should see it; returns the exit code. */
export function reportError(e: unknown): number {
  if (e instanceof UsageError) {
    process.stderr.write(`grok: ${e.message}\n`);
    return 2;
  }
  const known = e instanceof FormatError || e instanceof ConfigError;
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`grok: ${known ? '' : 'error: '}${msg}\n`);
  if (process.env.GROK_DEBUG && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return 1;
}

/** node:util parseArgs throws TypeErrors with codes for bad options; turn them into UsageErrors. */
export function wrapParse<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof Error && 'code' in e && String((e as { code: unknown }).code).startsWith('ERR_PARSE_ARGS')) {
      throw new UsageError(e.message);
    }
    throw e;
  }
}

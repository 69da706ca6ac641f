/**
 * How the CLI reports failures: one line, always prefixed `grok: `, for anything the user can fix; exit
 * code 2 for a wrong command line, 1 for everything else; the stack only with GROK_DEBUG=1.
 */

/** A wrong command line (exit code 2). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Print an error the way users should see it; returns the exit code. */
export function reportError(e: unknown): number {
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`grok: ${msg}\n`);
  if (process.env.GROK_DEBUG && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return e instanceof UsageError ? 2 : 1;
}

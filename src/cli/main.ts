#!/usr/bin/env node
/**
 * The `grok` command. Each subcommand is defined in its own file (options, help, a thin action over the
 * library); commander gives them one parser: `grok help <command>`, "did you mean" for typos, negative
 * numbers as values, `--version`, and one error format (`grok: …`, exit 2 for a wrong command line, 1 for
 * a failure; GROK_DEBUG=1 adds the stack).
 */
import { Command, CommanderError } from 'commander';
import { cacheSimCommand } from './cache-sim.js';
import { convertCommand, synthCommand } from './convert.js';
import { reportError } from './errors.js';
import { generateCommand } from './generate.js';
import { infoCommand, inspectCommand } from './inspect.js';
import { logitsCommand } from './logits.js';
import { pullCommand } from './pull.js';
import { serveCommand } from './serve.js';
import { stageCommand } from './stage.js';
import { planCommand } from './plan.js';
import { detokenizeCommand, tokenizeCommand } from './tokenize.js';
import { trainCommand } from './train.js';
import { packageVersion } from './version.js';

export function program(): Command {
  const p = new Command('grok')
    .description('Grok-1 (xAI\'s 314B Mixture-of-Experts model) on Node.js: generate, serve, convert, inspect, pull')
    .version(packageVersion(), '-v, --version', 'print the version')
    .showSuggestionAfterError(true)
    .showHelpAfterError('(run with --help for the options)')
    .configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
      outputError: (s, write) => write(errorLine(s)),
    })
    .exitOverride();
  for (const c of [generateCommand(), cacheSimCommand(), serveCommand(), stageCommand(), planCommand(), logitsCommand(), inspectCommand(), infoCommand(), tokenizeCommand(), detokenizeCommand(), convertCommand(), synthCommand(), trainCommand(), pullCommand()]) {
    p.addCommand(c.exitOverride().showSuggestionAfterError(true).showHelpAfterError(`(run 'grok help ${c.name()}' for the options)`).configureOutput(p.configureOutput()));
  }
  return p;
}

/**
 * Commander's messages in our one format: `grok: ` first, and a bad value said as "--top-p must be a number
 * > 0 and ≤ 1, got '2'" rather than "option '--top-p <p>' argument '2' is invalid. expected …".
 */
function errorLine(s: string): string {
  return s
    .replace(/^error: /, 'grok: ')
    .replace(/option '(?:-\w+, )?(--[\w-]+) <[^>]+>' argument '(.*)' is invalid\. (?:expected )?(.*?)\.?$/m, (_, flag: string, v: string, want: string) =>
      `${flag} must be ${want.replace(/^Allowed choices are /, 'one of ')}, got '${v}'`);
}

/** Run `grok argv…`; resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  const p = program();
  if (argv.length === 0) { p.outputHelp({ error: true }); return 2; }
  try {
    await p.parseAsync(argv, { from: 'user' });
    return 0; // a command that fails throws
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2; // commander already printed it
    return reportError(e);
  }
}

// Run only as the program itself, not when imported (tests import `program`).
if (process.argv[1] && import.meta.url === (await import('node:url')).pathToFileURL((await import('node:fs')).realpathSync(process.argv[1])).href) {
  // `grok … | head`: the reader went away; stop quietly, as command-line tools do.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(0); throw e; });
  process.exitCode = await main(process.argv.slice(2));
}

#!/usr/bin/env node
/** The `grok` command: a table of subcommands, each a thin adapter over the library. */
import { reportError, UsageError } from './errors.js';

type Command = { summary: string; run: () => Promise<(argv: string[]) => Promise<number>> };

const commands: Record<string, Command> = {
  inspect: { summary: 'print a model\'s config and tensor table', run: async () => (await import('./inspect.js')).runInspect },
  logits: { summary: 'one exact forward pass over token ids; print top tokens / write float32 logits', run: async () => (await import('./logits.js')).runLogits },
  generate: { summary: 'generate text from a prompt (streams to stdout; -i for an interactive session)', run: async () => (await import('./generate.js')).runGenerate },
  serve: { summary: 'OpenAI-compatible HTTP server (completions, chat completions, streaming)', run: async () => (await import('./serve.js')).runServe },
  train: { summary: 'train a small Grok-architecture model from scratch (the embedded default model)', run: async () => (await import('./train.js')).runTrain },
  tokenize: { summary: 'text → token ids with a SentencePiece tokenizer.model', run: async () => (await import('./tokenize.js')).runTokenize },
  detokenize: { summary: 'token ids → text', run: async () => (await import('./tokenize.js')).runDetokenize },
  convert: { summary: 'convert a ckpt-0 / safetensors / GGUF model to a (quantised) GGUF', run: async () => (await import('./convert.js')).runConvert },
  synth: { summary: 'write a random-weight model with Grok-1 widths (benchmark subject)', run: async () => (await import('./synth.js')).runSynth },
};

function help(): string {
  const lines = ['usage: grok <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(12)} ${c.summary}`);
  lines.push('', 'Run `grok <command> --help` for a command\'s options.');
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${help()}\n`);
    return name ? 0 : 2;
  }
  const cmd = commands[name];
  if (!cmd) throw new UsageError(`unknown command '${name}'\n${help()}`);
  return (await cmd.run())(rest);
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e) => { process.exitCode = reportError(e); },
);

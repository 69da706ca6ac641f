/**
 * `grok tokenize` and `grok detokenize`: a tokenizer on the command line, SentencePiece `tokenizer.model`
 * (Grok-1) or tiktoken-style `tokenizer.tok.json` (Grok-2), told apart by the file's content.
 *   grok tokenize --tokenizer tokenizer.model [--bos] [--eos] [--pieces] "text"    → [ids] as JSON
 *   grok tokenize --tokenizer tokenizer.tok.json --jsonl FILE|-                    → one JSON array per line
 *   grok tokenize -m model.gguf --jsonl FILE|-                                    → one JSON array per line
 *   grok detokenize --tokenizer tokenizer.model 1,2,3                             → the text
 *   grok detokenize -m model.gguf --jsonl FILE|-                                  → one JSON string per line
 * --model M instead of --tokenizer: the tokenizer a model carries (a GGUF's own, or tokenizer.model beside a
 * checkpoint).
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import type { TextTokenizer } from '../tokenizer/load.js';
import { UsageError } from './errors.js';
import { parseIds } from './options.js';

function readInput(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${file === '-' ? 'standard input' : file}: ${(e as Error).message}`);
  }
}

/** Non-empty lines with their 1-based numbers; a final newline does not make an extra line. */
function jsonLines(text: string, file: string): { line: number; value: unknown }[] {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines.map((l, i) => {
    try {
      return { line: i + 1, value: JSON.parse(l) as unknown };
    } catch {
      throw new UsageError(`${file}:${i + 1}: not valid JSON: ${l.length > 60 ? `${l.slice(0, 60)}…` : l}`);
    }
  });
}

/** Writes lines to stdout in batches (one huge string would double memory for big files). */
function writeLines(lines: Iterable<string>): void {
  let batch: string[] = [];
  for (const l of lines) {
    batch.push(l);
    if (batch.length === 4096) {
      process.stdout.write(`${batch.join('\n')}\n`);
      batch = [];
    }
  }
  if (batch.length > 0) process.stdout.write(`${batch.join('\n')}\n`);
}

interface TokenizerOptions { tokenizer?: string; model?: string }

/** --tokenizer tokenizer.model or tokenizer.tok.json, or --model M: any model that carries one. */
async function loadTokenizer(v: TokenizerOptions): Promise<TextTokenizer> {
  if (v.tokenizer && v.model) throw new UsageError('give --tokenizer or --model, not both');
  if (v.model) return (await import('../api/index.js')).tokenizerOf(v.model);
  if (!v.tokenizer) throw new UsageError('--tokenizer <tokenizer.model|tokenizer.tok.json> is required (or --model <model> for the tokenizer a model carries)');
  return (await import('../tokenizer/load.js')).loadTokenizerFile(v.tokenizer);
}

function tokenizerCommand(name: string): Command {
  return new Command(name)
    .option('--tokenizer <path>', 'a SentencePiece tokenizer.model (Grok-1) or a tiktoken-style tokenizer.tok.json (Grok-2)')
    .option('-m, --model <path>', 'use the tokenizer this model carries (a GGUF, a checkpoint with tokenizer.model beside it)');
}

interface TokenizeOptions extends TokenizerOptions { bos?: boolean; eos?: boolean; pieces?: boolean; jsonl?: string; file?: string }

export function tokenizeCommand(): Command {
  return tokenizerCommand('tokenize')
    .summary('text → token ids')
    .description('Print the token ids of a text as JSON (with --pieces the pieces). --jsonl: one JSON string per input line, one JSON array per output line.')
    .argument('[text]', 'the text')
    .option('--bos', 'prepend the BOS token (tokenizer.model; Grok-2 has none)')
    .option('--eos', 'append the EOS token')
    .option('--pieces', 'print the pieces instead of the ids')
    .option('--file <path>', 'tokenize a file\'s bytes (malformed UTF-8 read as the tokenizer\'s reference does)')
    .option('--jsonl <path>', 'one JSON string per line (- for standard input)')
    .action(async (text: string | undefined, o: TokenizeOptions) => {
      const sources = (text !== undefined ? 1 : 0) + (o.jsonl !== undefined ? 1 : 0) + (o.file !== undefined ? 1 : 0);
      if (sources !== 1) throw new UsageError('give exactly one of: a text argument, --file, --jsonl');
      if (o.pieces && (o.bos || o.eos)) throw new UsageError('--pieces cannot be combined with --bos/--eos');
      const tok = await loadTokenizer(o);
      if (o.bos && tok.bosId < 0) throw new UsageError(`${tok.source} has no BOS token: drop --bos`);
      if (o.eos && tok.eosId < 0) throw new UsageError(`${tok.source} has no EOS token: drop --eos`);
      const opts = { bos: o.bos === true, eos: o.eos === true };
      const one = (t: string | Uint8Array): string => JSON.stringify(o.pieces ? tok.encodeAsPieces(t) : tok.encode(t, opts));
      if (o.jsonl !== undefined) {
        const out: string[] = [];
        for (const { line, value } of jsonLines(readInput(o.jsonl), o.jsonl)) {
          if (typeof value !== 'string') throw new UsageError(`${o.jsonl}:${line}: expected a JSON string, got ${value === null ? 'null' : typeof value}`);
          out.push(one(value));
        }
        writeLines(out);
        return;
      }
      if (o.file !== undefined) {
        let bytes: Uint8Array;
        try {
          bytes = readFileSync(o.file);
        } catch (e) {
          throw new UsageError(`cannot read ${o.file}: ${(e as Error).message}`);
        }
        process.stdout.write(`${one(bytes)}\n`);
        return;
      }
      process.stdout.write(`${one(text!)}\n`);
    });
}

interface DetokenizeOptions extends TokenizerOptions { jsonl?: string; json?: boolean }

export function detokenizeCommand(): Command {
  return tokenizerCommand('detokenize')
    .summary('token ids → text')
    .description('Print the text of token ids (with --json as a JSON string). --jsonl: one JSON id array per input line, one JSON string per output line.')
    .argument('[ids...]', 'token ids: 1,2,3 or 1 2 3')
    .option('--json', 'print the text as a JSON string')
    .option('--jsonl <path>', 'one JSON array of ids per line (- for standard input)')
    .action(async (ids: string[], o: DetokenizeOptions) => {
      if (o.jsonl !== undefined) {
        if (ids.length > 0) throw new UsageError('give ids or --jsonl, not both');
        const tok = await loadTokenizer(o);
        const out: string[] = [];
        for (const { line, value } of jsonLines(readInput(o.jsonl), o.jsonl)) {
          if (!Array.isArray(value) || !value.every((v) => typeof v === 'number')) throw new UsageError(`${o.jsonl}:${line}: expected a JSON array of token ids`);
          try {
            out.push(JSON.stringify(tok.decode(value as number[])));
          } catch (e) {
            throw new UsageError(`${o.jsonl}:${line}: ${(e as Error).message}`);
          }
        }
        writeLines(out);
        return;
      }
      if (ids.length === 0) throw new UsageError('no token ids given');
      const list = parseIds(ids.join(','), 'token ids');
      const tok = await loadTokenizer(o);
      const text = tok.decode(list);
      process.stdout.write(o.json ? `${JSON.stringify(text)}\n` : `${text}\n`);
    });
}

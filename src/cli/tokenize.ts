/**
 * `grok tokenize` and `grok detokenize`: the SentencePiece tokenizer on the command line.
 *   grok tokenize --tokenizer tokenizer.model [--bos] [--eos] [--pieces] "text"    → [ids] as JSON
 *   grok tokenize --tokenizer tokenizer.model --jsonl FILE|-                        → one JSON array per line
 *   grok detokenize --tokenizer tokenizer.model 1,2,3                               → the text
 *   grok detokenize --tokenizer tokenizer.model --jsonl FILE|-                      → one JSON string per line
 *   --model M instead of --tokenizer: the tokenizer a model carries (a GGUF's own, or tokenizer.model beside a checkpoint)
 * Errors: one line on stderr and a non-zero exit code (2 for a wrong command line).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Tokenizer } from '../tokenizer/sentencepiece.js';
import { tokenizerOf } from '../api/index.js';
import { reportError, UsageError, wrapParse } from './errors.js';

const TOKENIZE_USAGE =
  'usage: grok tokenize (--tokenizer <tokenizer.model> | --model <model>) [--bos] [--eos] [--pieces] ("text" | --file FILE | --jsonl FILE|-)\n' +
  '  prints the ids (or with --pieces the pieces) as JSON; --jsonl: one JSON string per input line, one JSON array per output line';
const DETOKENIZE_USAGE =
  'usage: grok detokenize (--tokenizer <tokenizer.model> | --model <model>) [--json] (1,2,3 | --jsonl FILE|-)\n' +
  '  prints the decoded text (with --json as a JSON string); --jsonl: one JSON id array per input line, one JSON string per output line';

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

/** --tokenizer tokenizer.model, or --model M: any model that carries one (a GGUF, a checkpoint with tokenizer.model beside it). */
function loadTokenizer(v: { tokenizer?: string | undefined; model?: string | undefined }, usage: string): Tokenizer {
  if (v.tokenizer && v.model) throw new UsageError(`give --tokenizer or --model, not both\n${usage}`);
  if (v.model) return tokenizerOf(v.model);
  if (!v.tokenizer) throw new UsageError(`--tokenizer <tokenizer.model> is required\n${usage}`);
  return Tokenizer.fromFile(v.tokenizer);
}

export async function runTokenize(argv: string[]): Promise<number> {
  try {
    const { values, positionals } = wrapParse(() =>
      parseArgs({
        args: argv,
        allowPositionals: true,
        options: {
          tokenizer: { type: 'string' },
          model: { type: 'string', short: 'm' },
          bos: { type: 'boolean' },
          eos: { type: 'boolean' },
          pieces: { type: 'boolean' },
          jsonl: { type: 'string' },
          file: { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
      }),
    );
    if (values.help) {
      process.stdout.write(`${TOKENIZE_USAGE}\n`);
      return 0;
    }
    const sources = positionals.length + (values.jsonl !== undefined ? 1 : 0) + (values.file !== undefined ? 1 : 0);
    if (sources !== 1) throw new UsageError(`give exactly one of: a text argument, --file, --jsonl${positionals.length > 1 ? ` (got ${positionals.length} text arguments; quote the text)` : ''}\n${TOKENIZE_USAGE}`);
    if (values.pieces && (values.bos || values.eos)) throw new UsageError('--pieces cannot be combined with --bos/--eos');
    const tok = loadTokenizer(values, TOKENIZE_USAGE);
    const opts = { bos: values.bos === true, eos: values.eos === true };
    const one = (text: string | Uint8Array): string => JSON.stringify(values.pieces ? tok.encodeAsPieces(text) : tok.encode(text, opts));
    if (values.jsonl !== undefined) {
      const file = values.jsonl;
      const items = jsonLines(readInput(file), file);
      const out: string[] = [];
      for (const { line, value } of items) {
        if (typeof value !== 'string') throw new UsageError(`${file}:${line}: expected a JSON string, got ${value === null ? 'null' : typeof value}`);
        out.push(one(value));
      }
      writeLines(out);
      return 0;
    }
    if (values.file !== undefined) {
      let bytes: Uint8Array;
      try {
        bytes = readFileSync(values.file);
      } catch (e) {
        throw new UsageError(`cannot read ${values.file}: ${(e as Error).message}`);
      }
      process.stdout.write(`${one(bytes)}\n`); // raw bytes: malformed UTF-8 is handled as SentencePiece does
      return 0;
    }
    process.stdout.write(`${one(positionals[0])}\n`);
    return 0;
  } catch (e) {
    return reportError(e);
  }
}

function parseIds(s: string): number[] {
  const body = s.trim().replace(/^\[/, '').replace(/\]$/, '').trim();
  if (body === '') return [];
  return body.split(/[\s,]+/).map((x) => {
    if (!/^\d+$/.test(x)) throw new UsageError(`not a token id: '${x}' (expected non-negative integers like 1,2,3)`);
    return Number(x);
  });
}

export async function runDetokenize(argv: string[]): Promise<number> {
  try {
    const { values, positionals } = wrapParse(() =>
      parseArgs({
        args: argv,
        allowPositionals: true,
        options: {
          tokenizer: { type: 'string' },
          model: { type: 'string', short: 'm' },
          jsonl: { type: 'string' },
          json: { type: 'boolean' },
          help: { type: 'boolean', short: 'h' },
        },
      }),
    );
    if (values.help) {
      process.stdout.write(`${DETOKENIZE_USAGE}\n`);
      return 0;
    }
    if (values.jsonl !== undefined) {
      if (positionals.length > 0) throw new UsageError(`give ids or --jsonl, not both\n${DETOKENIZE_USAGE}`);
      const tok = loadTokenizer(values, DETOKENIZE_USAGE);
      const file = values.jsonl;
      const out: string[] = [];
      for (const { line, value } of jsonLines(readInput(file), file)) {
        if (!Array.isArray(value) || !value.every((v) => typeof v === 'number')) throw new UsageError(`${file}:${line}: expected a JSON array of token ids`);
        try {
          out.push(JSON.stringify(tok.decode(value as number[])));
        } catch (e) {
          throw new UsageError(`${file}:${line}: ${(e as Error).message}`);
        }
      }
      writeLines(out);
      return 0;
    }
    if (positionals.length === 0) throw new UsageError(`no token ids given\n${DETOKENIZE_USAGE}`);
    const ids = parseIds(positionals.join(','));
    const tok = loadTokenizer(values, DETOKENIZE_USAGE);
    const text = tok.decode(ids);
    process.stdout.write(values.json ? `${JSON.stringify(text)}\n` : `${text}\n`);
    return 0;
  } catch (e) {
    return reportError(e);
  }
}

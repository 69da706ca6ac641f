/**
 * `grok cache-sim --trace FILE --budget 40G [--budget 60G …]`: replays a routing trace (`grok generate
 * --trace-routing`) against the expert pool each RAM budget leaves room for, with each eviction policy
 * (expert-policy.ts `simulate`, the pool's own decision), and prints what a user sizes `--ram-budget`
 * with: slots, hit rate, experts and bytes read per generated token, and the disk-bound decode speed.
 */
import fs from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { forwardSteps, parseTrace, type ForwardStep, type TraceHeader } from '../api/routing-trace.js';
import { EVICTION_POLICIES, simulate, type EvictionPolicy, type TraceStep } from '../model/expert-policy.js';
import { gib } from '../model/memory.js';
import { UsageError } from './errors.js';
import { collect, int, parseSize } from './options.js';

interface CacheSimOptions {
  trace: string;
  budget: string[];
  policy: string;
  residentBytes?: number;
  readRate?: number;
  prefillChunk?: number;
  json?: boolean;
}

/** `2.0GB/s`, `1.5GiB/s`, `800M/s` (a size per second, parseSize's units) → bytes per second. */
export function parseRate(v: string): number {
  const m = /^(.*?)\s*\/\s*s$/i.exec(v.trim());
  if (!m) throw new InvalidArgumentError(`expected a rate like 2.0GB/s or 1.5GiB/s, got '${v}'.`);
  return parseSize(m[1]!);
}

export function cacheSimCommand(): Command {
  return new Command('cache-sim')
    .summary('replay a routing trace against expert pools of several RAM budgets: hit rate, bytes read and decode speed per budget')
    .description('Replay a routing trace written by `grok generate --trace-routing FILE` against the expert pool each --ram-budget leaves room for ((budget − resident weights) / bytes per slot, as the loader sizes it), with the pool\'s own eviction policy, and print per budget and policy: slots, hit rate, experts and bytes read per generated token, and the decode speed the disk allows.')
    .requiredOption('--trace <file>', 'routing trace from grok generate --trace-routing')
    .requiredOption('--budget <size>', 'a RAM budget as --ram-budget takes it: 40G, 40GiB, 43GB or bytes (repeatable)', collect)
    .option('--policy <names>', `eviction policies, comma-separated: ${EVICTION_POLICIES.join(', ')}`, 'lru,lfu')
    .option('--resident-bytes <size>', 'weights kept in memory beside the pool (default: the trace header\'s residentBytes)', parseSize)
    .option('--read-rate <rate>', 'the disk\'s read rate (e.g. 2.0GB/s) for the decode-speed estimate', parseRate)
    .addOption(new Option('--prefill-chunk <n>', 'prompt tokens per forward step (default: the trace header\'s prefillChunk); 1 replays one step per prompt token').argParser(int(1)))
    .option('--json', 'print one JSON object')
    .addHelpText('after', `
The replay: layer by layer within a forward step, steps in the order the model ran them. A prompt is fed
in chunks of prefillChunk tokens; each chunk is one step per layer asking for the union of its tokens'
experts (as the forward pass asks the pool); each generated token is one step per layer. Prefetch (the next
layer's guess) is not simulated: it moves reads earlier, it does not change what must be read.

tok/s = read rate / bytes read per generated token: the disk's bound on decode speed (compute, and reads
overlapping compute, not counted).

Examples:
  grok generate -m grok-1-q8_0.gguf --trace-routing trace.jsonl -n 256 -f prompt.txt
  grok cache-sim --trace trace.jsonl --budget 40G --budget 60G --read-rate 2.0GB/s`)
    .action((o: CacheSimOptions) => runCacheSim(o));
}

/** One budget with one policy: the pool it gives and what the replay read. */
export interface CacheSimRow {
  budgetBytes: number;
  policy: EvictionPolicy;
  /** Experts the pool holds (all of them when the model fits). */
  slots: number;
  /** 'fits': the whole model fits the budget (nothing is streamed); 'too-small': the loader refuses it. Neither is replayed. */
  note: 'fits' | 'too-small' | null;
  /** The whole trace, prompt included (null: not replayed). */
  uses: number;
  hits: number;
  misses: number;
  hitRate: number | null;
  /** The generated tokens' steps, the pool warmed by what came before. */
  decode: { tokens: number; uses: number; hits: number; misses: number; hitRate: number; missesPerToken: number; bytesPerToken: number; tokensPerSecond: number | null } | null;
}

export interface CacheSimResult {
  trace: TraceHeader & { file: string; promptTokens: number; generatedTokens: number; steps: number; prefillChunk: number; residentBytes: number; slotBytes: number };
  readBytesPerSecond: number | null;
  rows: CacheSimRow[];
}

function runCacheSim(o: CacheSimOptions): void {
  const budgets = o.budget.map((b) => {
    try {
      return parseSize(b);
    } catch (e) {
      throw new UsageError(`--budget must be ${(e as Error).message.replace(/^expected /, '').replace(/\.$/, '')}`);
    }
  });
  const policies = o.policy.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
  for (const p of policies) if (!(EVICTION_POLICIES as readonly string[]).includes(p)) throw new UsageError(`--policy: '${p}' is not one of ${EVICTION_POLICIES.join(', ')}`);
  if (policies.length === 0) throw new UsageError(`--policy: give one or more of ${EVICTION_POLICIES.join(', ')}`);
  let text: string;
  try {
    text = fs.readFileSync(o.trace, 'utf8');
  } catch (e) {
    throw new Error(`cannot read the routing trace ${o.trace}: ${(e as Error).message}`);
  }
  const { header, tokens } = parseTrace(text, o.trace);
  const residentBytes = o.residentBytes ?? header.residentBytes;
  if (residentBytes === null) throw new UsageError(`${o.trace}: the header has no residentBytes: give --resident-bytes`);
  const result = cacheSim({ header, tokens, file: o.trace, budgets, policies: policies as EvictionPolicy[], residentBytes, readRate: o.readRate ?? null, prefillChunk: o.prefillChunk ?? header.prefillChunk });
  process.stdout.write(o.json ? `${JSON.stringify(result)}\n` : formatCacheSim(result));
}

/** The replay of a parsed trace for every budget × policy. */
export function cacheSim(a: {
  header: TraceHeader; tokens: Parameters<typeof forwardSteps>[0]; file: string; budgets: number[]; policies: EvictionPolicy[];
  residentBytes: number; readRate: number | null; prefillChunk: number;
}): CacheSimResult {
  const h = a.header;
  const steps = forwardSteps(a.tokens, h.nLayers, h.nExperts, a.prefillChunk);
  // A model whose experts cannot be streamed has no slot size: an expert's own bytes stand in.
  const slotBytes = h.slotBytes ?? h.expertBytes;
  const count = h.nLayers * h.nExperts;
  const totalBytes = a.residentBytes + count * h.expertBytes;
  const rows: CacheSimRow[] = [];
  for (const budgetBytes of a.budgets) {
    // As the loader sizes the pool (loader.ts expertCache): whole slots in what the resident weights leave.
    const slots = Math.min(count, Math.floor((budgetBytes - a.residentBytes) / slotBytes));
    const note = budgetBytes >= totalBytes ? 'fits' : slots < h.nExpertsUsed * h.nLayers ? 'too-small' : null;
    for (const policy of a.policies) {
      rows.push(note === null ? replay(steps, budgetBytes, slots, h, policy, a.readRate)
        // Nothing to replay: every expert is in memory (the loader streams nothing), or the loader refuses the budget.
        : { budgetBytes, policy, slots: note === 'fits' ? count : Math.max(0, slots), note, uses: 0, hits: 0, misses: 0, hitRate: null, decode: null });
    }
  }
  return {
    trace: {
      ...h, file: a.file, residentBytes: a.residentBytes, slotBytes, prefillChunk: a.prefillChunk, steps: steps.length,
      promptTokens: a.tokens.filter((t) => t.prompt).length, generatedTokens: a.tokens.filter((t) => !t.prompt).length,
    },
    readBytesPerSecond: a.readRate,
    rows,
  };
}

/**
 * The generated tokens' share of the misses: `simulate` replays from an empty pool and is deterministic, so
 * the misses of the steps in [i, j) are misses(first j steps) − misses(first i steps). One replay per
 * boundary between prompt and generated runs (two for one prompt and its continuation).
 */
function replay(steps: readonly ForwardStep[], budgetBytes: number, slots: number, h: TraceHeader, policy: EvictionPolicy, readRate: number | null): CacheSimRow {
  const flat = (upTo: number): TraceStep[] => steps.slice(0, upTo).flatMap((s) => s.layers);
  const at = (upTo: number) => simulate(flat(upTo), slots, h.nExperts, policy);
  const whole = at(steps.length);
  let uses = 0, misses = 0, tokens = 0;
  for (let i = 0; i < steps.length;) {
    let j = i;
    while (j < steps.length && steps[j]!.generated === steps[i]!.generated) j++;
    if (steps[i]!.generated) {
      const before = i === 0 ? { uses: 0, misses: 0 } : at(i), after = j === steps.length ? whole : at(j);
      uses += after.uses - before.uses;
      misses += after.misses - before.misses;
      tokens += steps.slice(i, j).reduce((n, s) => n + s.tokens, 0);
    }
    i = j;
  }
  const bytesPerToken = tokens === 0 ? 0 : (misses * h.expertBytes) / tokens;
  return {
    budgetBytes, policy, slots, note: null, ...whole,
    decode: tokens === 0 ? null : {
      tokens, uses, hits: uses - misses, misses, hitRate: uses === 0 ? 0 : (uses - misses) / uses, missesPerToken: misses / tokens, bytesPerToken,
      tokensPerSecond: readRate === null ? null : bytesPerToken === 0 ? null : readRate / bytesPerToken,
    },
  };
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
/** Three significant digits (0.0312, 5.00), one decimal from 10 up. */
const speed = (x: number) => (x >= 10 ? x.toFixed(1) : x.toPrecision(3));

export function formatCacheSim(r: CacheSimResult): string {
  const t = r.trace;
  const out: string[] = [];
  out.push(`${t.file}: ${t.model}`);
  out.push(`  ${t.nLayers} layers × ${t.nExperts} experts (${t.nExpertsUsed} per token); one expert ${gib(t.expertBytes)}, one slot ${gib(t.slotBytes)}; ${gib(t.residentBytes)} resident beside the pool`);
  out.push(`  ${t.promptTokens} prompt tokens (${t.prefillChunk === 1 ? 'one step each' : `in chunks of ${t.prefillChunk}, one step per chunk`}), ${t.generatedTokens} generated; ${t.steps} forward steps × ${t.nLayers} layers replayed`);
  out.push('');
  const head = ['budget', 'policy', 'slots', 'hit rate', 'decode hit rate', 'misses/token', 'read/token', ...(r.readBytesPerSecond === null ? [] : ['tok/s'])];
  const rows = r.rows.map((x) => {
    const d = x.decode;
    const cells = [gib(x.budgetBytes), x.policy, `${x.slots} of ${t.nLayers * t.nExperts}`];
    if (x.note === 'fits') return [...cells, 'the model fits: nothing is streamed'];
    if (x.note === 'too-small') return [...cells, `too small: the loader needs ≥ ${t.residentBytes + t.nExpertsUsed * t.nLayers * t.slotBytes} bytes (${t.nExpertsUsed} experts per layer beside the resident weights)`];
    return [
      ...cells, pct(x.hitRate ?? 0), d ? pct(d.hitRate) : '–', d ? d.missesPerToken.toFixed(2) : '–', d ? gib(d.bytesPerToken) : '–',
      ...(r.readBytesPerSecond === null ? [] : [d?.tokensPerSecond == null ? (d ? '∞' : '–') : speed(d.tokensPerSecond)]),
    ];
  });
  // A row ending in a note has fewer cells: its last one is not padded.
  const widths = head.map((hd, i) => Math.max(hd.length, ...rows.filter((row) => i < row.length - 1).map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  out.push(line(head));
  for (const row of rows) out.push(line(row));
  out.push('');
  out.push('hit rate: of every expert use in the trace (prompt included); decode hit rate, misses/token, read/token: the generated tokens\' steps only,');
  out.push('the pool warmed by the prompt; read/token = misses × one expert\'s bytes.');
  if (r.readBytesPerSecond !== null) out.push(`tok/s: ${(r.readBytesPerSecond / 1e9).toFixed(2)} GB/s ÷ read/token — the disk's bound on decode speed (compute not counted).`);
  return `${out.join('\n')}\n`;
}

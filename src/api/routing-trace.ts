/**
 * Routing traces: which experts every token went to, in the order the model processed the tokens, written
 * by `grok generate --trace-routing FILE` and replayed by `grok cache-sim` against expert pools of any size
 * (expert-policy.ts `simulate`) — what a user sizes `--ram-budget` with.
 *
 * The file is JSON lines. First a header:
 *   {"format": "grok-routing-trace-1", "model": path, "nLayers": L, "nExperts": E, "nExpertsUsed": A,
 *    "expertBytes": one expert of one layer (gate + up + down) as stored,
 *    "slotBytes": memory one slot of the expert pool takes (reads aligned as the kernels' reader aligns them; null: cannot stream),
 *    "residentBytes": the weights that stay in memory when the experts are streamed (all but the experts; may be absent: then give it to cache-sim),
 *    "prefillChunk": prompt tokens the engine fed per forward step (absent: 1)}
 * then one line per token, prompt tokens first:
 *   {"token": id, "position": p, "prompt": bool, "layers": [[e0, e1], …]}   (per layer, highest probability first)
 * and, in a trace of an interactive session, `"turn": n` on each token line (each turn is a new sequence).
 */
import { FormatError } from '../base/errors.js';
import type { TraceStep } from '../model/expert-policy.js';
import type { RoutedToken } from './routing.js';

export const TRACE_FORMAT = 'grok-routing-trace-1';

export interface TraceHeader {
  readonly format: typeof TRACE_FORMAT;
  readonly model: string;
  readonly nLayers: number;
  readonly nExperts: number;
  readonly nExpertsUsed: number;
  readonly expertBytes: number;
  readonly slotBytes: number | null;
  readonly residentBytes: number | null;
  readonly prefillChunk: number;
}

export interface TraceToken {
  readonly token: number;
  readonly position: number;
  readonly prompt: boolean;
  readonly layers: readonly (readonly number[])[];
  readonly turn?: number;
}

export function headerLine(h: Omit<TraceHeader, 'format'>): string {
  return `${JSON.stringify({ format: TRACE_FORMAT, ...h })}\n`;
}

/** The lines of one sequence's tokens (prompt, then generated), positions from 0. */
export function tokenLines(rows: readonly RoutedToken[], turn?: number): string {
  return rows.map((r, position) => `${JSON.stringify({ token: r.id, position, prompt: r.prompt, layers: r.routing.experts, ...(turn === undefined ? {} : { turn }) })}\n`).join('');
}

/** Parse a trace; errors name the file, the line and what was expected there. */
export function parseTrace(text: string, file: string): { header: TraceHeader; tokens: TraceToken[] } {
  const lines = text.split('\n');
  const fail = (line: number, what: string): never => { throw new FormatError(file, `line ${line}: ${what}`); };
  const json = (i: number): unknown => {
    try {
      return JSON.parse(lines[i]!);
    } catch (e) {
      return fail(i + 1, `not JSON (${(e as Error).message})`);
    }
  };
  if (lines[0]!.trim() === '') fail(1, `expected the header {"format": "${TRACE_FORMAT}", …}, got an empty line (is this a routing trace from grok generate --trace-routing?)`);
  const h = json(0) as Record<string, unknown>;
  if (typeof h !== 'object' || h === null || Array.isArray(h) || h.format !== TRACE_FORMAT) fail(1, `expected the header {"format": "${TRACE_FORMAT}", …}, got ${lines[0]!.slice(0, 80)}`);
  const posInt = (k: string, min = 1): number => {
    const v = h[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) fail(1, `header field "${k}" must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const nLayers = posInt('nLayers'), nExperts = posInt('nExperts'), nExpertsUsed = posInt('nExpertsUsed');
  if (nExpertsUsed > nExperts) fail(1, `header: nExpertsUsed ${nExpertsUsed} exceeds nExperts ${nExperts}`);
  const bytes = (k: string, o: { nullable?: boolean; zero?: boolean } = {}): number | null => {
    const v = h[k];
    if (o.nullable && (v === null || v === undefined)) return null;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (v === 0 && !o.zero)) fail(1, `header field "${k}" must be a number of bytes ${o.zero ? '≥' : '>'} 0${o.nullable ? ' or null' : ''}, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const header: TraceHeader = {
    format: TRACE_FORMAT,
    model: typeof h.model === 'string' ? h.model : '(unknown)',
    nLayers, nExperts, nExpertsUsed,
    expertBytes: bytes('expertBytes')!,
    slotBytes: bytes('slotBytes', { nullable: true }),
    residentBytes: bytes('residentBytes', { nullable: true, zero: true }),
    prefillChunk: h.prefillChunk === undefined ? 1 : posInt('prefillChunk'),
  };
  const tokens: TraceToken[] = [];
  for (let i = 1; i < lines.length; i++) {
    if (lines[i]!.trim() === '') continue;
    const n = i + 1;
    const t = json(i) as Record<string, unknown>;
    if (typeof t !== 'object' || t === null || Array.isArray(t)) fail(n, `expected a token {"token": id, "position": p, "prompt": bool, "layers": [[…], …]}, got ${lines[i]!.slice(0, 80)}`);
    for (const k of ['token', 'position'] as const) {
      if (typeof t[k] !== 'number' || !Number.isSafeInteger(t[k]) || (t[k] as number) < 0) fail(n, `"${k}" must be an integer ≥ 0, got ${JSON.stringify(t[k])}`);
    }
    if (typeof t.prompt !== 'boolean') fail(n, `"prompt" must be true or false, got ${JSON.stringify(t.prompt)}`);
    if (t.turn !== undefined && (typeof t.turn !== 'number' || !Number.isSafeInteger(t.turn) || t.turn < 0)) fail(n, `"turn" must be an integer ≥ 0, got ${JSON.stringify(t.turn)}`);
    const layers = t.layers;
    if (!Array.isArray(layers) || layers.length !== nLayers) fail(n, `"layers" must be an array of ${nLayers} layers (the header's nLayers), got ${Array.isArray(layers) ? `${layers.length}` : JSON.stringify(layers)}`);
    (layers as unknown[]).forEach((es, l) => {
      const ok = Array.isArray(es) && es.length === nExpertsUsed && es.every((e) => Number.isInteger(e) && e >= 0 && e < nExperts) && new Set(es).size === es.length;
      if (!ok) fail(n, `layer ${l}: expected ${nExpertsUsed} different experts in 0…${nExperts - 1}, got ${JSON.stringify(es)}`);
    });
    tokens.push({ token: t.token as number, position: t.position as number, prompt: t.prompt as boolean, layers: layers as number[][], ...(t.turn === undefined ? {} : { turn: t.turn as number }) });
  }
  return { header, tokens };
}

/** One forward step's routing: the cache's steps for it (one per layer) and whether it decoded a generated token. */
export interface ForwardStep {
  readonly generated: boolean;
  /** Tokens in this step (a prompt chunk, or the one generated token). */
  readonly tokens: number;
  readonly layers: TraceStep[];
}

/**
 * The trace as the expert cache saw it: prompt tokens fed `prefillChunk` at a time (counted from the start
 * of each prompt, as the scheduler chunks it), each chunk one step per layer asking for the union of its
 * tokens' experts; every generated token one step per layer. Within a step the experts are asked for most
 * used first, ties to the lower index, as GrokModel.experts asks the cache (`byUse`).
 */
export function forwardSteps(tokens: readonly TraceToken[], nLayers: number, nExperts: number, prefillChunk: number): ForwardStep[] {
  const steps: ForwardStep[] = [];
  let i = 0;
  while (i < tokens.length) {
    const t = tokens[i]!;
    if (!t.prompt) {
      steps.push(step([t], true, nLayers, nExperts));
      i++;
      continue;
    }
    // A prompt: consecutive prompt tokens of one sequence (same turn, rising positions), fed in chunks.
    let end = i + 1;
    while (end < tokens.length && tokens[end]!.prompt && tokens[end]!.turn === t.turn && tokens[end]!.position > tokens[end - 1]!.position) end++;
    for (let k = i; k < end; k += prefillChunk) steps.push(step(tokens.slice(k, Math.min(end, k + prefillChunk)), false, nLayers, nExperts));
    i = end;
  }
  return steps;
}

function step(ts: readonly TraceToken[], generated: boolean, nLayers: number, nExperts: number): ForwardStep {
  const layers = Array.from({ length: nLayers }, (_, l) => {
    const count = new Array<number>(nExperts).fill(0);
    for (const t of ts) for (const e of t.layers[l]!) count[e]!++;
    const experts = count.map((_, e) => e).filter((e) => count[e]! > 0).sort((a, b) => count[b]! - count[a]! || a - b);
    return { layer: l, experts };
  });
  return { generated, tokens: ts.length, layers };
}

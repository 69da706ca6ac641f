/**
 * Constrained decoding for structured output (OpenAI `response_format`), by XGrammar (mlc-ai/xgrammar's
 * WebAssembly build, `@mlc-ai/web-xgrammar`): a JSON schema or plain JSON compiled once per request against
 * the model's vocabulary, then before each sampled token a bitmask of the tokens the grammar allows next.
 * The engine sees token ids only: the vocabulary's token strings are handed over once (GrammarVocabulary).
 *
 * XGrammar's WebAssembly package is a UMD bundle in a package marked "type": "module", which Node cannot
 * import as is (its CommonJS branch needs `require`/`__filename`); it is therefore evaluated as the
 * CommonJS module it is, with its own require, once per process.
 */
import fs from 'node:fs';
import { createRequire, Module } from 'node:module';
import path from 'node:path';
import { Ajv } from 'ajv';

/** The vocabulary as XGrammar reads it. */
export interface GrammarVocabulary {
  /**
   * One string per token id: SentencePiece pieces as stored (`▁` for a space, `<0x0A>` byte tokens) with
   * type 'byte_fallback'; byte-level BPE tokens in GPT-2's byte-to-unicode spelling with 'byte_level'.
   */
  readonly tokens: readonly string[];
  readonly type: 'byte_fallback' | 'byte_level';
  /** Tokens that end generation (EOS): allowed once the grammar is complete. */
  readonly stopIds: readonly number[];
}

/** What a request asks for (OpenAI response_format). */
export type ResponseFormat =
  | { readonly type: 'json_object' }
  | { readonly type: 'json_schema'; readonly schema: Record<string, unknown> };

/** A grammar's constraint on one generation: the engine asks it before and after every sampled token. */
export interface TokenConstraint {
  /** Compute the tokens allowed next (XGrammar's mask), before the step that samples them. */
  prepare(): Promise<void>;
  /** logits[i] = −Infinity for every token the grammar does not allow now (after prepare()). */
  mask(logits: Float32Array): void;
  /** Advance over the sampled token; false if the grammar rejects it (never, after mask()). */
  accept(id: number): boolean;
  /** The grammar has accepted a stop token: the output is complete. */
  readonly done: boolean;
  release(): void;
}

/** A schema XGrammar cannot compile, or a format it does not know: the request's fault (a 400). */
export class GrammarError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GrammarError';
  }
}

/* The parts of XGrammar's API used here (its .d.ts describes them; the bundle is loaded untyped). */
interface XgMatcher {
  getNextTokenBitmask(): Promise<Int32Array>;
  acceptToken(id: number): boolean;
  isTerminated(): boolean;
  dispose(): void;
}
interface XgCompiled { dispose(): void }
interface XgCompiler {
  compileJSONSchema(schema: string, anyWhitespace?: boolean): Promise<XgCompiled>;
  compileBuiltinJSONGrammar(): Promise<XgCompiled>;
  dispose(): void;
}
interface Xg {
  TokenizerInfo: { createTokenizerInfo(tokens: string[], type: string, prependSpace: boolean, vocabSize: number, stopIds: number[]): Promise<{ dispose(): void }> };
  GrammarCompiler: { createGrammarCompiler(info: unknown, cache?: boolean): Promise<XgCompiler> };
  GrammarMatcher: { createGrammarMatcher(compiled: XgCompiled): Promise<XgMatcher> };
}

let xgrammar: Xg | undefined;

function loadXGrammar(): Xg {
  if (xgrammar) return xgrammar;
  const req = createRequire(import.meta.url);
  const file = req.resolve('@mlc-ai/web-xgrammar');
  const m = new Module(file) as Module & { _compile(src: string, file: string): void; paths: string[] };
  m.filename = file;
  m.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(path.dirname(file));
  m._compile(fs.readFileSync(file, 'utf8'), file);
  xgrammar = m.exports as Xg;
  return xgrammar;
}

/**
 * XGrammar's compiler for one model's vocabulary; makes a TokenConstraint per request. A schema XGrammar
 * fails on aborts its compiler (later compiles never settle) while matchers already made keep working, so
 * after a failed compile the compiler is replaced. Schemas are checked by Ajv first (a JSON Schema
 * validator): an invalid schema or an unresolvable $ref is reported from there, without reaching XGrammar.
 */
export class GrammarEngine {
  private compilerReady: Promise<XgCompiler>;

  private constructor(private readonly xg: Xg, private readonly vocab: GrammarVocabulary, compiler: XgCompiler) {
    this.compilerReady = Promise.resolve(compiler);
  }

  get vocabSize(): number {
    return this.vocab.tokens.length;
  }

  static async create(vocab: GrammarVocabulary): Promise<GrammarEngine> {
    const xg = loadXGrammar();
    return new GrammarEngine(xg, vocab, await GrammarEngine.newCompiler(xg, vocab));
  }

  private static async newCompiler(xg: Xg, vocab: GrammarVocabulary): Promise<XgCompiler> {
    const info = await xg.TokenizerInfo.createTokenizerInfo([...vocab.tokens], vocab.type, false, vocab.tokens.length, [...vocab.stopIds]);
    return xg.GrammarCompiler.createGrammarCompiler(info, true);
  }

  /** A constraint for one generation; a format is compiled once (n choices, or a request after its check, share it). */
  async constraint(format: ResponseFormat): Promise<TokenConstraint> {
    const key = JSON.stringify(format);
    let compiled = this.compiled.get(key);
    if (!compiled) {
      compiled = this.compile(format);
      this.compiled.set(key, compiled);
      // Failures are not kept; successes are, up to a bound (least recently added dropped first). A dropped
      // grammar is not disposed: a running request's matcher may still use it (its memory is XGrammar's to keep).
      compiled.catch(() => this.compiled.delete(key));
      if (this.compiled.size > 64) this.compiled.delete(this.compiled.keys().next().value!);
    }
    const matcher = await this.xg.GrammarMatcher.createGrammarMatcher(await compiled);
    return new XgConstraint(matcher, this.vocab.tokens.length);
  }

  private readonly compiled = new Map<string, Promise<XgCompiled>>();

  private async compile(format: ResponseFormat): Promise<XgCompiled> {
    if (format.type !== 'json_object' && format.type !== 'json_schema') {
      throw new GrammarError(`response_format type '${String((format as { type: unknown }).type)}' is not supported (json_object, json_schema)`);
    }
    let schema: unknown;
    if (format.type === 'json_schema') {
      try {
        new Ajv({ strict: false, validateFormats: false }).compile(format.schema);
      } catch (e) {
        throw new GrammarError(`the JSON schema is not valid: ${describe(e)}`);
      }
      schema = schemaForXGrammar(format.schema, '#');
    }
    const compiler = await this.compilerReady;
    try {
      return format.type === 'json_object' ? await compiler.compileBuiltinJSONGrammar() : await compiler.compileJSONSchema(JSON.stringify(schema), false);
    } catch (e) {
      this.compilerReady = GrammarEngine.newCompiler(this.xg, this.vocab); // this one is aborted
      throw new GrammarError(`the JSON schema cannot be used for constrained decoding: ${describe(e)}`);
    }
  }

  close(): void {
    for (const c of this.compiled.values()) void c.then((x) => x.dispose(), () => undefined);
    this.compiled.clear();
    void this.compilerReady.then((c) => c.dispose(), () => undefined);
  }
}

class XgConstraint implements TokenConstraint {
  private bitmask: Int32Array | null = null;

  constructor(private readonly matcher: XgMatcher, private readonly vocabSize: number) {}

  get done(): boolean {
    return this.matcher.isTerminated();
  }

  async prepare(): Promise<void> {
    this.bitmask = await this.matcher.getNextTokenBitmask();
  }

  mask(logits: Float32Array): void {
    const m = this.bitmask;
    if (!m) throw new Error('TokenConstraint.mask before prepare()');
    // Bits past the grammar's vocabulary (a model with padded rows) are never allowed.
    const n = Math.min(logits.length, this.vocabSize);
    for (let w = 0; w * 32 < n; w++) {
      const bits = m[w]!;
      if (bits === -1) continue;
      const end = Math.min(n, w * 32 + 32);
      for (let i = w * 32; i < end; i++) if (((bits >>> (i & 31)) & 1) === 0) logits[i] = -Infinity;
    }
    logits.fill(-Infinity, n);
  }

  accept(id: number): boolean {
    this.bitmask = null;
    return this.matcher.acceptToken(id);
  }

  release(): void {
    this.matcher.dispose();
  }
}

/**
 * The schema as XGrammar 0.1.27 enforces it exactly, or a GrammarError where it cannot (found by checking
 * its grammars against every value near the bounds): one-sided integer bounds are off (`minimum: 5` alone
 * admits 1…4, `maximum: -2` alone admits −1, exclusive bounds are off by one), so every integer bound
 * becomes an inclusive pair, the open side ±(2^53 − 1); two-sided ranges can be off near a bound too
 * ([0, 120] admits 121…129), so a range of fewer than EXACT_RANGE integers becomes the list of its values
 * (test/structured-output.test.ts checks every value near the bounds against Ajv). Wider ranges stay
 * XGrammar's, which may admit values just past a bound. Its ranges for non-integer numbers admit values past an integer upper bound (1.01 for
 * maximum 1) and any character where the decimal point goes ("0?5" for minimum 0.5), so a bound on a
 * `number` is refused.
 */
/** Integer ranges narrower than this are given to XGrammar as their values (compiled in under 0.2 s at 4096). */
const EXACT_RANGE = 4096;

function schemaForXGrammar(s: unknown, where: string): unknown {
  if (Array.isArray(s)) return s.map((x, i) => schemaForXGrammar(x, `${where}/${i}`));
  if (typeof s !== 'object' || s === null) return s;
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) o[k] = typeof v === 'object' && v !== null ? schemaForXGrammar(v, `${where}/${k}`) : v;
  const types = Array.isArray(o.type) ? o.type : [o.type];
  const keys = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'] as const;
  const bound = keys.find((k) => o[k] !== undefined);
  if (!bound) return o;
  for (const k of keys) {
    if (o[k] !== undefined && (typeof o[k] !== 'number' || !Number.isFinite(o[k]))) throw new GrammarError(`${where}: "${k}" must be a finite number`);
  }
  if (types.includes('number')) {
    throw new GrammarError(`${where}: "${bound}" on a "number" is not supported (the grammar engine, XGrammar 0.1.27, does not enforce ranges of non-integer numbers exactly): use "integer" with the range, or an unbounded "number"`);
  }
  if (types.includes('integer')) {
    const n = (k: (typeof keys)[number]) => o[k] as number | undefined;
    const lows = [n('minimum') === undefined ? -Infinity : Math.ceil(n('minimum')!), n('exclusiveMinimum') === undefined ? -Infinity : Math.floor(n('exclusiveMinimum')!) + 1];
    const highs = [n('maximum') === undefined ? Infinity : Math.floor(n('maximum')!), n('exclusiveMaximum') === undefined ? Infinity : Math.ceil(n('exclusiveMaximum')!) - 1];
    const lo = Math.max(-Number.MAX_SAFE_INTEGER, ...lows), hi = Math.min(Number.MAX_SAFE_INTEGER, ...highs);
    if (lo > hi) throw new GrammarError(`${where}: no integer lies within the bounds`);
    for (const k of keys) delete o[k];
    if (o.type === 'integer' && o.enum === undefined && o.const === undefined && hi - lo < EXACT_RANGE) {
      // Its two-sided ranges are not exact either ([0, 120] admits 121…129, [12000, 12999] admits 11980…): the values themselves are,
      // listed shortest first (an enum listing −120 before −12 admits −121…−129).
      o.enum = Array.from({ length: hi - lo + 1 }, (_, i) => lo + i).sort((a, b) => Math.abs(a) - Math.abs(b) || a - b);
      return o;
    }
    o.minimum = lo;
    o.maximum = hi;
  }
  return o;
}

function describe(e: unknown): string {
  if (e instanceof Error) return e.message;
  // Emscripten throws C++ exceptions as numbers or objects with a message.
  if (typeof e === 'object' && e !== null && 'message' in e) return String((e as { message: unknown }).message);
  return String(e);
}

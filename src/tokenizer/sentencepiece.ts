// SentencePiece BPE tokenizer, byte-exact with SentencePiece 0.1.97…0.2.x on the Grok-1 tokenizer.
// Algorithm: SentencePiece bpe_model.cc (encode) and sentencepiece_processor.cc (decode); SentencePiece sources for the details cited below
// (normalizer.cc Normalize/NormalizePrefix, bpe_model.cc Encode, sentencepiece_processor.cc Encode/Decode).
//
// Speed: the normalised text is cut into segments that no merge can cross and each segment is encoded
// independently, with a cache for short ones. Why that is exactly equivalent to one BPE over the whole text:
// - a frozen (USER_DEFINED) symbol never takes part in a merge (bpe_model.cc only pairs non-frozen symbols),
//   so it is a hard boundary;
// - a boundary before a `▁` that follows a non-`▁` character is never crossed when no mergeable piece
//   contains "X▁" with X ≠ `▁` (checked on the vocabulary at load; true for Grok-1, else this split is off);
// - merges in different segments never interact: a candidate only involves two adjacent symbols of one
//   segment, and the global priority order (score desc, then left position asc) restricted to one segment
//   is that segment's own order, so every segment sees the same sequence of merges.
// Merge candidates are looked up without building substrings: a symbol carries a polynomial hash, the hash of
// a concatenation follows from its parts, and a hit in the piece table is confirmed by comparing the text.
// Verified against SentencePiece itself by bench/tokenize-diff.ts.

import { readSmallFile } from '../base/files.js';
import { FormatError } from '../base/errors.js';

import { ModelType, PieceType, normalizerDefaults, readModelProto, trainerDefaults, type ModelProto } from './protobuf.js';

export interface PieceEntry {
  piece: string;
  score: number;
  type: number;
}

export interface TokenizerOptions {
  addDummyPrefix?: boolean;
  removeExtraWhitespaces?: boolean;
  /** replace spaces by `▁` (SentencePiece default true) */
  escapeWhitespaces?: boolean;
  /** default: true when all 256 `<0xHH>` BYTE pieces are present */
  byteFallback?: boolean;
  unkSurface?: string;
  bosId?: number;
  eosId?: number;
  unkId?: number;
  padId?: number;
}

export interface StreamDecoder {
  /** Adds one id; returns the text that became complete (possibly empty). */
  push(id: number): string;
  /** Ends the stream: returns what is left (incomplete UTF-8 bytes become U+FFFD each). */
  flush(): string;
}

const SPACE_SYMBOL = '\u2581';
const REPLACEMENT = '\uFFFD';
/** Segments up to this many UTF-16 units are cached (words; long runs are rare and run BPE directly). */
const CACHE_MAX_KEY = 48;
const CACHE_SLOTS = 1 << 18;
const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;
/** Polynomial string hash (mod 2^32): H(xy) = H(x)·B^|y| + H(y), so a merge's hash needs no string. */
const HASH_B = 0x01000193;

function hashRange(s: string, a: number, b: number): number {
  let h = 0;
  for (let i = a; i < b; i++) h = (Math.imul(h, HASH_B) + s.charCodeAt(i)) | 0;
  return h;
}

/** Spreads a hash over table slots (murmur3 finaliser). */
function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export class Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
  readonly source: string;
  readonly addDummyPrefix: boolean;
  readonly removeExtraWhitespaces: boolean;
  readonly escapeWhitespaces: boolean;
  readonly byteFallback: boolean;
  readonly unkSurface: string;

  private readonly pieces: string[];
  private readonly types: Uint8Array;
  private readonly scores: Float64Array;
  /** NORMAL, USER_DEFINED, UNUSED: the only results a merge can have (bpe_model.cc pieces_) */
  private readonly vocab = new Map<string, number>();
  /** CONTROL, UNKNOWN, BYTE: looked up only for whole final symbols */
  private readonly reserved = new Map<string, number>();
  /** USER_DEFINED strings by first UTF-16 unit, longest first, with their ids */
  private readonly userByFirst = new Map<number, { text: string; id: number }[]>();
  private readonly userFirstUnit = new Uint8Array(65536);
  /** id of `<0xHH>` for each byte, or -1 */
  private readonly byteToId = new Int32Array(256).fill(-1);
  /** byte value of each BYTE id, or -1 */
  private readonly idToByte: Int16Array;
  private readonly hasUnused: boolean;
  /** longest mergeable piece in UTF-16 units: longer concatenations need no lookup */
  private readonly maxPieceUnits: number;
  private readonly splitBeforeSpace: boolean;
  private readonly spaceChar: string;
  private readonly spaceCode: number;
  /** allocated on first use (~10 MB): a tokenizer that is only loaded, or only decodes, does not pay */
  private cacheStore: SegmentCache | null = null;
  private readonly scratchIds: number[] = [];
  private readonly surfaces: (string | undefined)[] = [];
  /** mergeable pieces by string hash (open addressing; slot → id, -1 empty), verified by comparing text */
  private readonly pieceSlot: Int32Array;
  private readonly pieceSlotHash: Int32Array;
  /** HASH_B^k for k ≤ maxPieceUnits */
  private readonly hashPow: Int32Array;
  /** piece id of each single UTF-16 unit that is a mergeable piece, else -1 */
  private readonly unitId = new Int32Array(65536).fill(-1);
  private symHash = new Int32Array(64);

  // scratch for bpe(): symbols (start, length, id, links) and a binary max-heap of merge candidates
  private symStart = new Int32Array(64);
  private symLen = new Int32Array(64);
  private symId = new Int32Array(64);
  private symPrev = new Int32Array(64);
  private symNext = new Int32Array(64);
  // merge candidates (append-only per bpe() call) and a binary heap of their indices
  private cScore = new Float64Array(256);
  private cLeft = new Int32Array(256);
  private cRight = new Int32Array(256);
  private cLen = new Int32Array(256);
  private cId = new Int32Array(256);
  private cCount = 0;
  private heap = new Int32Array(256);
  private hSize = 0;

  private constructor(entries: PieceEntry[], opts: Required<Omit<TokenizerOptions, 'byteFallback'>> & { byteFallback: boolean | undefined }, source: string) {
    this.source = source;
    const n = entries.length;
    if (n === 0) throw new FormatError(source, 'tokenizer has no pieces');
    this.vocabSize = n;
    this.pieces = new Array<string>(n);
    this.types = new Uint8Array(n);
    this.scores = new Float64Array(n);
    this.idToByte = new Int16Array(n).fill(-1);
    let unk = -1;
    let hasUnused = false;
    let maxUnits = 1;
    let spaceAfterOther = false;
    const users: { text: string; id: number }[] = [];
    for (let i = 0; i < n; i++) {
      const e = entries[i];
      const piece = e.piece;
      if (typeof piece !== 'string' || piece.length === 0) throw new FormatError(source, `piece ${i} is empty`);
      if (!Number.isInteger(e.type) || e.type < 1 || e.type > 6) throw new FormatError(source, `piece ${i} (${JSON.stringify(piece)}) has unknown type ${e.type} (expected 1..6)`);
      if (typeof e.score !== 'number') throw new FormatError(source, `piece ${i} has a non-numeric score`);
      // model_interface.cc rejects duplicates: an id must be recoverable from its piece.
      this.pieces[i] = piece;
      this.types[i] = e.type;
      this.scores[i] = e.score;
      switch (e.type) {
        case PieceType.NORMAL:
        case PieceType.USER_DEFINED:
        case PieceType.UNUSED:
          addUnique(this.vocab, piece, i, source);
          if (piece.length === 1) this.unitId[piece.charCodeAt(0)] = i;
          if (piece.length > maxUnits) maxUnits = piece.length;
          if (!spaceAfterOther && hasSpaceAfterOther(piece)) spaceAfterOther = true;
          if (e.type === PieceType.USER_DEFINED) users.push({ text: piece, id: i });
          if (e.type === PieceType.UNUSED) hasUnused = true;
          break;
        case PieceType.UNKNOWN:
          if (unk >= 0) throw new FormatError(source, `two UNKNOWN pieces (ids ${unk} and ${i})`);
          unk = i;
          addUnique(this.reserved, piece, i, source);
          break;
        case PieceType.BYTE: {
          const m = /^<0x([0-9A-F]{2})>$/.exec(piece);
          if (!m) throw new FormatError(source, `BYTE piece ${i} is ${JSON.stringify(piece)}, expected <0xHH> with upper-case hex`);
          const b = parseInt(m[1], 16);
          this.idToByte[i] = b;
          this.byteToId[b] = i;
          addUnique(this.reserved, piece, i, source);
          break;
        }
        default:
          addUnique(this.reserved, piece, i, source);
      }
    }
    for (const [piece, i] of this.reserved) {
      const j = this.vocab.get(piece);
      if (j !== undefined) throw new FormatError(source, `piece ${Math.max(i, j)} ${JSON.stringify(piece)} is defined twice`);
    }
    if (unk < 0) throw new FormatError(source, 'no UNKNOWN piece (SentencePiece requires exactly one)');
    if (opts.unkId >= 0 && opts.unkId !== unk) throw new FormatError(source, `unk id ${opts.unkId} does not name the UNKNOWN piece (that is id ${unk})`);
    this.unkId = unk;
    for (const [name, id] of [['bos', opts.bosId], ['eos', opts.eosId], ['pad', opts.padId]] as const) {
      if (!Number.isInteger(id) || id < -1 || id >= n) throw new FormatError(source, `${name} id ${id} is out of range (vocabulary size ${n})`);
    }
    this.bosId = opts.bosId;
    this.eosId = opts.eosId;
    this.padId = opts.padId;
    const allBytes = this.byteToId.every((id) => id >= 0);
    const byteFallback = opts.byteFallback ?? allBytes;
    if (byteFallback && !allBytes) {
      const missing = [...this.byteToId.keys()].filter((b) => this.byteToId[b] < 0);
      throw new FormatError(source, `byte fallback is on but ${missing.length} BYTE pieces are missing (first: <0x${missing[0].toString(16).toUpperCase().padStart(2, '0')}>)`);
    }
    this.byteFallback = byteFallback;
    this.hasUnused = hasUnused;
    this.maxPieceUnits = maxUnits;
    this.addDummyPrefix = opts.addDummyPrefix;
    this.removeExtraWhitespaces = opts.removeExtraWhitespaces;
    this.escapeWhitespaces = opts.escapeWhitespaces;
    this.unkSurface = opts.unkSurface;
    this.spaceChar = opts.escapeWhitespaces ? SPACE_SYMBOL : ' ';
    this.spaceCode = this.spaceChar.charCodeAt(0);
    this.splitBeforeSpace = opts.escapeWhitespaces && !spaceAfterOther;
    this.hashPow = new Int32Array(maxUnits + 1);
    this.hashPow[0] = 1;
    for (let k = 1; k <= maxUnits; k++) this.hashPow[k] = Math.imul(this.hashPow[k - 1], HASH_B);
    const slots = 2 ** Math.ceil(Math.log2(Math.max(16, this.vocab.size * 2)));
    this.pieceSlot = new Int32Array(slots).fill(-1);
    this.pieceSlotHash = new Int32Array(slots);
    for (const [piece, id] of this.vocab) {
      const h = hashRange(piece, 0, piece.length);
      let i = mix(h) & (slots - 1);
      while (this.pieceSlot[i] !== -1) i = (i + 1) & (slots - 1);
      this.pieceSlot[i] = id;
      this.pieceSlotHash[i] = h;
    }
    users.sort((a, b) => b.text.length - a.text.length);
    for (const u of users) {
      const c = u.text.charCodeAt(0);
      this.userFirstUnit[c] = 1;
      let list = this.userByFirst.get(c);
      if (!list) this.userByFirst.set(c, (list = []));
      list.push(u);
    }
  }

  /** Loads a SentencePiece `tokenizer.model` file. */
  static fromFile(path: string): Tokenizer {
    let bytes: Uint8Array;
    try {
      bytes = readSmallFile(path, 256 << 20); // a 1M-piece vocabulary is ~20 MB; Grok-1's is 2.2 MB
    } catch (e) {
      throw e instanceof FormatError ? new FormatError(path, `cannot read tokenizer file: ${e.detail.replace(/^cannot open: /, '')}`) : e;
    }
    return Tokenizer.fromModelProto(bytes, path);
  }

  /** Builds a tokenizer from serialized ModelProto bytes; `source` names them in errors. */
  static fromModelProto(bytes: Uint8Array, source: string): Tokenizer {
    return Tokenizer.fromModel(readModelProto(bytes, source), source);
  }

  /** Builds a tokenizer from an already parsed ModelProto. */
  static fromModel(model: ModelProto, source: string): Tokenizer {
    const t = model.trainerSpec ?? {};
    const ns = model.normalizerSpec ?? {};
    const modelType = t.modelType ?? trainerDefaults.modelType;
    if (modelType !== ModelType.BPE) {
      const name = Object.entries(ModelType).find(([, v]) => v === modelType)?.[0] ?? String(modelType);
      throw new FormatError(source, `trainer_spec.model_type is ${name}; only BPE models are supported`);
    }
    if (ns.precompiledCharsmap && ns.precompiledCharsmap.length > 0)
      throw new FormatError(source, `normalizer_spec.precompiled_charsmap is not empty (${ns.precompiledCharsmap.length} bytes, normalizer "${ns.name ?? ''}"); only identity normalisation is supported`);
    if (t.treatWhitespaceAsSuffix) throw new FormatError(source, 'trainer_spec.treat_whitespace_as_suffix = true is not supported');
    if (model.denormalizerSpec?.precompiledCharsmap && model.denormalizerSpec.precompiledCharsmap.length > 0)
      throw new FormatError(source, 'denormalizer_spec.precompiled_charsmap is not empty; denormalisation is not supported');
    const byteFallback = t.byteFallback ?? trainerDefaults.byteFallback;
    // model_interface.cc: BYTE pieces are only allowed with byte_fallback, and then all 256 must exist.
    if (!byteFallback) {
      const i = model.pieces.findIndex((p) => p.type === PieceType.BYTE);
      if (i >= 0) throw new FormatError(source, `piece ${i} ${JSON.stringify(model.pieces[i].piece)} is a BYTE piece but trainer_spec.byte_fallback is false`);
    }
    const tok = new Tokenizer(
      model.pieces,
      {
        addDummyPrefix: ns.addDummyPrefix ?? normalizerDefaults.addDummyPrefix,
        removeExtraWhitespaces: ns.removeExtraWhitespaces ?? normalizerDefaults.removeExtraWhitespaces,
        escapeWhitespaces: ns.escapeWhitespaces ?? normalizerDefaults.escapeWhitespaces,
        byteFallback,
        unkSurface: t.unkSurface ?? trainerDefaults.unkSurface,
        // The ids in the trainer spec must agree with the piece types (SentencePiece checks this at training).
        bosId: idOrNone(model, t.bosId ?? trainerDefaults.bosId),
        eosId: idOrNone(model, t.eosId ?? trainerDefaults.eosId),
        padId: idOrNone(model, t.padId ?? trainerDefaults.padId),
        unkId: -1,
      },
      source,
    );
    return tok;
  }

  /**
   * Builds a tokenizer from a piece table, e.g. GGUF `tokenizer.ggml.tokens/scores/token_type` (ggml docs/gguf.md, tokenizer.ggml.*).
   * Defaults: dummy prefix on, extra-whitespace removal off (llama.cpp's defaults for SentencePiece vocabularies),
   * byte fallback when all 256 BYTE pieces exist, unk surface " ⁇ ", unk = the UNKNOWN piece, bos/eos/pad -1.
   */
  static fromPieces(pieces: PieceEntry[], opts: TokenizerOptions, source: string): Tokenizer {
    return new Tokenizer(
      pieces,
      {
        addDummyPrefix: opts.addDummyPrefix ?? true,
        removeExtraWhitespaces: opts.removeExtraWhitespaces ?? false,
        escapeWhitespaces: opts.escapeWhitespaces ?? true,
        byteFallback: opts.byteFallback,
        unkSurface: opts.unkSurface ?? trainerDefaults.unkSurface,
        bosId: opts.bosId ?? -1,
        eosId: opts.eosId ?? -1,
        padId: opts.padId ?? -1,
        unkId: opts.unkId ?? -1,
      },
      source,
    );
  }

  idToPiece(id: number): string {
    this.checkId(id, 0);
    return this.pieces[id];
  }

  /** The piece type (1 NORMAL … 6 BYTE) of an id. */
  pieceType(id: number): number {
    this.checkId(id, 0);
    return this.types[id];
  }

  /** The id of a piece string, or undefined. */
  pieceToId(piece: string): number | undefined {
    return this.reserved.get(piece) ?? this.vocab.get(piece);
  }

  // -------------------------------------------------------------------------------------------------
  // Encoding

  /**
   * Encodes text to ids (no BOS/EOS unless asked). A string with lone surrogates is encoded as its
   * UTF-8 form (each lone surrogate becomes U+FFFD); raw bytes are accepted and malformed UTF-8 is
   * handled as SentencePiece does (one U+FFFD per malformed byte).
   */
  encode(text: string | Uint8Array, opts?: { bos?: boolean; eos?: boolean }): number[] {
    const out: number[] = [];
    if (opts?.bos) {
      if (this.bosId < 0) throw new Error(`${this.source}: this tokenizer has no BOS id`);
      out.push(this.bosId);
    }
    this.encodeNormalized(this.normalize(toText(text)), out, null);
    if (opts?.eos) {
      if (this.eosId < 0) throw new Error(`${this.source}: this tokenizer has no EOS id`);
      out.push(this.eosId);
    }
    return out;
  }

  /** Encodes text to piece strings, as SentencePiece's EncodeAsPieces (unknown characters keep their text). */
  encodeAsPieces(text: string | Uint8Array): string[] {
    const pieces: string[] = [];
    this.encodeNormalized(this.normalize(toText(text)), [], pieces);
    return pieces;
  }

  /** normalizer.cc Normalize with an identity character map. */
  private normalize(text: string): string {
    if (text.length === 0) return '';
    if (!this.removeExtraWhitespaces) {
      // Taking user-defined matches whole changes nothing here: spaces inside them are escaped too.
      const body = this.escapeWhitespaces ? text.replaceAll(' ', SPACE_SYMBOL) : text;
      return this.addDummyPrefix ? SPACE_SYMBOL + body : body;
    }
    // Chunk walk as in normalizer.cc: a chunk is a user-defined match or one character.
    const n = text.length;
    let i = 0;
    for (; i < n; ) {
      const len = this.prefixLen(text, i);
      if (len !== 1 || text.charCodeAt(i) !== 0x20) break;
      i += len;
    }
    if (i === n) return '';
    const parts: string[] = this.addDummyPrefix ? [this.spaceChar] : [];
    let prevSpace = true;
    while (i < n) {
      const len = this.prefixLen(text, i);
      let chunk = text.slice(i, i + len);
      if (prevSpace) {
        let k = 0;
        while (k < chunk.length && chunk.charCodeAt(k) === 0x20) k++;
        chunk = chunk.slice(k);
      }
      if (chunk.length > 0) {
        parts.push(this.escapeWhitespaces ? chunk.replaceAll(' ', SPACE_SYMBOL) : chunk);
        prevSpace = chunk.charCodeAt(chunk.length - 1) === 0x20;
      }
      i += len;
    }
    let s = parts.join('');
    let e = s.length;
    while (e > 0 && s.charCodeAt(e - 1) === this.spaceCode) e--;
    s = s.slice(0, e);
    return s;
  }

  /** Length of the longest user-defined piece at `i`, or of one character (UTF-16 units); 0 at the end. */
  private prefixLen(s: string, i: number): number {
    const c = s.charCodeAt(i);
    if (this.userFirstUnit[c]) {
      for (const u of this.userByFirst.get(c)!) if (s.startsWith(u.text, i)) return u.text.length;
    }
    return c >= 0xd800 && c < 0xdc00 && i + 1 < s.length ? 2 : 1;
  }

  /** bpe_model.cc Encode + the byte fallback of sentencepiece_processor.cc, over segments (see top). */
  private encodeNormalized(s: string, out: number[], pieces: string[] | null): void {
    const n = s.length;
    const userFirst = this.userFirstUnit;
    const space = this.spaceCode;
    const splitSpace = this.splitBeforeSpace;
    let segStart = 0;
    let h = FNV_OFFSET; // hash of s[segStart, i), for the segment cache
    let i = 0;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (userFirst[c] === 1) {
        const u = this.matchUser(s, i);
        if (u !== null) {
          if (i > segStart) this.encodeSegment(s, segStart, i, h, out, pieces);
          out.push(u.id);
          if (pieces) pieces.push(u.text);
          i += u.text.length;
          segStart = i;
          h = FNV_OFFSET;
          continue;
        }
      }
      if (c === space && splitSpace && i > segStart && s.charCodeAt(i - 1) !== space) {
        this.encodeSegment(s, segStart, i, h, out, pieces);
        segStart = i;
        h = FNV_OFFSET;
      }
      h = Math.imul(h ^ c, FNV_PRIME);
      i++;
    }
    if (n > segStart) this.encodeSegment(s, segStart, n, h, out, pieces);
  }

  private matchUser(s: string, i: number): { text: string; id: number } | null {
    for (const u of this.userByFirst.get(s.charCodeAt(i))!) if (s.startsWith(u.text, i)) return u;
    return null;
  }

  /** Encodes s[a, b) (hash h); short segments go through the cache, which stores their ids. */
  private encodeSegment(s: string, a: number, b: number, h: number, out: number[], pieces: string[] | null): void {
    if (pieces !== null) {
      this.bpe(s.slice(a, b), out, pieces);
      return;
    }
    const cache = (this.cacheStore ??= new SegmentCache());
    if (b - a <= CACHE_MAX_KEY) {
      const slot = cache.find(s, a, b, h);
      if (slot >= 0) {
        const off = cache.off[slot];
        const end = off + cache.count[slot];
        const pool = cache.pool;
        let k = off;
        if (!this.byteFallback && k < end && pool[k] === this.unkId && out.length > 0 && out[out.length - 1] === this.unkId) k++;
        for (; k < end; k++) out.push(pool[k]);
        return;
      }
    }
    const ids = this.scratchIds;
    ids.length = 0;
    this.bpe(s.slice(a, b), ids, null);
    if (b - a <= CACHE_MAX_KEY) cache.insert(s, a, b, h, ids);
    this.appendIds(out, ids);
  }

  /** Appends ids; without byte fallback, consecutive unknowns collapse into one (also across segments). */
  private appendIds(out: number[], ids: number[]): void {
    let k = 0;
    if (!this.byteFallback && ids.length > 0 && ids[0] === this.unkId && out.length > 0 && out[out.length - 1] === this.unkId) k = 1;
    for (; k < ids.length; k++) out.push(ids[k]);
  }

  /** Runs BPE on one segment (no frozen symbols inside) and appends its ids (and pieces). */
  private bpe(seg: string, out: number[], pieces: string[] | null): void {
    const n = seg.length;
    if (this.symStart.length < n + 1) this.growSymbols(n + 1);
    const start = this.symStart;
    const len = this.symLen;
    const sid = this.symId;
    const prev = this.symPrev;
    const next = this.symNext;
    const hash = this.symHash;
    // Step 2: one symbol per character.
    let m = 0;
    for (let i = 0; i < n; ) {
      const c = seg.charCodeAt(i);
      const l = c >= 0xd800 && c < 0xdc00 && i + 1 < n ? 2 : 1;
      start[m] = i;
      len[m] = l;
      if (l === 1) {
        sid[m] = this.unitId[c];
        hash[m] = c;
      } else {
        const h = (Math.imul(c, HASH_B) + seg.charCodeAt(i + 1)) | 0;
        sid[m] = this.findPiece(seg, i, 2, h);
        hash[m] = h;
      }
      prev[m] = m - 1;
      next[m] = m + 1;
      m++;
      i += l;
    }
    next[m - 1] = -1;
    // Steps 3–4: priority-queue merging.
    if (m > 1) {
      if (this.cScore.length < m) this.growCandidates(m); // grows further on demand (stale entries)
      this.hSize = 0;
      this.cCount = 0;
      for (let a = 0; a + 1 < m; a++) this.tryPair(seg, a, a + 1);
      const rev = this.hasUnused ? new Map<string, [string, string]>() : null;
      while (this.hSize > 0) {
        const top = this.heap[0];
        const l = this.cLeft[top];
        const r = this.cRight[top];
        const total = this.cLen[top];
        const id = this.cId[top];
        this.heapPop();
        // Stale (bpe_model.cc): a side was consumed or grew. Lengths here are UTF-16 units, not bytes; as
        // symbols only grow, "the sum is unchanged" means "neither side changed" in any unit.
        if (len[l] === 0 || len[r] === 0 || len[l] + len[r] !== total) continue;
        if (rev !== null && this.types[id] === PieceType.UNUSED)
          rev.set(this.pieces[id], [seg.slice(start[l], start[l] + len[l]), seg.slice(start[r], start[r] + len[r])]);
        hash[l] = (Math.imul(hash[l], this.hashPow[len[r]]) + hash[r]) | 0;
        len[l] = total;
        sid[l] = id;
        len[r] = 0;
        const nr = next[r];
        next[l] = nr;
        if (nr >= 0) prev[nr] = l;
        if (prev[l] >= 0) this.tryPair(seg, prev[l], l);
        if (nr >= 0) this.tryPair(seg, l, nr);
      }
      if (rev !== null) {
        for (let k = 0; k >= 0; k = next[k]) this.emitSymbol(seg.slice(start[k], start[k] + len[k]), sid[k], out, pieces, rev);
        return;
      }
    }
    // Steps 5–6.
    for (let k = 0; k >= 0; k = next[k]) {
      const id = sid[k];
      if (id >= 0) {
        out.push(id);
        if (pieces) pieces.push(this.pieces[id]);
      } else this.emitSymbol(seg.slice(start[k], start[k] + len[k]), -1, out, pieces, null);
    }
  }

  /** Emits one final symbol: vocab/reserved id, UNUSED re-segmentation, byte fallback or merged unknown. */
  private emitSymbol(text: string, id: number, out: number[], pieces: string[] | null, rev: Map<string, [string, string]> | null): void {
    if (id < 0) id = this.reserved.get(text) ?? this.vocab.get(text) ?? this.unkId;
    if (rev !== null && this.types[id] === PieceType.UNUSED) {
      // bpe_model.cc resegment(): split an UNUSED result back into the two symbols it was merged from.
      const parts = rev.get(text);
      if (parts !== undefined) {
        this.emitSymbol(parts[0], -1, out, pieces, rev);
        this.emitSymbol(parts[1], -1, out, pieces, rev);
        return;
      }
    }
    if (id !== this.unkId) {
      out.push(id);
      if (pieces) pieces.push(this.pieces[id]);
      return;
    }
    if (this.byteFallback) {
      for (const b of utf8Bytes(text)) {
        const bid = this.byteToId[b];
        out.push(bid);
        if (pieces) pieces.push(this.pieces[bid]);
      }
      return;
    }
    // sentencepiece_processor.cc: consecutive unknown symbols become one unknown whose piece is their text.
    if (out.length > 0 && out[out.length - 1] === this.unkId) {
      if (pieces !== null) pieces[pieces.length - 1] += text;
      return;
    }
    out.push(id);
    if (pieces) pieces.push(text);
  }

  /** Pushes the merge candidate (l, r) if their concatenation is a mergeable piece (step 3). */
  private tryPair(seg: string, l: number, r: number): void {
    const lenR = this.symLen[r];
    const total = this.symLen[l] + lenR;
    if (total > this.maxPieceUnits) return;
    const h = (Math.imul(this.symHash[l], this.hashPow[lenR]) + this.symHash[r]) | 0;
    const id = this.findPiece(seg, this.symStart[l], total, h);
    if (id >= 0) this.heapPush(this.scores[id], l, r, total, id);
  }

  /** The mergeable piece equal to seg[a, a + len) (whose hash is h), or -1. No allocation. */
  private findPiece(seg: string, a: number, len: number, h: number): number {
    const slot = this.pieceSlot;
    const mask = slot.length - 1;
    for (let i = mix(h) & mask; ; i = (i + 1) & mask) {
      const id = slot[i];
      if (id === -1) return -1;
      if (this.pieceSlotHash[i] === h) {
        const p = this.pieces[id];
        if (p.length === len) {
          let j = 0;
          while (j < len && p.charCodeAt(j) === seg.charCodeAt(a + j)) j++;
          if (j === len) return id;
        }
      }
    }
  }

  // Binary max-heap ordered by (score desc, left asc): bpe_model.cc SymbolPairComparator.
  private heapPush(score: number, l: number, r: number, total: number, id: number): void {
    if (this.cCount === this.cScore.length) this.growCandidates(this.cCount * 2);
    const c = this.cCount++;
    const cs = this.cScore;
    const cl = this.cLeft;
    cs[c] = score;
    cl[c] = l;
    this.cRight[c] = r;
    this.cLen[c] = total;
    this.cId[c] = id;
    const heap = this.heap;
    let i = this.hSize++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const q = heap[p];
      if (cs[q] > score || (cs[q] === score && cl[q] < l)) break;
      heap[i] = q;
      i = p;
    }
    heap[i] = c;
  }

  private heapPop(): void {
    const last = --this.hSize;
    if (last === 0) return;
    const heap = this.heap;
    const cs = this.cScore;
    const cl = this.cLeft;
    const x = heap[last];
    const score = cs[x];
    const l = cl[x];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= last) break;
      let y = heap[c];
      if (c + 1 < last) {
        const z = heap[c + 1];
        if (cs[z] > cs[y] || (cs[z] === cs[y] && cl[z] < cl[y])) {
          c++;
          y = z;
        }
      }
      if (score > cs[y] || (score === cs[y] && l < cl[y])) break;
      heap[i] = y;
      i = c;
    }
    heap[i] = x;
  }

  private growSymbols(n: number): void {
    const size = Math.max(n, this.symStart.length * 2);
    this.symStart = new Int32Array(size);
    this.symLen = new Int32Array(size);
    this.symId = new Int32Array(size);
    this.symPrev = new Int32Array(size);
    this.symNext = new Int32Array(size);
    this.symHash = new Int32Array(size);
  }

  private growCandidates(n: number): void {
    const size = Math.max(n, this.cScore.length * 2);
    const keep = this.cCount;
    const grow = <T extends Float64Array | Int32Array>(a: T, b: T, used: number): T => {
      b.set(a.subarray(0, used));
      return b;
    };
    this.cScore = grow(this.cScore, new Float64Array(size), keep);
    this.cLeft = grow(this.cLeft, new Int32Array(size), keep);
    this.cRight = grow(this.cRight, new Int32Array(size), keep);
    this.cLen = grow(this.cLen, new Int32Array(size), keep);
    this.cId = grow(this.cId, new Int32Array(size), keep);
    this.heap = grow(this.heap, new Int32Array(size), this.hSize);
  }

  // -------------------------------------------------------------------------------------------------
  // Decoding (sentencepiece_processor.cc Decode / DecodeSentencePiece)

  private checkId(id: number, index: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize)
      throw new RangeError(`${this.source}: token id ${id} at position ${index} is out of range (vocabulary size ${this.vocabSize})`);
  }

  /** Decodes ids to text. Ids outside [0, vocabSize) throw a RangeError naming the id and its position. */
  decode(ids: ArrayLike<number>): string {
    for (let i = 0; i < ids.length; i++) this.checkId(ids[i], i);
    const parts: string[] = [];
    let textEmpty = true;
    let bosPending = true;
    let bosSeen = false;
    let runStart = -1;
    const flushRun = (end: number): void => {
      if (runStart < 0) return;
      const bytes = new Uint8Array(end - runStart);
      for (let k = runStart; k < end; k++) bytes[k - runStart] = this.idToByte[ids[k]];
      const t = decodeBytesLikeSentencePiece(bytes, bytes.length);
      parts.push(t);
      if (t.length > 0) textEmpty = false;
      runStart = -1;
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (this.types[id] === PieceType.BYTE) {
        if (runStart < 0) runStart = i;
        continue;
      }
      flushRun(i);
      if (bosSeen || !textEmpty) bosPending = false;
      if (!bosPending && this.types[id] !== PieceType.CONTROL && this.types[id] !== PieceType.UNKNOWN) {
        parts.push(this.surface(id)); // pieces are never empty
        textEmpty = false;
        bosSeen = false;
        continue;
      }
      const [t, seen] = this.decodePiece(id, bosPending);
      bosSeen = seen;
      if (t.length > 0) {
        parts.push(t);
        textEmpty = false;
      }
    }
    flushRun(ids.length);
    return parts.join('');
  }

  /** DecodeSentencePiece: the text of one non-BYTE piece, and whether it consumed the leading `▁`. */
  private decodePiece(id: number, bosPending: boolean): [string, boolean] {
    const type = this.types[id];
    if (type === PieceType.CONTROL) return ['', false];
    if (type === PieceType.UNKNOWN) return [this.unkSurface, false];
    if (bosPending && (this.addDummyPrefix || this.removeExtraWhitespaces) && this.pieces[id].startsWith(SPACE_SYMBOL))
      return [this.pieces[id].slice(1).replaceAll(SPACE_SYMBOL, ' '), !this.removeExtraWhitespaces];
    return [this.surface(id), false];
  }

  /** The text of a NORMAL/USER_DEFINED/UNUSED piece not at the start: `▁` → space (memoised). */
  private surface(id: number): string {
    let s = this.surfaces[id];
    if (s === undefined) this.surfaces[id] = s = this.pieces[id].replaceAll(SPACE_SYMBOL, ' ');
    return s;
  }

  /**
   * A decoder for ids arriving one at a time. Text is emitted as soon as it is final; the concatenation of
   * all outputs (pushes then flush) equals decode(all ids).
   */
  createStreamDecoder(): StreamDecoder {
    let textEmpty = true;
    let bosPending = true;
    let bosSeen = false;
    const pending = new Uint8Array(4);
    let np = 0;
    let count = 0; // ids pushed so far, for error messages
    // Emits what of the pending byte run is decided; with `final`, everything.
    const drain = (final: boolean): string => {
      let s = '';
      let k = 0;
      while (k < np) {
        const need = utf8Need(pending[k]);
        if (!final && need > np - k && trailsOk(pending, k, np)) break; // may still complete
        const [cp, used] = decodeUnit(pending, k, np);
        s += cp < 0 ? REPLACEMENT : String.fromCodePoint(cp);
        k += used;
      }
      if (k > 0) {
        pending.copyWithin(0, k, np);
        np -= k;
      }
      if (s.length > 0) textEmpty = false;
      return s;
    };
    return {
      push: (id: number): string => {
        this.checkId(id, count++);
        if (this.types[id] === PieceType.BYTE) {
          pending[np++] = this.idToByte[id];
          return drain(false);
        }
        const s = drain(true);
        if (bosSeen || !textEmpty) bosPending = false;
        const [t, seen] = this.decodePiece(id, bosPending);
        bosSeen = seen;
        if (t.length > 0) textEmpty = false;
        return s + t;
      },
      flush: (): string => drain(true),
    };
  }
}

/**
 * Ids of recently seen segments, keyed by their text: open addressing over (hash, text) with the ids in one
 * pool, so a hit allocates nothing (no substring, no array). Cleared when half full: it only saves work.
 */
class SegmentCache {
  private readonly keys: (string | undefined)[] = new Array<string | undefined>(CACHE_SLOTS);
  private readonly hash = new Int32Array(CACHE_SLOTS);
  readonly off = new Int32Array(CACHE_SLOTS);
  readonly count = new Int32Array(CACHE_SLOTS);
  pool = new Int32Array(1 << 16);
  private poolUsed = 0;
  private used = 0;

  /** The slot holding s[a, b) (whose hash is h), or -1. */
  find(s: string, a: number, b: number, h: number): number {
    const mask = CACHE_SLOTS - 1;
    const len = b - a;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const k = this.keys[i];
      if (k === undefined) return -1;
      if (this.hash[i] === h && k.length === len) {
        let j = 0;
        while (j < len && k.charCodeAt(j) === s.charCodeAt(a + j)) j++;
        if (j === len) return i;
      }
    }
  }

  insert(s: string, a: number, b: number, h: number, ids: number[]): void {
    if (this.used >= CACHE_SLOTS >> 1) this.clear();
    if (this.poolUsed + ids.length > this.pool.length && this.pool.length >= 1 << 22) this.clear();
    if (this.poolUsed + ids.length > this.pool.length) {
      let size = this.pool.length;
      while (this.poolUsed + ids.length > size) size *= 2;
      const p = new Int32Array(size);
      p.set(this.pool.subarray(0, this.poolUsed));
      this.pool = p;
    }
    const mask = CACHE_SLOTS - 1;
    let i = h & mask;
    while (this.keys[i] !== undefined) i = (i + 1) & mask;
    this.keys[i] = s.slice(a, b);
    this.hash[i] = h;
    this.off[i] = this.poolUsed;
    this.count[i] = ids.length;
    for (let k = 0; k < ids.length; k++) this.pool[this.poolUsed++] = ids[k];
    this.used++;
  }

  private clear(): void {
    this.keys.fill(undefined);
    this.poolUsed = 0;
    this.used = 0;
  }
}

/** model_interface.cc rejects duplicate pieces: an id must be recoverable from its piece. */
function addUnique(map: Map<string, number>, piece: string, id: number, source: string): void {
  const before = map.size;
  map.set(piece, id);
  if (map.size === before) throw new FormatError(source, `piece ${id} ${JSON.stringify(piece)} is defined twice`);
}

/** Whether `▁` occurs after some other character (such a piece can merge across a word start). */
function hasSpaceAfterOther(piece: string): boolean {
  for (let k = piece.indexOf(SPACE_SYMBOL, 1); k > 0; k = piece.indexOf(SPACE_SYMBOL, k + 1)) if (piece.charCodeAt(k - 1) !== 0x2581) return true;
  return false;
}

function idOrNone(model: ModelProto, id: number): number {
  return id >= 0 && id < model.pieces.length ? id : -1;
}

function toText(text: string | Uint8Array): string {
  if (typeof text === 'string') {
    // ES2024 String methods (Node ≥ 20); typed here because the project's lib is ES2022.
    const t = text as string & { isWellFormed(): boolean; toWellFormed(): string };
    return t.isWellFormed() ? text : t.toWellFormed();
  }
  if (!(text instanceof Uint8Array)) throw new TypeError('encode: text must be a string or a Uint8Array');
  return decodeBytesLikeSentencePiece(text, text.length);
}

function utf8Bytes(s: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d < 0xe000) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return out;
}

/** Bytes a UTF-8 lead byte announces (1 for ASCII and for bytes that cannot start a character). */
function utf8Need(b: number): number {
  if ((b & 0xe0) === 0xc0) return 2;
  if ((b & 0xf0) === 0xe0) return 3;
  if ((b & 0xf8) === 0xf0) return 4;
  return 1;
}

function trailsOk(b: Uint8Array, k: number, end: number): boolean {
  for (let j = k + 1; j < end; j++) if ((b[j] & 0xc0) !== 0x80) return false;
  return true;
}

/**
 * string_util::DecodeUTF8 of SentencePiece: one character at b[k] if complete and valid (no overlong
 * form, no surrogate, ≤ U+10FFFF), else [-1, 1] (one byte consumed).
 */
function decodeUnit(b: Uint8Array, k: number, end: number): [number, number] {
  const b0 = b[k];
  const left = end - k;
  if (b0 < 0x80) return [b0, 1];
  if ((b0 & 0xe0) === 0xc0) {
    if (left >= 2 && (b[k + 1] & 0xc0) === 0x80) {
      const cp = ((b0 & 0x1f) << 6) | (b[k + 1] & 0x3f);
      if (cp >= 0x80) return [cp, 2];
    }
  } else if ((b0 & 0xf0) === 0xe0) {
    if (left >= 3 && (b[k + 1] & 0xc0) === 0x80 && (b[k + 2] & 0xc0) === 0x80) {
      const cp = ((b0 & 0x0f) << 12) | ((b[k + 1] & 0x3f) << 6) | (b[k + 2] & 0x3f);
      if (cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff)) return [cp, 3];
    }
  } else if ((b0 & 0xf8) === 0xf0) {
    if (left >= 4 && (b[k + 1] & 0xc0) === 0x80 && (b[k + 2] & 0xc0) === 0x80 && (b[k + 3] & 0xc0) === 0x80) {
      const cp = ((b0 & 0x07) << 18) | ((b[k + 1] & 0x3f) << 12) | ((b[k + 2] & 0x3f) << 6) | (b[k + 3] & 0x3f);
      if (cp >= 0x10000 && cp <= 0x10ffff) return [cp, 4];
    }
  }
  return [-1, 1];
}

/** UTF-8 → string, one U+FFFD per malformed byte (SentencePiece, unlike WHATWG TextDecoder). */
export function decodeBytesLikeSentencePiece(b: Uint8Array, end: number): string {
  // Fast path: valid UTF-8 decodes identically with TextDecoder.
  let ascii = true;
  for (let i = 0; i < end; i++) if (b[i] >= 0x80) { ascii = false; break; }
  if (ascii) return latin1.decode(b.subarray(0, end));
  try {
    return strictUtf8.decode(b.subarray(0, end));
  } catch {
    // fall through to the per-unit decode below
  }
  const parts: string[] = [];
  let k = 0;
  while (k < end) {
    const [cp, used] = decodeUnit(b, k, end);
    parts.push(cp < 0 ? REPLACEMENT : String.fromCodePoint(cp));
    k += used;
  }
  return parts.join('');
}

// ignoreBOM: a leading U+FEFF is text, not a byte-order mark to strip.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const latin1 = new TextDecoder('latin1');

/**
 * Test helper: writes GGUF bytes by hand from the layout in ggml docs/gguf.md, and records where each field
 * landed so tests can corrupt exactly one field. Deliberately independent of src/ (no shared code with the
 * reader under test). Also a few helpers to take existing fixture files apart.
 */

export type GVal =
  | { t: 0 | 1 | 2 | 3 | 4 | 5 | 7 | 10 | 11; v: number | bigint | boolean }
  | { t: 6 | 12; v: number }
  | { t: 8; v: string }
  | { t: 9; et: number; items: GVal[] };

export interface GTensor {
  name: string;
  /** ggml dims, innermost first. */
  dims: number[];
  type: number;
  data: Uint8Array;
  /** Forced relative offset (else laid out in order with alignment padding). */
  offset?: number;
}

export interface Built {
  bytes: Buffer;
  /** Field positions: 'version', 'tensor_count', 'kv_count', `kv:<key>:len`, `kv:<key>:type`, `kv:<key>:value`,
   *  `t:<name>:ndims`, `t:<name>:dims`, `t:<name>:type`, `t:<name>:offset`, 'data'. */
  at: Map<string, number>;
}

class W {
  parts: Buffer[] = [];
  size = 0;
  push(b: Buffer): void { this.parts.push(b); this.size += b.length; }
  u8(v: number): void { const b = Buffer.alloc(1); b.writeUInt8(v); this.push(b); }
  i8(v: number): void { const b = Buffer.alloc(1); b.writeInt8(v); this.push(b); }
  u16(v: number): void { const b = Buffer.alloc(2); b.writeUInt16LE(v); this.push(b); }
  i16(v: number): void { const b = Buffer.alloc(2); b.writeInt16LE(v); this.push(b); }
  u32(v: number): void { const b = Buffer.alloc(4); b.writeUInt32LE(v); this.push(b); }
  i32(v: number): void { const b = Buffer.alloc(4); b.writeInt32LE(v); this.push(b); }
  f32(v: number): void { const b = Buffer.alloc(4); b.writeFloatLE(v); this.push(b); }
  f64(v: number): void { const b = Buffer.alloc(8); b.writeDoubleLE(v); this.push(b); }
  u64(v: number | bigint): void { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.push(b); }
  i64(v: number | bigint): void { const b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(v)); this.push(b); }
  str(s: string): void { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.push(b); }
  value(x: GVal): void {
    switch (x.t) {
      case 0: this.u8(Number(x.v)); break;
      case 1: this.i8(Number(x.v)); break;
      case 2: this.u16(Number(x.v)); break;
      case 3: this.i16(Number(x.v)); break;
      case 4: this.u32(Number(x.v)); break;
      case 5: this.i32(Number(x.v)); break;
      case 6: this.f32(x.v); break;
      case 7: this.u8(x.v ? 1 : 0); break;
      case 8: this.str(x.v); break;
      case 9: this.u32(x.et); this.u64(x.items.length); for (const i of x.items) this.value(i); break;
      case 10: this.u64(x.v as number | bigint); break;
      case 11: this.i64(x.v as number | bigint); break;
      case 12: this.f64(x.v); break;
    }
  }
}

/** `headerOnly`: stop after the padding before the data section (for files whose data is added sparsely). */
export function buildGguf(opts: { version?: number; kvs: [string, GVal][]; tensors: GTensor[]; alignment?: number; headerOnly?: boolean }): Built {
  const align = opts.alignment ?? 32;
  const w = new W();
  const at = new Map<string, number>();
  w.push(Buffer.from('GGUF', 'ascii'));
  at.set('version', w.size); w.u32(opts.version ?? 3);
  at.set('tensor_count', w.size); w.u64(opts.tensors.length);
  at.set('kv_count', w.size); w.u64(opts.kvs.length);
  for (const [k, v] of opts.kvs) {
    at.set(`kv:${k}:len`, w.size); w.str(k);
    at.set(`kv:${k}:type`, w.size); w.u32(v.t);
    at.set(`kv:${k}:value`, w.size); w.value(v);
  }
  let rel = 0;
  const offsets: number[] = [];
  for (const t of opts.tensors) {
    const off = t.offset ?? rel;
    offsets.push(off);
    rel = Math.ceil((off + t.data.length) / align) * align;
    at.set(`t:${t.name}:len`, w.size); w.str(t.name);
    at.set(`t:${t.name}:ndims`, w.size); w.u32(t.dims.length);
    at.set(`t:${t.name}:dims`, w.size); for (const d of t.dims) w.u64(d);
    at.set(`t:${t.name}:type`, w.size); w.u32(t.type);
    at.set(`t:${t.name}:offset`, w.size); w.u64(off);
  }
  const dataStart = Math.ceil(w.size / align) * align;
  w.push(Buffer.alloc(dataStart - w.size));
  at.set('data', dataStart);
  if (opts.headerOnly) return { bytes: Buffer.concat(w.parts), at };
  const end = opts.tensors.reduce((m, t, i) => Math.max(m, Math.ceil((offsets[i]! + t.data.length) / align) * align), 0);
  const data = Buffer.alloc(end);
  opts.tensors.forEach((t, i) => data.set(t.data, offsets[i]!));
  w.push(data);
  return { bytes: Buffer.concat(w.parts), at };
}

export const u32v = (v: number): GVal => ({ t: 4, v });
export const f32v = (v: number): GVal => ({ t: 6, v });
export const strv = (v: string): GVal => ({ t: 8, v });

/** f32 bytes of the given values. */
export function f32bytes(vals: number[]): Uint8Array {
  const b = Buffer.alloc(vals.length * 4);
  vals.forEach((v, i) => b.writeFloatLE(v, 4 * i));
  return b;
}

import fs from 'node:fs';

/** The bytes a TensorRef-like record points at, read directly from its file. */
export function readBytes(ref: { file: string; offset: number; length: number }): Buffer {
  const fd = fs.openSync(ref.file, 'r');
  try {
    const b = Buffer.alloc(ref.length);
    fs.readSync(fd, b, 0, ref.length, ref.offset);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The `grok.*` keys a converter would write for a golden.json config (xAI spelling), written by hand from
 * llama.cpp LLM_ARCH_GROK. The optional multipliers are left out on purpose, so the reader's defaults are used.
 */
export function grokKvsFromGolden(c: Record<string, number>): [string, GVal][] {
  return [
    ['general.architecture', strv('grok')],
    ['grok.context_length', u32v(c.sequence_len!)],
    ['grok.embedding_length', u32v(c.emb_size!)],
    ['grok.block_count', u32v(c.num_layers!)],
    ['grok.feed_forward_length', u32v(c.ffn_size!)],
    ['grok.attention.head_count', u32v(c.num_q_heads!)],
    ['grok.attention.head_count_kv', u32v(c.num_kv_heads!)],
    ['grok.attention.layer_norm_rms_epsilon', f32v(c.rms_norm_eps!)],
    ['grok.expert_count', u32v(c.num_experts!)],
    ['grok.expert_used_count', u32v(c.num_selected_experts!)],
    ['grok.rope.dimension_count', u32v(c.key_size!)],
  ];
}

/**
 * Writes one safetensors file (huggingface/safetensors format): 8-byte little-endian header length, the
 * JSON header (each tensor's dtype, shape and [begin, end) in the data buffer; `__metadata__`), padded with
 * spaces to a multiple of 8, then the tensors' bytes back to back. Data is streamed: each tensor's `write`
 * hands over its bytes in pieces, which must add up to exactly its size.
 */
import fs from 'node:fs';

export interface SafetensorsTensor {
  readonly name: string;
  readonly dtype: 'BF16' | 'F16' | 'F32';
  readonly shape: readonly number[];
  /** Calls `put` with the tensor's bytes, in order. */
  write(put: (bytes: Uint8Array) => void): void;
}

const ITEM = { BF16: 2, F16: 2, F32: 4 } as const;

/** Writes `file`; returns its size in bytes. */
export function writeSafetensors(file: string, tensors: readonly SafetensorsTensor[], metadata: Record<string, string> = { format: 'pt' }): number {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let at = 0;
  for (const t of tensors) {
    if (t.name in header) throw new Error(`writeSafetensors: tensor '${t.name}' twice`);
    const n = ITEM[t.dtype] * t.shape.reduce((a, d) => a * d, 1);
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [at, at + n] };
    at += n;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, head);
    fs.writeSync(fd, json);
    for (const t of tensors) {
      const want = ITEM[t.dtype] * t.shape.reduce((a, d) => a * d, 1);
      let got = 0;
      t.write((b) => { got += b.length; fs.writeSync(fd, b); });
      if (got !== want) throw new Error(`writeSafetensors: tensor '${t.name}' wrote ${got} bytes, its shape needs ${want}`);
    }
  } finally {
    fs.closeSync(fd);
  }
  return 8 + Buffer.byteLength(json) + at;
}

// Prints {tensor: [ggml type id, sha256 of its bytes]} of a GGUF as JSON (run from the repository root after `npx tsc -p .`).
import crypto from 'node:crypto';
import fs from 'node:fs';
import { readGgufFile } from '../../../dist/src/formats/gguf.js';
const f = readGgufFile(process.argv[2]);
const fd = fs.openSync(process.argv[2], 'r');
const out = {};
for (const t of f.tensors) {
  const b = Buffer.alloc(t.ref.length);
  fs.readSync(fd, b, 0, b.length, t.ref.offset);
  out[t.name] = [t.ggmlType, crypto.createHash('sha256').update(b).digest('hex')];
}
process.stdout.write(JSON.stringify(out));

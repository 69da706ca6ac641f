/**
 * The one line said before loading: whether the weights fit in the memory this process may use, page
 * from disk (mapped weights), or cannot load (copied weights). Sizes are set by hand here.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { availableMemory, memoryPlan } from '../src/model/memory.js';

const GiB = 2 ** 30;

test('fits / pages from disk / will not fit without mmap', () => {
  assert.equal(memoryPlan(10 * GiB, false, 20 * GiB).verdict, 'fits');
  assert.equal(memoryPlan(10 * GiB, true, 20 * GiB).verdict, 'fits');
  const paged = memoryPlan(318 * GiB, true, 24 * GiB);
  assert.equal(paged.verdict, 'pages');
  assert.match(paged.message, /^the weights need 318\.0 GiB; 24\.0 GiB of memory is available: the file is mapped, so it runs, but .* read from disk again at every token/);
  const no = memoryPlan(318 * GiB, false, 24 * GiB);
  assert.equal(no.verdict, 'too-large');
  assert.match(no.message, /copy the weights into memory, so loading will fail; use the native backend \(mapped weights\) or a smaller quantisation/);
  // room is kept beside the weights: exactly equal is not "fits"
  assert.equal(memoryPlan(20 * GiB, false, 20 * GiB).verdict, 'too-large');
});

test('available memory is a positive number no larger than the machine', async () => {
  const os = await import('node:os');
  const a = availableMemory();
  assert.ok(a > 0 && a <= os.totalmem(), `${a}`);
});

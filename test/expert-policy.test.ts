/**
 * The expert cache's eviction policy (src/model/expert-policy.ts) on hand-made traces, every expected
 * value counted by hand: LRU and LFU victims, pinned slots and protected keys never chosen, and the
 * simulator's hits and misses.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { simulate, SlotTable, type TraceStep } from '../src/model/expert-policy.js';

test('LRU: empty slots first, then the least recently used; a touch makes an expert recent', () => {
  const t = new SlotTable(3, 'lru');
  for (const k of [10, 11, 12]) {
    const s = t.victim();
    assert.equal(t.keyOf(s), -1, 'an empty slot while there is one');
    t.assign(s, k);
  }
  assert.equal(t.keyOf(t.victim()), 10, 'the oldest');
  t.touch(t.find(10));
  assert.equal(t.keyOf(t.victim()), 11, '10 was just used: 11 is now the oldest');
  const s = t.victim();
  assert.equal(t.assign(s, 13), 11, 'assign returns the evicted key');
  assert.equal(t.find(11), -1);
  assert.deepEqual(t.held().sort(), [10, 12, 13]);
});

test('pinned slots and protected keys are never victims; with all of them excluded there is none', () => {
  const t = new SlotTable(3);
  [20, 21, 22].forEach((k) => t.assign(t.victim(), k));
  t.pin(t.find(20));
  assert.equal(t.keyOf(t.victim()), 21, '20 is pinned');
  assert.equal(t.keyOf(t.victim((k) => k === 21)), 22, '21 protected');
  assert.equal(t.victim((k) => k !== 20), -1, 'everything pinned or protected');
  assert.throws(() => t.assign(t.find(20), 23), /in use/);
  t.unpin(t.find(20));
  assert.equal(t.keyOf(t.victim()), 20);
  assert.throws(() => t.unpin(t.find(20)), /unpinned more often than pinned/);
});

test('LFU: the least used goes, ties to the least recent; counts halve every `slots` fills', () => {
  const t = new SlotTable(2, 'lfu');
  t.assign(t.victim(), 1);
  t.assign(t.victim(), 2); // 2 fills: counts halve (both 0)
  const s1 = t.find(1), s2 = t.find(2);
  t.touch(s1); t.touch(s1); t.touch(s1); // uses: 1 → 3
  t.touch(s2); //                            2 → 1
  assert.equal(t.keyOf(t.victim()), 2, 'fewer uses');
  t.touch(s2); t.touch(s2); //               2 → 3: tie, 1 is the less recent
  assert.equal(t.keyOf(t.victim()), 1);
});

test('simulate: hits and misses of a hand-counted trace (2 slots, LRU)', () => {
  // layer 0 only, 4 experts: keys are the experts.
  const steps: TraceStep[] = [[0, 1], [0, 1], [2, 3], [0, 2], [3]].map((experts) => ({ layer: 0, experts }));
  // step 1: 0, 1 miss (empty slots) · step 2: 0, 1 hit · step 3: 2 misses, evicts 0 (older than 1);
  // 3 misses, evicts 1 (2 is protected) · step 4: 0 misses, evicts 3 (2 is protected), 2 hits ·
  // step 5: 3 misses, evicts 0 (used before 2 in step 4). Uses 9, hits 3.
  const r = simulate(steps, 2, 4, 'lru');
  assert.deepEqual({ uses: r.uses, hits: r.hits, misses: r.misses }, { uses: 9, hits: 3, misses: 6 });
  assert.equal(simulate(steps, 4, 4).misses, 4, 'every expert fits: one miss each');
  // Duplicates in one step count once; layers are separate keys.
  const two = simulate([{ layer: 0, experts: [1, 1] }, { layer: 1, experts: [1] }, { layer: 0, experts: [1] }], 2, 8);
  assert.deepEqual([two.uses, two.hits], [3, 1]);
});

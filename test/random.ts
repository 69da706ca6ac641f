/** Seeded random inputs for tests and benchmarks (never Math.random, so a failure replays). */

/** mulberry32: a small seeded generator of uniforms in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n roughly normal values (Irwin–Hall of three uniforms, variance scale²·1), in a Float32Array. */
export function randn(r: () => number, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * (r() + r() + r() - 1.5) * 2;
  return a;
}

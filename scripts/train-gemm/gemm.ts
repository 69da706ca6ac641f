// WebAssembly SIMD128 matrix products for training (src/train/gemm.ts is the TypeScript side).
// AssemblyScript; compiled by scripts/build-train-gemm.sh into src/train/gemm-wasm.ts (base64).
// All arguments are byte offsets into the module's memory; matrices are row-major f32; the inner
// dimension `nIn` must be a multiple of 4 (the caller falls back to plain JS otherwise).
// The same three shapes as src/train/ops.ts (matmulXWt, matmulDyW, matmulDyTX), same summation
// structure per output within 4-lane partial sums.

@inline function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

// y[t, o] = Σ_i x[t, i]·w[o, i]  (y overwritten)
export function xwt(y: usize, x: usize, w: usize, n: i32, nIn: i32, nOut: i32): void {
  const rowX = <usize>nIn << 2;
  let t = 0;
  for (; t + 4 <= n; t += 4) {
    const x0 = x + <usize>t * rowX, x1 = x0 + rowX, x2 = x1 + rowX, x3 = x2 + rowX;
    let o = 0;
    for (; o + 2 <= nOut; o += 2) {
      const w0 = w + <usize>o * rowX, w1 = w0 + rowX;
      let a00 = f32x4.splat(0), a10 = f32x4.splat(0), a20 = f32x4.splat(0), a30 = f32x4.splat(0);
      let a01 = f32x4.splat(0), a11 = f32x4.splat(0), a21 = f32x4.splat(0), a31 = f32x4.splat(0);
      for (let i: usize = 0; i < rowX; i += 16) {
        const wa = v128.load(w0 + i), wb = v128.load(w1 + i);
        const v0 = v128.load(x0 + i), v1 = v128.load(x1 + i), v2 = v128.load(x2 + i), v3 = v128.load(x3 + i);
        a00 = f32x4.add(a00, f32x4.mul(v0, wa)); a01 = f32x4.add(a01, f32x4.mul(v0, wb));
        a10 = f32x4.add(a10, f32x4.mul(v1, wa)); a11 = f32x4.add(a11, f32x4.mul(v1, wb));
        a20 = f32x4.add(a20, f32x4.mul(v2, wa)); a21 = f32x4.add(a21, f32x4.mul(v2, wb));
        a30 = f32x4.add(a30, f32x4.mul(v3, wa)); a31 = f32x4.add(a31, f32x4.mul(v3, wb));
      }
      const yo = y + ((<usize>t * <usize>nOut + <usize>o) << 2), ys = <usize>nOut << 2;
      store<f32>(yo, hsum(a00)); store<f32>(yo + 4, hsum(a01));
      store<f32>(yo + ys, hsum(a10)); store<f32>(yo + ys + 4, hsum(a11));
      store<f32>(yo + 2 * ys, hsum(a20)); store<f32>(yo + 2 * ys + 4, hsum(a21));
      store<f32>(yo + 3 * ys, hsum(a30)); store<f32>(yo + 3 * ys + 4, hsum(a31));
    }
    for (; o < nOut; o++) {
      const w0 = w + <usize>o * rowX;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      for (let i: usize = 0; i < rowX; i += 16) {
        const wa = v128.load(w0 + i);
        a0 = f32x4.add(a0, f32x4.mul(v128.load(x0 + i), wa));
        a1 = f32x4.add(a1, f32x4.mul(v128.load(x1 + i), wa));
        a2 = f32x4.add(a2, f32x4.mul(v128.load(x2 + i), wa));
        a3 = f32x4.add(a3, f32x4.mul(v128.load(x3 + i), wa));
      }
      const yo = y + ((<usize>t * <usize>nOut + <usize>o) << 2), ys = <usize>nOut << 2;
      store<f32>(yo, hsum(a0)); store<f32>(yo + ys, hsum(a1)); store<f32>(yo + 2 * ys, hsum(a2)); store<f32>(yo + 3 * ys, hsum(a3));
    }
  }
  for (; t < n; t++) {
    const x0 = x + <usize>t * rowX;
    for (let o = 0; o < nOut; o++) {
      const w0 = w + <usize>o * rowX;
      let a = f32x4.splat(0);
      for (let i: usize = 0; i < rowX; i += 16) a = f32x4.add(a, f32x4.mul(v128.load(x0 + i), v128.load(w0 + i)));
      store<f32>(y + ((<usize>t * <usize>nOut + <usize>o) << 2), hsum(a));
    }
  }
}

// dx[t, i] += Σ_o dy[t, o]·w[o, i]
export function dyw(dx: usize, dy: usize, w: usize, n: i32, nIn: i32, nOut: i32): void {
  const rowX = <usize>nIn << 2;
  for (let t = 0; t < n; t++) {
    const xo = dx + <usize>t * rowX, yo = dy + ((<usize>t * <usize>nOut) << 2);
    let o = 0;
    for (; o + 4 <= nOut; o += 4) {
      const s0 = f32x4.splat(load<f32>(yo + (<usize>o << 2))), s1 = f32x4.splat(load<f32>(yo + (<usize>o << 2) + 4));
      const s2 = f32x4.splat(load<f32>(yo + (<usize>o << 2) + 8)), s3 = f32x4.splat(load<f32>(yo + (<usize>o << 2) + 12));
      const w0 = w + <usize>o * rowX, w1 = w0 + rowX, w2 = w1 + rowX, w3 = w2 + rowX;
      for (let i: usize = 0; i < rowX; i += 16) {
        let acc = v128.load(xo + i);
        acc = f32x4.add(acc, f32x4.add(f32x4.add(f32x4.mul(s0, v128.load(w0 + i)), f32x4.mul(s1, v128.load(w1 + i))),
          f32x4.add(f32x4.mul(s2, v128.load(w2 + i)), f32x4.mul(s3, v128.load(w3 + i)))));
        v128.store(xo + i, acc);
      }
    }
    for (; o < nOut; o++) {
      const s0 = f32x4.splat(load<f32>(yo + (<usize>o << 2)));
      const w0 = w + <usize>o * rowX;
      for (let i: usize = 0; i < rowX; i += 16) v128.store(xo + i, f32x4.add(v128.load(xo + i), f32x4.mul(s0, v128.load(w0 + i))));
    }
  }
}

// dw[o, i] += Σ_t dy[t, o]·x[t, i]
export function dytx(dw: usize, dy: usize, x: usize, n: i32, nIn: i32, nOut: i32): void {
  const rowX = <usize>nIn << 2, rowY = <usize>nOut << 2;
  for (let o = 0; o < nOut; o++) {
    const wo = dw + <usize>o * rowX, yc = dy + (<usize>o << 2);
    let t = 0;
    for (; t + 4 <= n; t += 4) {
      const s0 = f32x4.splat(load<f32>(yc + <usize>t * rowY)), s1 = f32x4.splat(load<f32>(yc + <usize>(t + 1) * rowY));
      const s2 = f32x4.splat(load<f32>(yc + <usize>(t + 2) * rowY)), s3 = f32x4.splat(load<f32>(yc + <usize>(t + 3) * rowY));
      const x0 = x + <usize>t * rowX, x1 = x0 + rowX, x2 = x1 + rowX, x3 = x2 + rowX;
      for (let i: usize = 0; i < rowX; i += 16) {
        let acc = v128.load(wo + i);
        acc = f32x4.add(acc, f32x4.add(f32x4.add(f32x4.mul(s0, v128.load(x0 + i)), f32x4.mul(s1, v128.load(x1 + i))),
          f32x4.add(f32x4.mul(s2, v128.load(x2 + i)), f32x4.mul(s3, v128.load(x3 + i)))));
        v128.store(wo + i, acc);
      }
    }
    for (; t < n; t++) {
      const s0 = f32x4.splat(load<f32>(yc + <usize>t * rowY));
      const x0 = x + <usize>t * rowX;
      for (let i: usize = 0; i < rowX; i += 16) v128.store(wo + i, f32x4.add(v128.load(wo + i), f32x4.mul(s0, v128.load(x0 + i))));
    }
  }
}

/**
 * Float32 building blocks for training, each with its backward pass. Weight matrices are [out, in]
 * (row o = the in-vector of output o), the layout of GGUF and of PyTorch's nn.Linear.
 * The three matmul shapes are the whole cost of training; their inner loops run over contiguous rows
 * and handle 4 rows at a time so each load of the other operand is used 4 times.
 */

/** Float32 when training; Float64 in the gradient-check tests (a process uses one of them, so the loops stay monomorphic). */
export type Arr = Float32Array | Float64Array;

export type DType = 'f32' | 'f64';

/** A zeroed array of n values of the given type. */
export function alloc(dtype: DType, n: number): Arr {
  return dtype === 'f32' ? new Float32Array(n) : new Float64Array(n);
}

/** y[n, o] = Σ_i x[n, i] · w[o, i]   (y = x · wᵀ; y is overwritten). */
export function matmulXWt(y: Arr, x: Arr, w: Arr, n: number, nIn: number, nOut: number): void {
  let t = 0;
  for (; t + 4 <= n; t += 4) {
    const x0 = t * nIn, x1 = x0 + nIn, x2 = x1 + nIn, x3 = x2 + nIn;
    for (let o = 0; o < nOut; o++) {
      const wo = o * nIn;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (let i = 0; i < nIn; i++) {
        const wv = w[wo + i];
        a0 += x[x0 + i] * wv;
        a1 += x[x1 + i] * wv;
        a2 += x[x2 + i] * wv;
        a3 += x[x3 + i] * wv;
      }
      y[t * nOut + o] = a0;
      y[(t + 1) * nOut + o] = a1;
      y[(t + 2) * nOut + o] = a2;
      y[(t + 3) * nOut + o] = a3;
    }
  }
  for (; t < n; t++) {
    const xo = t * nIn;
    for (let o = 0; o < nOut; o++) {
      const wo = o * nIn;
      let a = 0;
      for (let i = 0; i < nIn; i++) a += x[xo + i] * w[wo + i];
      y[t * nOut + o] = a;
    }
  }
}

/** dx[n, i] += Σ_o dy[n, o] · w[o, i]   (dx += dy · w). */
export function matmulDyW(dx: Arr, dy: Arr, w: Arr, n: number, nIn: number, nOut: number): void {
  for (let t = 0; t < n; t++) {
    const xo = t * nIn, yo = t * nOut;
    let o = 0;
    for (; o + 4 <= nOut; o += 4) {
      const a0 = dy[yo + o], a1 = dy[yo + o + 1], a2 = dy[yo + o + 2], a3 = dy[yo + o + 3];
      const w0 = o * nIn, w1 = w0 + nIn, w2 = w1 + nIn, w3 = w2 + nIn;
      for (let i = 0; i < nIn; i++) {
        dx[xo + i] += a0 * w[w0 + i] + a1 * w[w1 + i] + a2 * w[w2 + i] + a3 * w[w3 + i];
      }
    }
    for (; o < nOut; o++) {
      const a = dy[yo + o];
      const w0 = o * nIn;
      for (let i = 0; i < nIn; i++) dx[xo + i] += a * w[w0 + i];
    }
  }
}

/** dw[o, i] += Σ_n dy[n, o] · x[n, i]   (dw += dyᵀ · x). */
export function matmulDyTX(dw: Arr, dy: Arr, x: Arr, n: number, nIn: number, nOut: number): void {
  for (let o = 0; o < nOut; o++) {
    const wo = o * nIn;
    let t = 0;
    for (; t + 4 <= n; t += 4) {
      const a0 = dy[t * nOut + o], a1 = dy[(t + 1) * nOut + o], a2 = dy[(t + 2) * nOut + o], a3 = dy[(t + 3) * nOut + o];
      const x0 = t * nIn, x1 = x0 + nIn, x2 = x1 + nIn, x3 = x2 + nIn;
      for (let i = 0; i < nIn; i++) {
        dw[wo + i] += a0 * x[x0 + i] + a1 * x[x1 + i] + a2 * x[x2 + i] + a3 * x[x3 + i];
      }
    }
    for (; t < n; t++) {
      const a = dy[t * nOut + o];
      const x0 = t * nIn;
      for (let i = 0; i < nIn; i++) dw[wo + i] += a * x[x0 + i];
    }
  }
}

/** RMSNorm forward: y = w ⊙ x / sqrt(mean(x²) + eps); rstd[t] kept for the backward pass. */
export function rmsnormForward(y: Arr, rstd: Arr, x: Arr, w: Arr, n: number, d: number, eps: number): void {
  for (let t = 0; t < n; t++) {
    const o = t * d;
    let ss = 0;
    for (let i = 0; i < d; i++) ss += x[o + i] * x[o + i];
    const r = 1 / Math.sqrt(ss / d + eps);
    rstd[t] = r;
    for (let i = 0; i < d; i++) y[o + i] = w[i] * (x[o + i] * r);
  }
}

/**
 * RMSNorm backward. With g = w ⊙ dy: dx = r·g − x·r³·(g·x)/d; dw += Σ_t dy ⊙ x·r. dx is accumulated.
 */
export function rmsnormBackward(dx: Arr, dw: Arr, dy: Arr, x: Arr, w: Arr, rstd: Arr, n: number, d: number): void {
  for (let t = 0; t < n; t++) {
    const o = t * d;
    const r = rstd[t];
    let dot = 0;
    for (let i = 0; i < d; i++) {
      dot += w[i] * dy[o + i] * x[o + i];
      dw[i] += dy[o + i] * x[o + i] * r;
    }
    const c = (dot * r * r * r) / d;
    for (let i = 0; i < d; i++) dx[o + i] += r * w[i] * dy[o + i] - c * x[o + i];
  }
}

/** cos/sin tables [positions, K/2] for rotate-half RoPE: angle p·base^(−2i/K). */
export function ropeTables(positions: number, headDim: number, base: number): { cos: Float64Array; sin: Float64Array } {
  const half = headDim / 2;
  const cos = new Float64Array(positions * half);
  const sin = new Float64Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * Math.pow(base, (-2 * i) / headDim);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

/**
 * Rotate-half RoPE in place on rows of `heads` head vectors; row t has position pos[t].
 * sign = +1 applies the rotation, −1 its inverse (= its transpose, which is the backward pass).
 */
export function ropeApply(x: Arr, n: number, heads: number, headDim: number, pos: ArrayLike<number>, cos: Float64Array, sin: Float64Array, sign: 1 | -1): void {
  const half = headDim / 2;
  for (let t = 0; t < n; t++) {
    const tb = pos[t] * half;
    for (let h = 0; h < heads; h++) {
      const o = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const c = cos[tb + i], s = sign * sin[tb + i];
        const a = x[o + i], b = x[o + i + half];
        x[o + i] = a * c - b * s;
        x[o + i + half] = b * c + a * s;
      }
    }
  }
}

const GELU_C = Math.sqrt(2 / Math.PI);

/** tanh-approximation GELU (jax.nn.gelu default): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function gelu(x: number): number {
  return 0.5 * x * (1 + geluTanh(x));
}

/** The tanh term of gelu(x), kept by the forward pass so the backward pass needs no second tanh. */
export function geluTanh(x: number): number {
  return Math.tanh(GELU_C * (x + 0.044715 * x * x * x));
}

/** d gelu(x) / dx given th = geluTanh(x). */
export function geluGradFromTanh(x: number, th: number): number {
  return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * GELU_C * (1 + 3 * 0.044715 * x * x);
}

/** d gelu(x) / dx. */
export function geluGrad(x: number): number {
  return geluGradFromTanh(x, geluTanh(x));
}

export interface AttnShape {
  B: number; T: number; H: number; G: number; K: number;
  /** attn_output_multiplier applied to q·k. */
  mult: number;
  /** c of c·tanh(x/c); 0 = no cap. */
  cap: number;
}

/**
 * Causal GQA attention over B sequences of T positions. q [B·T, H·K], k/v [B·T, G·K] (RoPE applied);
 * keyMask[B·T] = 1 for keys that may be attended (0 for pad tokens). Writes the probabilities p and
 * tanh values th [B, H, T, T] for the backward pass, and the output ao [B·T, H·K] (overwritten).
 */
export function attentionForward(ao: Arr, p: Arr, th: Arr, q: Arr, k: Arr, v: Arr, keyMask: Uint8Array, s: AttnShape): void {
  const { B, T, H, G, K, mult, cap } = s;
  const HK = H * K, GK = G * K, rep = H / G;
  ao.fill(0);
  for (let bb = 0; bb < B; bb++) {
    for (let hh = 0; hh < H; hh++) {
      const g = Math.floor(hh / rep);
      for (let t = 0; t < T; t++) {
        const qo = (bb * T + t) * HK + hh * K;
        const po = ((bb * H + hh) * T + t) * T;
        let mx = -Infinity;
        for (let u = 0; u <= t; u++) {
          if (keyMask[bb * T + u] === 0) continue;
          const ko = (bb * T + u) * GK + g * K;
          let sc = 0;
          for (let i = 0; i < K; i++) sc += q[qo + i] * k[ko + i];
          sc *= mult;
          if (cap > 0) {
            const tv = Math.tanh(sc / cap);
            th[po + u] = tv;
            sc = cap * tv;
          }
          p[po + u] = sc;
          if (sc > mx) mx = sc;
        }
        let sum = 0;
        for (let u = 0; u <= t; u++) {
          if (keyMask[bb * T + u] === 0) { p[po + u] = 0; continue; }
          const e = Math.exp(p[po + u] - mx);
          p[po + u] = e;
          sum += e;
        }
        // A query whose keys are all masked has nothing to attend to: its output stays 0.
        const inv = sum > 0 ? 1 / sum : 0;
        const oo = (bb * T + t) * HK + hh * K;
        for (let u = 0; u <= t; u++) {
          const w = p[po + u] * inv;
          p[po + u] = w;
          if (w === 0) continue;
          const vo = (bb * T + u) * GK + g * K;
          for (let i = 0; i < K; i++) ao[oo + i] += w * v[vo + i];
        }
      }
    }
  }
}

/** Backward of attentionForward: accumulates dq, dk, dv (before the inverse RoPE) from dao. */
export function attentionBackward(dq: Arr, dk: Arr, dv: Arr, dao: Arr, p: Arr, th: Arr, q: Arr, k: Arr, v: Arr, s: AttnShape): void {
  const { B, T, H, G, K, mult, cap } = s;
  const HK = H * K, GK = G * K, rep = H / G;
  const dp = new Float64Array(T);
  for (let bb = 0; bb < B; bb++) {
    for (let hh = 0; hh < H; hh++) {
      const g = Math.floor(hh / rep);
      for (let t = 0; t < T; t++) {
        const oo = (bb * T + t) * HK + hh * K;
        const po = ((bb * H + hh) * T + t) * T;
        let sum = 0;
        for (let u = 0; u <= t; u++) {
          const w = p[po + u];
          if (w === 0) { dp[u] = 0; continue; }
          const vo = (bb * T + u) * GK + g * K;
          let sc = 0;
          for (let i = 0; i < K; i++) {
            sc += dao[oo + i] * v[vo + i];
            dv[vo + i] += w * dao[oo + i];
          }
          dp[u] = sc;
          sum += w * sc;
        }
        for (let u = 0; u <= t; u++) {
          const w = p[po + u];
          if (w === 0) continue;
          // softmax, then c·tanh(x/c) (derivative 1 − tanh²), then the multiplier.
          let ds = w * (dp[u] - sum);
          if (cap > 0) { const tv = th[po + u]; ds *= 1 - tv * tv; }
          ds *= mult;
          const ko = (bb * T + u) * GK + g * K;
          for (let i = 0; i < K; i++) {
            dq[oo + i] += ds * k[ko + i];
            dk[ko + i] += ds * q[oo + i];
          }
        }
      }
    }
  }
}

/**
 * The training matmuls, dispatched: float32 operands whose inner dimension is a multiple of 4 run in
 * WebAssembly SIMD128 (scripts/train-gemm/gemm.ts, embedded in gemm-wasm.ts); anything else (float64 in
 * the gradient checks, odd sizes) runs the plain-JS reference loops of ops.ts. Operands are copied into
 * the module's memory and results copied back: O(n·k + k·m + n·m) copies against O(n·k·m) work.
 */
import { type Arr, matmulXWt as jsXWt, matmulDyW as jsDyW, matmulDyTX as jsDyTX } from './ops.js';
import { GEMM_WASM_BASE64 } from './gemm-wasm.js';

type Fn = (a: number, b: number, c: number, n: number, nIn: number, nOut: number) => void;

interface Module { memory: WebAssembly.Memory; xwt: Fn; dyw: Fn; dytx: Fn }

let mod: Module | null | undefined;

function instantiate(): Module | null {
  if (mod !== undefined) return mod;
  try {
    const memory = new WebAssembly.Memory({ initial: 16, maximum: 65536 });
    const bytes = Buffer.from(GEMM_WASM_BASE64, 'base64');
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
    const e = inst.exports as unknown as { xwt: Fn; dyw: Fn; dytx: Fn };
    mod = { memory, xwt: e.xwt, dyw: e.dyw, dytx: e.dytx };
  } catch {
    mod = null; // no SIMD128 in this runtime: the JS loops are used
  }
  return mod;
}

/** Whether the WebAssembly path is available (tests compare it with the JS loops). */
export function wasmAvailable(): boolean {
  return instantiate() !== null;
}

let useWasm = true;
/** Forces the plain-JS loops (benchmarks, tests). */
export function setWasmEnabled(on: boolean): void {
  useWasm = on;
}

/** Lays out float32 regions of the given lengths (16-byte aligned) and returns their byte offsets. */
function layout(m: Module, lengths: number[]): number[] {
  const offs: number[] = [];
  let end = 64;
  for (const n of lengths) {
    offs.push(end);
    end += Math.ceil((n * 4) / 16) * 16;
  }
  const have = m.memory.buffer.byteLength;
  if (end > have) m.memory.grow(Math.ceil((end - have) / 65536));
  return offs;
}

function pick(a: Arr, b: Arr, c: Arr, nIn: number): Module | null {
  if (!useWasm || nIn % 4 !== 0) return null;
  if (!(a instanceof Float32Array && b instanceof Float32Array && c instanceof Float32Array)) return null;
  return instantiate();
}

/** y = x · wᵀ   (x [n, nIn], w [nOut, nIn], y [n, nOut] overwritten). */
export function matmulXWt(y: Arr, x: Arr, w: Arr, n: number, nIn: number, nOut: number): void {
  const m = pick(y, x, w, nIn);
  if (!m || n === 0) return jsXWt(y, x, w, n, nIn, nOut);
  const [oy, ox, ow] = layout(m, [n * nOut, n * nIn, nOut * nIn]);
  const f = new Float32Array(m.memory.buffer);
  f.set(x.subarray(0, n * nIn), ox / 4);
  f.set(w.subarray(0, nOut * nIn), ow / 4);
  m.xwt(oy, ox, ow, n, nIn, nOut);
  y.set(f.subarray(oy / 4, oy / 4 + n * nOut));
}

/** dx += dy · w   (dy [n, nOut], w [nOut, nIn], dx [n, nIn]). */
export function matmulDyW(dx: Arr, dy: Arr, w: Arr, n: number, nIn: number, nOut: number): void {
  const m = pick(dx, dy, w, nIn);
  if (!m || n === 0) return jsDyW(dx, dy, w, n, nIn, nOut);
  const [ox, oy, ow] = layout(m, [n * nIn, n * nOut, nOut * nIn]);
  const f = new Float32Array(m.memory.buffer);
  f.set(dx.subarray(0, n * nIn), ox / 4);
  f.set(dy.subarray(0, n * nOut), oy / 4);
  f.set(w.subarray(0, nOut * nIn), ow / 4);
  m.dyw(ox, oy, ow, n, nIn, nOut);
  dx.set(f.subarray(ox / 4, ox / 4 + n * nIn));
}

/** dw += dyᵀ · x   (dy [n, nOut], x [n, nIn], dw [nOut, nIn]). */
export function matmulDyTX(dw: Arr, dy: Arr, x: Arr, n: number, nIn: number, nOut: number): void {
  const m = pick(dw, dy, x, nIn);
  if (!m || n === 0) return jsDyTX(dw, dy, x, n, nIn, nOut);
  const [ow, oy, ox] = layout(m, [nOut * nIn, n * nOut, n * nIn]);
  const f = new Float32Array(m.memory.buffer);
  f.set(dw.subarray(0, nOut * nIn), ow / 4);
  f.set(dy.subarray(0, n * nOut), oy / 4);
  f.set(x.subarray(0, n * nIn), ox / 4);
  m.dytx(ow, oy, ox, n, nIn, nOut);
  dw.set(f.subarray(ow / 4, ow / 4 + nOut * nIn));
}

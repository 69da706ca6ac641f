// binary16 / bfloat16 → binary32 for the kernels (scalar versions: src/quant/half.ts).

// binary16 → binary32: shift the exponent/mantissa into place and rescale by 2^112 (handles subnormals
// exactly because wasm never flushes denormals); Inf/NaN patterns are rebuilt separately.
@inline export function h2f(h: u32): f32 {
  const em = h & 0x7fff;
  let bits = reinterpret<u32>(reinterpret<f32>(em << 13) * 5.192296858534828e33);
  if (em >= 0x7c00) bits = (em << 13) | 0x7f800000;
  return reinterpret<f32>(bits | ((h & 0x8000) << 16));
}

@inline export function bf2f(h: u32): f32 {
  return reinterpret<f32>(h << 16);
}

// 8 halves (one v128 of u16) → two f32x4, same trick as h2f, lane-wise.
@inline export function h2fLo(v: v128): v128 {
  return h2f4(i32x4.extend_low_i16x8_u(v));
}
@inline export function h2fHi(v: v128): v128 {
  return h2f4(i32x4.extend_high_i16x8_u(v));
}
@inline export function h2f4(h: v128): v128 {
  const em = v128.and(h, i32x4.splat(0x7fff));
  const shifted = i32x4.shl(em, 13);
  const scaled = f32x4.mul(shifted, f32x4.splat(5.192296858534828e33));
  const special = v128.or(shifted, i32x4.splat(0x7f800000));
  const isSpecial = i32x4.ge_s(em, i32x4.splat(0x7c00));
  const mag = v128.bitselect(special, scaled, isSpecial);
  return v128.or(mag, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

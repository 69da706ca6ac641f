/**
 * Rendering a value that came out of a file for an error message. File values can be anything a parser
 * produced — bigints past 2^53, typed arrays of millions of elements, nested arrays, self-referencing
 * objects, megabytes of binary — and JSON.stringify throws on the first two of these or floods the terminal
 * with the others. `renderValue` never throws and never returns more than about `max` characters.
 */

const DEFAULT_MAX = 80;

/** A short, safe description of `v` for a message: `"abc"`, `12n`, `Uint8Array(4096) [1, 2, 3, …]`, `[[…], …]`. */
export function renderValue(v: unknown, max = DEFAULT_MAX): string {
  const s = render(v, new WeakSet<object>(), 0, max);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** A string from a file, quoted, control characters escaped, cut to `max` characters. */
function quote(s: string, max: number): string {
  const cut = s.length > max ? `${s.slice(0, max)}…` : s;
  return `"${cut.replace(/[\\"]/g, '\\$&').replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`;
}

function render(v: unknown, seen: WeakSet<object>, depth: number, max: number): string {
  switch (typeof v) {
    case 'string': return quote(v, max);
    case 'bigint': return `${v}n`;
    case 'number': case 'boolean': case 'undefined': return String(v);
    case 'symbol': return v.toString();
    case 'function': return '[function]';
    default: break;
  }
  if (v === null) return 'null';
  const o = v as object;
  if (seen.has(o)) return '[circular]';
  if (depth >= 3) return Array.isArray(o) ? `[…${o.length}]` : '{…}';
  seen.add(o);
  try {
    if (ArrayBuffer.isView(o)) {
      const name = o.constructor.name;
      const a = o as unknown as ArrayLike<number | bigint>;
      const n = 'length' in a ? a.length : (o as DataView).byteLength;
      const head = Array.from({ length: Math.min(n, 8) }, (_, i) => String(a[i]));
      return `${name}(${n}) [${head.join(', ')}${n > 8 ? ', …' : ''}]`;
    }
    if (Array.isArray(o)) {
      const parts: string[] = [];
      let len = 0;
      for (let i = 0; i < o.length; i++) {
        const p = render(o[i], seen, depth + 1, max);
        if (len + p.length > max && i > 0) { parts.push(`… ${o.length - i} more`); break; }
        parts.push(p);
        len += p.length + 2;
      }
      return `[${parts.join(', ')}]`;
    }
    const parts: string[] = [];
    let len = 0;
    const keys = Object.keys(o);
    for (let i = 0; i < keys.length; i++) {
      const p = `${quote(keys[i]!, 40)}: ${render((o as Record<string, unknown>)[keys[i]!], seen, depth + 1, max)}`;
      if (len + p.length > max && i > 0) { parts.push(`… ${keys.length - i} more`); break; }
      parts.push(p);
      len += p.length + 2;
    }
    return `{${parts.join(', ')}}`;
  } finally {
    seen.delete(o);
  }
}

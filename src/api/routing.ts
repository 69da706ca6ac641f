/**
 * Expert routing for people: per-layer expert usage, per-token choices (text and JSON), and a token ×
 * layer heatmap as a standalone SVG (colour = expert, shade = gate). Used by `grok generate --routing`.
 *
 *   const r = await grok.complete(prompt, { routing: true });
 *   const rows = routingRows(grok, r);
 *   process.stdout.write(formatRouting(rows, grok.config.nExperts));
 *   fs.writeFileSync('routing.svg', routingSvg(rows, grok.config.nExperts));
 */
import type { TokenRouting } from '../engine/scheduler.js';
import type { Completion, Grok } from './index.js';

/** One token with where it went. */
export interface RoutedToken {
  id: number;
  /** The token's piece as text (its id without a tokenizer). */
  text: string;
  /** Part of the prompt (else generated). */
  prompt: boolean;
  routing: TokenRouting;
}

/** The prompt's tokens, then the generated ones, of a completion made with `routing: true`. */
export function routingRows(grok: Grok, prompt: readonly number[], r: Completion): RoutedToken[] {
  if (!r.routing) throw new Error('this completion has no routing: generate with { routing: true }');
  const label = (id: number) => (grok.tokenizer ? grok.tokenText(id) : String(id));
  return [
    ...r.routing.prompt.map((routing, i) => ({ id: prompt[i]!, text: label(prompt[i]!), prompt: true, routing })),
    ...r.routing.tokens.map((routing, i) => ({ id: r.tokens[i]!, text: label(r.tokens[i]!), prompt: false, routing })),
  ];
}

/** Per layer, how many tokens each expert received (in any of its A places) out of how many tokens. */
export function expertUsage(rows: readonly RoutedToken[], nExperts: number): { layer: number; counts: number[]; tokens: number }[] {
  const layers = rows[0]?.routing.experts.length ?? 0;
  return Array.from({ length: layers }, (_, l) => {
    const counts = new Array<number>(nExperts).fill(0);
    for (const r of rows) for (const e of r.routing.experts[l]!) counts[e]!++;
    return { layer: l, counts, tokens: rows.length };
  });
}

/** JSON for --json: the experts' usage per layer and every token's choices and gates. */
export function routingJson(rows: readonly RoutedToken[], nExperts: number): Record<string, unknown> {
  return {
    experts: nExperts,
    layers: expertUsage(rows, nExperts).map((u) => ({ layer: u.layer, counts: u.counts })),
    tokens: rows.map((r) => ({ id: r.id, text: r.text, prompt: r.prompt, experts: r.routing.experts, gates: r.routing.gates })),
  };
}

const show = (s: string) => JSON.stringify(s).slice(1, -1);

/** The text report: expert usage per layer (share of tokens), then each token's experts per layer. */
export function formatRouting(rows: readonly RoutedToken[], nExperts: number): string {
  const usage = expertUsage(rows, nExperts);
  const A = rows[0]?.routing.experts[0]?.length ?? 0;
  const out: string[] = [];
  out.push(`expert usage per layer (share of the ${rows.length} tokens sent to each expert; each token goes to ${A}):`);
  out.push(`layer ${Array.from({ length: nExperts }, (_, e) => `e${e}`.padStart(5)).join('')}`);
  for (const u of usage) out.push(`${String(u.layer).padStart(5)} ${u.counts.map((c) => `${Math.round((100 * c) / u.tokens)}%`.padStart(5)).join('')}`);
  out.push('', `experts per token and layer (highest gate first; * = prompt):`);
  const width = Math.min(16, Math.max(5, ...rows.map((r) => show(r.text).length + 2)));
  const cell = Math.max(2 * A, A * String(nExperts - 1).length + A - 1) + 1;
  out.push(`${'token'.padEnd(width + 2)}${usage.map((u) => `L${u.layer}`.padStart(cell)).join('')}`);
  for (const r of rows) {
    const label = `"${show(r.text)}"`.slice(0, width).padEnd(width);
    out.push(`${r.prompt ? '*' : ' '} ${label}${r.routing.experts.map((es) => es.join(',').padStart(cell)).join('')}`);
  }
  return `${out.join('\n')}\n`;
}

/** A colour per expert: a qualitative palette for up to 10, hues around the wheel beyond. */
export function expertColour(e: number, nExperts: number): string {
  const palette = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
  return nExperts <= palette.length ? palette[e]! : `hsl(${Math.round((360 * e) / nExperts)} 65% 50%)`;
}

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * The heatmap: one column per token, one row per layer; each cell split into A bands (the token's experts
 * in that layer, highest gate on top), coloured by expert, opaque in proportion to the gate. A line
 * separates the prompt from the generated tokens; a legend names the experts' colours.
 */
export function routingSvg(rows: readonly RoutedToken[], nExperts: number, o: { title?: string } = {}): string {
  const layers = rows[0]?.routing.experts.length ?? 0;
  const A = rows[0]?.routing.experts[0]?.length ?? 1;
  const cw = 16, ch = 18, left = 44, top = o.title ? 46 : 26, labelH = 70;
  const W = left + rows.length * cw + 16;
  const H = top + layers * ch + labelH + 24;
  const parts: string[] = [];
  const width = Math.max(W, left + nExperts * 40, 420);
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${H}" viewBox="0 0 ${width} ${H}" font-family="system-ui, sans-serif" font-size="10">`);
  parts.push('<rect width="100%" height="100%" fill="#fff"/>');
  if (o.title) parts.push(`<text x="${left}" y="16" font-size="13" font-weight="600">${xml(o.title)}</text>`);
  // Legend.
  for (let e = 0; e < nExperts; e++) {
    const x = left + e * 40;
    parts.push(`<rect x="${x}" y="${top - 18}" width="10" height="10" fill="${expertColour(e, nExperts)}"/><text x="${x + 13}" y="${top - 9}">e${e}</text>`);
  }
  for (let l = 0; l < layers; l++) parts.push(`<text x="${left - 6}" y="${top + l * ch + ch - 3}" text-anchor="end">L${l}</text>`);
  rows.forEach((r, t) => {
    const x = left + t * cw;
    for (let l = 0; l < layers; l++) {
      const es = r.routing.experts[l]!, gs = r.routing.gates[l]!;
      const bh = ch / A;
      es.forEach((e, a) => {
        // Shade = gate: a gate of 0.5 or more is fully opaque, the faintest still visible.
        const opacity = Math.min(1, 0.25 + 1.5 * gs[a]!).toFixed(2);
        parts.push(`<rect x="${x}" y="${(top + l * ch + a * bh).toFixed(1)}" width="${cw - 1}" height="${(bh - (a === A - 1 ? 1 : 0)).toFixed(1)}" fill="${expertColour(e, nExperts)}" fill-opacity="${opacity}"><title>${xml(`"${r.text}" layer ${l}: ${es.map((x2, i) => `e${x2} ${gs[i]!.toFixed(3)}`).join(', ')}`)}</title></rect>`);
      });
    }
    const label = r.text.length > 10 ? `${r.text.slice(0, 9)}…` : r.text;
    const ly = top + layers * ch + 6;
    parts.push(`<text transform="translate(${x + cw / 2 + 3},${ly}) rotate(-60)" text-anchor="end" fill="${r.prompt ? '#555' : '#000'}">${xml(JSON.stringify(label).slice(1, -1))}</text>`);
  });
  const firstGen = rows.findIndex((r) => !r.prompt);
  if (firstGen > 0) {
    const x = left + firstGen * cw - 0.5;
    parts.push(`<line x1="${x}" y1="${top - 2}" x2="${x}" y2="${top + layers * ch + 2}" stroke="#000" stroke-width="1.5"/>`);
  }
  parts.push(`<text x="${left}" y="${H - 6}" fill="#555">grey: prompt · colour = expert · shade = gate · top band = highest gate</text>`);
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

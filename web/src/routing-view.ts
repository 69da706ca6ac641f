/**
 * The routing view: a token × layer heatmap on a canvas (each cell split into bands, one per chosen
 * expert, highest gate on top; colour = expert, opacity = gate), each layer's expert usage as stacked
 * bars, and the path of one token through the layers. Columns are appended as tokens stream in and
 * drawn incrementally.
 */

export interface Column {
  label: string;
  prompt: boolean;
  /** [layer][rank] expert ids and their gates. */
  experts: number[][];
  gates: number[][];
}

/** The same palette as the CLI's SVG heatmap (src/api/routing.ts). */
export function expertColour(e: number, nExperts: number): string {
  const palette = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
  return nExperts <= palette.length ? palette[e]! : `hsl(${Math.round((360 * e) / nExperts)} 65% 50%)`;
}

const opacity = (gate: number) => Math.min(1, 0.25 + 1.5 * gate);

export interface RoutingElements {
  root: HTMLElement;
  canvas: HTMLCanvasElement;
  legend: HTMLElement;
  usage: HTMLElement;
  path: HTMLOListElement;
  pathToken: HTMLElement;
}

export class RoutingView {
  private columns: Column[] = [];
  private drawn = 0;
  private highlighted = -1;
  private counts: number[][] = [];
  private scheduled = false;
  private readonly cw = 10;
  private readonly left = 30;
  private readonly ch: number;

  constructor(private readonly el: RoutingElements, private readonly nExperts: number, private readonly nLayers: number,
    onHover: (column: number) => void) {
    this.ch = Math.max(5, Math.min(16, Math.floor(260 / Math.max(1, nLayers))));
    el.legend.replaceChildren(...Array.from({ length: nExperts }, (_, e) => {
      const s = document.createElement('span');
      const i = document.createElement('i');
      i.style.background = expertColour(e, nExperts);
      s.append(i, `e${e}`);
      return s;
    }));
    el.canvas.addEventListener('mousemove', (ev) => {
      const col = Math.floor((ev.offsetX - this.left) / this.cw);
      if (col >= 0 && col < this.columns.length) onHover(col);
    });
    this.reset();
  }

  get size(): number {
    return this.columns.length;
  }

  reset(): void {
    this.columns = [];
    this.drawn = 0;
    this.highlighted = -1;
    this.counts = Array.from({ length: this.nLayers }, () => new Array<number>(this.nExperts).fill(0));
    this.resize(64);
    this.el.path.replaceChildren();
    this.el.pathToken.textContent = '–';
    this.update();
  }

  add(cols: Column[]): void {
    for (const c of cols) {
      this.columns.push(c);
      c.experts.forEach((es, l) => { for (const e of es) if (this.counts[l]) this.counts[l]![e]!++; });
    }
    if (!this.scheduled) {
      this.scheduled = true;
      requestAnimationFrame(() => { this.scheduled = false; this.update(); });
    }
  }

  /** Show one token's path (and outline its column). */
  highlight(col: number): void {
    const c = this.columns[col];
    if (!c) return;
    const prev = this.highlighted;
    this.highlighted = col;
    if (prev >= 0 && prev < this.drawn) this.drawColumn(prev);
    if (col < this.drawn) this.drawColumn(col);
    this.el.pathToken.textContent = `${c.prompt ? 'prompt' : 'generated'} token ${col}: ${JSON.stringify(c.label)}`;
    this.el.path.replaceChildren(...c.experts.map((es, l) => {
      const li = document.createElement('li');
      li.append(...es.flatMap((e, a) => {
        const i = document.createElement('i');
        i.className = 'swatch';
        i.style.cssText = `display:inline-block;width:.7rem;height:.7rem;margin:0 .2rem 0 .5rem;border-radius:2px;background:${expertColour(e, this.nExperts)}`;
        return [i, `e${e} ${c.gates[l]![a]!.toFixed(3)}`];
      }));
      return li;
    }));
  }

  private resize(columns: number): void {
    const dpr = window.devicePixelRatio || 1;
    const w = this.left + columns * this.cw + 4, h = this.nLayers * this.ch + 2;
    const cv = this.el.canvas;
    cv.width = Math.round(w * dpr);
    cv.height = Math.round(h * dpr);
    cv.style.width = `${w}px`;
    cv.style.height = `${h}px`;
    const g = cv.getContext('2d')!;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = '#fff';
    g.fillRect(0, 0, w, h);
    g.fillStyle = '#6b6b70';
    g.font = '9px system-ui, sans-serif';
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    const every = Math.ceil(10 / this.ch);
    for (let l = 0; l < this.nLayers; l += every) g.fillText(`L${l}`, this.left - 4, l * this.ch + this.ch / 2);
    this.drawn = 0;
  }

  private drawColumn(t: number): void {
    const g = this.el.canvas.getContext('2d')!;
    const c = this.columns[t]!;
    const x = this.left + t * this.cw;
    g.fillStyle = '#fff';
    g.fillRect(x, 0, this.cw, this.nLayers * this.ch + 2);
    c.experts.forEach((es, l) => {
      const bh = this.ch / es.length;
      es.forEach((e, a) => {
        g.globalAlpha = opacity(c.gates[l]![a]!);
        g.fillStyle = expertColour(e, this.nExperts);
        g.fillRect(x, l * this.ch + a * bh, this.cw - 1, bh - (a === es.length - 1 ? 1 : 0));
      });
    });
    g.globalAlpha = 1;
    if (t === this.highlighted) {
      g.strokeStyle = '#000';
      g.lineWidth = 1.5;
      g.strokeRect(x + 0.5, 0.5, this.cw - 2, this.nLayers * this.ch);
    }
    // The boundary between the prompt and the generated tokens.
    if (t > 0 && !c.prompt && this.columns[t - 1]!.prompt) {
      g.fillStyle = '#000';
      g.fillRect(x - 1, 0, 1.5, this.nLayers * this.ch + 2);
    }
  }

  private update(): void {
    const cv = this.el.canvas;
    if (this.left + this.columns.length * this.cw + 4 > parseFloat(cv.style.width || '0')) {
      this.resize(Math.max(64, this.columns.length * 2)); // grow by doubling: fewer full redraws
    }
    for (; this.drawn < this.columns.length; this.drawn++) this.drawColumn(this.drawn);
    this.drawUsage();
    this.el.root.dataset.tokens = String(this.columns.length);
    this.el.root.dataset.drawn = String(this.drawn);
  }

  private drawUsage(): void {
    const rows: Node[] = [];
    this.counts.forEach((cs, l) => {
      const total = cs.reduce((a, b) => a + b, 0);
      const label = document.createElement('span');
      label.textContent = `L${l}`;
      const bar = document.createElement('div');
      bar.className = 'bar';
      cs.forEach((n, e) => {
        if (n === 0) return;
        const seg = document.createElement('span');
        seg.style.cssText = `width:${(100 * n) / total}%;background:${expertColour(e, this.nExperts)}`;
        seg.title = `layer ${l}, expert ${e}: ${n} of ${total / Math.max(1, this.columns[0]?.experts[0]?.length ?? 1)} tokens`;
        bar.append(seg);
      });
      rows.push(label, bar);
    });
    this.el.usage.replaceChildren(...rows);
  }
}

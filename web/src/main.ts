/**
 * The grok-ts page: completion and chat modes over the OpenAI-compatible API, streamed with a stop
 * button; every generated token coloured by its probability (alternatives on click); the expert routing
 * of every token (prompt and generated) as a heatmap, per-layer usage and a token's path on hover;
 * conversations kept in localStorage. Plain TypeScript and the DOM: no framework, no network beyond
 * the server that served it.
 */
import { Api, AuthError, LoadingError, type Info } from './api.js';
import { RoutingView, type Column } from './routing-view.js';
import { newConversation, Store, type Conversation, type Message } from './store.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/** One streamed piece, whatever the endpoint. */
interface Piece {
  text: string;
  token?: { piece: string; logprob: number; top: [string, number][] };
  routing?: { experts: number[][][]; gates: number[][][] };
}

const api = new Api();
const store = new Store();
let info: Info | null = null;
let view: RoutingView | null = null;
let conv: Conversation = store.list[0] ?? newConversation('completion');
let running: AbortController | null = null;
/** The generated tokens of the answer on screen: their routing column and alternatives. */
let tokens: { column: number; piece: string; logprob: number; top: [string, number][] }[] = [];

const output = $('output');
const promptBox = $<HTMLTextAreaElement>('prompt');
const status = (s: string) => { $('status').textContent = s; };

// ---- model info and the API key ----

async function connect(): Promise<void> {
  try {
    info = await api.info();
  } catch (e) {
    if (e instanceof AuthError) { askKey(); return; }
    if (e instanceof LoadingError) { $('model').textContent = 'the model is loading…'; setTimeout(() => void connect(), 1000); return; }
    $('model').textContent = `cannot reach the server: ${(e as Error).message}`;
    return;
  }
  $('key-button').hidden = api.key === null;
  $('model').textContent = `${info.model} · context ${info.contextLength} · ${info.layers} layers × ${info.experts} experts (${info.expertsPerToken} per token) · ${info.backend}`;
  view = new RoutingView({
    root: $('routing'), canvas: $<HTMLCanvasElement>('heatmap'), legend: $('legend'), usage: $('usage'),
    path: $<HTMLOListElement>('path'), pathToken: $('path-token'),
  }, info.experts, info.layers, (col) => { view?.highlight(col); markToken(col); });
}

function askKey(): void {
  const d = $<HTMLDialogElement>('key-dialog');
  $<HTMLInputElement>('key-input').value = api.key ?? '';
  if (!d.open) d.showModal();
}

$('key-form').addEventListener('submit', () => {
  const k = $<HTMLInputElement>('key-input').value.trim();
  if (k) { api.setKey(k); void connect(); }
});
$('key-button').addEventListener('click', askKey);

// ---- conversations ----

function renderList(): void {
  $('conversations').replaceChildren(...store.list.map((c) => {
    const li = document.createElement('li');
    if (c.id === conv.id) li.className = 'current';
    const title = document.createElement('span');
    title.textContent = `${c.mode === 'chat' ? '💬 ' : ''}${c.title}`;
    const del = document.createElement('button');
    del.type = 'button';
    del.textContent = '×';
    del.title = 'delete';
    del.addEventListener('click', (ev) => {
      ev.stopPropagation();
      store.remove(c.id);
      if (c.id === conv.id) open(store.list[0] ?? newConversation(conv.mode));
      renderList();
    });
    li.append(title, del);
    li.addEventListener('click', () => open(c));
    return li;
  }));
}

function open(c: Conversation): void {
  if (running) return;
  conv = c;
  setMode(c.mode);
  tokens = [];
  view?.reset();
  renderConversation();
  promptBox.value = c.mode === 'completion' ? c.prompt : '';
  renderList();
}

function setMode(mode: Conversation['mode']): void {
  conv.mode = mode;
  $('mode-completion').setAttribute('aria-selected', String(mode === 'completion'));
  $('mode-chat').setAttribute('aria-selected', String(mode === 'chat'));
  promptBox.placeholder = mode === 'chat' ? 'Write a message…' : 'Write a prompt…';
}

/** The conversation as stored (plain text); the live answer is appended by the stream. */
function renderConversation(): void {
  output.replaceChildren();
  if (conv.mode === 'completion') {
    if (conv.prompt) output.append(span('prompt', conv.prompt), conv.completion);
    return;
  }
  for (const m of conv.messages) output.append(turn(m.role, m.content));
}

function span(cls: string, text: string): HTMLSpanElement {
  const s = document.createElement('span');
  s.className = cls;
  s.textContent = text;
  return s;
}

function turn(role: Message['role'], content: string): HTMLElement {
  const p = document.createElement('div');
  p.className = 'turn';
  const b = document.createElement('b');
  b.textContent = role;
  p.append(b, content);
  return p;
}

$('new-conv').addEventListener('click', () => open(newConversation(conv.mode)));
$('mode-completion').addEventListener('click', () => { if (!running && conv.mode !== 'completion') open(newConversation('completion')); });
$('mode-chat').addEventListener('click', () => { if (!running && conv.mode !== 'chat') open(newConversation('chat')); });
$('export').addEventListener('click', () => {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([store.exportJson()], { type: 'application/json' }));
  a.download = 'grok-ts-conversations.json';
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
});
$<HTMLInputElement>('import').addEventListener('change', async (ev) => {
  const input = ev.target as HTMLInputElement;
  const f = input.files?.[0];
  if (!f) return;
  try {
    status(`imported ${store.importJson(await f.text())} conversations`);
    renderList();
  } catch (e) {
    status(`import failed: ${(e as Error).message}`);
  }
  input.value = '';
});
$('menu-button').addEventListener('click', () => {
  const open = $('sidebar').classList.toggle('open');
  $('menu-button').setAttribute('aria-expanded', String(open));
});

// ---- generation ----

function sampling(): Record<string, unknown> {
  const num = (id: string) => { const v = $<HTMLInputElement>(id).value; return v === '' ? undefined : Number(v); };
  const stop = $<HTMLTextAreaElement>('stop').value.split('\n').filter((s) => s !== '').slice(0, 4);
  const o: Record<string, unknown> = {
    temperature: num('temperature'), top_p: num('top_p'), top_k: num('top_k'), min_p: num('min_p'), max_tokens: num('max_tokens'), seed: num('seed'),
  };
  if (stop.length) o.stop = stop;
  const schema = $<HTMLTextAreaElement>('schema').value.trim();
  if (schema === 'json') o.response_format = { type: 'json_object' };
  else if (schema !== '') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(schema);
    } catch (e) {
      throw new Error(`the JSON schema is not JSON: ${(e as Error).message}`);
    }
    o.response_format = { type: 'json_schema', json_schema: { name: 'page', schema: parsed } };
  }
  return o;
}

/** A completion chunk's or a chat chunk's first choice as a Piece. */
function pieceOf(chunk: Record<string, unknown>): Piece | null {
  const ch = (chunk.choices as Record<string, unknown>[] | undefined)?.[0];
  if (!ch) return null;
  const p: Piece = { text: '' };
  const delta = ch.delta as { content?: string } | undefined;
  p.text = typeof ch.text === 'string' ? ch.text : delta?.content ?? '';
  const lp = ch.logprobs as Record<string, unknown> | null;
  if (lp && Array.isArray(lp.tokens) && lp.tokens.length > 0) { // completions
    const top = (lp.top_logprobs as Record<string, number>[] | null)?.[0] ?? {};
    p.token = { piece: lp.tokens[0] as string, logprob: (lp.token_logprobs as number[])[0]!, top: Object.entries(top) };
  } else if (lp && Array.isArray(lp.content) && lp.content.length > 0) { // chat
    const c = lp.content[0] as { token: string; logprob: number; top_logprobs: { token: string; logprob: number }[] };
    p.token = { piece: c.token, logprob: c.logprob, top: c.top_logprobs.map((a) => [a.token, a.logprob]) };
  }
  if (Array.isArray(ch.routed_experts)) {
    // The prompt's routing, in the choice's first chunk when sent, goes first: its columns precede the tokens'.
    const experts = (ch.prompt_routed_experts as number[][][] | undefined) ?? [];
    const gates = (ch.prompt_routed_expert_weights as number[][][] | undefined) ?? [];
    p.routing = { experts: [...experts, ...ch.routed_experts as number[][][]], gates: [...gates, ...ch.routed_expert_weights as number[][][]] };
  }
  return p;
}

function colourOf(logprob: number): string {
  const p = Math.exp(logprob);
  return `hsla(${Math.round(120 * p)}, 75%, 48%, ${0.18 + 0.22 * (1 - p)})`;
}

function markToken(column: number): void {
  for (const el of output.querySelectorAll('.tok.active')) el.classList.remove('active');
  output.querySelector(`.tok[data-column="${column}"]`)?.classList.add('active');
}

async function send(): Promise<void> {
  if (running || !info) return;
  const text = promptBox.value;
  if (text.trim() === '') { status('write something first'); return; }
  let opts: Record<string, unknown>;
  try {
    opts = sampling();
  } catch (e) {
    status((e as Error).message);
    return;
  }
  const ac = new AbortController();
  running = ac;
  $<HTMLButtonElement>('send').disabled = true;
  $<HTMLButtonElement>('stop-button').disabled = false;
  tokens = [];
  view?.reset();
  let target: HTMLElement;
  let path: string;
  let body: Record<string, unknown>;
  if (conv.mode === 'completion') {
    conv.prompt = text;
    conv.completion = '';
    output.replaceChildren(span('prompt', text));
    target = output;
    path = 'v1/completions';
    body = { model: info.model, prompt: text, logprobs: 5, ...opts, return_routed_experts: true };
  } else {
    conv.messages.push({ role: 'user', content: text });
    promptBox.value = '';
    renderConversation();
    target = turn('assistant', '');
    output.append(target);
    path = 'v1/chat/completions';
    // A long chat keeps working: the server leaves out its oldest turns when it outgrows the context.
    body = { model: info.model, messages: conv.messages, logprobs: true, top_logprobs: 5, ...opts, return_routed_experts: true, truncation: 'auto' };
  }
  if (conv.title === 'New conversation') conv.title = text.slice(0, 48);
  store.upsert(conv);
  renderList();
  status('generating…');
  let answer = '';
  let promptColumns = -1;
  let first = 0;
  let truncated = 0;
  const t0 = performance.now();
  // Tokens can arrive faster than the page can lay itself out: they collect in a fragment that is put in
  // the page, with the speed and the scroll, once per frame (one layout per frame, not one per token).
  let pending = document.createDocumentFragment();
  let frame = 0;
  const flush = (): void => {
    frame = 0;
    target.append(pending);
    pending = document.createDocumentFragment();
    const secs = (performance.now() - (first || t0)) / 1000;
    if (tokens.length > 1 && secs > 0) $('speed').textContent = `${((tokens.length - 1) / secs).toFixed(1)} tok/s`;
    output.scrollTop = output.scrollHeight;
  };
  try {
    for await (const chunk of api.stream(path, body, ac.signal)) {
      if (typeof chunk.truncated_messages === 'number') truncated = chunk.truncated_messages;
      const p = pieceOf(chunk);
      if (!p) continue;
      if (p.routing && view) {
        // The first routed chunk starts with the prompt's entries; then one entry per token.
        const own = p.token ? 1 : 0;
        const startCol = view.size;
        if (promptColumns < 0) promptColumns = p.routing.experts.length - own;
        view.add(p.routing.experts.map((experts, i): Column => {
          const col = startCol + i;
          const isPrompt = col < promptColumns;
          return { label: isPrompt ? `prompt #${col}` : p.token?.piece ?? '', prompt: isPrompt, experts, gates: p.routing!.gates[i]! };
        }));
      }
      if (p.token) {
        if (!first) first = performance.now();
        const column = (view?.size ?? 1) - 1;
        tokens.push({ column, ...p.token });
        const s = span('tok', p.text);
        s.dataset.column = String(column);
        s.dataset.index = String(tokens.length - 1);
        s.style.background = colourOf(p.token.logprob);
        s.title = `${JSON.stringify(p.token.piece)} p=${Math.exp(p.token.logprob).toFixed(3)}`;
        pending.append(s);
      } else if (p.text) {
        pending.append(p.text);
      }
      answer += p.text;
      frame ||= requestAnimationFrame(flush);
    }
    const left = truncated ? ` (the oldest ${truncated} message${truncated === 1 ? '' : 's'} no longer fit the context and were left out)` : '';
    status(`${tokens.length} tokens in ${((performance.now() - t0) / 1000).toFixed(2)} s${left}`);
  } catch (e) {
    if ((e as Error).name === 'AbortError') status(`stopped after ${tokens.length} tokens`);
    else if (e instanceof AuthError) { status(e.message); askKey(); }
    else status(`error: ${(e as Error).message}`);
  } finally {
    if (frame) cancelAnimationFrame(frame);
    flush();
    running = null;
    $<HTMLButtonElement>('send').disabled = false;
    $<HTMLButtonElement>('stop-button').disabled = true;
    if (conv.mode === 'completion') conv.completion = answer;
    else if (answer !== '') conv.messages.push({ role: 'assistant', content: answer });
    store.upsert(conv);
    renderList();
  }
}

$('composer').addEventListener('submit', (ev) => { ev.preventDefault(); void send(); });
promptBox.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); void send(); }
});
$('stop-button').addEventListener('click', () => running?.abort());

// Tokens: hover → their path through the layers; click → the alternatives.
const popover = $('popover');
output.addEventListener('mouseover', (ev) => {
  const el = (ev.target as HTMLElement).closest<HTMLElement>('.tok');
  if (!el) return;
  const col = Number(el.dataset.column);
  view?.highlight(col);
  markToken(col);
});
output.addEventListener('click', (ev) => {
  const el = (ev.target as HTMLElement).closest<HTMLElement>('.tok');
  if (!el) { popover.hidden = true; return; }
  const t = tokens[Number(el.dataset.index)];
  if (!t) return;
  const table = document.createElement('table');
  const caption = table.createCaption();
  caption.textContent = `chosen ${JSON.stringify(t.piece)}: ${(100 * Math.exp(t.logprob)).toFixed(1)}%`;
  for (const [piece, lp] of t.top) {
    const tr = table.insertRow();
    if (piece === t.piece) tr.className = 'chosen';
    tr.insertCell().textContent = JSON.stringify(piece);
    tr.insertCell().textContent = `${(100 * Math.exp(lp)).toFixed(1)}%`;
  }
  popover.replaceChildren(table);
  const r = el.getBoundingClientRect();
  popover.style.left = `${Math.min(r.left, window.innerWidth - 220)}px`;
  popover.style.top = `${r.bottom + 4}px`;
  popover.hidden = false;
});
document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') popover.hidden = true; });

setMode(conv.mode);
renderConversation();
if (conv.mode === 'completion') promptBox.value = conv.prompt;
renderList();
void connect();

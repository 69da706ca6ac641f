/**
 * GET /metrics in the Prometheus text format (version 0.0.4): counters, gauges and histograms written by
 * hand — a few dozen lines instead of a client library.
 *
 *   grok_requests_total{route,status}              requests answered, by matched route and HTTP status (499: the
 *                                                  client went away first; 408: it did not send its request in
 *                                                  time, route "(no request)" when its headers did not all come)
 *   grok_prompt_tokens_total                       prompt tokens of started generations (once per prompt)
 *   grok_generated_tokens_total                    tokens generated
 *   grok_time_to_first_token_seconds               histogram: request received → first token
 *   grok_time_per_output_token_seconds             histogram: gap between consecutive tokens of a choice
 *   grok_request_duration_seconds                  histogram: request received → response over
 *   grok_model_ready                               1 once the model is loaded (0 while loading, or after its worker died)
 *   grok_slots / grok_slots_busy / grok_queue_length   the engine now (once loaded)
 *   grok_model_load_seconds                        time spent loading the model
 *   grok_prefix_cache_*                            with the prefix cache: lookups, hits, tokens reused, bytes held
 *   grok_context_shifts_total / grok_truncated_messages_total   chats shortened to fit the context, messages left out
 *   grok_pipeline_*                                a pipeline's leader: the stages up, steps in flight, connections made
 */
import type { TextModel } from '../index.js';

type Labels = Record<string, string>;

const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const labelText = (l: Labels) => {
  const e = Object.entries(l);
  return e.length === 0 ? '' : `{${e.map(([k, v]) => `${k}="${escape(v)}"`).join(',')}}`;
};
const num = (x: number) => (Number.isInteger(x) ? String(x) : String(Number(x.toPrecision(9))));

class Counter {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string, readonly labelled = false) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = labelText(labels);
    const v = this.values.get(k);
    if (v) v.value += by; else this.values.set(k, { labels, value: by });
  }
  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.values.size === 0 && !this.labelled) out.push(`${this.name} 0`);
    for (const { labels, value } of this.values.values()) out.push(`${this.name}${labelText(labels)} ${num(value)}`);
    return out;
  }
}

class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[]) {
    this.counts = buckets.map(() => 0);
  }
  observe(x: number): void {
    for (let i = 0; i < this.buckets.length; i++) if (x <= this.buckets[i]!) this.counts[i]!++;
    this.sum += x;
    this.count++;
  }
  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.buckets.forEach((b, i) => out.push(`${this.name}_bucket{le="${num(b)}"} ${this.counts[i]}`));
    out.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${num(this.sum)}`, `${this.name}_count ${this.count}`);
    return out;
  }
}

const gauge = (name: string, help: string, value: number) => [`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${num(value)}`];
const counter = (name: string, help: string, value: number) => [`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${num(value)}`];

/** Latency buckets, seconds: from a tiny model's milliseconds to a 314B model's minutes. */
const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export class ServerMetrics {
  private readonly requests = new Counter('grok_requests_total', 'HTTP requests answered, by matched route and status.', true);
  private readonly prompt = new Counter('grok_prompt_tokens_total', 'Prompt tokens of started generations (a prompt shared by n choices counts once).');
  private readonly generated = new Counter('grok_generated_tokens_total', 'Tokens generated.');
  private readonly ttft = new Histogram('grok_time_to_first_token_seconds', 'Request received to first generated token.', SECONDS);
  private readonly tpot = new Histogram('grok_time_per_output_token_seconds', 'Time between consecutive generated tokens of a choice.', SECONDS);
  private readonly duration = new Histogram('grok_request_duration_seconds', 'Request received to response complete.', SECONDS);
  private readonly shifts = new Counter('grok_context_shifts_total', 'Chats shortened to fit the context (context shift / truncation "auto").');
  private readonly dropped = new Counter('grok_truncated_messages_total', 'Messages left out of those chats.');

  /** `model`: the model, or null while it loads. */
  constructor(private readonly model: () => TextModel | null) {}

  request(route: string, status: number, seconds: number): void {
    this.requests.inc({ route, status: String(status) });
    this.duration.observe(seconds);
  }
  promptTokens(n: number): void { this.prompt.inc({}, n); }
  /** A chat that lost `messages` of its oldest messages to fit the context. */
  truncated(messages: number): void { this.shifts.inc(); this.dropped.inc({}, messages); }
  firstToken(seconds: number): void { this.ttft.observe(seconds); }
  /** One generated token; `gapSeconds` since the previous token of the same choice (none for the first). */
  token(gapSeconds?: number): void {
    this.generated.inc();
    if (gapSeconds !== undefined) this.tpot.observe(gapSeconds);
  }

  render(): string {
    const grok = this.model();
    const traffic = [
      ...this.requests.render(), ...this.prompt.render(), ...this.generated.render(),
      ...this.ttft.render(), ...this.tpot.render(), ...this.duration.render(),
      ...gauge('grok_model_ready', 'Whether the model is loaded and serving (0 while it loads, or after its worker thread died).', grok && !grok.failure ? 1 : 0),
    ];
    if (!grok) return traffic.join('\n') + '\n';
    const e = grok.engine;
    return [
      ...traffic, ...this.shifts.render(), ...this.dropped.render(),
      ...gauge('grok_slots', 'Sequences the engine decodes together.', e.slots),
      ...gauge('grok_slots_busy', 'Slots holding a request now.', e.activeCount),
      ...gauge('grok_queue_length', 'Requests waiting for a slot now.', e.queuedCount),
      ...gauge('grok_model_load_seconds', 'Time spent loading the model.', grok.loadMs / 1000),
      ...this.experts(grok),
      ...this.prefixCache(grok),
      ...this.pipeline(grok),
    ].join('\n') + '\n';
  }

  /** The leader of a pipeline (src/api/pipeline): whether the stages behind are up, steps in flight, reconnections. */
  private pipeline(grok: TextModel): string[] {
    const p = (grok as { pipelineStatus?: () => { up: boolean; inFlight: number; mostInFlight: number; connections: number } | null }).pipelineStatus?.();
    if (!p) return [];
    return [
      ...gauge('grok_pipeline_up', 'Whether every stage behind the leader is up (1) or one is down (0).', p.up ? 1 : 0),
      ...gauge('grok_pipeline_steps_in_flight', 'Steps sent to the stages and not yet answered (micro-batches in the pipe).', p.inFlight),
      ...gauge('grok_pipeline_steps_in_flight_max', 'The most steps in flight at once so far.', p.mostInFlight),
      ...counter('grok_pipeline_connections_total', 'Connections made to the next stage (each reconnection adds one).', p.connections),
    ];
  }

  /** The prefix cache (--cache-ram): what prompts reused since loading, and what it holds now. */
  private prefixCache(grok: TextModel): string[] {
    const s = grok.engine.prefixCache?.stats();
    if (!s) return [];
    return [
      ...counter('grok_prefix_cache_lookups_total', 'Requests that looked for a cached prefix of their prompt.', s.lookups),
      ...counter('grok_prefix_cache_hits_total', 'Of the lookups, those that found at least one token.', s.hits),
      ...counter('grok_prefix_cache_hit_tokens_total', 'Prompt tokens whose keys and values came from the cache (not computed).', s.hitTokens),
      ...counter('grok_prefix_cache_evicted_tokens_total', 'Cached positions dropped to stay within the budget.', s.evictedTokens),
      ...gauge('grok_prefix_cache_tokens', 'Positions the cache holds now (a shared prefix counts once).', s.tokens),
      ...gauge('grok_prefix_cache_bytes', 'Bytes of keys and values the cache holds now.', s.bytes),
      ...gauge('grok_prefix_cache_budget_bytes', 'The cache\'s budget (--cache-ram).', s.budgetBytes),
    ];
  }

  /** Streamed experts (--ram-budget): what the pool did since loading, per layer where it differs. */
  private experts(grok: TextModel): string[] {
    const s = grok.expertCacheStats();
    if (!s) return [];
    const perLayer = (name: string, help: string, pick: (hu: readonly [number, number]) => number) => [
      `# HELP ${name} ${help}`, `# TYPE ${name} counter`, ...s.perLayer.map((hu, l) => `${name}{layer="${l}"} ${num(pick(hu))}`),
    ];
    return [
      ...gauge('grok_expert_slots', 'Experts the RAM budget holds in memory at once.', s.slots),
      ...gauge('grok_experts', 'Experts of the model (layers × experts per layer).', s.experts),
      ...perLayer('grok_expert_uses_total', 'Experts used by a layer (one per distinct expert per forward pass).', ([, u]) => u),
      ...perLayer('grok_expert_hits_total', 'Of the uses, experts already in memory or being read.', ([h]) => h),
      ...counter('grok_expert_prefetch_hits_total', 'Hits owed to reading the guessed experts of the next layer early.', s.prefetchHits),
      ...counter('grok_expert_guesses_total', 'Experts guessed for the next layer from its router applied early.', s.guessed),
      ...counter('grok_expert_guesses_right_total', 'Of the guesses, experts the layer then chose.', s.guessedRight),
      ...counter('grok_expert_read_bytes_total', 'Expert bytes read from disk.', s.bytesRead),
      ...counter('grok_expert_read_direct_bytes_total', 'Of them, read around the page cache (O_DIRECT).', s.directBytes),
      ...counter('grok_expert_read_wait_seconds_total', 'Time forward passes waited for expert reads.', s.waitMs / 1000),
    ];
  }
}

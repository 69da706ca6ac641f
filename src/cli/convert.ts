/**
 * `grok convert <model> --type T --out model.gguf` and `grok synth --preset P --layers N --type T --out
 * slice.gguf`: command-line adapters over src/convert. Both write the output atomically (a temporary file
 * beside it, renamed at the end; removed on error, SIGINT or SIGTERM) and refuse an output that is an input.
 */
import os from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { BlockType } from '../quant/types.js';
import { int } from './options.js';
import { progressBar } from './progress.js';
import { UsageError } from './errors.js';
import { recipeNamed, RECIPES } from '../convert/recipe-names.js';

export const CONVERT_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k', 'iq4_nl', 'iq4_xs', 'iq3_s',
  'iq3_xxs', 'iq2_s', 'iq2_xs', 'iq2_xxs', 'iq1_m', 'iq1_s'] as const;

/** synth writes the same types; the i-quants below IQ4 get random valid blocks (benchmark subjects; their quantisers are slow). */
export const SYNTH_TYPES = CONVERT_TYPES;

const typeOption = (flags: string, what: string, types: readonly string[]) =>
  new Option(flags, `${what}: ${types.join(', ')}`).argParser((v: string) => {
    const t = v.toLowerCase();
    if (!types.includes(t)) throw new InvalidArgumentError(`expected one of ${types.join(', ')}.`);
    return t;
  });

/** convert's --type: a block type (every matrix that type), or one of llama.cpp's mixtures by llama-quantize name. */
const MIXTURE_NAMES = Object.keys(RECIPES).filter((n) => !(CONVERT_TYPES as readonly string[]).includes(n.toLowerCase()));
const convertTypeOption = () =>
  new Option('-t, --type <type>', `block type of every matrix (${CONVERT_TYPES.join(', ')}), or llama.cpp's mixture: ${MIXTURE_NAMES.join(', ')} (with --mixed also Q2_K, Q6_K, Q8_0 …)`)
    .argParser((v: string) => {
      if ((CONVERT_TYPES as readonly string[]).includes(v.toLowerCase())) return v.toLowerCase();
      const r = recipeNamed(v);
      if (r) return r.name;
      throw new InvalidArgumentError(`expected a block type (${CONVERT_TYPES.join(', ')}) or a mixture (${MIXTURE_NAMES.join(', ')}).`);
    })
    .makeOptionMandatory();

function commonOptions(c: Command, type: Option | undefined = typeOption('-t, --type <type>', 'block type of the matrices', CONVERT_TYPES).makeOptionMandatory(),
  types: readonly string[] = CONVERT_TYPES): Command {
  if (type) c.addOption(type);
  return c
    .requiredOption('-o, --out <file>', 'the GGUF to write')
    .addOption(typeOption('--embd-type <type>', 'type of token_embd (and output) when it should differ from --type (e.g. q6_k for a q4_k model)', types))
    .option('--tokenizer <path>', 'embed this tokenizer: a SentencePiece tokenizer.model (convert also takes Grok-2\'s tokenizer.tok.json, stored as llama.cpp stores it)')
    .option('--threads <n>', 'worker threads (default: all cores)', int(1, 256), os.availableParallelism())
    .option('--progress', 'show a progress bar even when stderr is not a terminal');
}

/** The progress callback both commands take: MiB written, the write rate over the last seconds, ETA, the current tensor. */
function barFor(label: string, show: boolean | undefined) {
  const bar = progressBar(`${label} |{bar}| {percentage}% {value}/{total} MiB | {rate} MB/s | ETA {eta_formatted} | {tensor}`, { scale: 2 ** 20, ...(show ? { show: true } : {}) });
  // rate over a sliding window of samples (≥ 1 s apart), so it follows the current tensor's speed
  const samples: { t: number; done: number }[] = [];
  let rate = '-';
  const onProgress = (done: number, total: number, tensor: string) => {
    const t = performance.now();
    if (!samples.length || t - samples[samples.length - 1]!.t >= 1000) {
      samples.push({ t, done });
      if (samples.length > 10) samples.shift();
      const first = samples[0]!;
      if (t > first.t) rate = ((done - first.done) / ((t - first.t) * 1e3)).toFixed(1);
    }
    bar.update(done, total, { tensor, rate });
  };
  return { bar, onProgress };
}

/** The mixture a convert command asks for, or undefined for one block type. */
function recipeOf(o: ConvertCliOptions): string | undefined {
  const plain = (CONVERT_TYPES as readonly string[]).includes(o.type);
  if (!plain) return o.type;
  if (!o.mixed) return undefined;
  const r = recipeNamed(o.type);
  if (!r) throw new UsageError(`--mixed: llama.cpp has no mixture named ${o.type.toUpperCase()} (mixtures: ${Object.keys(RECIPES).join(', ')})`);
  return r.name;
}

interface ConvertCliOptions { type: string; mixed?: boolean; imatrix?: string; out: string; embdType?: BlockType; tokenizer?: string; threads: number; progress?: boolean; to?: string; config?: string; name?: string; stats?: boolean }

export function convertCommand(): Command {
  return commonOptions(new Command('convert')
    .summary('convert a ckpt-0 / safetensors / GGUF model to a (quantised) GGUF')
    .description('Write llama.cpp\'s grok GGUF: matrices as [out, in] rows, experts merged, tokenizer embedded.')
    .argument('<model>', 'the source: a ckpt-0 directory, a .safetensors file or folder, a .gguf, or a repository id in the Hugging Face cache (org/name, org/name:QUANT; see grok pull)'), convertTypeOption())
    .addOption(new Option('--to <format>', 'output format').choices(['gguf']).default('gguf'))
    .option('--mixed', 'with a plain type name: llama.cpp\'s mixture of that name (llama-quantize Q6_K, Q2_K, Q8_0 …; Q4_K = Q4_K_M) instead of one type for every matrix')
    .option('--config <path>', 'config.json to use instead of the one found beside the model')
    .option('--name <name>', 'general.name in the output (default: the source\'s name)')
    .option('--stats', 'measure each tensor\'s quantisation error and print a summary per stored type')
    .option('--imatrix <file>', 'llama.cpp importance matrix (llama-imatrix output, .dat or GGUF): the matrices are quantised as llama-quantize --imatrix does, byte for byte')
    .addHelpText('after', `
A plain type writes every matrix in that type (llama-quantize --pure); a mixture (Q4_K_M, Q3_K_S …, or a
plain name with --mixed) gives each tensor the type llama.cpp's llama-quantize gives it (e.g. Q4_K_M on
Grok-1: attn_k/attn_v Q8_0, attn_output Q5_K, ffn_down Q6_K on a third of the layers, token_embd Q6_K) and
writes the mixture's general.file_type. Norms and routers stay F32.
Examples:
  grok convert ckpt-0 --type q8_0 --tokenizer tokenizer.model --out grok-1-q8_0.gguf
  grok convert xai-org/grok-1 --type q8_0 --out grok-1-q8_0.gguf     # after grok pull xai-org/grok-1
  grok convert ckpt-0 --type Q4_K_M --tokenizer tokenizer.model --out grok-1-Q4_K_M.gguf
  grok convert grok-1-q8_0.gguf --type q4_k --embd-type q6_k --out grok-1-q4_k.gguf
  grok convert ckpt-0 --type Q3_K_M --imatrix grok-1.imatrix --tokenizer tokenizer.model --out grok-1-Q3_K_M.gguf
  grok convert grok-2/ --type q8_0 --tokenizer grok-2/tokenizer.tok.json --out grok-2-q8_0.gguf   # the Grok-2 release folder`)
    .action(async (model: string, o: ConvertCliOptions) => {
      const { convertModel, summarise } = await import('../convert/convert.js');
      const { resolveModelPath } = await import('../hub/cache.js');
      const source = resolveModelPath(model);
      const { bar, onProgress } = barFor('convert', o.progress);
      try {
        const r = await convertModel({
          source, out: o.out, threads: o.threads, onProgress, measure: o.stats === true,
          ...(recipeOf(o) ? { recipe: recipeOf(o)! } : { type: o.type as BlockType }),
          ...(o.embdType ? { embdType: o.embdType } : {}), ...(o.tokenizer ? { tokenizer: o.tokenizer } : {}),
          ...(o.config ? { config: o.config } : {}), ...(o.name ? { name: o.name } : {}), ...(o.imatrix ? { imatrix: o.imatrix } : {}),
        });
        bar.stop();
        if (r.imatrix && o.imatrix) {
          const { used, missing } = r.imatrix;
          const m = r.imatrixInfo;
          const about = m ? ` (${m.format}${m.chunks ? `, ${m.chunks} chunks` : ''}${m.datasets.length ? ` of ${m.datasets.join(', ')}` : ''})` : '';
          const shown = missing.slice(0, 4).join(', ') + (missing.length > 4 ? ', …' : '');
          process.stderr.write(`grok: imatrix: ${o.imatrix}${about}: ${used} tensors weighted${missing.length ? `, ${missing.length} without an entry (${shown})` : ''}\n`);
        }
        process.stderr.write(`grok: wrote ${o.out}: ${r.tensors.length} tensors, ${(r.fileBytes / 2 ** 20).toFixed(1)} MiB, vocabulary: ${r.vocabulary}\n`);
        if (r.vocabulary === 'synthetic') process.stderr.write('grok: note: no --tokenizer given: the file carries a synthetic stand-in vocabulary (llama.cpp requires tokenizer keys)\n');
        if (o.stats) process.stdout.write(`${summarise(r)}\n`);
      } finally {
        bar.stop();
      }
    });
}

interface SynthCliOptions { preset: 'grok1' | 'grok2' | 'tiny'; layers: number; form: 'gguf' | 'ckpt-0' | 'release'; type?: BlockType; out: string; embdType?: BlockType; tokenizer?: string; threads: number; progress?: boolean; seed?: number; vocab?: number }

export function synthCommand(): Command {
  return commonOptions(new Command('synth')
    .summary('write a random-weight model with Grok-1 or Grok-2 widths (benchmark subject)')
    .description('A random-weight grok model with a preset\'s true widths (grok1: D 6144, 48/8 heads of 128, F 32768, 8 experts, vocab 131072; grok2: D 8192, 64/8 heads of 128, experts 16384 wide, dense MLP 32768, vocab 131072) and N layers.')
    .addOption(new Option('--preset <name>', 'widths').choices(['grok1', 'grok2', 'tiny']).makeOptionMandatory())
    .requiredOption('--layers <n>', 'number of layers', int(1)), typeOption('-t, --type <type>', 'block type of the matrices', SYNTH_TYPES), SYNTH_TYPES)
    .addOption(new Option('--form <form>', 'gguf (--type required); ckpt-0: Grok-1\'s released int8 form, written as <out>/ckpt-0/ and <out>/config.json; release: Grok-2\'s released layout (bf16 safetensors, experts in 8 tensor-parallel shards, config.json, tokenizer.tok.json) in <out>/').choices(['gguf', 'ckpt-0', 'release']).default('gguf'))
    .option('--seed <n>', 'random seed', int(0))
    .option('--vocab <n>', 'vocabulary size (default: the preset\'s)', int(4))
    .addHelpText('after', `
A 2-layer grok1 Q8_0 slice is ≈ 11.3 GB; in ckpt-0 form a grok1 layer is 4.9 GB and the embedding
3.2 GB (less with --vocab): check free disk space first.
Examples:
  grok synth --preset grok1 --layers 2 --type q8_0 --out slice.gguf
  grok synth --preset grok1 --layers 1 --vocab 8192 --form ckpt-0 --out slice-ckpt     # then: grok convert slice-ckpt …
  grok synth --preset grok2 --layers 1 --form release --out grok2-slice                 # ≈ 12.7 GB of bf16`)
    .action(async (o: SynthCliOptions) => {
      const { PRESETS, synthModel, synthCheckpoint } = await import('../convert/synth.js');
      const config = { ...PRESETS[o.preset]!, nLayers: o.layers, ...(o.vocab === undefined ? {} : { vocabSize: o.vocab }) };
      if ((o.form === 'release') !== (config.family === 'grok-2')) {
        throw new UsageError(o.form === 'release' ? '--form release writes Grok-2\'s layout: use --preset grok2' : `--preset grok2 is written in Grok-2's release layout: add --form release (then grok convert it to GGUF)`);
      }
      const { bar, onProgress } = barFor('synth', o.progress);
      if (o.form === 'release') {
        try {
          const { synthGrok2Release } = await import('../convert/synth-grok2.js');
          const size = synthGrok2Release({ config, dir: o.out, onProgress, ...(o.seed === undefined ? {} : { seed: o.seed }) });
          bar.stop();
          process.stderr.write(`grok: wrote ${o.out}/ (Grok-2 release layout): ${(size / 2 ** 20).toFixed(1)} MiB of tensors\n`);
        } finally {
          bar.stop();
        }
        return;
      }
      if (o.form === 'ckpt-0') {
        try {
          const size = synthCheckpoint({ config, dir: o.out, onProgress, ...(o.seed === undefined ? {} : { seed: o.seed }) });
          bar.stop();
          process.stderr.write(`grok: wrote ${o.out}/ckpt-0 and ${o.out}/config.json: ${(size / 2 ** 20).toFixed(1)} MiB of tensors\n`);
        } finally {
          bar.stop();
        }
        return;
      }
      if (!o.type) throw new UsageError('synth writes a GGUF unless --form ckpt-0: give --type (e.g. --type q8_0)');
      const type = o.type;
      try {
        const size = await synthModel({
          config, type, out: o.out, threads: o.threads, onProgress,
          ...(o.seed === undefined ? {} : { seed: o.seed }), ...(o.tokenizer ? { tokenizer: o.tokenizer } : {}), ...(o.embdType ? { embdType: o.embdType } : {}),
        });
        bar.stop();
        process.stderr.write(`grok: wrote ${o.out}: ${(size / 2 ** 20).toFixed(1)} MiB\n`);
      } finally {
        bar.stop();
      }
    });
}

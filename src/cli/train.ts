/**
 * `grok train --config models/default/train.json [--out DIR]`: trains a small model with Grok-1's
 * architecture from a recipe (src/train/recipe.ts) and writes OUT/tokenizer.model, OUT/model.gguf and
 * OUT/metrics.json. Progress on stderr: log lines, and a bar on a terminal.
 */
import { Command } from 'commander';
import type { TrainProgress } from '../train/loop.js';
import { int } from './options.js';
import { progressBar } from './progress.js';

interface TrainCliOptions { config: string; out?: string; work?: string; steps?: number; exportOnly?: boolean; data?: string; progress: boolean }

function log(line: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

export function trainCommand(): Command {
  return new Command('train')
    .summary('train a small Grok-architecture model from scratch (the embedded default model)')
    .requiredOption('--config <file>', 'training recipe (JSON): data, tokenizer, model, train sections (see models/default/train.json); its paths are relative to it')
    .option('--out <dir>', 'where tokenizer.model, model.gguf and metrics.json are written (default: the recipe\'s folder)')
    .option('--work <dir>', 'checkpoint folder (default: data/train/<name of OUT>); a run resumes from WORK/checkpoint.bin')
    .option('--steps <n>', 'stop after step n (the schedule still follows the recipe\'s step count)', int(1))
    .option('--data <file>', 'train on this text file instead of the recipe\'s data (its last 5 % of lines are the validation split)')
    .option('--export-only', 'skip training: export OUT/model.gguf and metrics from the latest checkpoint')
    .option('--no-progress', 'no progress bar (log lines only)')
    .addHelpText('after', `
The default model's recipe reads the King James Bible from Debian's bible-kjv-text package
(apt-get install bible-kjv bible-kjv-text); grok never installs anything itself.`)
    .action(async (o: TrainCliOptions) => {
      const { runRecipe } = await import('../train/recipe.js');
      const bar = progressBar('train |{bar}| {value}/{total} steps | loss {loss} | aux {aux} | lr {lr} | {tps} tok/s | ETA {eta_formatted}', { show: o.progress && process.stderr.isTTY === true });
      const onProgress = ({ step, steps, last }: TrainProgress) => bar.update(step, steps, last
        ? { loss: last.loss.toFixed(3), aux: last.auxLoss.toFixed(4), lr: last.lr.toExponential(2), tps: last.tokensPerSecond.toFixed(0) }
        : { loss: '-', aux: '-', lr: '-', tps: '-' });
      try {
        await runRecipe(o.config, {
          log, onProgress,
          ...(o.out ? { out: o.out } : {}), ...(o.work ? { work: o.work } : {}), ...(o.steps ? { steps: o.steps } : {}),
          ...(o.exportOnly ? { exportOnly: true } : {}), ...(o.data ? { data: o.data } : {}),
        });
      } finally {
        bar.stop();
      }
    });
}

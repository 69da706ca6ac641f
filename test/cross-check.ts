/**
 * Cross-checks against outside tools (llama.cpp, SentencePiece in Python, Chromium, qemu): in CI (CI set
 * to true or 1) a missing tool is a FAILURE, so CI can never pass without the comparison; elsewhere the test
 * is skipped and one line says what was not cross-checked, so a plain clone's `npm test` still passes.
 */
import { test, type TestContext } from 'node:test';

export const IN_CI = ['true', '1'].includes((process.env.CI ?? '').toLowerCase());

export interface Tool<T> {
  readonly name: string;
  readonly value: T | undefined;
  /** Why the tool is unavailable (undefined when it is available). */
  readonly missing: string | undefined;
}

/** Probe a tool once per test file; prints the "not cross-checked" line outside CI when it is missing. */
export async function probeTool<T>(name: string, probe: () => T | Promise<T>): Promise<Tool<T>> {
  try {
    return { name, value: await probe(), missing: undefined };
  } catch (e) {
    const missing = (e as Error).message.split('\n')[0]!;
    if (!IN_CI) process.stdout.write(`# not cross-checked against ${name}: ${missing}\n`);
    return { name, value: undefined, missing };
  }
}

/** A test that needs `tool`: runs with its value; without it, fails in CI and skips elsewhere. */
export function toolTest<T>(tool: Tool<T>, name: string, fn: (value: T, t: TestContext) => void | Promise<void>): void {
  if (tool.missing === undefined) test(name, (t) => fn(tool.value as T, t));
  else if (IN_CI) test(name, () => { throw new Error(`${tool.name} is required in CI for this cross-check: ${tool.missing}`); });
  else test(name, { skip: `${tool.name} unavailable: ${tool.missing}` }, () => undefined);
}

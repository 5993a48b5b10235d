// The public surface's types, checked by the compiler: the fixture in test/types compiles as users write it, and a
// CommonJS consumer without esModuleInterop compiles against the built declarations.
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const tsc = resolve('node_modules/typescript/bin/tsc');

async function compile(project: string): Promise<string> {
  try {
    await run(process.execPath, [tsc, '-p', project], { timeout: 120_000 });
    return '';
  } catch (err) {
    return String((err as { stdout?: string }).stdout ?? err);
  }
}

describe('types', () => {
  it('the public API as users write it: Node event helpers, typed channels, code unions, writes, the stream', async () => {
    expect(await compile('test/types/tsconfig.json')).toBe('');
  }, 120_000);

  it('a CommonJS consumer without esModuleInterop compiles against dist/index.d.cts', async () => {
    expect(await compile('test/types/cjs/tsconfig.json')).toBe('');
  }, 120_000);
});

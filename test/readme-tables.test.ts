// The README's failure table is what users code against: it is read here and checked against classify(), both ways,
// so a code added to one and not the other fails the suite.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BY_CODE, TLS_VERIFY_CODES, classify } from '../src/classify.js';
import type { FailureKind, FailurePhase } from '../src/types.js';

interface Row {
  kind: FailureKind;
  text: string;
  retried: boolean;
  /** Each code named in the row, with the phases the row says it applies to. */
  codes: Array<{ code: string; phases: FailurePhase[] }>;
}

const ALL_PHASES: FailurePhase[] = ['connect', 'handshake', 'open'];

/** The rows of the table under "| kind | codes | retried |". */
function failureTable(): Row[] {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const lines = readme.split('\n');
  const header = lines.findIndex((l) => /^\| kind \| codes \| retried \|$/.test(l));
  expect(header, 'the failure table header').toBeGreaterThan(0);
  const rows: Row[] = [];
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    const [kindCell, text, retriedCell] = line.split(' | ').map((c) => c.replace(/^\| ?| ?\|$/g, '').trim());
    const kind = /^`([a-z-]+)`$/.exec(kindCell!)?.[1];
    expect(kind, `kind cell of ${line}`).toBeDefined();
    expect(retriedCell, `retried cell of ${line}`).toMatch(/^(yes|no|\*\*no\*\* \(reason `fatal`\))$/);
    const codes: Row['codes'] = [];
    // Every backticked all-caps token is a code; `ERR_SSL_*` stands for any code with that prefix.
    for (const m of text!.matchAll(/`([A-Z][A-Z0-9_]*(?:\*)?)`( before open| once open)?/g)) {
      const phases: FailurePhase[] = m[2] === ' before open' ? ['connect', 'handshake'] : m[2] === ' once open' ? ['open'] : ALL_PHASES;
      codes.push({ code: m[1]!.replace(/\*$/, 'SOME_REASON'), phases });
    }
    rows.push({ kind: kind as FailureKind, text: text!, retried: retriedCell === 'yes', codes });
  }
  return rows;
}

const err = (code: string): Error => Object.assign(new Error('message text is never read'), { code });

describe('README failure table', () => {
  const rows = failureTable();

  it('lists every kind', () => {
    const kinds = new Set(rows.map((r) => r.kind));
    const all: FailureKind[] = [
      'reset', 'broken-pipe', 'peer-closed', 'refused', 'connect-timeout', 'handshake', 'heartbeat-timeout',
      'keepalive-timeout', 'unreachable', 'dns', 'tls', 'aborted', 'resource', 'protocol', 'unknown',
    ];
    expect([...kinds].sort()).toEqual([...all].sort());
  });

  it.each(rows.flatMap((r) => r.codes.map((c) => [c.code, c.phases.join('/'), r.kind, r.retried, c.phases] as const)))(
    '%s in %s: %s, retried %s',
    (code, _, kind, retried, phases) => {
      for (const phase of phases) expect(classify(err(code), phase)).toEqual({ kind, code, retryable: retried });
    },
  );

  it('"anything else" is unknown and retried, except in the handshake, where it is a handshake failure', () => {
    const row = rows.find((r) => r.text === 'anything else');
    expect(row).toMatchObject({ kind: 'unknown', retried: true });
    expect(classify(err('E_NOT_A_CODE'), 'open')).toEqual({ kind: 'unknown', code: 'E_NOT_A_CODE', retryable: true });
    expect(classify(err('E_NOT_A_CODE'), 'handshake')).toMatchObject({ kind: 'handshake', retryable: true });
  });

  it('names every code classify() knows, and the certificate codes it lists are verification codes', () => {
    const named = new Set(rows.flatMap((r) => r.codes.map((c) => c.code)));
    for (const code of [...Object.keys(BY_CODE), 'ETIMEDOUT']) expect(named, code).toContain(code);
    const listed = rows.find((r) => r.kind === 'tls')!.codes.map((c) => c.code).filter((c) => !/^(ERR_|EPROTO)/.test(c));
    expect(listed.length).toBeGreaterThan(0);
    for (const code of listed) expect(TLS_VERIFY_CODES.has(code), code).toBe(true);
  });
});

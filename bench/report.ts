// What a benchmark hands back, and BENCHMARKS.md made from it: machine, Node, date and command first, then one line per
// goal, then each comparison's numbers.
import os from 'node:os';
import type { Summary } from './stats.js';

export interface Goal {
  /** e.g. "bulk throughput resock/raw >= 0.97". */
  goal: string;
  measured: string;
  /** undefined: not judged (smoke profile). */
  pass: boolean | undefined;
}

export interface Section {
  title: string;
  /** How it was measured, in a sentence or two. */
  method: string;
  goals: Goal[];
  /** First row is the header. */
  table: string[][];
  notes: string[];
}

export function judge(pass: boolean, smoke: boolean): boolean | undefined {
  return smoke ? undefined : pass;
}

/** `digits` decimals for the median, min, max and quartiles. */
export function summaryCells(s: Summary, digits: number): string[] {
  const f = (x: number): string => x.toFixed(digits);
  return [f(s.median), `${f(s.min)} – ${f(s.max)}`, `${f(s.q1)} – ${f(s.q3)}`];
}

export const SUMMARY_HEAD = ['median', 'min – max', 'IQR (q1 – q3)'];

export function ratio(x: number, digits = 3): string {
  return `${x.toFixed(digits)}x`;
}

export interface RunInfo {
  profile: string;
  command: string;
  startedAt: Date;
  seconds: number;
}

export function machine(): string[] {
  const cpus = os.cpus();
  const model = cpus[0]?.model.trim() ?? 'unknown CPU';
  const gib = (os.totalmem() / 1024 ** 3).toFixed(1);
  return [
    `- Machine: ${model}, ${cpus.length} cores, ${gib} GiB memory; ${os.type()} ${os.release()} ${os.arch()}`,
    `- Node: ${process.version}`,
  ];
}

const mark = (pass: boolean | undefined): string => (pass === undefined ? 'not judged' : pass ? 'pass' : '**miss**');

export function render(sections: readonly Section[], run: RunInfo): string {
  const out: string[] = ['# Benchmarks', ''];
  out.push('resock against raw `net.Socket`, side by side in one run, over loopback. Written by `npm run bench`; see `bench/README.md`.', '');
  out.push(...machine());
  out.push(`- Date: ${run.startedAt.toISOString()} (run took ${Math.round(run.seconds)} s)`);
  out.push(`- Command: \`${run.command}\` (profile ${run.profile})`, '');

  out.push('## Goals', '', '| goal | measured | result |', '|---|---|---|');
  for (const s of sections) for (const g of s.goals) out.push(`| ${g.goal} | ${g.measured} | ${mark(g.pass)} |`);
  out.push('');

  sections.forEach((s, i) => {
    out.push(`## ${i + 1}. ${s.title}`, '', s.method, '');
    const [head, ...rows] = s.table;
    if (head !== undefined) {
      out.push(`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`);
      for (const r of rows) out.push(`| ${r.join(' | ')} |`);
      out.push('');
    }
    for (const n of s.notes) out.push(`- ${n}`);
    if (s.notes.length > 0) out.push('');
  });
  return out.join('\n');
}

// The write ledger alone: a model of Node's buffer (bytes held = the newest writes' bytes) drives it, and every write
// ends either settled (in the kernel) or taken back whole, never both, never cut.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WriteLedger } from '../src/ledger.js';

interface W {
  readonly id: number;
  readonly data: { readonly length: number };
}

const write = (id: number, length: number): W => ({ id, data: { length } });

describe('WriteLedger', () => {
  it('settle() drops exactly the writes older than the bytes Node still holds', () => {
    const l = new WriteLedger<W>();
    l.push(write(1, 10));
    l.push(write(2, 10));
    l.push(write(3, 10));
    l.settle(15); // write 3 whole and half of write 2 are still held
    expect(l.length).toBe(2);
    expect(l.bytes).toBe(20);
    l.settle(10);
    expect(l.length).toBe(1);
    l.settle(0);
    expect(l.length).toBe(0);
  });

  it('takeUnsent() returns every write holding one of the last bytes, whole, oldest first', () => {
    const l = new WriteLedger<W>();
    for (let i = 1; i <= 4; i++) l.push(write(i, 10));
    expect(l.takeUnsent(11).map((w) => w.id)).toEqual([3, 4]);
    expect(l.length).toBe(0);
    for (let i = 1; i <= 3; i++) l.push(write(i, 10));
    expect(l.takeUnsent(Number.POSITIVE_INFINITY).map((w) => w.id)).toEqual([1, 2, 3]);
    l.push(write(9, 5));
    expect(l.takeUnsent(0)).toEqual([]);
  });

  it('property: whatever the writes and settle points, a write is taken back whole iff some of its bytes never left', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ size: fc.integer({ min: 0, max: 5000 }), drainTo: fc.double({ min: 0, max: 1, noNaN: true }) }), {
          maxLength: 60,
        }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (steps, cutAt) => {
          const l = new WriteLedger<W>();
          // The model: byte offsets of every write, and how far the stream has reached the kernel.
          const writes: Array<{ id: number; start: number; end: number }> = [];
          let total = 0;
          let sent = 0;
          steps.forEach((step, id) => {
            writes.push({ id, start: total, end: total + step.size });
            total += step.size;
            l.push(write(id, step.size));
            // Some of what is held reaches the kernel.
            sent = Math.max(sent, Math.floor(sent + (total - sent) * step.drainTo));
            l.settle(total - sent);
          });
          // The connection dies with part of the rest unsent.
          const finalSent = Math.floor(sent + (total - sent) * cutAt);
          const taken = l.takeUnsent(total - finalSent).map((w) => w.id);
          const expected = writes.filter((w) => w.end > finalSent && w.end > w.start).map((w) => w.id);
          // Zero-length writes at the cut are harmless either way: compare the writes that carry bytes.
          const carrying = new Set(writes.filter((w) => w.end > w.start).map((w) => w.id));
          expect(taken.filter((id) => carrying.has(id))).toEqual(expected);
          // Taken back in order, and never a write wholly in the kernel before the cut.
          for (const id of taken) expect(writes[id]!.end > finalSent || writes[id]!.end === writes[id]!.start).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });
});

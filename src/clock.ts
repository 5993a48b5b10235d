// The clock behind every timestamp resock keeps: performance.now() (monotonic, unaffected by wall-clock changes) in
// whole milliseconds. Whole, because V8 keeps a field that only ever holds small integers inside its object, while a
// field that has once held a fraction costs a separate 16-byte number per object; a connection keeps about ten
// timestamps, so fractions would add ~150 bytes to every one of them. Small integers reach 2^31 ms, 24.8 days of process
// uptime; past that the same values take the boxed form, which changes their cost, not their meaning.
export const now = (): number => Math.floor(performance.now());

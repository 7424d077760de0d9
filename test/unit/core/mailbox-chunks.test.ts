import { describe, expect, it } from 'vitest';
import { toChunks } from '#core/mailbox/chunks.js';

describe('toChunks', () => {
  it('cuts at the message count and at the byte budget, whichever comes first', () => {
    // Prepare
    const messages = Array.from({ length: 7 }, (_, i) => ({ uid: i + 1, size: 10 }));

    // Act & Assess
    expect(toChunks(messages, 3, 1000)).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
    expect(toChunks(messages, 100, 25)).toEqual([[1, 2], [3, 4], [5, 6], [7]]);
  });

  it('gives a message bigger than the budget a chunk of its own, never an empty chunk', () => {
    const messages = [
      { uid: 4, size: 5 },
      { uid: 9, size: 500 },
      { uid: 12, size: 5 },
    ];

    expect(toChunks(messages, 10, 100)).toEqual([[4], [9], [12]]);
    expect(toChunks([], 10, 100)).toEqual([]);
  });
});

import { describe, expect, it } from 'vitest';
import { createByteBudget } from '#core/byte-budget.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('createByteBudget', () => {
  it('grants while the bytes fit and makes the rest wait, in order, until room is released', async () => {
    // Prepare
    const budget = createByteBudget(100);
    const granted: string[] = [];
    const take = (name: string, bytes: number) =>
      budget.acquire(bytes).then((release) => (granted.push(name), release));

    // Act
    const a = take('a', 60);
    const b = take('b', 50);
    const c = take('c', 10);
    await tick();
    const afterFirst = [...granted];
    (await a)();
    await tick();

    // Assess: c fits beside a but waits behind b (first come, first served)
    expect(afterFirst).toEqual(['a']);
    expect(granted).toEqual(['a', 'b', 'c']);
    expect(budget.held).toBe(60);
    (await b)();
    (await c)();
    expect(budget.held).toBe(0);
  });

  it('lets a request bigger than the whole budget run alone rather than never', async () => {
    const budget = createByteBudget(100);
    const small = await budget.acquire(10);
    let bigGranted = false;
    const big = budget.acquire(500).then((release) => ((bigGranted = true), release));

    await tick();
    expect(bigGranted).toBe(false);
    small();
    await tick();

    expect(bigGranted).toBe(true);
    expect(budget.held).toBe(500);
    const release = await big;
    release();
    release();
    expect(budget.held).toBe(0);
  });

  it('gives up a wait whose budget ran out, holding nothing, and lets the next in line through', async () => {
    // Prepare
    const budget = createByteBudget(100);
    const first = await budget.acquire(80);
    const controller = new AbortController();
    const stuck = budget.acquire(50, controller.signal);
    let smallGranted = false;
    void budget.acquire(10).then(() => (smallGranted = true));

    // Act
    controller.abort();

    // Assess
    await expect(stuck).rejects.toMatchObject({ name: 'AttemptAbortedError' });
    await tick();
    expect(smallGranted).toBe(true);
    expect(budget.held).toBe(90);
    first();
  });
});

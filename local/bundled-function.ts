import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const RUNTIME = fileURLToPath(new URL('./lambda-runtime.mjs', import.meta.url));

export type BundledFunctionOptions = {
  name: string;
  /** The bundle's entry file (`index.mjs`). */
  entry: string;
  /** The whole environment of the function's processes: nothing of the twin's own leaks in. */
  environment: Record<string, string>;
  memoryMb: number;
  /** Instances running at once at most, as Lambda's concurrency. @default 1 */
  maxInstances?: number;
  /** Every line an instance prints (its logs and metrics). */
  onLine: (line: string) => void;
};

type Reply =
  | { type: 'ready' }
  | { type: 'init-error'; error: { name: string; message: string } }
  | { type: 'result'; id: number; result: unknown }
  | { type: 'error'; id: number; error: { name: string; message: string } };

type Instance = {
  child: ChildProcess;
  ready: Promise<void>;
  pending?: { id: number; resolve(value: unknown): void; reject(error: Error): void };
};

/** A failure as the Lambda service reports one: the function's own error, an init failure, or a timeout. */
class InvocationError extends Error {
  constructor(functionName: string, detail: { name: string; message: string }) {
    super(`${functionName}: ${detail.name}: ${detail.message}`);
    this.name = 'InvocationError';
  }
}

/**
 * A function bundle run as Lambda runs it: instances (Node.js processes) started on demand up to a limit, each
 * handling one invocation at a time and kept warm between them; an instance that fails to start, crashes or runs
 * past its deadline is discarded, and the next invocation starts a new one.
 */
export function createBundledFunction(options: BundledFunctionOptions) {
  const idle: Instance[] = [];
  const all = new Set<Instance>();
  const waiting: Array<(instance: Instance) => void> = [];
  let nextId = 0;
  let stopped = false;

  const start = (): Instance => {
    const child = spawn(process.execPath, [RUNTIME, options.entry, options.name, String(options.memoryMb)], {
      env: options.environment,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    for (const stream of [child.stdout, child.stderr])
      if (stream) createInterface({ input: stream }).on('line', options.onLine);
    const instance: Instance = { child, ready: Promise.resolve() };
    instance.ready = new Promise<void>((resolve, reject) => {
      child.on('message', (reply: Reply) => {
        if (reply.type === 'ready') resolve();
        else if (reply.type === 'init-error')
          reject(
            new InvocationError(options.name, {
              name: 'Runtime.InitError',
              message: `${reply.error.name}: ${reply.error.message}`,
            }),
          );
        else if (instance.pending?.id === reply.id) {
          const { pending } = instance;
          instance.pending = undefined;
          if (reply.type === 'result') pending.resolve(reply.result);
          else pending.reject(new InvocationError(options.name, reply.error));
        }
      });
      child.on('exit', (code, signal) => {
        all.delete(instance);
        const error = new InvocationError(options.name, {
          name: 'Runtime.ExitError',
          message: `the instance exited (${signal ?? `code ${code}`})`,
        });
        reject(error);
        instance.pending?.reject(error);
        instance.pending = undefined;
      });
    });
    instance.ready.catch(() => {});
    all.add(instance);
    return instance;
  };

  const acquire = (): Promise<Instance> => {
    const warm = idle.pop();
    if (warm) return Promise.resolve(warm);
    if (all.size < (options.maxInstances ?? 1)) return Promise.resolve(start());
    return new Promise((resolve) => waiting.push(resolve));
  };

  const release = (instance: Instance) => {
    if (!all.has(instance) || stopped) return;
    const next = waiting.shift();
    if (next) next(instance);
    else idle.push(instance);
  };

  return {
    /** Invokes the function with `event`, as Lambda would, with a deadline `timeoutMs` from now. */
    async invoke(event: unknown, timeoutMs: number): Promise<unknown> {
      if (stopped) throw new InvocationError(options.name, { name: 'Stopped', message: 'the twin is stopping' });
      const instance = await acquire();
      try {
        await instance.ready;
      } catch (error) {
        // Lambda retries the init with the next invocation: a later instance starts afresh.
        if (waiting.length > 0) waiting.shift()?.(start());
        throw error;
      }
      nextId += 1;
      const id = nextId;
      try {
        return await new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            // As Lambda does at the timeout: the instance is stopped, whatever it was doing.
            instance.child.kill('SIGKILL');
            reject(
              new InvocationError(options.name, {
                name: 'Sandbox.Timedout',
                message: `Task timed out after ${(timeoutMs / 1000).toFixed(2)} seconds`,
              }),
            );
          }, timeoutMs);
          instance.pending = {
            id,
            resolve: (v) => {
              clearTimeout(timer);
              resolve(v);
            },
            reject: (e) => {
              clearTimeout(timer);
              reject(e);
            },
          };
          instance.child.send({ id, event, timeoutMs });
        });
      } finally {
        if (all.has(instance)) release(instance);
        else if (waiting.length > 0) waiting.shift()?.(start());
      }
    },
    /** Stops every instance, by its PID. */
    async stop(): Promise<void> {
      stopped = true;
      const exits = [...all].map(
        (instance) =>
          new Promise<void>((resolve) =>
            instance.child.exitCode !== null ? resolve() : instance.child.once('exit', () => resolve()),
          ),
      );
      for (const instance of all) instance.child.kill('SIGTERM');
      const timer = setTimeout(() => {
        for (const instance of all) instance.child.kill('SIGKILL');
      }, 2000);
      await Promise.all(exits);
      clearTimeout(timer);
    },
  };
}

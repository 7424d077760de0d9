// Runs one Lambda function's bundle as the Node.js runtime does, in a process of its own: imports the entry once
// (its top-level await is the cold start), then takes invocations from the parent over IPC, one at a time, calling
// the exported `handler` with a context whose deadline the parent set. Plain JavaScript, no loader: what runs is
// exactly what the stack deploys.
import { pathToFileURL } from 'node:url';
import { createLambdaContext } from './lambda-context-object.mjs';

const [entry, functionName, memoryMb] = process.argv.slice(2);
const describe = (error) => ({ name: error?.name ?? 'Error', message: error?.message ?? String(error) });

let handler;
try {
  ({ handler } = await import(pathToFileURL(entry).href));
  if (typeof handler !== 'function') throw new TypeError(`${entry} exports no function named handler`);
} catch (error) {
  process.send({ type: 'init-error', error: describe(error) }, () => process.exit(1));
}

if (handler) {
  process.on('message', async (message) => {
    const context = createLambdaContext(functionName, message.timeoutMs, memoryMb);
    try {
      const result = await handler(message.event, context);
      process.send({ type: 'result', id: message.id, result: result ?? null });
    } catch (error) {
      process.send({ type: 'error', id: message.id, error: describe(error) });
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.send({ type: 'ready' });
}

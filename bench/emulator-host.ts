import { startDynalite, startFauxqs } from '#local/emulators.js';

/**
 * Runs fauxqs and dynalite in a process of their own for the benchmarks, as the real services run outside the
 * function: the emulators' CPU does not share an event loop with the code measured. Sends its endpoints to the
 * parent over IPC and stops when told to, or when the parent goes away.
 */
const fauxqs = await startFauxqs();
const dynamo = await startDynalite();
const stop = async () => {
  await fauxqs.stop();
  await dynamo.stop();
  process.exit(0);
};
process.on('message', (message) => {
  if (message === 'stop') void stop();
});
process.on('disconnect', () => void stop());
process.send?.({ fauxqs: fauxqs.endpoint, dynamodb: dynamo.endpoint });

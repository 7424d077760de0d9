import { startDynalite, startFauxqs, startSesLocal } from '#local/emulators.js';
import { startSmtpSink } from '#local/smtp-sink.js';

/**
 * Runs fauxqs and dynalite (with `--smtp-sink`, a plaintext loopback SMTP sink that counts and discards what it
 * receives; with `--ses`, aws-ses-v2-local) in a process of their own for the benchmarks, as the real services run
 * outside the function: their CPU and memory are not the measured process's. Sends its endpoints to the parent over
 * IPC, answers `count` with the messages received so far, and stops when told to or when the parent goes away.
 */
const fauxqs = await startFauxqs();
const dynamo = await startDynalite();
const ses = process.argv.includes('--ses') ? await startSesLocal() : undefined;
let received = 0;
const sink = process.argv.includes('--smtp-sink')
  ? await startSmtpSink({
      onMessage: () => {
        received += 1;
        sink?.received.splice(0);
      },
    })
  : undefined;
const stop = async () => {
  await sink?.stop();
  await ses?.stop();
  await fauxqs.stop();
  await dynamo.stop();
  process.exit(0);
};
process.on('message', (message) => {
  if (message === 'stop') void stop();
  if (message === 'count') process.send?.({ count: received });
});
process.on('disconnect', () => void stop());
process.send?.({
  fauxqs: fauxqs.endpoint,
  dynamodb: dynamo.endpoint,
  ses: ses?.endpoint,
  smtp: sink ? { host: sink.host, port: sink.port } : undefined,
});

import { startDynalite, startFauxqs, startSesLocal, type Emulator } from '#local/emulators.js';
import { startLocalSecretsManager } from '#local/local-secrets-manager.js';
import { startSmtpSink } from '#local/smtp-sink.js';
import { delayAnswers, LATENCY_PROFILES, startSmtpLatencyProxy, type LatencyProfileName } from './latency.js';

/**
 * Runs some of the services the benchmarks stand AWS and the relay in with, in a process of their own, as the real
 * services run outside the function: their CPU and memory are not the measured process's, and services in different
 * hosts do not wait on each other's thread. `--dynamodb` (dynalite), `--fauxqs` (SQS, SNS and S3), `--ses`
 * (aws-ses-v2-local), `--smtp-sink` (a plaintext loopback SMTP sink that counts and discards what it receives),
 * `--secrets` (a stand-in Secrets Manager); with `--latency`, each answering after its profile's delay (bench/latency.ts).
 * Sends its endpoints to the parent over IPC, answers `count` with the messages received so far (`counts` with the
 * requests seen since the last time, `{ latency }` switches their profile), and stops when told to or when
 * the parent goes away.
 */
const has = (flag: string) => process.argv.includes(flag);
const services: Emulator[] = [];
const started = async <T extends Emulator>(service: Promise<T>) => {
  const running = await service;
  services.push(running);
  return running;
};
const fauxqs = has('--fauxqs') ? await started(startFauxqs()) : undefined;
const dynamo = has('--dynamodb') ? await started(startDynalite()) : undefined;
const ses = has('--ses') ? await started(startSesLocal()) : undefined;
let received = 0;
const sink = has('--smtp-sink')
  ? await startSmtpSink({
      onMessage: () => {
        received += 1;
        sink?.received.splice(0);
      },
    })
  : undefined;
// The secrets a function reads at start (the SMTP and mailbox sign-ins), served on loopback as Secrets Manager would.
const credentials = { username: 'bench', password: 'bench-pass' };
const secrets = has('--secrets')
  ? await startLocalSecretsManager(() => ({ 'email-dispatch/smtp': credentials, mailbox: credentials }))
  : undefined;
const latency = has('--latency');
// AWS's services answer after their profile's delay, timed on the emulators' own servers; the relay behind a proxy
// that holds each SMTP command.
const timed = (service: Emulator | undefined) =>
  latency && service?.server ? delayAnswers(service.server) : undefined;
const http = [timed(fauxqs), timed(dynamo), timed(ses)].filter((t) => t !== undefined);
const smtp = latency && sink ? await startSmtpLatencyProxy(sink) : undefined;
const all = [...http, ...(smtp ? [smtp] : [])];
const stop = async () => {
  await secrets?.stop();
  await smtp?.stop();
  await sink?.stop();
  for (const service of services.reverse()) await service.stop();
  process.exit(0);
};
process.on('message', (message: unknown) => {
  if (message === 'stop') void stop();
  if (message === 'count') process.send?.({ count: received });
  if (message === 'counts') process.send?.({ counts: Object.assign({}, ...all.map((proxy) => proxy.takeCounts())) });
  if (typeof message === 'object' && message && 'latency' in message) {
    const name = (message as { latency: LatencyProfileName | null }).latency;
    const profile = name ? LATENCY_PROFILES[name] : undefined;
    for (const proxy of all) proxy.use(profile);
    process.send?.({ latency: name });
  }
});
process.on('disconnect', () => void stop());
process.send?.({
  fauxqs: fauxqs?.endpoint,
  dynamodb: dynamo?.endpoint,
  ses: ses?.endpoint,
  smtp: smtp ? { host: smtp.host, port: smtp.port } : sink ? { host: sink.host, port: sink.port } : undefined,
  secrets: secrets?.endpoint,
});

import { startDynalite, startFauxqs, startSesLocal } from '#local/emulators.js';
import { startLocalSecretsManager } from '#local/local-secrets-manager.js';
import { startSmtpSink } from '#local/smtp-sink.js';
import { LATENCY_PROFILES, startHttpLatencyProxy, startSmtpLatencyProxy, type LatencyProfileName } from './latency.js';

/**
 * Runs fauxqs and dynalite (with `--latency`, each behind a latency-injecting proxy, bench/latency.ts; with
 * `--secrets`, a stand-in Secrets Manager; with `--smtp-sink`, a plaintext loopback SMTP sink that counts and
 * discards what it receives; with `--ses`, aws-ses-v2-local) in a process of their own for the benchmarks, as the real services run
 * outside the function: their CPU and memory are not the measured process's. Sends its endpoints to the parent over
 * IPC, answers `count` with the messages received so far (`counts` with the requests the proxies saw since the last
 * time, `{ latency }` switches their profile), and stops when told to or when the parent goes away.
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
// The secrets a function reads at start (the SMTP and mailbox sign-ins), served on loopback as Secrets Manager would.
const credentials = { username: 'bench', password: 'bench-pass' };
const secrets = process.argv.includes('--secrets')
  ? await startLocalSecretsManager(() => ({ 'email-dispatch/smtp': credentials, mailbox: credentials }))
  : undefined;
const latency = process.argv.includes('--latency');
const proxies = latency
  ? {
      fauxqs: await startHttpLatencyProxy(fauxqs.endpoint),
      dynamodb: await startHttpLatencyProxy(dynamo.endpoint),
      ses: ses ? await startHttpLatencyProxy(ses.endpoint) : undefined,
      smtp: sink ? await startSmtpLatencyProxy(sink) : undefined,
    }
  : undefined;
const http = proxies ? [proxies.fauxqs, proxies.dynamodb, ...(proxies.ses ? [proxies.ses] : [])] : [];
const stop = async () => {
  await secrets?.stop();
  for (const proxy of http) await proxy.stop();
  await proxies?.smtp?.stop();
  await sink?.stop();
  await ses?.stop();
  await fauxqs.stop();
  await dynamo.stop();
  process.exit(0);
};
process.on('message', (message: unknown) => {
  if (message === 'stop') void stop();
  if (message === 'count') process.send?.({ count: received });
  if (message === 'counts') {
    const all = [...http, ...(proxies?.smtp ? [proxies.smtp] : [])].map((proxy) => proxy.takeCounts());
    process.send?.({ counts: Object.assign({}, ...all) });
  }
  if (typeof message === 'object' && message && 'latency' in message) {
    const name = (message as { latency: LatencyProfileName | null }).latency;
    const profile = name ? LATENCY_PROFILES[name] : undefined;
    for (const proxy of [...http, ...(proxies?.smtp ? [proxies.smtp] : [])]) proxy.use(profile);
    process.send?.({ latency: name });
  }
});
process.on('disconnect', () => void stop());
process.send?.({
  fauxqs: proxies?.fauxqs.endpoint ?? fauxqs.endpoint,
  dynamodb: proxies?.dynamodb.endpoint ?? dynamo.endpoint,
  ses: proxies?.ses?.endpoint ?? ses?.endpoint,
  smtp: proxies?.smtp ?? (sink ? { host: sink.host, port: sink.port } : undefined),
  secrets: secrets?.endpoint,
});

import type { Twin } from '#local/twin.js';
import { CommandError, parseCommandLine, runCommand, toInteger } from './cli.js';
import { runDemoBatch } from './demo-batch.js';
import { connectTarget, type Target } from './target.js';

const USAGE = `Usage: npm run demo [-- --timeout SECONDS]
Sends a small mixed batch through the local twin (the running one, or one it starts for the run) and prints what
happened to each job, end to end: good mail, a bounce that comes back as a DSN and suppresses its address, a
synchronous rejection, a throttled send that is retried, a duplicate, and an invalid job.

  --timeout SECONDS   how long to wait for every outcome (default 120)
  -h, --help          this text`;

await runCommand(USAGE, async () => {
  const values = parseCommandLine({ usage: USAGE, options: { timeout: { type: 'string' } } });
  const timeoutSeconds = toInteger(values.timeout, '--timeout', { min: 10, max: 3600 }) ?? 120;

  let started: Twin | undefined;
  let target: Target;
  try {
    target = await connectTarget({});
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    console.log('no twin running: starting one for the demo …');
    const { startTwin } = await import('#local/twin.js');
    started = await startTwin({});
    target = await connectTarget({});
  }
  const result = await runDemoBatch(target, {
    timeoutSeconds,
    onQueued: (count, run) =>
      console.log(
        `queued ${count} jobs (run ${run}); waiting for outcomes (a throttled retry waits for its backoff) …`,
      ),
  });
  console.log(['', ...result.lines].join('\n'));
  if (started) await started.stop();
});

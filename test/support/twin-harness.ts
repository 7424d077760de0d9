import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SETTINGS } from '#infra/settings.js';
import { startTwin, type TwinOptions } from '#local/twin.js';

/**
 * The whole twin for one test file, every server on a free loopback port, in a directory of its own, with retries
 * fast enough for a test and the web console on.
 */
export async function startTestTwin(options: Partial<TwinOptions> = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'email-dispatch-twin-'));
  const twin = await startTwin({
    dataDir,
    ports: { aws: 0, dynamodb: 0, ses: 0, smtp: 0, imap: 0 },
    settings: { ...DEFAULT_SETTINGS, retry: { baseDelaySeconds: 1, maxDelaySeconds: 2, lifetimeSeconds: 600 } },
    pollIntervalSeconds: 10,
    console: { port: 0 },
    ...options,
  });
  return {
    twin,
    dataDir,
    /** The console's base URL. */
    console: twin.manifest.console ?? '',
    async stop() {
      await twin.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export type TestTwin = Awaited<ReturnType<typeof startTestTwin>>;

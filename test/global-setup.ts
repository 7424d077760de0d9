import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describeMissing, missingDependencies } from './support/system-dependencies.js';

/**
 * Runs once before any test file: stops at once, with the install command, when a system program is missing (instead
 * of each suite timing out on it), and gives the run a temporary directory of its own that is removed afterwards,
 * whatever the tests did, so a failed or killed test leaves nothing behind in the system's.
 */
const RUN_DIR_PREFIX = 'edt-';

export default function setup(): () => void {
  // Each project of the run (quick, slow) runs this; the first one's directory serves them all.
  if (process.env.EMAIL_DISPATCH_TEST_RUN_DIR) return () => {};
  const missing = missingDependencies();
  if (missing.length > 0) {
    // A bare message: the stack of this file would say nothing more.
    const error = new Error(describeMissing(missing));
    error.stack = error.message;
    throw error;
  }
  // Each vitest project runs this; the second finds the first's directory and keeps it. The name is short because
  // Dovecot puts unix sockets below it, and a socket's path may not exceed 107 bytes.
  if (basename(tmpdir()).startsWith(RUN_DIR_PREFIX)) return () => {};
  const runDir = mkdtempSync(join(tmpdir(), RUN_DIR_PREFIX));
  // Private servers (Dovecot's unprivileged processes) must be able to reach their directories below it.
  chmodSync(runDir, 0o755);
  // Test workers start after this and inherit it: os.tmpdir() in every test, and in every child it spawns, is here.
  process.env.TMPDIR = runDir;
  process.env.EMAIL_DISPATCH_TEST_RUN_DIR = runDir;
  return () => {
    rmSync(runDir, { recursive: true, force: true });
    delete process.env.EMAIL_DISPATCH_TEST_RUN_DIR;
  };
}

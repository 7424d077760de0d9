import { spawn } from 'node:child_process';

export type Run = { code: number | null; stdout: string; stderr: string };

export const COMMANDS = {
  start: 'local/start.ts',
  send: 'tools/send.ts',
  redrive: 'tools/redrive.ts',
  demo: 'tools/demo.ts',
  cancel: 'tools/cancel.ts',
  status: 'tools/status.ts',
  template: 'tools/template.ts',
  suppression: 'tools/suppression.ts',
  tenant: 'tools/tenant.ts',
  classify: 'tools/classify.ts',
} as const;

/** Runs a command as `npm run` does (node with tsx), with its own twin directory, and collects what it printed. */
export function runCommandLine(
  command: keyof typeof COMMANDS,
  args: string[],
  options: { twinDir: string; stdin?: string; timeoutMs?: number },
): Promise<Run> {
  return runScript(COMMANDS[command], args, options);
}

/**
 * Runs a script of this repository as `npm run` runs it, with its own twin directory and any further `env`; see
 * runCommandLine.
 */
export function runScript(
  script: string,
  args: string[],
  options: { twinDir: string; stdin?: string; timeoutMs?: number; env?: Record<string, string> },
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
      cwd: process.cwd(),
      env: { ...process.env, TWIN_DIR: options.twinDir, DEBUG: '', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.stdin ?? '');
  });
}

/** A line of a Node.js stack trace. */
export const STACK_FRAME = /^\s+at .+[(:]\d+/m;

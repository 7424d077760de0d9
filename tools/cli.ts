import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';

type OptionsConfig = NonNullable<ParseArgsConfig['options']>;

// Lambda runs these functions on Node.js 22+; on an older local Node the SDK's upgrade notice is only noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Exit codes of every command: 0 done, 1 it failed, 2 it was called wrongly (with the usage printed). */
export const ExitCode = { ok: 0, failed: 1, usage: 2 } as const;

/** The command was called wrongly: a flag, a value or an input file. Printed as one line plus the usage. */
export class UsageError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UsageError';
  }
}

/** The command ran but could not do its work (nothing listening, refused by AWS): one line, no usage. */
export class CommandError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CommandError';
  }
}

/** What a command declares: its usage text (the first line names it) and its flags, for node:util parseArgs. */
export type CommandSpec<O extends OptionsConfig> = { usage: string; options: O };

const HELP = { help: { type: 'boolean', short: 'h' } } as const;

/**
 * Parses the flags strictly (an unknown flag, a missing value or a stray argument is a UsageError, not a stack trace)
 * and answers `--help`/`-h` with the usage on stdout.
 */
export function parseCommandLine<O extends OptionsConfig>(
  spec: CommandSpec<O>,
  args: string[] = process.argv.slice(2),
) {
  const parse = () =>
    parseArgs({
      args,
      options: { ...spec.options, ...HELP } as O & typeof HELP,
      strict: true,
      allowPositionals: false,
    });
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse().values;
  } catch (error) {
    throw new UsageError(toUsageLine(error as Error & { code?: string }));
  }
  if ((values as { help?: boolean }).help) {
    console.log(spec.usage);
    process.exit(ExitCode.ok);
  }
  return values;
}

/** node:util's parse errors, in one short line (they end with advice meant for scripts, not for people). */
export function toUsageLine(error: Error & { code?: string }): string {
  const first = error.message.split('\n')[0] ?? error.message;
  const option = /'(-{1,2}[^' ]*)[^']*'/.exec(first)?.[1];
  switch (error.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${option ?? first}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return /argument missing/.test(first)
        ? `${option ?? 'an option'} needs a value`
        : `${option ?? 'an option'} takes no value`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${/'([^']*)'/.exec(first)?.[1] ?? first}: every value follows its --flag`;
    default:
      return first;
  }
}

/** Reads a file named on the command line, `-` for stdin; a missing or unreadable file is a UsageError. */
export function readInput(path: string, flag: string): string {
  try {
    return readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EISDIR'
          ? 'is a directory'
          : code === 'EACCES'
            ? 'permission denied'
            : (error as Error).message;
    throw new UsageError(`${flag} ${path}: ${why}`);
  }
}

/** Parses JSON named on the command line; broken JSON is a UsageError saying where. */
export function parseJsonInput(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${source} is not valid JSON: ${(error as Error).message}`);
  }
}

/** A whole number within bounds, from a flag's value; anything else is a UsageError naming the flag. */
export function toInteger(
  value: string | undefined,
  flag: string,
  bounds: { min: number; max: number },
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < bounds.min || n > bounds.max)
    throw new UsageError(
      `${flag} must be a whole number from ${bounds.min} to ${bounds.max}, not ${JSON.stringify(value)}`,
    );
  return n;
}

/** The socket error under an SDK or fetch error, if the cause of the failure was that nothing answered. */
function refusedConnection(error: unknown, depth = 0): { address?: string; port?: number } | undefined {
  if (!error || typeof error !== 'object' || depth > 5) return undefined;
  const e = error as { code?: string; address?: string; port?: number; cause?: unknown; errors?: unknown[] };
  if (e.code === 'ECONNREFUSED') return { address: e.address, port: e.port };
  for (const inner of [e.cause, ...(e.errors ?? [])]) {
    const found = refusedConnection(inner, depth + 1);
    if (found) return found;
  }
  return undefined;
}

/** The one line a person reads when `nothing answers` is why the command failed. */
export const nothingListening = (host: string, port: number | string) =>
  `nothing is listening on ${host}:${port} — start the twin with npm start`;

/** That line, for an error whose cause is a refused connection; undefined for any other error. */
export function nothingListeningFor(error: unknown): string | undefined {
  const refused = refusedConnection(error);
  return refused && nothingListening(refused.address ?? '127.0.0.1', refused.port ?? '?');
}

/**
 * Runs a command's body and turns every failure into one line on stderr and an exit code: a UsageError also prints
 * the usage (exit 2); a refused connection names the address; anything else its message (exit 1). Never a stack
 * trace, unless DEBUG is set.
 */
export async function runCommand(usage: string, body: () => Promise<unknown>): Promise<never> {
  let code: number;
  try {
    // The body may answer an exit code; anything else is success.
    const answer = await body();
    code = typeof answer === 'number' ? answer : ExitCode.ok;
  } catch (error) {
    if (process.env.DEBUG) console.error(error);
    const refused =
      error instanceof UsageError || error instanceof CommandError ? undefined : nothingListeningFor(error);
    if (error instanceof UsageError) {
      console.error(`${error.message}\n\n${usage}`);
      code = ExitCode.usage;
    } else if (refused) {
      console.error(refused);
      code = ExitCode.failed;
    } else {
      console.error((error as Error).message ?? String(error));
      code = ExitCode.failed;
    }
  }
  // Open SDK sockets or timers must not keep a finished command alive.
  process.exit(code);
}

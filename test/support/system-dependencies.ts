import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

/** A program the test suite runs as a real peer, and the Debian package that provides it. */
export type SystemDependency = {
  /** An absolute path, or a command name looked up on PATH. */
  program: string;
  /** Debian package that installs it. */
  debianPackage: string;
  /** What the suite uses it for, in a few words. */
  usedFor: string;
};

/** Every system program the suite needs; add a row when a test starts using another. */
export const SYSTEM_DEPENDENCIES: readonly SystemDependency[] = [
  { program: 'openssl', debianPackage: 'openssl', usedFor: 'TLS certificates of the loopback SMTP and IMAP servers' },
  {
    program: process.env.DOVECOT_BIN ?? '/usr/sbin/dovecot',
    debianPackage: 'dovecot-imapd',
    usedFor: 'the IMAP server of the poller tests',
  },
  { program: '/usr/sbin/smtp-sink', debianPackage: 'postfix', usedFor: "Postfix's SMTP test server" },
  { program: '/usr/bin/chromium', debianPackage: 'chromium', usedFor: 'the browser the web console is tested in' },
];

const isExecutable = (path: string) => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/** Whether a program can be run: an executable file at its path, or one named so in a PATH directory. */
function findProgram(program: string, path = process.env.PATH ?? ''): boolean {
  if (isAbsolute(program)) return isExecutable(program);
  return path.split(delimiter).some((dir) => dir !== '' && isExecutable(join(dir, program)));
}

/** The dependencies that are missing, checked from the file system only (no program is started). */
export function missingDependencies(
  dependencies: readonly SystemDependency[] = SYSTEM_DEPENDENCIES,
  path?: string,
): SystemDependency[] {
  return dependencies.filter((d) => !findProgram(d.program, path));
}

/** What to tell someone whose machine lacks some: each program, why, and the one command that installs them all. */
export function describeMissing(missing: readonly SystemDependency[]): string {
  const packages = [...new Set(missing.map((d) => d.debianPackage))];
  // Postfix asks which mail setup to configure unless told not to; none is needed, its daemon never runs here.
  const prefix = packages.includes('postfix') ? 'DEBIAN_FRONTEND=noninteractive ' : '';
  return [
    `The tests need ${missing.length === 1 ? 'a program' : 'programs'} this machine lacks:`,
    ...missing.map((d) => `  ${d.program} (${d.debianPackage}): ${d.usedFor}`),
    'Install with:',
    `  sudo ${prefix}apt-get install -y --no-install-recommends ${packages.join(' ')}`,
  ].join('\n');
}

import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOOPBACK, freePort } from './loopback.js';
import type { TlsCertificate } from './tls-certificate.js';
import type { ImapFlow } from 'imapflow';

export type DovecotServer = {
  host: string;
  /** IMAP with STARTTLS. */
  port: number;
  /** IMAP over implicit TLS. */
  tlsPort: number;
  users: Array<{ username: string; password: string }>;
  /** Where mail lives: `<mailRoot>/<user>/Maildir`, for delivering straight into a mailbox as an MTA would. */
  mailRoot: string;
  stop(): Promise<void>;
};

const DOVECOT = process.env.DOVECOT_BIN ?? '/usr/sbin/dovecot';

/** The uid and gid of a system user, from /etc/passwd. */
function systemUser(name: string): { uid: number; gid: number } | undefined {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  const [, , uid, gid] = line?.split(':') ?? [];
  return uid && gid ? { uid: Number(uid), gid: Number(gid) } : undefined;
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, LOOPBACK, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`dovecot did not listen on ${LOOPBACK}:${port} within ${timeoutMs} ms`);
}

/**
 * A private Dovecot instance from Debian's dovecot-imapd: its own config, base and mail directories in a temp dir,
 * listening on free ports of 127.0.0.1 only, in the foreground (no systemd), stopped by its PID.
 */
export async function startDovecot(options: {
  tls: TlsCertificate;
  users: Array<{ username: string; password: string }>;
  /**
   * Also accept OAuth2 access tokens (SASL XOAUTH2 and OAUTHBEARER), checked by RFC 7662 introspection at this URL:
   * the token must be active and its `username` the user signing in. Passwords keep working beside it.
   */
  oauth2?: {
    introspectionUrl: string;
    /** The SASL mechanisms offered for tokens (Exchange Online offers only XOAUTH2). @default both */
    mechanisms?: Array<'xoauth2' | 'oauthbearer'>;
  };
}): Promise<DovecotServer> {
  const dir = mkdtempSync(join(tmpdir(), 'email-dispatch-dovecot-'));
  chmodSync(dir, 0o755);
  const [port, tlsPort] = [await freePort(), await freePort()];
  for (const sub of ['base', 'mail']) mkdirSync(join(dir, sub), { recursive: true });
  writeFileSync(join(dir, 'cert.pem'), options.tls.cert);
  writeFileSync(join(dir, 'key.pem'), options.tls.key, { mode: 0o600 });
  // Dovecot never runs mail processes as root: mail belongs to its own unprivileged user, or to us when we are not root.
  const owner =
    process.getuid?.() === 0 ? systemUser('dovecot') : { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  if (!owner) throw new Error('the dovecot system user is missing: install dovecot-imapd');
  const { uid, gid } = owner;
  chownSync(join(dir, 'mail'), uid, gid);
  // Dovecot 2.3's oauth2 passdb (dovecot-oauth2.conf.ext): every token is POSTed to the introspection endpoint.
  if (options.oauth2) {
    writeFileSync(
      join(dir, 'dovecot-oauth2.conf.ext'),
      `introspection_mode = post
introspection_url = ${options.oauth2.introspectionUrl}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
`,
    );
  }
  const tokenMechanisms = (options.oauth2?.mechanisms ?? ['xoauth2', 'oauthbearer']).join(' ');
  const oauth2Passdb = options.oauth2
    ? `passdb {
  driver = oauth2
  mechanisms = ${tokenMechanisms}
  args = ${join(dir, 'dovecot-oauth2.conf.ext')}
}
`
    : '';
  writeFileSync(
    join(dir, 'passwd'),
    `${options.users
      .map((u) => `${u.username}:{PLAIN}${u.password}:${uid}:${gid}::${join(dir, 'mail', u.username)}::`)
      .join('\n')}\n`,
  );
  writeFileSync(
    join(dir, 'dovecot.conf'),
    `base_dir = ${join(dir, 'base')}
state_dir = ${join(dir, 'base')}
instance_name = email-dispatch-${process.pid}-${port}
protocols = imap
listen = ${LOOPBACK}
log_path = ${join(dir, 'dovecot.log')}
ssl = yes
ssl_cert = <${join(dir, 'cert.pem')}
ssl_key = <${join(dir, 'key.pem')}
disable_plaintext_auth = yes
auth_mechanisms = plain login${options.oauth2 ? ` ${tokenMechanisms}` : ''}
first_valid_uid = ${uid}
first_valid_gid = ${gid}
mail_location = maildir:~/Maildir
mail_plugins =
default_internal_user = dovecot
default_login_user = dovenull
${oauth2Passdb}passdb {
  driver = passwd-file
  ${options.oauth2 ? 'mechanisms = plain login\n  ' : ''}args = ${join(dir, 'passwd')}
}
userdb {
  driver = passwd-file
  args = ${join(dir, 'passwd')}
}
service imap-login {
  inet_listener imap {
    address = ${LOOPBACK}
    port = ${port}
  }
  inet_listener imaps {
    address = ${LOOPBACK}
    port = ${tlsPort}
    ssl = yes
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0666
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
protocol imap {
  imap_idle_notify_interval = 1 secs
}
`,
  );
  const child: ChildProcess = spawn(DOVECOT, ['-F', '-c', join(dir, 'dovecot.conf')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([
      waitForPort(port, 15_000),
      exited.then(() => Promise.reject(new Error(`dovecot exited: ${stderr}`))),
    ]);
  } catch (error) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    host: LOOPBACK,
    port,
    tlsPort,
    users: options.users,
    mailRoot: join(dir, 'mail'),
    async stop() {
      if (child.exitCode === null && child.pid) {
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A plain imapflow client signed in to a Dovecot started here, over STARTTLS with its certificate: for putting mail
 * in its mailboxes, and as the hand-written reference the poller is measured against.
 */
export async function connectToDovecot(
  server: { host: string; port: number },
  user: { username: string; password: string },
  ca: string,
): Promise<ImapFlow> {
  const { ImapFlow } = await import('imapflow');
  const client = new ImapFlow({
    host: server.host,
    port: server.port,
    secure: false,
    doSTARTTLS: true,
    tls: { ca },
    auth: { user: user.username, pass: user.password },
    logger: false,
  });
  client.on('error', () => {});
  await client.connect();
  return client;
}

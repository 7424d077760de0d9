/** How an SMTP connection is secured, as the configuration names it. */
type SmtpTlsMode = 'starttls' | 'implicit' | 'none';

// Ports whose mode their registration fixes. 465 (and SES's 2465) speak TLS from the first byte (RFC 8314 3.3);
// 25 and 587 (and SES's 2587) start in plaintext and upgrade with STARTTLS (RFC 3207).
const IMPLICIT_TLS_PORTS = new Set([465, 2465]);
const STARTTLS_PORTS = new Set([25, 587, 2587]);

/**
 * Why `security` cannot work on `port`, or undefined. Either mismatch is our setup, found at synth or cold start:
 * a plaintext client at an implicit-TLS port waits for a greeting that never comes (at run time a timeout, which
 * looks like a slow relay and would be retried for hours); implicit TLS at a STARTTLS port fails its handshake.
 */
export function smtpTlsModeMismatch(port: number, security: SmtpTlsMode): string | undefined {
  if (IMPLICIT_TLS_PORTS.has(port) && security !== 'implicit') {
    const waits = `a ${security} client waits for a greeting that never comes`;
    return `port ${port} speaks TLS from the first byte (RFC 8314): ${waits}; use implicit`;
  }
  if (STARTTLS_PORTS.has(port) && security === 'implicit') {
    const fails = 'implicit TLS fails its handshake there';
    return `port ${port} starts in plaintext and upgrades with STARTTLS (RFC 3207): ${fails}; use starttls`;
  }
  return undefined;
}

import { describe, expect, it } from 'vitest';
import { assertSafeSmtpSettings } from '#transports/smtp-transport.js';

describe('assertSafeSmtpSettings', () => {
  it('refuses plaintext to a remote host and disabled certificate checks', () => {
    expect(() => assertSafeSmtpSettings({ host: 'smtp.example.com', security: 'none' })).toThrow(/loopback/);
    expect(() =>
      assertSafeSmtpSettings({ host: 'smtp.example.com', security: 'starttls', tls: { rejectUnauthorized: false } }),
    ).toThrow(/rejectUnauthorized/);
    expect(() => assertSafeSmtpSettings({ host: '::1', security: 'none' })).not.toThrow();
    expect(() => assertSafeSmtpSettings({ host: 'localhost', security: 'none' })).not.toThrow();
  });
});

import { describe, expect, it } from 'vitest';
import { classifyOutcome, maskAddresses, parseEnhancedStatus } from '#core/classify-outcome.js';
import type { TransportFailure } from '#core/transport-failure.js';

const smtp = (facts: Partial<Extract<TransportFailure, { provider: 'smtp' }>>): TransportFailure => ({
  provider: 'smtp',
  message: 'failed',
  ...facts,
});
const ses = (
  name: string,
  message = '',
  extra: Partial<Extract<TransportFailure, { provider: 'ses' }>> = {},
): TransportFailure => ({ provider: 'ses', name, message, ...extra });

describe('classifyOutcome for SMTP', () => {
  it.each([
    [{ code: 'EAUTH', responseCode: 535, response: '535 5.7.8 Authentication credentials invalid' }, 'blocked'],
    [{ code: 'EAUTH', responseCode: 454, response: '454 4.7.0 Temporary authentication failure' }, 'retry'],
    [{ code: 'ENOAUTH' }, 'blocked'],
    [{ code: 'ETLS', message: 'Server does not support STARTTLS' }, 'blocked'],
    [{ code: 'ECONFIG' }, 'blocked'],
    [{ code: 'ECONNECTION', command: 'CONN' }, 'retry'],
    [{ code: 'ETIMEDOUT' }, 'retry'],
    [{ code: 'EDNS' }, 'retry'],
    [{ code: 'EPROTOCOL', responseCode: 503, response: '503 5.5.1 Bad sequence of commands' }, 'retry'],
    [
      { code: 'EENVELOPE', responseCode: 530, response: '530 5.7.0 Authentication required', command: 'MAIL FROM' },
      'blocked',
    ],
    [
      {
        code: 'EMESSAGE',
        responseCode: 554,
        response: '554 Message rejected: Email address is not verified.',
        command: 'DATA',
      },
      'blocked',
    ],
    [
      {
        code: 'EMESSAGE',
        responseCode: 454,
        response: '454 Throttling failure: Daily message quota exceeded.',
        command: 'DATA',
      },
      'throttled',
    ],
    [
      {
        code: 'EMESSAGE',
        responseCode: 451,
        response: '451 4.4.2 Timeout waiting for data from client.',
        command: 'DATA',
      },
      'retry',
    ],
    [
      { code: 'EMESSAGE', responseCode: 550, response: '550 5.7.1 Message rejected as spam', command: 'DATA' },
      'rejected',
    ],
    [{ code: 'EMESSAGE', responseCode: 552, response: '552 4.5.3 Too many recipients', command: 'DATA' }, 'retry'],
    [{ code: 'EMESSAGE', command: 'API', message: 'Message size larger than allowed' }, 'rejected'],
    [{ code: 'EPROTOCOL', responseCode: 554, response: '554 5.7.1 Client host blocked', command: 'CONN' }, 'blocked'],
    [{ code: 'EPROTOCOL', responseCode: 421, response: '421 4.3.2 Service not available', command: 'CONN' }, 'retry'],
    [{ code: 'ECONNECTION', responseCode: 550, response: '550 5.7.1 EHLO name refused', command: 'EHLO' }, 'blocked'],
    [{ code: 'EPROTOCOL', responseCode: 501, response: '501 5.5.2 Invalid HELO name', command: 'HELO' }, 'blocked'],
    [{ code: 'ESOCKET', command: 'CONN', systemCode: 'ERR_SSL_WRONG_VERSION_NUMBER' }, 'blocked'],
    [{ code: 'ESOCKET', command: 'CONN', systemCode: 'DEPTH_ZERO_SELF_SIGNED_CERT' }, 'blocked'],
    [{ code: 'ESOCKET', command: 'CONN', systemCode: 'ERR_TLS_CERT_ALTNAME_INVALID' }, 'blocked'],
    [{ code: 'ESOCKET', command: 'CONN', systemCode: 'ECONNRESET' }, 'retry'],
    [{ code: 'EWHATEVER' }, 'retry'],
    [{}, 'retry'],
  ] as const)('maps %j to %s', (facts, expected) => {
    expect(classifyOutcome(smtp(facts)).action).toBe(expected);
  });

  it('flags a lost connection as ambiguous only once the final dot may have been sent', () => {
    expect(classifyOutcome(smtp({ code: 'ECONNECTION', command: 'CONN' })).ambiguous).toBeUndefined();
    expect(classifyOutcome(smtp({ code: 'ECONNECTION', command: 'CONN', dataSent: false })).ambiguous).toBeUndefined();
    expect(classifyOutcome(smtp({ code: 'ETIMEDOUT', command: 'CONN', dataSent: true })).ambiguous).toBe(true);
  });

  it('keeps each refused recipient with its codes when every recipient is refused', () => {
    const outcome = classifyOutcome(
      smtp({
        code: 'EENVELOPE',
        command: 'RCPT TO',
        rejected: [
          { recipient: 'a@example.net', responseCode: 550, response: '550 5.1.1 <a@example.net>: user unknown' },
          { recipient: 'b@example.net', responseCode: 553, response: '553 5.1.3 bad address' },
        ],
      }),
    );
    expect(outcome).toMatchObject({
      action: 'rejected',
      reason: 'smtp-rcpt-550',
      recipients: [
        { recipient: 'a@example.net', status: 'rejected', responseCode: 550, enhancedStatus: '5.1.1' },
        { recipient: 'b@example.net', status: 'rejected', responseCode: 553, enhancedStatus: '5.1.3' },
      ],
    });
  });

  it('never carries an address in the operator detail', () => {
    const outcome = classifyOutcome(
      smtp({
        code: 'EMESSAGE',
        responseCode: 550,
        response: '550 5.1.1 <bob.smith@example.net>... User unknown; from alice@example.com',
      }),
    );
    expect(outcome.detail).toBe('550 5.1.1 <address>... User unknown; from <address>');
  });
});

describe('classifyOutcome for SES', () => {
  it.each([
    ['TooManyRequestsException', '', 'throttled'],
    ['Throttling', 'Maximum sending rate exceeded.', 'throttled'],
    ['LimitExceededException', '', 'throttled'],
    ['MessageRejected', 'Email address is not verified.', 'blocked'],
    ['MessageRejected', 'Illegal address', 'rejected'],
    ['MailFromDomainNotVerifiedException', '', 'blocked'],
    ['AccountSuspendedException', '', 'blocked'],
    ['SendingPausedException', '', 'blocked'],
    ['NotFoundException', 'Configuration set does not exist', 'blocked'],
    ['AccessDeniedException', '', 'blocked'],
    ['BadRequestException', '', 'rejected'],
    ['InternalFailure', '', 'retry'],
    ['TimeoutError', '', 'retry'],
    ['UnknownError', '', 'retry'],
  ] as const)('maps %s (%s) to %s', (name, message, expected) => {
    expect(classifyOutcome(ses(name, message)).action).toBe(expected);
  });

  it('trusts the SDK throttling flag and HTTP 429 for unknown names', () => {
    expect(classifyOutcome(ses('SomethingNew', '', { throttling: true })).action).toBe('throttled');
    expect(classifyOutcome(ses('SomethingNew', '', { httpStatus: 429 })).action).toBe('throttled');
    expect(classifyOutcome(ses('SomethingNew', '', { httpStatus: 403 })).action).toBe('blocked');
  });
});

describe('parseEnhancedStatus and maskAddresses', () => {
  it('reads RFC 3463 codes out of reply text', () => {
    expect(parseEnhancedStatus('550 5.1.1 No such user')).toBe('5.1.1');
    expect(parseEnhancedStatus('452 4.5.3 Too many recipients')).toBe('4.5.3');
    expect(parseEnhancedStatus('250 OK')).toBeUndefined();
  });

  it('masks bracketed and bare addresses', () => {
    expect(maskAddresses('to <x@y.z> and a.b@c.d')).toBe('to <address> and <address>');
  });
});

describe('a long reply', () => {
  it('is read only for its first 4 KB: masked and cut there, its words still found there', () => {
    // Prepare
    const padding = 'x'.repeat(5000);
    const slowDown = `421 4.7.0 try again later, ${'try again later '.repeat(2000)} unusual sending rate`;

    // Act
    const masked = maskAddresses(`to <x@y.z> ${padding} and a.b@c.d`);
    const early = classifyOutcome(smtp({ responseCode: 421, response: '421 4.7.0 Try again later: rate' }));
    const late = classifyOutcome(smtp({ responseCode: 421, response: `421 4.7.0 ${padding} sending rate` }));
    const repeated = classifyOutcome(smtp({ responseCode: 421, response: slowDown }));

    // Assess
    expect(masked.startsWith('to <address> x')).toBe(true);
    expect(masked).not.toContain('a.b@c.d');
    expect(masked.length).toBeLessThan(4200);
    expect(early.action).toBe('throttled');
    expect(late.action).toBe('retry');
    expect(repeated.action).toBe('retry');
  });
});

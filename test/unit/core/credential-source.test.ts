import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CredentialsError, checkCredentials, toMailCredentials } from '#core/credential-source.js';
import { ConfigError } from '#core/errors.js';
import { localTlsCertificate } from '#local/tls-certificate.js';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
  .privateKey.export({ type: 'pkcs8', format: 'pem' })
  .toString();
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  .privateKey.export({ type: 'pkcs8', format: 'pem' })
  .toString();

const MICROSOFT_APP = {
  type: 'oauth2-client-credentials',
  tenantId: 'contoso.onmicrosoft.com',
  clientId: 'app',
  clientSecret: 's',
  username: 'bounces@contoso.com',
};

const problemsOf = (value: unknown): string[] => {
  try {
    toMailCredentials(value, 'email-dispatch/imap');
    return [];
  } catch (error) {
    expect(error).toBeInstanceOf(CredentialsError);
    return (error as CredentialsError).problems;
  }
};

describe('toMailCredentials', () => {
  it('reads a secret without a type as a username and password, as before', () => {
    expect(toMailCredentials({ username: 'bounces', password: 'p' }, 's')).toEqual({
      type: 'password',
      username: 'bounces',
      password: 'p',
    });
  });

  it('fills in the Microsoft 365 token endpoint of the tenant and the Exchange Online scope', () => {
    const grant = toMailCredentials(MICROSOFT_APP, 's');
    expect(grant).toMatchObject({
      tokenUrl: 'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token',
      scope: 'https://outlook.office365.com/.default',
      username: 'bounces@contoso.com',
    });
  });

  it('lets a sovereign cloud override the endpoint and scope', () => {
    const sovereign = {
      tokenUrl: 'https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token',
      scope: 'https://outlook.office365.us/.default',
    };
    expect(toMailCredentials({ ...MICROSOFT_APP, ...sovereign }, 's')).toMatchObject(sovereign);
  });

  it('takes a certificate whose private key matches it, and refuses one that does not', () => {
    const { cert, key } = localTlsCertificate();
    const base = {
      type: 'oauth2-client-credentials',
      tenantId: 't',
      clientId: 'app',
      username: 'u',
      certificate: cert,
    };
    expect(toMailCredentials({ ...base, privateKey: key }, 's')).toMatchObject({
      certificate: { certificatePem: cert },
    });
    expect(problemsOf({ ...base, privateKey: rsa })).toEqual(['privateKey does not belong to certificate']);
  });

  it("accepts Google's service account key file as downloaded, with the mailbox added as subject", () => {
    const keyFile = {
      type: 'service_account',
      project_id: 'p',
      private_key_id: 'k1',
      private_key: rsa,
      client_email: 'poller@p.iam.gserviceaccount.com',
      token_uri: 'https://oauth2.googleapis.com/token',
      subject: 'bounces@example.com',
    };
    expect(toMailCredentials(keyFile, 's')).toMatchObject({
      type: 'oauth2-service-account',
      username: 'bounces@example.com',
      clientEmail: 'poller@p.iam.gserviceaccount.com',
      privateKeyId: 'k1',
      scope: 'https://mail.google.com/',
      tokenUrl: 'https://oauth2.googleapis.com/token',
    });
  });

  it('names every missing or wrong field at once, never a value', () => {
    expect(
      problemsOf({
        type: 'oauth2-client-credentials',
        tenantId: 'a/b',
        clientId: '',
        clientSecret: 'hunter2',
        certificate: 'x',
      }),
    ).toEqual([
      'tenantId must be a tenant GUID or domain name',
      'username is required (the mailbox to sign in to)',
      'clientId must be a non-empty string',
      "tokenUrl is required (the provider's token endpoint)",
      'give clientSecret or certificate, not both',
      'privateKey is required (a PEM private key)',
      'certificate is not a readable PEM certificate',
    ]);
    const refresh = problemsOf({
      type: 'oauth2-refresh-token',
      tokenUrl: 'http://idp.example.com/token',
      clientId: 'c',
      refreshToken: 42,
    });
    expect(refresh).toEqual([
      'username is required (the mailbox to sign in to)',
      'tokenUrl must use https (plain http only for a loopback host)',
      'clientSecret is required (the OAuth2 client secret)',
      'refreshToken must be a non-empty string',
    ]);
    expect(problemsOf({ type: 'oauth2-service-account', privateKey: ec, clientEmail: 'a@b' })).toEqual([
      'privateKey must be an RSA key (tokens are signed RS256)',
      'subject is required (the mailbox to act as, by domain-wide delegation)',
    ]);
    expect(
      problemsOf({ type: 'oauth2-service-account', privateKey: 'hunter2', subject: 's', clientEmail: 'a@b' }),
    ).toEqual(['privateKey is not a readable PEM private key']);
    // A Google key file's problems are named as the file spells its fields.
    const keyFile = { type: 'service_account', subject: 's', client_email: 'a@b' };
    expect(problemsOf({ ...keyFile, private_key: 'hunter2', token_uri: 'http://oauth2.example.com/token' })).toEqual([
      'private_key is not a readable PEM private key',
      'token_uri must use https (plain http only for a loopback host)',
    ]);
    expect(problemsOf({ type: 'kerberos' })).toEqual([
      'type must be one of password, oauth2-client-credentials, oauth2-service-account, oauth2-refresh-token',
    ]);
    expect(problemsOf({ username: 'u' })).toEqual(['password is required (the password)']);
    expect(problemsOf('not json')).toEqual(['must be a JSON object']);
  });

  it('allows plain http to a token endpoint on this machine only', () => {
    expect(
      problemsOf({
        type: 'oauth2-refresh-token',
        tokenUrl: 'http://127.0.0.1:8080/token',
        clientId: 'c',
        clientSecret: 's',
        refreshToken: 'r',
        username: 'u',
      }),
    ).toEqual([]);
  });
});

describe('checkCredentials', () => {
  it('reads every secret and reports the problems of all of them together', async () => {
    const source = (value: unknown, name: string) => ({ get: async () => toMailCredentials(value, name) });
    const checked = checkCredentials([
      source({ username: 'u', password: 'p' }, 'good'),
      source({ username: 'u' }, 'relay'),
      source({ type: 'oauth2-refresh-token' }, 'box'),
    ]);
    await expect(checked).rejects.toBeInstanceOf(ConfigError);
    const problems = await checked.then(
      () => [] as string[],
      (error: ConfigError) => error.problems,
    );
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^secret relay cannot be used: password is required/);
    expect(problems[1]).toMatch(
      /^secret box cannot be used: username is required .*; tokenUrl is required .*; clientId .*; clientSecret .*; refreshToken/,
    );
  });
});

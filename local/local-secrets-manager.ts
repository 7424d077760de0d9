import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { LOOPBACK, listenOnLoopback } from './loopback.js';

/**
 * The twin's stand-in for Secrets Manager, for the bundled functions (which read their secrets through the SDK, as
 * in AWS): GetSecretValue over the service's JSON protocol, on 127.0.0.1, answering from `secrets` by name. A
 * secret may be asked for by name or by ARN (`arn:…:secret:<name>`, with or without AWS's six-character suffix).
 */
export async function startLocalSecretsManager(secrets: () => Record<string, object>, port = 0) {
  const reply = (res: ServerResponse, status: number, body: object) => {
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
    res.end(JSON.stringify(body));
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= 64 * 1024) chunks.push(chunk);
    });
    req.on('end', () => {
      if (req.headers['x-amz-target'] !== 'secretsmanager.GetSecretValue') {
        reply(res, 400, {
          __type: 'UnknownOperationException',
          message: `the local Secrets Manager answers GetSecretValue only, not ${String(req.headers['x-amz-target'])}`,
        });
        return;
      }
      let secretId = '';
      try {
        secretId = String(
          (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { SecretId?: unknown }).SecretId ?? '',
        );
      } catch {
        reply(res, 400, { __type: 'SerializationException', message: 'the request body is not JSON' });
        return;
      }
      const name = secretId.includes(':secret:')
        ? secretId.slice(secretId.indexOf(':secret:') + ':secret:'.length)
        : secretId;
      const known = secrets();
      const match = known[name]
        ? name
        : Object.keys(known).find(
            (candidate) => name.startsWith(`${candidate}-`) && name.length === candidate.length + 7,
          );
      if (!match) {
        reply(res, 400, {
          __type: 'ResourceNotFoundException',
          message: `Secrets Manager can't find the specified secret: ${name}`,
        });
        return;
      }
      reply(res, 200, {
        ARN: `arn:aws:secretsmanager:local:000000000000:secret:${match}`,
        Name: match,
        SecretString: JSON.stringify(known[match]),
        VersionId: 'local',
        CreatedDate: 0,
      });
    });
  });
  const actual = await listenOnLoopback(server, port);
  return {
    endpoint: `http://${LOOPBACK}:${actual}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

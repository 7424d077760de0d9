import { Secret, type ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';

/**
 * A secret that exists already, named by name or ARN in context. By name, CDK scopes grants to the name with the
 * random six-character suffix Secrets Manager appends; by full ARN, to exactly that secret.
 */
export function referenceSecret(scope: Construct, id: string, nameOrArn: string): ISecret {
  if (/^arn:aws[a-z-]*:secretsmanager:[^:]+:\d{12}:secret:.+-[A-Za-z0-9]{6}$/.test(nameOrArn)) return Secret.fromSecretCompleteArn(scope, id, nameOrArn);
  if (nameOrArn.startsWith('arn:')) return Secret.fromSecretPartialArn(scope, id, nameOrArn);
  return Secret.fromSecretNameV2(scope, id, nameOrArn);
}

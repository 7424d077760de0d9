import { ArnFormat, Stack } from 'aws-cdk-lib';
import { PolicyStatement, type IGrantable } from 'aws-cdk-lib/aws-iam';
import { Secret, type ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';

/**
 * A secret that exists already, named by name or ARN in context. By name, CDK scopes grants to the name with the
 * random six-character suffix Secrets Manager appends; by full ARN, to exactly that secret.
 */
export function referenceSecret(scope: Construct, id: string, nameOrArn: string): ISecret {
  if (/^arn:aws[a-z-]*:secretsmanager:[^:]+:\d{12}:secret:.+-[A-Za-z0-9]{6}$/.test(nameOrArn))
    return Secret.fromSecretCompleteArn(scope, id, nameOrArn);
  if (nameOrArn.startsWith('arn:')) return Secret.fromSecretPartialArn(scope, id, nameOrArn);
  return Secret.fromSecretNameV2(scope, id, nameOrArn);
}

/**
 * Lets `grantee` write a new version of one secret and nothing else (`secretsmanager:PutSecretValue`): what a
 * function needs to store a refresh token its provider rotated. No UpdateSecret, no version stages, no other secret.
 */
export function grantPutSecretValue(scope: Construct, nameOrArn: string, grantee: IGrantable): void {
  const complete = /-[A-Za-z0-9]{6}$/.test(nameOrArn) && nameOrArn.startsWith('arn:');
  const resource = nameOrArn.startsWith('arn:')
    ? complete
      ? nameOrArn
      : `${nameOrArn}-??????`
    : Stack.of(scope).formatArn({
        service: 'secretsmanager',
        resource: 'secret',
        resourceName: `${nameOrArn}-??????`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      });
  const statement = new PolicyStatement({ actions: ['secretsmanager:PutSecretValue'], resources: [resource] });
  grantee.grantPrincipal.addToPrincipalPolicy(statement);
}

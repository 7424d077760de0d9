import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { EmailDispatchStack } from './email-dispatch-stack.js';
import { loadStackConfig } from './stack-config.js';

const app = new App();
const config = loadStackConfig(app.node);
new EmailDispatchStack(app, app.node.tryGetContext('stackName') ?? 'EmailDispatch', config, {
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new ServerlessChecks(app));
app.synth();

import { runSuppressionCommand } from './suppression-commands.js';
import { resolveStateTarget } from './target.js';

// Lambda runs these functions on Node.js 22+; on an older local Node the SDK's upgrade notice is only noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const status = await runSuppressionCommand(process.argv.slice(2), {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
  resolve: (args) => resolveStateTarget(args),
});
process.exit(status);

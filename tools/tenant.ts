import { resolveStateTarget } from './target.js';
import { runTenantCommand } from './tenant-commands.js';

const status = await runTenantCommand(process.argv.slice(2), {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
  resolve: (args) => resolveStateTarget(args),
});
process.exit(status);

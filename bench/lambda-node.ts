import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Runs a benchmark on the Node.js release the functions run on in Lambda (the stack's `nodejs24.x`), whatever Node
 * runs `npm`: its major version decides much of what a job costs in CPU. (Node 20 runs a promise hook for every
 * promise once an AsyncLocalStorage is in use, as the dispatcher's is; Node 24 carries the store in the async context
 * frame.) The binary is the npm package of that release for this platform, pinned in bench/lambda-node and installed
 * there by `npm ci` on the first run; it is not one of the project's dependencies, so `npm test` and `npm start` keep
 * the Node they were started with. Where no package exists for the platform (Lambda runs Linux on x86_64 and arm64),
 * the benchmark runs on this Node, and says so.
 *
 * Usage: `tsx bench/lambda-node.ts <script> [arguments]` (`npm run bench` runs bench/run.ts through it).
 */

const home = join(dirname(fileURLToPath(import.meta.url)), 'lambda-node');
const manifest = JSON.parse(readFileSync(join(home, 'package.json'), 'utf8')) as {
  optionalDependencies: Record<string, string>;
};

/** The pinned release's package for this platform, and the version pinned; undefined where there is none. */
export function lambdaNodePackage(platform: string = process.platform, arch: string = process.arch) {
  const name = `node-${platform}-${arch}`;
  const version = manifest.optionalDependencies[name];
  return version === undefined ? undefined : { name, version };
}

/** The pinned Node binary, installed if it is not yet (or at another version); undefined where it cannot be. */
function lambdaNode(): string | undefined {
  const pinned = lambdaNodePackage();
  if (!pinned) return undefined;
  const folder = join(home, 'node_modules', pinned.name);
  const installed = () =>
    existsSync(join(folder, 'package.json')) &&
    (JSON.parse(readFileSync(join(folder, 'package.json'), 'utf8')) as { version: string }).version === pinned.version;
  if (!installed()) {
    console.log(`installing Node ${pinned.version} (${pinned.name}) into bench/lambda-node`);
    spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: home, stdio: 'inherit' });
  }
  return installed() ? join(folder, 'bin', 'node') : undefined;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [script, ...args] = process.argv.slice(2);
  if (!script) {
    console.error('usage: tsx bench/lambda-node.ts <script> [arguments]');
    process.exit(2);
  }
  const node = lambdaNode();
  if (!node) {
    const wanted = Object.values(manifest.optionalDependencies)[0];
    console.warn(
      `no Node ${wanted} for ${process.platform}-${process.arch}: running on ${process.version}, whose CPU costs are not Lambda's`,
    );
  }
  const run = spawnSync(node ?? process.execPath, ['--expose-gc', '--import', 'tsx', script, ...args], {
    stdio: 'inherit',
  });
  process.exit(run.status ?? 1);
}

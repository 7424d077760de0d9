import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Runs a benchmark on the Node.js release the functions run on in Lambda (the stack's `nodejs24.x`), whatever Node
 * runs `npm`: its major version decides much of what a job costs in CPU. (Node 20 runs a promise hook for every
 * promise once an AsyncLocalStorage is in use, as the dispatcher's is; Node 24 carries the store in the async context
 * frame.) The binary is the npm package of that release for this platform, pinned in bench/lambda-node and installed
 * there by `npm ci` on the first run; it is not one of the project's dependencies, so `npm test` and `npm start` keep
 * the Node they were started with. Lambda runs Linux on x86_64 and arm64: there the release is required, and a
 * failed install stops the benchmark (`BENCH_ANY_NODE=1` runs it on this Node instead). Elsewhere the benchmark runs
 * on this Node, and says so.
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

/** The binary's own answer to `--version`, or why it gave none. */
function versionOf(binary: string): string {
  if (!existsSync(binary)) return 'not installed';
  const run = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  return run.error ? run.error.message : run.stdout.trim() || `exit ${run.status}`;
}

/** The pinned Node binary, installed (again, if what is there does not run as that version); or why it cannot be. */
function lambdaNode(pinned: { name: string; version: string }): { binary: string } | { problem: string } {
  const folder = join(home, 'node_modules', pinned.name);
  const binary = join(folder, 'bin', 'node');
  const wanted = `v${pinned.version}`;
  if (versionOf(binary) === wanted) return { binary };
  console.log(`installing Node ${pinned.version} (${pinned.name}) into bench/lambda-node`);
  rmSync(folder, { recursive: true, force: true });
  const npm = spawnSync('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: home, stdio: 'inherit' });
  if (npm.error || npm.status !== 0)
    return { problem: `npm ci in bench/lambda-node failed: ${npm.error?.message ?? `exit ${npm.status}`}` };
  // The packages are optional: npm skips one it cannot fetch and still succeeds.
  const found = versionOf(binary);
  return found === wanted ? { binary } : { problem: `bench/lambda-node holds no working ${pinned.name}: ${found}` };
}

/** Runs the benchmark on `node`, passing signals on, and ends as it ended. */
function run(node: string, script: string, args: string[]): void {
  const child = spawn(node, ['--expose-gc', '--import', 'tsx', script, ...args], { stdio: 'inherit' });
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, forward(signal));
  child.on('error', (error) => {
    console.error(`could not start ${node}: ${error.message}`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [script, ...args] = process.argv.slice(2);
  if (!script) {
    console.error('usage: tsx bench/lambda-node.ts <script> [arguments]');
    process.exit(2);
  }
  const pinned = lambdaNodePackage();
  const found = pinned ? lambdaNode(pinned) : undefined;
  if (found && 'binary' in found) run(found.binary, script, args);
  else {
    const release = Object.values(manifest.optionalDependencies)[0];
    const why = found ? found.problem : `no Node ${release} package for ${process.platform}-${process.arch}`;
    if (found && process.env.BENCH_ANY_NODE !== '1') {
      console.error(`${why}; BENCH_ANY_NODE=1 runs the benchmark on this Node (${process.version}) instead`);
      process.exit(1);
    }
    console.warn(`${why}: running on ${process.version}, whose CPU costs are not Lambda's`);
    run(process.execPath, script, args);
  }
}

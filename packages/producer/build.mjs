// Builds the package from the repository's sources: JavaScript and declarations with tsc (the files keep their
// places, dist/producer and dist/functions/core, and reach each other through this package's "imports"), plus the
// generated JSON Schema.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const tsc = createRequire(join(here, '..', '..', 'package.json')).resolve('typescript/bin/tsc');
rmSync(join(here, 'dist'), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', join(here, 'tsconfig.build.json')], { stdio: 'inherit' });
mkdirSync(join(here, 'schema'), { recursive: true });
cpSync(join(here, '..', '..', 'schema', 'email-job.v1.json'), join(here, 'schema', 'email-job.v1.json'));

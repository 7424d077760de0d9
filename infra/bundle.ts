import { buildSync, type Metafile } from 'esbuild';
import { statSync } from 'node:fs';
import { join } from 'node:path';

/** The esbuild options every function is bundled with (the stack and `npm run bench` share them). */
export const BUNDLE_OPTIONS = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  minify: true,
  sourcemap: true,
  mainFields: ['module', 'main'],
  // Code a configuration does not use (the SES client for an SMTP deployment, S3 until a job names an object,
  // mailparser until a report arrives) sits behind dynamic imports in chunks of its own, loaded on first use.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  outExtension: { '.js': '.mjs' },
  // Some dependencies are CommonJS and call require(); give each ESM chunk one.
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
  legalComments: 'none',
  logLevel: 'silent',
} as const;

export type BundleReport = {
  /** The entry file, `index.mjs`. */
  entry: string;
  /** Bytes a cold start loads: the entry and every chunk it imports statically. */
  eagerBytes: number;
  /** The source files bundled into those chunks (paths relative to the working directory). */
  eagerInputs: string[];
  /** Bytes of all JavaScript in the bundle, lazy chunks included (source maps excluded). */
  totalBytes: number;
};

/** Bundles `entry` into `outdir` as `index.mjs` plus chunks; sizes what a cold start loads and what waits. */
export function bundleFunction(entry: string, outdir: string, absWorkingDir: string): BundleReport {
  const result = buildSync({
    ...BUNDLE_OPTIONS,
    mainFields: [...BUNDLE_OPTIONS.mainFields],
    entryPoints: { index: entry },
    outdir,
    absWorkingDir,
    metafile: true,
  });
  return reportOf(result.metafile, join(outdir, 'index.mjs'), absWorkingDir);
}

function reportOf(metafile: Metafile, entryFile: string, cwd: string): BundleReport {
  const outputs = metafile.outputs;
  const key = Object.keys(outputs).find(
    (k) => join(cwd, k) === entryFile || k.endsWith('/index.mjs') || k === 'index.mjs',
  ) as string;
  const eager = new Set<string>();
  const visit = (file: string) => {
    if (eager.has(file)) return;
    eager.add(file);
    for (const i of outputs[file]?.imports ?? []) if (i.kind === 'import-statement' && !i.external) visit(i.path);
  };
  visit(key);
  const size = (file: string) => statSync(join(cwd, file)).size;
  const js = Object.keys(outputs).filter((k) => k.endsWith('.mjs'));
  return {
    entry: entryFile,
    eagerBytes: [...eager].reduce((sum, f) => sum + size(f), 0),
    eagerInputs: [...eager].flatMap((f) => Object.keys(outputs[f]?.inputs ?? {})),
    totalBytes: js.reduce((sum, f) => sum + size(f), 0),
  };
}

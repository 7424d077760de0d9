import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * The layers of functions/ as README "Working on this code" states them, checked on every import (static, dynamic
 * and `export … from`) of every module, as TypeScript's own pre-processor lists them.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const FUNCTIONS = join(ROOT, 'functions');

/** Packages the core may use: pure code, no I/O, no clients (the job envelope's parser is Powertools' zod helper). */
const PURE_PACKAGES = ['zod', '@aws-lambda-powertools/parser'];
/** Folders that implement the core's ports: each may import the core and nothing else of functions/. */
const ADAPTERS = ['transports', 'imap', 'aws', 'oauth', 'rendering', 'inbound'];

const sourceFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });

const SUBPATHS: Record<string, string> = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).imports;

const toSource = (path: string) => relative(ROOT, path).replace(/\.js$/, '.ts');

/** Where an import points: a file of this repository (relative to its root), or a package or built-in by name. */
function target(from: string, specifier: string): { file: string } | { pkg: string } {
  if (specifier.startsWith('.')) return { file: toSource(resolve(dirname(from), specifier)) };
  if (specifier.startsWith('#')) {
    const prefix = `${specifier.split('/')[0]}/*`;
    const mapped = SUBPATHS[prefix];
    if (!mapped) throw new Error(`${relative(ROOT, from)}: no "imports" entry for ${specifier}`);
    return { file: toSource(resolve(ROOT, mapped.replace('*', specifier.slice(prefix.length - 1)))) };
  }
  const parts = specifier.split('/');
  return { pkg: specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] as string) };
}

type Edge = { from: string; file?: string; pkg?: string };
const edges: Edge[] = sourceFiles(FUNCTIONS).flatMap((path) =>
  ts
    .preProcessFile(readFileSync(path, 'utf8'), true, true)
    .importedFiles.map((i) => ({ from: relative(ROOT, path), ...target(path, i.fileName) })),
);
/** The folder of functions/ a repository path is in ('' for functions/*.ts itself), or undefined outside it. */
const layerOf = (file: string) => {
  const parts = file.split('/');
  if (parts[0] !== 'functions') return undefined;
  return parts.length > 2 ? (parts[1] as string) : '';
};
const isBuiltin = (pkg: string) => pkg.startsWith('node:') || builtinModules.includes(pkg);
const show = (e: Edge) => `${e.from} → ${e.file ?? e.pkg}`;

describe('the layers of functions/', () => {
  it('reads every module and finds imports in each layer', () => {
    // Assess: the scan sees what it checks (a silent empty list would pass everything below)
    expect(new Set(edges.map((e) => layerOf(e.from)))).toEqual(new Set(['', 'core', 'handlers', ...ADAPTERS]));
    expect(edges.filter((e) => layerOf(e.from) === 'core').length).toBeGreaterThan(50);
  });

  it('keeps the core pure: it imports only itself, built-ins and pure packages, and never reads process.env', () => {
    // Prepare
    const core = edges.filter((e) => layerOf(e.from) === 'core');
    const coreFiles = sourceFiles(join(FUNCTIONS, 'core'));

    // Act
    const outward = core.filter((e) => e.file !== undefined && layerOf(e.file) !== 'core');
    const impure = core.filter((e) => e.pkg !== undefined && !isBuiltin(e.pkg) && !PURE_PACKAGES.includes(e.pkg));
    const readsEnvironment = coreFiles.filter((f) => /\bprocess\.env\b/.test(readFileSync(f, 'utf8')));

    // Assess
    expect(outward.map(show)).toEqual([]);
    expect(impure.map(show)).toEqual([]);
    expect(readsEnvironment.map((f) => relative(ROOT, f))).toEqual([]);
  });

  it('lets an adapter import the core and no other folder of functions/', () => {
    // Act
    const sideways = edges.filter(
      (e) =>
        ADAPTERS.includes(layerOf(e.from) ?? '') &&
        e.file !== undefined &&
        !['core', layerOf(e.from)].includes(layerOf(e.file)),
    );

    // Assess
    expect(sideways.map(show)).toEqual([]);
  });

  it('lets handlers import any layer below them and config.ts, but no Lambda entry', () => {
    // Act
    const upward = edges.filter(
      (e) =>
        layerOf(e.from) === 'handlers' &&
        e.file !== undefined &&
        layerOf(e.file) === '' &&
        e.file !== 'functions/config.ts',
    );

    // Assess
    expect(upward.map(show)).toEqual([]);
  });

  it('never imports the stack, the twin, the CLIs, the producer, benchmarks or tests from functions/', () => {
    // Act
    const outside = edges.filter((e) => e.file !== undefined && layerOf(e.file) === undefined);

    // Assess
    expect(outside.map(show)).toEqual([]);
  });
});

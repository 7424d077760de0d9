/** A Lambda context for running a handler outside Lambda (the twin, tests, benchmarks). */
export { createLambdaContext } from './lambda-context-object.mjs';

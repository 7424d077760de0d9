import { cpus, totalmem } from 'node:os';
import { writeFileSync } from 'node:fs';
import { assertDeployable, benchCapacity, lambdaCases } from './capacity.js';
import { benchColdStart } from './cold-start.js';
import { benchFairness } from './fairness.js';
import { benchImap } from './imap.js';
import { printTable, rows } from './measure.js';
import { benchMemory } from './memory.js';
import { benchOverhead } from './overhead.js';
import { benchPipeline } from './pipeline.js';
import { benchRate } from './rate.js';
import { benchTransport } from './transport.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// npm run bench [-- --quick]: every figure is measured here, now, side by side with the alternative it is compared to.
const quick = process.argv.includes('--quick');
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
console.log(`email-dispatch benchmarks on ${machine}${quick ? ' (quick)' : ''}`);

// Before the half hour the others take: the capacity part's candidates must be ones the stack deploys.
assertDeployable(lambdaCases(quick));
const { ceiling } = await benchTransport(quick ? 500 : 2000);
await benchPipeline(quick ? 200 : 4000, ceiling, [1, 2, 5, 10], quick ? 2 : 16);
await benchOverhead();
await benchMemory();
await benchColdStart();
await benchImap(quick ? 1000 : 10_000);
await benchRate(quick ? 84 : 420);
await benchFairness(quick ? 1000 : 5000, 50);
const chosen = await benchCapacity(quick);

printTable();
writeFileSync(
  new URL('./results.json', import.meta.url),
  `${JSON.stringify({ machine, date: new Date().toISOString(), quick, chosen, rows }, null, 2)}\n`,
);
console.log('\nwritten: bench/results.json');
process.exit(0);

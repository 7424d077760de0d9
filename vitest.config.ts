import { defineConfig } from 'vitest/config';

/**
 * Suites that take minutes or start the whole twin (the twin and its console, the ledgers, synth and bundling,
 * installing the packed producer): `npm test` runs them, `npm run test:quick` leaves them out.
 */
const SLOW = [
  'test/reliability/**',
  'test/infra/**',
  'test/integration/local-twin.test.ts',
  'test/integration/cli-wait.test.ts',
  'test/integration/tenant-cli.test.ts',
  'test/integration/bundled-twin.test.ts',
  'test/integration/producer-package.test.ts',
  'test/integration/scheduled-send.test.ts',
  'test/integration/template-send.test.ts',
  'test/integration/bench-contenders.test.ts',
  'test/integration/console-api.test.ts',
  'test/integration/console-browser.test.ts',
  'test/integration/console-ses.test.ts',
];

export default defineConfig({
  test: {
    // Checks the system programs the suite needs, and gives the run a temporary directory removed at the end.
    globalSetup: ['test/global-setup.ts'],
    // Integration tests start real servers on loopback; give them room on a 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Secrets, endpoints and clocks are passed explicitly; nothing may leak in from the shell.
    env: {
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      POWERTOOLS_DEV: 'false',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
    projects: [
      { extends: true, test: { name: 'quick', include: ['test/**/*.test.ts'], exclude: SLOW } },
      {
        extends: true,
        test: { name: 'slow', include: SLOW.map((glob) => (glob.endsWith('.ts') ? glob : `${glob}/*.test.ts`)) },
      },
    ],
  },
});

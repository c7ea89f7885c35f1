// The real `pgcdc` terminal plumbing (process streams, the readline prompt, the stdin check) with a fake
// Automation API and a temporary project, so a test can run it under a pseudo-terminal (`script`).
// Usage: node tty-fixture.js <argv...>; PGCDC_FIXTURE_PROJECT names the project directory.

import { defaultDeps } from '../../cli/deps';
import { runCli } from '../../cli/program';
import { FakeStackSource } from './fakes';

const source = new FakeStackSource();
runCli(
  process.argv.slice(2),
  defaultDeps({
    projectDir: process.env.PGCDC_FIXTURE_PROJECT ?? '.',
    stacks: source,
    findPulumi: () => '/usr/local/bin/pulumi',
  }),
).then((code) => {
  // What the fake stack was asked, for the test to check that nothing changed.
  process.stderr.write(`\nFIXTURE-CALLS ${JSON.stringify(source.stack('dev').calls.map((c) => c.method))}\n`);
  process.exitCode = code;
});

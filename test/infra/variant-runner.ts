// Child-process entry of variants.test.ts: a Pulumi program registers its resources once per process, so
// each configuration variant runs the real index.ts in its own process and reports what it registered.
import { recorded, runProgram } from './harness';

runProgram().then(
  () => {
    const resources = recorded.map((r) => ({ type: r.type, name: r.name, inputs: r.inputs }));
    process.stdout.write(JSON.stringify({ resources }));
    process.exit(0);
  },
  (e: unknown) => {
    process.stdout.write(JSON.stringify({ error: e instanceof Error ? e.message : String(e) }));
    process.exit(0);
  },
);

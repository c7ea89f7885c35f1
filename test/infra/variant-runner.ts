// Child-process entry of variants.test.ts: a Pulumi program registers its resources once per process, so
// each configuration variant runs the real index.ts in its own process and reports what it registered,
// the data sources it called and the outputs it exported.
import * as pulumi from '@pulumi/pulumi';
import { invokes, promiseOf, recorded, runProgram } from './harness';

runProgram().then(
  async (stack) => {
    const outputs: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(stack))
      outputs[k] = pulumi.Output.isInstance(v) ? await promiseOf(v as pulumi.Output<unknown>) : v;
    const resources = recorded.map((r) => ({ type: r.type, name: r.name, inputs: r.inputs }));
    process.stdout.write(JSON.stringify({ resources, invokes, outputs }));
    process.exit(0);
  },
  (e: unknown) => {
    process.stdout.write(JSON.stringify({ error: e instanceof Error ? e.message : String(e) }));
    process.exit(0);
  },
);

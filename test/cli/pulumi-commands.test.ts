// deploy / preview / refresh / destroy / outputs through commander, with an injected Automation API.

import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConcurrentUpdateError, StackNotFoundError, CommandError } from '@pulumi/pulumi/automation';
import { repoRoot } from '../../cli/deps';
import { EXIT } from '../../cli/errors';
import { GOOD_STACK, harness, Harness, PROJECT } from './fakes';

describe('pgcdc deploy / preview / refresh / destroy / outputs', () => {
  let h: Harness;
  afterEach(() => h?.cleanup());

  it('deploy --yes creates or selects the stack named by --env on the project Pulumi.yaml, streams Pulumi output, prints the outputs', async () => {
    h = harness();
    const code = await h.run('deploy', '--env', 'dev', '--yes');
    assert.equal(code, EXIT.ok, h.out.stderr);
    assert.deepEqual(h.source.requests, [
      { method: 'createOrSelectStack', stackName: 'dev', workDir: h.deps.projectDir },
    ]);
    const stack = h.source.stack('dev');
    assert.deepEqual(
      stack.calls.map((c) => c.method),
      ['up'],
    );
    assert.match(h.out.stdout, /Updating \(dev\)\n \+ {2}gcp:sql:DatabaseInstance pgcdc-db creating/);
    assert.match(h.out.stdout, /Deployed stack dev: 12 to create \(3 unchanged\)/);
    assert.match(h.out.stdout, /listenerJobName\s+pgcdc-listener/);
    assert.match(h.out.stdout, new RegExp(`project\\s+${PROJECT}`));
    // Secret outputs are masked unless asked for.
    assert.match(h.out.stdout, /passwordSecretId\s+\[secret\]/);
    assert.deepEqual(h.confirmations, []);
  });

  it("deploy validates the stack's own config file as Pulumi would hand it to the program", async () => {
    h = harness({
      stacks: {
        dev: GOOD_STACK + '  pgcdc:databaseDiskAutoresizeLimitGb: 50\n  pgcdc:deletionProtection: false\n',
      },
    });
    const seen: Array<Record<string, unknown>> = [];
    const real = h.deps.validateConfig;
    h.deps.validateConfig = (raw) => {
      seen.push(raw);
      return real(raw);
    };
    assert.equal(await h.run('deploy', '--env', 'dev', '--yes'), EXIT.ok, h.out.stderr);
    // Project keys lose their "pgcdc:" prefix, provider keys keep theirs, structured values are JSON text.
    assert.deepEqual(seen, [
      {
        'gcp:project': PROJECT,
        region: 'europe-west4',
        tables: '["public.customers"]',
        databaseDiskAutoresizeLimitGb: '50',
        deletionProtection: 'false',
      },
    ]);
  });

  it("the repository's own Pulumi.dev.yaml passes once its placeholder project id is replaced", async () => {
    const dev = readFileSync(path.join(repoRoot(), 'Pulumi.dev.yaml'), 'utf8').replace(
      'your-gcp-project-id',
      PROJECT,
    );
    h = harness({ stacks: { dev } });
    copyFileSync(path.join(repoRoot(), 'Pulumi.yaml'), path.join(h.deps.projectDir, 'Pulumi.yaml'));
    assert.equal(await h.run('preview', '--env', 'dev'), EXIT.ok, h.out.stderr);
  });

  it('deploy --show-secrets prints secret outputs in clear', async () => {
    h = harness();
    assert.equal(await h.run('deploy', '--env', 'dev', '--yes', '--show-secrets'), EXIT.ok);
    assert.match(h.out.stdout, /passwordSecretId\s+projects\/acme\/secrets\/pgcdc-db-password/);
  });

  it('deploy without --yes outside a terminal changes nothing and says to pass --yes', async () => {
    h = harness({ tty: false });
    const code = await h.run('deploy', '--env', 'dev');
    assert.equal(code, EXIT.usage);
    assert.match(h.out.stderr, /without confirmation/);
    assert.match(h.out.stderr, /--yes/);
    assert.deepEqual(h.source.requests, []);
  });

  it('at a terminal, deploy previews, asks, and on no exits with the cancelled code having changed nothing', async () => {
    h = harness({ tty: true, answer: 'n' });
    const code = await h.run('deploy', '--env', 'dev');
    assert.equal(code, EXIT.cancelled, h.out.stderr);
    assert.deepEqual(
      h.source.stack('dev').calls.map((c) => c.method),
      ['preview'],
    );
    assert.deepEqual(h.confirmations, ['Deploy stack "dev"? [y/N]']);
    assert.match(h.out.stdout, /Preview: 12 to create/);
    assert.match(h.out.stderr, /error: cancelled: nothing was changed/);
  });

  it('a prompt left unanswered (input ended) is cancelled too, with a non-zero exit', async () => {
    h = harness({ tty: true, answer: null });
    assert.equal(await h.run('deploy', '--env', 'dev'), EXIT.cancelled);
    assert.match(h.out.stderr, /cancelled: no answer \(input ended\); nothing was changed/);
    assert.deepEqual(
      h.source.stack('dev').calls.map((c) => c.method),
      ['preview'],
    );
  });

  it('a terminal for output but not for stdin is not enough to ask: deploy refuses before previewing', async () => {
    h = harness({ tty: true, stdinTTY: false });
    assert.equal(await h.run('deploy', '--env', 'dev'), EXIT.usage);
    assert.match(
      h.out.stderr,
      /refusing to deploy stack "dev" without confirmation \(stdin is not a terminal\)/,
    );
    assert.match(h.out.stderr, /pgcdc deploy --env dev --yes/);
    assert.deepEqual(h.confirmations, []);
    assert.deepEqual(h.source.requests, []);
  });

  it('at a terminal, deploy saves the preview as an update plan and applies exactly that plan after a yes', async () => {
    h = harness({ tty: true, answer: 'yes' });
    assert.equal(await h.run('deploy', '--env', 'dev'), EXIT.ok, h.out.stderr);
    const calls = h.source.stack('dev').calls;
    assert.deepEqual(
      calls.map((c) => c.method),
      ['preview', 'up'],
    );
    const previewPlan = (calls[0].args as { plan?: string }).plan;
    assert.ok(previewPlan && previewPlan.endsWith('plan.json'), String(previewPlan));
    assert.equal((calls[1].args as { plan?: string }).plan, previewPlan);
  });

  it('deploy --yes applies without a plan and says the changes are not a previewed set', async () => {
    h = harness();
    assert.equal(await h.run('deploy', '--env', 'dev', '--yes'), EXIT.ok, h.out.stderr);
    assert.equal((h.source.stack('dev').calls[0].args as { plan?: string }).plan, undefined);
    assert.match(h.out.stderr, /Deploying without a preview \(--yes\)/);
  });

  for (const command of ['deploy', 'destroy', 'refresh'] as const) {
    it(`Ctrl-C during ${command} stops Pulumi through the Automation API (abort, then stack.cancel()) and exits cancelled`, async () => {
      h = harness();
      const stack = h.source.stack('dev');
      const method = command === 'deploy' ? 'up' : command;
      // The terminal case: Ctrl-C reaches pulumi by itself, so the first one only waits; the second cancels.
      h.deps.stdinIsTTY = true;
      let secondSent = false;
      stack.hang[method] = {
        started: () => {
          h.interrupt();
          assert.equal(stack.cancels, 0, 'the first Ctrl-C leaves the stop to Pulumi');
          secondSent = true;
          h.interrupt();
        },
      };
      const code = await h.run(command, '--env', 'dev', '--yes');
      assert.ok(secondSent);
      assert.equal(code, EXIT.cancelled, h.out.stderr);
      assert.equal(stack.cancels, 1);
      assert.match(h.out.stderr, /Interrupted: asking Pulumi to stop after the operations in flight/);
      assert.match(h.out.stderr, /Cancelling the update \(pulumi cancel\)/);
      assert.match(h.out.stderr, new RegExp(`pulumi cancel --stack dev`));
      assert.equal(h.interruptHandlers(), 0, 'the handler is removed when the operation ends');
    });
  }

  it('a Ctrl-C that reaches only pgcdc (no terminal) aborts the pulumi process through the signal option', async () => {
    h = harness();
    const stack = h.source.stack('dev');
    stack.hang.up = { started: () => h.interrupt() };
    assert.equal(await h.run('deploy', '--env', 'dev', '--yes'), EXIT.cancelled);
    const signal = (stack.calls[0].args as { signal?: AbortSignal }).signal;
    assert.ok(signal?.aborted, 'the AbortSignal given to stack.up was aborted');
    assert.equal(stack.cancels, 0);
  });

  it('an invalid stack config stops deploy before any workspace is created, naming the key and the file', async () => {
    h = harness({
      stacks: { dev: 'config:\n  gcp:project: acme-data-123\n  pgcdc:region: mars-central1\n' },
    });
    const code = await h.run('deploy', '--env', 'dev', '--yes');
    assert.equal(code, EXIT.config);
    assert.match(
      h.out.stderr,
      /Pulumi\.dev\.yaml: config region: "mars-central1" is not a Google Cloud region/,
    );
    assert.deepEqual(h.source.requests, []);
  });

  it('the placeholder project id of a fresh Pulumi.dev.yaml is refused before anything is touched', async () => {
    h = harness({ stacks: { dev: 'config:\n  gcp:project: your-gcp-project-id\n' } });
    assert.equal(await h.run('preview', '--env', 'dev'), EXIT.config);
    assert.match(h.out.stderr, /gcp:project: is still the placeholder/);
    assert.deepEqual(h.source.requests, []);
  });

  it('a stack without a Pulumi.<env>.yaml is a config error that says which file to create', async () => {
    h = harness();
    assert.equal(await h.run('deploy', '--env', 'prod', '--yes'), EXIT.config);
    assert.match(h.out.stderr, /no Pulumi\.prod\.yaml/);
    assert.match(h.out.stderr, /cp Pulumi\.dev\.yaml Pulumi\.prod\.yaml/);
    assert.deepEqual(h.source.requests, []);
  });

  it('deploy refuses to run an unbuilt Pulumi program and says to build it', async () => {
    h = harness({ stacks: { dev: GOOD_STACK } });
    writeFileSync(path.join(h.deps.projectDir, 'package.json'), JSON.stringify({ main: 'dist/index.js' }));
    assert.equal(await h.run('deploy', '--env', 'dev', '--yes'), EXIT.failure);
    assert.match(h.out.stderr, /the Pulumi program is not built \(no dist\/index\.js\)/);
    assert.match(h.out.stderr, /npm run build/);
    assert.deepEqual(h.source.requests, []);
  });

  it('without the Pulumi CLI, deploy exits with its own code and says how to install it', async () => {
    h = harness({ pulumi: false });
    const code = await h.run('deploy', '--env', 'dev', '--yes');
    assert.equal(code, EXIT.pulumiMissing);
    assert.match(h.out.stderr, /Pulumi CLI \(`pulumi`\) is not on PATH/);
    assert.match(h.out.stderr, /https:\/\/www\.pulumi\.com\/docs\/install\//);
    assert.deepEqual(h.source.requests, []);
  });

  it('a stack locked by another update exits with the stack-locked code and says how to clear a stale lock', async () => {
    h = harness();
    h.source.stack('dev').fail.up = new ConcurrentUpdateError(
      'error: [409] Conflict: Another update is currently in progress.',
    );
    const code = await h.run('deploy', '--env', 'dev', '--yes');
    assert.equal(code, EXIT.stackLocked);
    assert.match(h.out.stderr, /stack "dev" is locked by another update/);
    assert.match(h.out.stderr, /pulumi cancel --stack dev/);
  });

  it('an unknown stack exits with the unknown-stack code (outputs, refresh and destroy never create one)', async () => {
    h = harness({ stacks: { staging: GOOD_STACK } });
    h.source.selectError = new StackNotFoundError("error: no stack named 'staging' found");
    for (const argv of [
      ['outputs', '--env', 'staging'],
      ['refresh', '--env', 'staging', '--yes'],
      ['destroy', '--env', 'staging', '--yes'],
    ]) {
      assert.equal(await h.run(...argv), EXIT.unknownStack, argv.join(' '));
    }
    assert.match(h.out.stderr, /stack "staging" does not exist/);
    assert.deepEqual(
      h.source.requests.map((r) => r.method),
      ['selectStack', 'selectStack', 'selectStack'],
    );
  });

  it("a Pulumi failure shows Pulumi's error: lines once; missing Google credentials get their own code", async () => {
    h = harness();
    h.source.stack('dev').fail.up = new CommandError(
      [
        'code: 255',
        ' stdout: Updating (dev)',
        '     gcp:sql:DatabaseInstance pgcdc-db  creating',
        'error: resource creation failed: quota exceeded',
        'Resources:',
        '    12 unchanged',
        '',
        ' stderr: error: resource creation failed: quota exceeded',
        'error: update failed',
      ].join('\n'),
    );
    assert.equal(await h.run('deploy', '--env', 'dev', '--yes'), EXIT.failure);
    assert.match(
      h.out.stderr,
      /error: pulumi failed on stack "dev":\n {2}resource creation failed: quota exceeded\n {2}update failed\n/,
    );
    assert.equal(h.out.stderr.match(/quota exceeded/g)?.length, 1);
    assert.doesNotMatch(h.out.stderr, /Resources:|code: 255/);

    h.source.stack('dev').fail.up = new CommandError(
      'stderr: gcp:sql:DatabaseInstance error: could not find default credentials. See https://cloud.google.com/docs/authentication',
    );
    assert.equal(await h.run('deploy', '--env', 'dev', '--yes'), EXIT.noCredentials);
    assert.match(h.out.stderr, /gcloud auth application-default login/);
  });

  it('not logged in to a Pulumi backend: the error line once and a hint to pulumi login', async () => {
    h = harness();
    h.source.selectError = new CommandError(
      'code: 255\n stdout: \n stderr: error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions\n',
    );
    assert.equal(await h.run('outputs', '--env', 'dev'), EXIT.failure);
    assert.match(h.out.stderr, /PULUMI_ACCESS_TOKEN must be set for login/);
    assert.match(h.out.stderr, /`pulumi login`.*`pulumi login --local`/);
  });

  it('preview selects or creates the stack and changes nothing', async () => {
    h = harness();
    assert.equal(await h.run('preview', '--env', 'dev'), EXIT.ok, h.out.stderr);
    assert.deepEqual(h.source.requests, [
      { method: 'createOrSelectStack', stackName: 'dev', workDir: h.deps.projectDir },
    ]);
    assert.deepEqual(
      h.source.stack('dev').calls.map((c) => c.method),
      ['preview'],
    );
    assert.match(h.out.stdout, /Preview of stack dev: 12 to create \(3 unchanged\)/);
  });

  it('refresh and destroy with --yes select the existing stack and stream their output', async () => {
    h = harness();
    assert.equal(await h.run('refresh', '--env', 'dev', '--yes'), EXIT.ok, h.out.stderr);
    assert.equal(await h.run('destroy', '--env', 'dev', '--yes'), EXIT.ok, h.out.stderr);
    assert.deepEqual(
      h.source.requests.map((r) => `${r.method} ${r.stackName}`),
      ['selectStack dev', 'selectStack dev'],
    );
    assert.deepEqual(
      h.source.stack('dev').calls.map((c) => c.method),
      ['refresh', 'destroy'],
    );
    assert.match(h.out.stdout, /Refreshing \(dev\)/);
    assert.match(h.out.stdout, /Destroyed stack dev: 15 to delete/);
  });

  it('destroy at a terminal previews what it deletes, asks for the stack name, and does nothing on a wrong one', async () => {
    h = harness({ tty: true, answer: 'y' });
    assert.equal(await h.run('destroy', '--env', 'dev'), EXIT.cancelled);
    assert.deepEqual(h.confirmations, ['Type the stack name (dev) to destroy it:']);
    assert.deepEqual(
      h.source.stack('dev').calls.map((c) => c.method),
      ['previewDestroy'],
    );
    assert.match(h.out.stdout, /Preview: 15 to delete/);
    assert.match(h.out.stderr, /cancelled: "y" is not the stack name; nothing was changed/);
  });

  it('destroy at a terminal goes ahead when the stack name is typed', async () => {
    h = harness({ tty: true, answer: 'dev' });
    assert.equal(await h.run('destroy', '--env', 'dev'), EXIT.ok, h.out.stderr);
    assert.deepEqual(
      h.source.stack('dev').calls.map((c) => c.method),
      ['previewDestroy', 'destroy'],
    );
  });

  it('refresh at a terminal previews the state changes before asking', async () => {
    h = harness({ tty: true, answer: 'y' });
    assert.equal(await h.run('refresh', '--env', 'dev'), EXIT.ok, h.out.stderr);
    assert.deepEqual(
      h.source.stack('dev').calls.map((c) => c.method),
      ['previewRefresh', 'refresh'],
    );
    assert.match(h.out.stdout, /Preview: 1 to update \(14 unchanged\)/);
  });

  it('--json on deploy, preview, refresh and destroy prints one JSON object on stdout, Pulumi output on stderr', async () => {
    h = harness();
    const outputs: unknown[] = [];
    for (const argv of [
      ['deploy', '--env', 'dev', '--yes', '--json'],
      ['preview', '--env', 'dev', '--json'],
      ['refresh', '--env', 'dev', '--yes', '--json'],
      ['destroy', '--env', 'dev', '--yes', '--json'],
    ]) {
      const start = h.out.stdout.length;
      assert.equal(await h.run(...argv), EXIT.ok, argv.join(' '));
      outputs.push(JSON.parse(h.out.stdout.slice(start)));
    }
    assert.deepEqual(outputs[0], {
      env: 'dev',
      changes: { create: 12, same: 3 },
      outputs: JSON.parse(JSON.stringify((outputs[0] as { outputs: unknown }).outputs)),
    });
    assert.equal((outputs[0] as { outputs: Record<string, unknown> }).outputs.passwordSecretId, '[secret]');
    assert.deepEqual(outputs.slice(1), [
      { env: 'dev', changes: { create: 12, same: 3 } },
      { env: 'dev', changes: { same: 15 } },
      { env: 'dev', changes: { delete: 15 } },
    ]);
    assert.match(h.out.stderr, /Updating \(dev\)/);
  });

  it('outputs --json prints the outputs as one JSON object with secrets masked', async () => {
    h = harness();
    assert.equal(await h.run('outputs', '--env', 'dev', '--json'), EXIT.ok, h.out.stderr);
    const parsed = JSON.parse(h.out.stdout) as Record<string, unknown>;
    assert.equal(parsed.listenerJobName, 'pgcdc-listener');
    assert.equal(parsed.passwordSecretId, '[secret]');
  });

  it('--env local is not a Pulumi stack: deploy says to use local up', async () => {
    h = harness();
    assert.equal(await h.run('deploy', '--env', 'local', '--yes'), EXIT.usage);
    assert.match(h.out.stderr, /pgcdc local up/);
    assert.deepEqual(h.source.requests, []);
  });

  it('a missing --env is a usage error', async () => {
    h = harness();
    assert.equal(await h.run('deploy', '--yes'), EXIT.usage);
    assert.match(h.out.stderr, /required option '--env <stack>' not specified/);
  });
});

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

  it('at a terminal, deploy previews, asks, and changes nothing when the answer is no', async () => {
    h = harness({ tty: true, confirm: false });
    const code = await h.run('deploy', '--env', 'dev');
    assert.equal(code, EXIT.ok, h.out.stderr);
    assert.deepEqual(
      h.source.stack('dev').calls.map((c) => c.method),
      ['preview'],
    );
    assert.deepEqual(h.confirmations, ['Deploy stack "dev"?']);
    assert.match(h.out.stdout, /Preview: 12 to create/);
    assert.match(h.out.stdout, /Cancelled: nothing was changed/);
  });

  it('at a terminal, deploy goes ahead after a yes', async () => {
    h = harness({ tty: true, confirm: true });
    assert.equal(await h.run('deploy', '--env', 'dev'), EXIT.ok, h.out.stderr);
    assert.deepEqual(
      h.source.stack('dev').calls.map((c) => c.method),
      ['preview', 'up'],
    );
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

  it('a Pulumi failure shows the end of its output; missing Google credentials get their own code', async () => {
    h = harness();
    h.source.stack('dev').fail.up = new CommandError(
      'code: 255\nstderr: error: resource creation failed: quota exceeded',
    );
    assert.equal(await h.run('deploy', '--env', 'dev', '--yes'), EXIT.failure);
    assert.match(h.out.stderr, /pulumi failed on stack "dev"/);
    assert.match(h.out.stderr, /quota exceeded/);

    h.source.stack('dev').fail.up = new CommandError(
      'stderr: gcp:sql:DatabaseInstance error: could not find default credentials. See https://cloud.google.com/docs/authentication',
    );
    assert.equal(await h.run('deploy', '--env', 'dev', '--yes'), EXIT.noCredentials);
    assert.match(h.out.stderr, /gcloud auth application-default login/);
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

  it('destroy at a terminal asks first and does nothing on no', async () => {
    h = harness({ tty: true, confirm: false });
    assert.equal(await h.run('destroy', '--env', 'dev'), EXIT.ok);
    assert.deepEqual(h.confirmations, ['Destroy stack "dev"?']);
    assert.deepEqual(h.source.stack('dev').calls, []);
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

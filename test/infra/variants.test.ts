// The real program under other configurations than the dev stack's, each in a child process.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { VARIANT_ENV } from './harness';

type Obj = Record<string, unknown>;
interface Resource {
  type: string;
  name: string;
  inputs: Obj;
}

/** Runs index.ts with the dev config plus `overrides` in a child process; resolves when the child exits. */
function runVariant(
  overrides: Record<string, string | null>,
): Promise<{ resources?: Resource[]; error?: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'variant-runner.js')], {
      env: { ...process.env, [VARIANT_ENV]: JSON.stringify(overrides) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      try {
        resolve(JSON.parse(out) as { resources?: Resource[]; error?: string });
      } catch {
        reject(new Error(`variant run exited ${code} without a report; stderr: ${err}`));
      }
    });
  });
}

const find = (rs: Resource[], type: string, nameIncludes = ''): Resource[] =>
  rs.filter((r) => r.type === type && r.name.includes(nameIncludes));

describe('the pgcdc stack under other configurations', function () {
  it('stops before creating anything when a key is wrong, naming the key and the reason', async () => {
    const { resources, error } = await runVariant({ 'pgcdc:region': 'mars-west1' });
    assert.equal(resources, undefined);
    assert.match(error!, /^config region: "mars-west1" is not a Google Cloud region/);
  });

  describe('protected, with prebuilt images, two tables and an alert e-mail', () => {
    let rs: Resource[];
    before(async () => {
      const { resources, error } = await runVariant({
        'pgcdc:deletionProtection': null, // the default: protected
        'pgcdc:maxSlotWalKeepSizeMb': null,
        'pgcdc:listenerImage': 'europe-docker.pkg.dev/ci-project/images/listener@sha256:' + 'a'.repeat(64),
        'pgcdc:sinkImage': 'europe-docker.pkg.dev/ci-project/images/sink:v1',
        'pgcdc:tables': JSON.stringify(['public.customers', 'sales.orders']),
        'pgcdc:alertEmail': 'oncall@example.com',
      });
      assert.equal(error, undefined);
      rs = resources!;
    });

    it('data is protected by default: instance, dataset contents and _failed', () => {
      const instance = find(rs, 'gcp:sql/databaseInstance:DatabaseInstance')[0]!;
      assert.equal(instance.inputs.deletionProtection, true);
      assert.equal((instance.inputs.settings as Obj).deletionProtectionEnabled, true);
      assert.equal(find(rs, 'gcp:bigquery/dataset:Dataset')[0]!.inputs.deleteContentsOnDestroy, false);
      assert.equal(find(rs, 'gcp:bigquery/table:Table', 'failed')[0]!.inputs.deletionProtection, true);
    });
    it('without maxSlotWalKeepSizeMb the server default (unlimited) stays', () => {
      const flags = ((find(rs, 'gcp:sql/databaseInstance:DatabaseInstance')[0]!.inputs.settings as Obj)
        .databaseFlags ?? []) as Obj[];
      assert.ok(!flags.some((f) => f.name === 'max_slot_wal_keep_size'));
    });
    it('prebuilt images are run as given and nothing is built', () => {
      assert.deepEqual(find(rs, 'docker:index/image:Image'), []);
      const image = (role: string) =>
        (
          ((find(rs, 'gcp:cloudrunv2/job:Job', role)[0]!.inputs.template as Obj).template as Obj)
            .containers as Obj[]
        )[0]!.image;
      assert.equal(
        image('listener'),
        'europe-docker.pkg.dev/ci-project/images/listener@sha256:' + 'a'.repeat(64),
      );
      assert.equal(image('sink'), 'europe-docker.pkg.dev/ci-project/images/sink:v1');
    });
    it('the listener captures every configured table', () => {
      const envs = (
        ((find(rs, 'gcp:cloudrunv2/job:Job', 'listener')[0]!.inputs.template as Obj).template as Obj)
          .containers as Obj[]
      )[0]!.envs as Obj[];
      assert.equal(envs.find((e) => e.name === 'PGCDC_TABLES')!.value, 'public.customers,sales.orders');
    });
    it('every alert policy notifies the configured e-mail channel', () => {
      const [channel] = find(rs, 'gcp:monitoring/notificationChannel:NotificationChannel');
      assert.ok(channel);
      assert.equal(channel.inputs.type, 'email');
      assert.deepEqual(channel.inputs.labels, { email_address: 'oncall@example.com' });
      const policies = find(rs, 'gcp:monitoring/alertPolicy:AlertPolicy');
      assert.equal(policies.length, 4);
      for (const p of policies) assert.equal((p.inputs.notificationChannels as string[]).length, 1, p.name);
    });
  });
});

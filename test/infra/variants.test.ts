// The real program under other configurations than the dev stack's, each in a child process.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { INSTANCE_ENV, PROJECT, VARIANT_ENV } from './harness';

type Obj = Record<string, unknown>;
interface Resource {
  type: string;
  name: string;
  inputs: Obj;
}

interface Report {
  resources?: Resource[];
  invokes?: Array<{ token: string; inputs: Obj }>;
  outputs?: Obj;
  error?: string;
}

/**
 * Runs index.ts with the dev config plus `overrides` in a child process (and, for sourceMode cloudsql, the
 * existing instance the data source describes, overridden by `instance`); resolves when the child exits.
 */
function runVariant(overrides: Record<string, string | null>, instance?: Obj): Promise<Report> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'variant-runner.js')], {
      env: {
        ...process.env,
        [VARIANT_ENV]: JSON.stringify(overrides),
        ...(instance ? { [INSTANCE_ENV]: JSON.stringify(instance) } : {}),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      try {
        resolve(JSON.parse(out) as Report);
      } catch {
        reject(new Error(`variant run exited ${code} without a report; stderr: ${err}`));
      }
    });
  });
}

const find = (rs: Resource[], type: string, nameIncludes = ''): Resource[] =>
  rs.filter((r) => r.type === type && r.name.includes(nameIncludes));

/**
 * The stack's one private zone is `dnsName` itself, bound to our VPC, with an A record at its apex for the
 * PSC endpoint (the mocked address is 10.10.0.5); the jobs that connect dial the record's name (PGHOST,
 * without the trailing dot).
 */
function assertPrivateZoneFor(rs: Resource[], dnsName: string): void {
  const zones = find(rs, 'gcp:dns/managedZone:ManagedZone');
  const records = find(rs, 'gcp:dns/recordSet:RecordSet');
  assert.deepEqual([zones.length, records.length], [1, 1]);
  const [zone, record] = [zones[0]!, records[0]!];
  assert.equal(zone.inputs.dnsName, dnsName);
  assert.equal(zone.inputs.visibility, 'private');
  assert.equal(record.inputs.name, zone.inputs.dnsName, 'the record is inside its zone (the apex)');
  assert.equal(record.inputs.type, 'A');
  assert.deepEqual(record.inputs.rrdatas, ['10.10.0.5']);
  for (const role of ['listener', 'admin']) {
    const job = find(rs, 'gcp:cloudrunv2/job:Job', `jobs-${role}`)[0]!;
    const container = (((job.inputs.template as Obj).template as Obj).containers as Obj[])[0]!;
    const envs = container.envs as Array<{ name: string; value?: string }>;
    assert.equal(envs.find((e) => e.name === 'PGHOST')?.value, dnsName.replace(/\.$/, ''), role);
  }
}

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
      // job-failed, dead-letters, slot-lag, stuck-transaction, slot-lost, lookup-blocked, tables-skipped,
      // listener-errors, disk-filling.
      assert.equal(policies.length, 9);
      for (const p of policies) assert.equal((p.inputs.notificationChannels as string[]).length, 1, p.name);
    });
  });

  it("a larger sinkMemory or listenerMemory raises that job's V8 heap cap (old space), not its semi-spaces", async () => {
    const { resources, error } = await runVariant({
      'pgcdc:sinkMemory': '2Gi',
      'pgcdc:listenerMemory': '1Gi',
    });
    assert.equal(error, undefined);
    const container = (role: string) =>
      (
        (
          (find(resources!, 'gcp:cloudrunv2/job:Job', `jobs-${role}`)[0]!.inputs.template as Obj)
            .template as Obj
        ).containers as Obj[]
      )[0]!;
    const env = (role: string, name: string) =>
      (container(role).envs as Obj[]).find((e) => e.name === name)?.value;
    assert.deepEqual((container('sink').resources as Obj).limits, { cpu: '1', memory: '2Gi' });
    assert.equal(env('sink', 'NODE_OPTIONS'), '--max-old-space-size=1024 --max-semi-space-size=16');
    assert.deepEqual((container('listener').resources as Obj).limits, { cpu: '1', memory: '1Gi' });
    assert.equal(env('listener', 'NODE_OPTIONS'), '--max-old-space-size=320 --max-semi-space-size=8');
    // The admin job: the listener's image and resources, so its heap cap too.
    assert.deepEqual((container('admin').resources as Obj).limits, { cpu: '1', memory: '1Gi' });
    assert.equal(env('admin', 'NODE_OPTIONS'), '--max-old-space-size=320 --max-semi-space-size=8');
  });

  describe("sourceMode cloudsql and host: the user's database is read, never managed", () => {
    const theirs = 'their-project';
    const cloudsql = {
      'pgcdc:sourceMode': 'cloudsql',
      'pgcdc:sourceInstance': `${theirs}:us-central1:prod-db`,
      'pgcdc:adminPasswordSecret': `projects/${theirs}/secrets/prod-db-admin`,
    };
    const host = {
      'pgcdc:sourceMode': 'host',
      'pgcdc:sourceHost': 'pg.corp.example.com',
      'pgcdc:sourcePort': '6432',
      'pgcdc:sourceCaCert': '-----BEGIN CERTIFICATE-----\nMIIcorpCA\n-----END CERTIFICATE-----',
      'pgcdc:sourceSubnet': 'projects/net-host-prj/regions/us-central1/subnetworks/to-corp',
      'pgcdc:adminPasswordSecret': 'corp-pg-admin',
      'pgcdc:replicatorPasswordSecret': 'corp-pg-replicator',
    };
    const jobEnv = (rs: Resource[], role: string) =>
      new Map(
        (
          (
            ((find(rs, 'gcp:cloudrunv2/job:Job', `jobs-${role}`)[0]!.inputs.template as Obj).template as Obj)
              .containers as Obj[]
          )[0]!.envs as Obj[]
        ).map((e) => [String(e.name), e]),
      );
    const listenerEnv = (rs: Resource[]) => jobEnv(rs, 'listener');
    const vpcOf = (rs: Resource[], role: string) =>
      ((find(rs, 'gcp:cloudrunv2/job:Job', `jobs-${role}`)[0]!.inputs.template as Obj).template as Obj)
        .vpcAccess as Obj;

    /**
     * Every registered resource is checked, not a list of expected ones: nothing of type gcp:sql/* (no
     * instance, database, user, certificate...), no IAM binding or policy (which would replace others'
     * grants), and nothing in the user's project but an additive accessor grant for one of our accounts
     * on a secret they named.
     */
    function assertNothingManagesTheirDatabase(rs: Resource[], userProjects: string[]): void {
      assert.ok(rs.length > 40, 'the whole stack was registered');
      for (const r of rs) {
        const what = `${r.type} ${r.name}`;
        assert.ok(!r.type.startsWith('gcp:sql/'), `${what}: a Cloud SQL resource`);
        assert.doesNotMatch(r.type, /IamBinding|IAMBinding|IamPolicy|IAMPolicy/, what);
        const project = r.inputs.project as string | undefined;
        if (project === undefined || project === PROJECT) continue;
        assert.ok(userProjects.includes(project), `${what} in ${project}`);
        assert.equal(
          r.type,
          'gcp:secretmanager/secretIamMember:SecretIamMember',
          `${what} in the user's project`,
        );
        assert.equal(r.inputs.role, 'roles/secretmanager.secretAccessor', what);
        assert.match(
          String(r.inputs.member),
          new RegExp(`^serviceAccount:pgcdc-(listener|admin)@${PROJECT}\\.`),
          what,
        );
      }
    }

    describe('cloudsql through Private Service Connect (the instance allows our project)', () => {
      let report: Report;
      before(async () => {
        report = await runVariant(cloudsql);
        assert.equal(report.error, undefined);
      });
      it('reads the instance and the CA certificates it lists with data sources, in its own project', () =>
        assert.deepEqual(report.invokes, [
          {
            token: 'gcp:sql/getDatabaseInstance:getDatabaseInstance',
            inputs: { project: theirs, name: 'prod-db' },
          },
          {
            token: 'gcp:sql/getCaCerts:getCaCerts',
            inputs: { project: theirs, instance: 'prod-db' },
          },
        ]));
      it('creates nothing that could modify, restart or delete it', () =>
        assertNothingManagesTheirDatabase(report.resources!, [theirs]));
      it("connects through a PSC endpoint of ours to the instance's service attachment, resolved by its DNS name", () => {
        const rs = report.resources!;
        const rule = find(rs, 'gcp:compute/forwardingRule:ForwardingRule', 'sql-psc')[0]!;
        assert.equal(
          rule.inputs.target,
          'projects/tp-producer/regions/us-central1/serviceAttachments/a-prod-db',
        );
        assert.equal(rule.inputs.project, PROJECT);
        assertPrivateZoneFor(rs, 'abcdef.123456.us-central1.sql.goog.');
        const env = listenerEnv(rs);
        // The instance has the per-instance CA (no serverCaMode): its certificate names no host.
        assert.equal(env.get('PGSSLMODE')!.value, 'verify-ca');
        // The instance's serverCaCerts has the current CA only; the upcoming one comes from listServerCas.
        assert.equal(
          env.get('PGCDC_PG_SSL_ROOT_CERT')!.value,
          '-----BEGIN CERTIFICATE-----\nMIIcurrent\n-----END CERTIFICATE-----\n' +
            '-----BEGIN CERTIFICATE-----\nMIIupcoming\n-----END CERTIFICATE-----\n',
        );
        const iface = (vpcOf(rs, 'listener').networkInterfaces as Obj[])[0]!;
        assert.match(
          String(iface.subnetwork),
          new RegExp(`^projects/${PROJECT}/regions/us-central1/subnetworks/pgcdc-net-jobs$`),
        );
      });
      it("the admin password comes from the user's secret (latest version); the replicator's is generated", () => {
        const rs = report.resources!;
        const adminJob = find(rs, 'gcp:cloudrunv2/job:Job', 'jobs-admin')[0]!;
        const envs = (((adminJob.inputs.template as Obj).template as Obj).containers as Obj[])[0]!
          .envs as Obj[];
        const admin = envs.find((e) => e.name === 'PGCDC_ADMIN_PASSWORD')!;
        assert.deepEqual(admin.valueSource, {
          secretKeyRef: { secret: `projects/${theirs}/secrets/prod-db-admin`, version: 'latest' },
        });
        assert.deepEqual(
          find(rs, 'gcp:secretmanager/secret:Secret').map((x) => x.inputs.secretId),
          ['pgcdc-replicator-password'],
        );
        const grant = find(
          rs,
          'gcp:secretmanager/secretIamMember:SecretIamMember',
          'admin-reads-admin-password',
        )[0]!;
        assert.equal(grant.inputs.project, theirs);
        assert.equal(grant.inputs.secretId, `projects/${theirs}/secrets/prod-db-admin`);
      });
      it('has no disk alert (the instance metrics are in its own project), the log alerts all remain', () => {
        const names = find(report.resources!, 'gcp:monitoring/alertPolicy:AlertPolicy').map((p) => p.name);
        assert.ok(!names.some((n) => n.includes('disk')), names.join());
        assert.ok(names.some((n) => n.includes('slot-lost')));
        assert.ok(
          names.some((n) => n.includes('lookup-blocked')) && names.some((n) => n.includes('tables-skipped')),
        );
        assert.equal(report.outputs!.instanceConnectionName, `${theirs}:us-central1:prod-db`);
        assert.equal(report.outputs!.sourceMode, 'cloudsql');
      });
    });

    describe('cloudsql through PSC, the instance reporting a *.sql-psc.goog PSC name (dnsNames)', () => {
      let report: Report;
      const pscName = '0123456789ab.fedcba9876543.us-central1.sql-psc.goog.';
      before(async () => {
        report = await runVariant(cloudsql, {
          dnsNames: [
            { name: pscName, connectionType: 'PRIVATE_SERVICE_CONNECT', dnsScope: 'INSTANCE' },
            {
              name: 'prod-db.abcdef.us-central1.sql.goog.',
              connectionType: 'PRIVATE_SERVICES_ACCESS',
              dnsScope: 'INSTANCE',
            },
          ],
        });
        assert.equal(report.error, undefined);
      });
      it('the private zone is that name, its apex record the PSC endpoint, and the jobs dial it', () =>
        assertPrivateZoneFor(report.resources!, pscName));
    });

    describe('cloudsql through its private IP (sourceSubnet set)', () => {
      let report: Report;
      const subnet = `projects/${theirs}/regions/us-central1/subnetworks/prod-jobs`;
      before(async () => {
        report = await runVariant({ ...cloudsql, 'pgcdc:sourceSubnet': subnet });
        assert.equal(report.error, undefined);
      });
      it('creates no network of its own: Direct VPC egress into their subnet, to the private IP', () => {
        const rs = report.resources!;
        assert.deepEqual(
          rs.filter((r) => r.type.startsWith('gcp:compute/') || r.type.startsWith('gcp:dns/')),
          [],
        );
        for (const role of ['listener', 'admin']) {
          assert.deepEqual(vpcOf(rs, role), {
            networkInterfaces: [{ subnetwork: subnet, tags: ['pgcdc-job'] }],
            egress: 'PRIVATE_RANGES_ONLY',
          });
        }
        assert.equal(listenerEnv(rs).get('PGHOST')!.value, '10.20.0.3');
        assertNothingManagesTheirDatabase(rs, [theirs]);
      });
    });

    describe('cloudsql with the shared CA through its private IP, verify-full asked: checked against its DNS name', () => {
      let report: Report;
      const subnet = `projects/${theirs}/regions/us-central1/subnetworks/prod-jobs`;
      before(async () => {
        report = await runVariant(
          { ...cloudsql, 'pgcdc:sourceSubnet': subnet, 'pgcdc:sourceSslMode': 'verify-full' },
          {
            dnsNames: [
              {
                name: 'prod-db.abcdef.us-central1.sql.goog.',
                connectionType: 'PRIVATE_SERVICES_ACCESS',
                dnsScope: 'INSTANCE',
              },
            ],
            settings: [
              {
                databaseFlags: [{ name: 'cloudsql.logical_decoding', value: 'on' }],
                ipConfigurations: [
                  {
                    privateNetwork: 'projects/their-project/global/networks/prod',
                    serverCaMode: 'GOOGLE_MANAGED_CAS_CA',
                    pscConfigs: [],
                  },
                ],
              },
            ],
          },
        );
        assert.equal(report.error, undefined);
      });
      it('every job dials the private IP (PGHOSTADDR) and checks the certificate names the DNS name (PGHOST)', () => {
        for (const role of ['listener', 'admin']) {
          const env = jobEnv(report.resources!, role);
          assert.equal(env.get('PGSSLMODE')!.value, 'verify-full', role);
          assert.equal(env.get('PGHOST')!.value, 'prod-db.abcdef.us-central1.sql.goog', role);
          assert.equal(env.get('PGHOSTADDR')!.value, '10.20.0.3', role);
        }
      });
    });

    describe('cloudsql that cannot be reached as configured: the error says what to run', () => {
      it('PSC enabled but our project not allowed: the gcloud command keeps the projects already allowed', async () => {
        const { error } = await runVariant(cloudsql, {
          settings: [
            {
              ipConfigurations: [
                {
                  privateNetwork: 'projects/their-project/global/networks/prod',
                  pscConfigs: [{ pscEnabled: true, allowedConsumerProjects: ['other-app'] }],
                },
              ],
            },
          ],
        });
        assert.match(
          error!,
          /^config sourceInstance: the Cloud SQL instance their-project:us-central1:prod-db does not allow project pgcdc-test-project as a PSC consumer/,
        );
        assert.ok(
          error!.includes(
            'gcloud sql instances patch prod-db --project=their-project --allowed-psc-projects=other-app,pgcdc-test-project',
          ),
          error,
        );
        assert.match(
          error!,
          /or set pgcdc:sourceSubnet to a subnet of its VPC \(projects\/their-project\/global\/networks\/prod\)/,
        );
      });
      it('PSC not enabled: the command enables it', async () => {
        const { error } = await runVariant(cloudsql, {
          settings: [{ ipConfigurations: [{ pscConfigs: [] }] }],
          ipAddresses: [],
        });
        assert.match(error!, /does not have Private Service Connect enabled/);
        assert.ok(
          error!.includes('--enable-private-service-connect --allowed-psc-projects=pgcdc-test-project'),
          error,
        );
      });
      it('private IP path but the instance has none', async () => {
        const { error } = await runVariant(
          { ...cloudsql, 'pgcdc:sourceSubnet': `projects/${theirs}/regions/us-central1/subnetworks/x` },
          { ipAddresses: [{ ipAddress: '34.1.2.3', type: 'PRIMARY' }] },
        );
        assert.match(error!, /^config sourceSubnet: the Cloud SQL instance .* has no private IP address/);
      });
      it('verify-full asked of an instance with the per-instance CA: says to use verify-ca, or the shared CA', async () => {
        const { error } = await runVariant({ ...cloudsql, 'pgcdc:sourceSslMode': 'verify-full' });
        assert.match(
          error!,
          /^config sourceSslMode: verify-full cannot succeed: the Cloud SQL instance their-project:us-central1:prod-db uses the per-instance CA \(GOOGLE_MANAGED_INTERNAL_CA\)/,
        );
        assert.match(error!, /Set pgcdc:sourceSslMode to verify-ca/);
      });
      it('not a PostgreSQL instance', async () => {
        const { error } = await runVariant(cloudsql, { databaseVersion: 'MYSQL_8_0' });
        assert.match(error!, /runs MYSQL_8_0, not PostgreSQL/);
      });
    });

    describe('host: any PostgreSQL reachable from a named subnet', () => {
      let report: Report;
      before(async () => {
        report = await runVariant(host);
        assert.equal(report.error, undefined);
      });
      it('reads no Cloud SQL instance and creates no network: Direct VPC egress into the named subnet', () => {
        const rs = report.resources!;
        assert.deepEqual(report.invokes, []);
        assert.deepEqual(
          rs.filter((r) => r.type.startsWith('gcp:compute/') || r.type.startsWith('gcp:dns/')),
          [],
        );
        assert.deepEqual(vpcOf(rs, 'listener'), {
          networkInterfaces: [
            {
              subnetwork: 'projects/net-host-prj/regions/us-central1/subnetworks/to-corp',
              tags: ['pgcdc-job'],
            },
          ],
          egress: 'PRIVATE_RANGES_ONLY',
        });
        assertNothingManagesTheirDatabase(rs, []);
      });
      it('connects to host:port with TLS verified against the configured CA, hostname included', () => {
        const env = listenerEnv(report.resources!);
        assert.equal(env.get('PGHOST')!.value, 'pg.corp.example.com');
        assert.equal(env.get('PGPORT')!.value, '6432');
        assert.equal(env.get('PGSSLMODE')!.value, 'verify-full');
        assert.equal(
          env.get('PGCDC_PG_SSL_ROOT_CERT')!.value,
          '-----BEGIN CERTIFICATE-----\nMIIcorpCA\n-----END CERTIFICATE-----\n',
        );
      });
      it("both passwords come from the user's secrets; the stack creates no secret and no password", () => {
        const rs = report.resources!;
        assert.deepEqual(find(rs, 'gcp:secretmanager/secret:Secret'), []);
        assert.deepEqual(find(rs, 'random:index/randomPassword:RandomPassword'), []);
        assert.deepEqual(listenerEnv(rs).get('PGPASSWORD')!.valueSource, {
          secretKeyRef: { secret: 'corp-pg-replicator', version: 'latest' },
        });
        assert.equal(report.outputs!.adminSecretId, `projects/${PROJECT}/secrets/corp-pg-admin`);
        const names = find(rs, 'gcp:monitoring/alertPolicy:AlertPolicy').map((p) => p.name);
        assert.ok(!names.some((n) => n.includes('disk')), 'no Cloud SQL metric to watch');
      });
    });
  });
});

// Policy tests of the whole stack: the real index.ts, the dev stack's config, Pulumi's mocks.
import assert from 'node:assert/strict';
import { lostSlotError } from '../../listener/errors';
import { ENV } from '../../contract/env';
import { FAILED_TABLE_SCHEMA } from '../../infra/warehouse';
import { REQUIRED_APIS } from '../../infra/apis';
import { ADMIN_ENV } from '../../infra/jobs';
import { LISTENER_NODE_OPTIONS } from '../../listener/runtime';
import { SINK_NODE_OPTIONS } from '../../sink/runtime';
import { LOG_ALERT_RATE_LIMIT } from '../../infra/monitoring';
import {
  MOCK_ACCESS_TOKEN,
  MOCK_PASSWORD,
  PROJECT,
  PROJECT_NUMBER,
  dependsOn,
  dependsOnType,
  isWireSecret,
  one,
  ofType,
  recorded,
  reveal,
  runProgram,
  type Recorded,
} from './harness';

const T = {
  instance: 'gcp:sql/databaseInstance:DatabaseInstance',
  database: 'gcp:sql/database:Database',
  user: 'gcp:sql/user:User',
  secret: 'gcp:secretmanager/secret:Secret',
  secretVersion: 'gcp:secretmanager/secretVersion:SecretVersion',
  secretIam: 'gcp:secretmanager/secretIamMember:SecretIamMember',
  network: 'gcp:compute/network:Network',
  subnet: 'gcp:compute/subnetwork:Subnetwork',
  address: 'gcp:compute/address:Address',
  forwardingRule: 'gcp:compute/forwardingRule:ForwardingRule',
  firewall: 'gcp:compute/firewall:Firewall',
  zone: 'gcp:dns/managedZone:ManagedZone',
  record: 'gcp:dns/recordSet:RecordSet',
  topic: 'gcp:pubsub/topic:Topic',
  subscription: 'gcp:pubsub/subscription:Subscription',
  topicIam: 'gcp:pubsub/topicIAMMember:TopicIAMMember',
  subscriptionIam: 'gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember',
  dataset: 'gcp:bigquery/dataset:Dataset',
  table: 'gcp:bigquery/table:Table',
  datasetIam: 'gcp:bigquery/datasetIamMember:DatasetIamMember',
  repository: 'gcp:artifactregistry/repository:Repository',
  image: 'docker:index/image:Image',
  job: 'gcp:cloudrunv2/job:Job',
  jobIam: 'gcp:cloudrunv2/jobIamMember:JobIamMember',
  schedulerJob: 'gcp:cloudscheduler/job:Job',
  account: 'gcp:serviceaccount/account:Account',
  projectIam: 'gcp:projects/iAMMember:IAMMember',
  service: 'gcp:projects/service:Service',
  serviceIdentity: 'gcp:projects/serviceIdentity:ServiceIdentity',
  alert: 'gcp:monitoring/alertPolicy:AlertPolicy',
  logMetric: 'gcp:logging/metric:Metric',
} as const;

type Obj = Record<string, unknown>;
type Env = {
  name: string;
  value?: string;
  valueSource?: { secretKeyRef?: { secret: string; version: string } };
};

const get = (o: unknown, ...keys: (string | number)[]): unknown =>
  keys.reduce<unknown>((v, k) => (v === undefined || v === null ? undefined : (v as Obj)[k as string]), o);

const email = (role: string) => `pgcdc-${role}@${PROJECT}.iam.gserviceaccount.com`;
const member = (role: string) => `serviceAccount:${email(role)}`;

function jobNamed(role: 'listener' | 'sink' | 'admin'): Recorded {
  return one(T.job, `-jobs-${role}`);
}
function container(job: Recorded): Obj {
  return get(job.inputs, 'template', 'template', 'containers', 0) as Obj;
}
function envOf(job: Recorded): Map<string, Env> {
  return new Map((container(job).envs as Env[]).map((e) => [e.name, e]));
}
function plainEnv(job: Recorded, name: string): string | undefined {
  return envOf(job).get(name)?.value;
}
/** The resource that enables one Google API. */
function apiService(api: string): Recorded {
  const found = ofType(T.service).filter((r) => r.inputs.service === api);
  assert.equal(found.length, 1, `one Service enabling ${api}`);
  return found[0]!;
}
/** Every IAM grant in the stack, whatever the resource level. */
function grants(): Array<{ level: string; role: string; member: string; on: string; r: Recorded }> {
  const levels: Record<string, string> = {
    [T.projectIam]: 'project',
    [T.topicIam]: 'topic',
    [T.subscriptionIam]: 'subscription',
    [T.datasetIam]: 'dataset',
    [T.secretIam]: 'secret',
    [T.jobIam]: 'job',
  };
  return recorded
    .filter((r) => levels[r.type] !== undefined)
    .map((r) => ({
      level: levels[r.type]!,
      role: String(r.inputs.role),
      member: String(r.inputs.member),
      on: String(
        r.inputs.topic ??
          r.inputs.subscription ??
          r.inputs.datasetId ??
          r.inputs.secretId ??
          r.inputs.name ??
          r.inputs.project,
      ),
      r,
    }));
}

describe('the pgcdc stack (dev config, mocked cloud)', function () {
  let outputs: Record<string, unknown>;
  before(async () => {
    outputs = await runProgram();
  });

  describe('database', () => {
    const instance = () => one(T.instance, 'instance');
    const flags = () =>
      new Map((get(instance().inputs, 'settings', 'databaseFlags') as Obj[]).map((f) => [f.name, f.value]));

    it('the database has no public IP and no peered private IP: PSC is the only way in', () => {
      const ip = get(instance().inputs, 'settings', 'ipConfiguration') as Obj;
      assert.equal(ip.ipv4Enabled, false);
      assert.equal(ip.authorizedNetworks, undefined);
      assert.equal(ip.privateNetwork, undefined);
      assert.deepEqual(ip.pscConfigs, [{ pscEnabled: true, allowedConsumerProjects: [PROJECT] }]);
    });
    it('logical decoding is on', () => assert.equal(flags().get('cloudsql.logical_decoding'), 'on'));
    it('IAM database authentication is on', () =>
      assert.equal(flags().get('cloudsql.iam_authentication'), 'on'));
    it('connections without TLS are refused', () =>
      assert.equal(get(instance().inputs, 'settings', 'ipConfiguration', 'sslMode'), 'ENCRYPTED_ONLY'));
    it('no flag Cloud SQL does not support: no max_slot_wal_keep_size, only the two documented cloudsql.* switches', () =>
      // "Some managed databases, such as Cloud SQL and AlloyDB for PostgreSQL, don't support
      // max_slot_wal_keep_size" (https://cloud.google.com/datastream/docs/work-with-postgresql-database-wal-log-files).
      assert.deepEqual([...flags().keys()].sort(), [
        'cloudsql.iam_authentication',
        'cloudsql.logical_decoding',
      ]));
    it('what retained WAL can cost is bounded: the disk grows automatically only up to the limit (dev: 50 GB)', () => {
      assert.equal(get(instance().inputs, 'settings', 'diskAutoresize'), true);
      assert.equal(get(instance().inputs, 'settings', 'diskAutoresizeLimit'), 50);
    });
    it('the server CA mode is explicit: the per-instance CA the jobs verify against', () =>
      assert.equal(
        get(instance().inputs, 'settings', 'ipConfiguration', 'serverCaMode'),
        'GOOGLE_MANAGED_INTERNAL_CA',
      ));
    it('the edition is explicit, so a shared-core tier is accepted on POSTGRES_16', () => {
      assert.equal(instance().inputs.databaseVersion, 'POSTGRES_16');
      assert.equal(get(instance().inputs, 'settings', 'tier'), 'db-g1-small');
      assert.equal(get(instance().inputs, 'settings', 'edition'), 'ENTERPRISE');
    });
    it('deletion protection follows the config (dev: off, so the stack can be destroyed)', () => {
      assert.equal(instance().inputs.deletionProtection, false);
      assert.equal(get(instance().inputs, 'settings', 'deletionProtectionEnabled'), false);
    });
    it('the database exists on the instance; no database user is created through the Cloud SQL API', () => {
      assert.equal(one(T.database, 'db').inputs.name, 'app');
      // "All users you create using Cloud SQL are created as part of the cloudsqlsuperuser role"
      // (https://cloud.google.com/sql/docs/postgres/users): the replicator is created in SQL by the admin
      // job instead, so it is never a cloudsqlsuperuser member.
      assert.deepEqual(ofType(T.user), []);
    });
    it("the admin is Cloud SQL's built-in postgres: its generated password is the instance's rootPassword and its own secret, both as secrets", () => {
      const version = one(T.secretVersion, 'admin-password');
      assert.ok(isWireSecret(version.wire.secretData), 'secretData is sent as a secret');
      assert.equal(reveal(version.inputs.secretData), MOCK_PASSWORD);
      assert.ok(isWireSecret(instance().wire.rootPassword), 'rootPassword is sent as a secret');
      assert.equal(reveal(instance().inputs.rootPassword), MOCK_PASSWORD);
      assert.equal(one(T.secret, 'admin-password').inputs.secretId, 'pgcdc-admin-password');
    });
    it("the replicator's password is generated by the stack and kept in a secret of its own", () => {
      const version = one(T.secretVersion, 'replicator-password');
      assert.ok(isWireSecret(version.wire.secretData));
      assert.equal(version.inputs.secret, one(T.secret, 'replicator-password').id);
      assert.equal(one(T.secret, 'replicator-password').inputs.secretId, 'pgcdc-replicator-password');
    });
  });

  describe('network', () => {
    it('the VPC has only the subnet we declare', () => {
      assert.equal(one(T.network, 'vpc').inputs.autoCreateSubnetworks, false);
      const subnet = one(T.subnet, 'jobs');
      assert.equal(subnet.inputs.ipCidrRange, '10.10.0.0/24');
      assert.equal(subnet.inputs.privateIpGoogleAccess, true);
    });
    it('the PSC endpoint is an internal address forwarding to the instance service attachment', () => {
      const address = one(T.address, 'sql-psc');
      assert.equal(address.inputs.addressType, 'INTERNAL');
      assert.equal(address.inputs.subnetwork, one(T.subnet, 'jobs').id);
      const rule = one(T.forwardingRule, 'sql-psc');
      assert.equal(rule.inputs.target, one(T.instance, 'instance').state.pscServiceAttachmentLink);
      assert.equal(rule.inputs.ipAddress, address.state.selfLink);
      assert.equal(rule.inputs.loadBalancingScheme, '');
      assert.equal(rule.inputs.network, one(T.network, 'vpc').id);
    });
    it("the instance's DNS name (*.us-central1.sql.goog.) is a private zone of its own, its apex the endpoint", () => {
      const dnsName = one(T.instance, 'instance').state.dnsName;
      assert.equal(dnsName, '0123456789ab.cdef01234567.us-central1.sql.goog.');
      const zone = one(T.zone, 'sql-dns');
      assert.equal(zone.inputs.visibility, 'private');
      assert.equal(zone.inputs.dnsName, dnsName);
      assert.deepEqual(get(zone.inputs, 'privateVisibilityConfig', 'networks'), [
        { networkUrl: one(T.network, 'vpc').id },
      ]);
      // The zone's name is left to Pulumi's auto-naming (unique, valid Cloud DNS zone name).
      assert.equal(zone.inputs.name, undefined);
      const record = one(T.record, 'sql-dns');
      assert.equal(record.inputs.managedZone, zone.state.name);
      assert.equal(record.inputs.name, zone.inputs.dnsName, 'the record is the zone apex');
      assert.equal(record.inputs.type, 'A');
      assert.deepEqual(record.inputs.rrdatas, ['10.10.0.5']);
      assert.equal(plainEnv(jobNamed('listener'), 'PGHOST'), String(record.inputs.name).replace(/\.$/, ''));
    });
    it('no firewall rule admits ingress', () => {
      for (const fw of ofType(T.firewall)) {
        assert.ok(
          fw.inputs.direction !== 'INGRESS' || fw.inputs.allows === undefined,
          `${fw.name} allows ingress`,
        );
      }
    });
    it('jobs may reach the database endpoint on 5432 (direct connection, no connector port 3307) and nothing else in the VPC', () => {
      const allows = ofType(T.firewall).filter((f) => f.inputs.allows !== undefined);
      assert.equal(allows.length, 1);
      const allow = allows[0]!;
      assert.equal(allow.inputs.direction, 'EGRESS');
      assert.deepEqual(allow.inputs.destinationRanges, ['10.10.0.5/32']);
      assert.deepEqual(allow.inputs.allows, [{ protocol: 'tcp', ports: ['5432'] }]);
      assert.deepEqual(allow.inputs.targetTags, ['pgcdc-job']);
      const deny = one(T.firewall, 'deny-job-egress');
      assert.deepEqual(deny.inputs.denies, [{ protocol: 'all' }]);
      assert.deepEqual(deny.inputs.destinationRanges, ['0.0.0.0/0']);
      assert.ok(
        (deny.inputs.priority as number) > (allow.inputs.priority as number),
        'the deny ranks below the allow',
      );
    });
  });

  describe('messaging', () => {
    const sub = () => one(T.subscription, 'msg-sink');
    const dlTopic = () => one(T.topic, 'dead-letter');
    it('the sink subscription sends what fails 10 times to the dead-letter topic', () => {
      assert.equal(sub().inputs.topic, one(T.topic, 'changes').id);
      assert.deepEqual(sub().inputs.deadLetterPolicy, {
        deadLetterTopic: dlTopic().id,
        maxDeliveryAttempts: 10,
      });
    });
    it('redeliveries back off from 10 s to 600 s', () =>
      assert.deepEqual(sub().inputs.retryPolicy, { minimumBackoff: '10s', maximumBackoff: '600s' }));
    it('the sink has the full 600 s to write BigQuery before its ack is due', () =>
      assert.equal(sub().inputs.ackDeadlineSeconds, 600));
    it('no subscription expires when idle', () => {
      for (const s of ofType(T.subscription))
        assert.deepEqual(s.inputs.expirationPolicy, { ttl: '' }, s.name);
    });
    it('the sink subscription delivers each ordering key (table) in publish order; the dead-letter one need not', () => {
      assert.equal(sub().inputs.enableMessageOrdering, true);
      assert.equal(one(T.subscription, 'msg-dead-letter').inputs.enableMessageOrdering, undefined);
    });
    it("Pub/Sub's service agent is asked for (ServiceIdentity) once the Pub/Sub API is on", () => {
      const identity = one(T.serviceIdentity, 'pubsub-agent');
      assert.equal(identity.inputs.service, 'pubsub.googleapis.com');
      assert.equal(identity.inputs.project, PROJECT);
      assert.ok(dependsOn(identity, apiService('pubsub.googleapis.com')), 'waits for the Pub/Sub API');
    });
    it('dead letters are kept in a subscription of their own', () =>
      assert.equal(one(T.subscription, 'msg-dead-letter').inputs.topic, dlTopic().id));
    it("Pub/Sub's service agent may publish dead letters and acknowledge the source subscription", () => {
      const agent = `serviceAccount:service-${PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com`;
      const agentGrants = grants().filter((g) => g.member === agent);
      assert.deepEqual(
        agentGrants.map((g) => [g.level, g.role, g.on]).sort(),
        [
          ['project', 'roles/pubsub.serviceAgent', PROJECT],
          ['subscription', 'roles/pubsub.subscriber', 'pgcdc-changes-sink'],
          ['topic', 'roles/pubsub.publisher', 'pgcdc-changes-dead-letter'],
        ].sort(),
      );
    });
    it("all of the agent's grants wait until the agent exists, and the subscription waits for the topic one", () => {
      const agent = `serviceAccount:service-${PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com`;
      const identity = one(T.serviceIdentity, 'pubsub-agent');
      const agentGrants = grants().filter((g) => g.member === agent);
      assert.equal(agentGrants.length, 3);
      for (const g of agentGrants) assert.ok(dependsOn(g.r, identity), `${g.r.name} waits for the agent`);
      assert.ok(dependsOn(sub(), one(T.topicIam, 'agent-publishes-dead-letters')));
    });
    it('the agent gets its default project role as Google would grant it, and destroy leaves that role', () => {
      const role = one(T.projectIam, 'pubsub-agent-role');
      assert.equal(role.inputs.project, PROJECT);
      assert.equal(role.inputs.role, 'roles/pubsub.serviceAgent');
      assert.equal(
        role.inputs.member,
        `serviceAccount:service-${PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com`,
      );
      assert.ok(dependsOn(role, one(T.serviceIdentity, 'pubsub-agent')), 'waits for the agent');
      assert.equal(role.retainOnDelete, true);
      // No other resource is marked retained.
      assert.deepEqual(
        recorded.filter((r) => r.retainOnDelete !== undefined).map((r) => [r.name, r.retainOnDelete]),
        [[role.name, true]],
      );
    });
  });

  describe('warehouse', () => {
    it('the dataset lives in the configured location and its contents go with it only when unprotected', () => {
      const ds = one(T.dataset, 'dataset');
      assert.equal(ds.inputs.datasetId, 'pgcdc_dev');
      assert.equal(ds.inputs.location, 'us-central1');
      assert.equal(ds.inputs.deleteContentsOnDestroy, true); // dev: deletionProtection false
    });
    it('the _failed table has the contract schema', () => {
      const t = one(T.table, 'failed');
      assert.equal(t.inputs.tableId, '_failed');
      const schema = JSON.parse(String(t.inputs.schema)) as Obj[];
      assert.deepEqual(
        schema.map((f) => [f.name, f.type, f.mode]),
        [
          ['failed_at', 'TIMESTAMP', 'REQUIRED'],
          ['reason', 'STRING', 'REQUIRED'],
          ['subscription', 'STRING', 'NULLABLE'],
          ['message_id', 'STRING', 'NULLABLE'],
          ['attempts', 'INTEGER', 'NULLABLE'],
          ['attributes', 'JSON', 'NULLABLE'],
          ['payload', 'BYTES', 'NULLABLE'],
          ['table_name', 'STRING', 'NULLABLE'],
        ],
      );
      assert.equal(schema.length, FAILED_TABLE_SCHEMA.length);
      assert.equal(t.inputs.deletionProtection, false);
    });
    it('the sink learns the dataset, its location and the replicas max_staleness', () => {
      const sink = jobNamed('sink');
      assert.equal(plainEnv(sink, ENV.dataset), 'pgcdc_dev');
      assert.equal(plainEnv(sink, ENV.bigQueryLocation), 'us-central1');
      assert.equal(plainEnv(sink, ENV.maxStalenessMinutes), '15');
    });
  });

  describe('images', () => {
    it('images are pushed to a Docker repository of Artifact Registry in the region', () => {
      const repo = one(T.repository, 'repo');
      assert.equal(repo.inputs.format, 'DOCKER');
      assert.equal(repo.inputs.location, 'us-central1');
    });
    it('old untagged image versions are cleaned up, the newest five always kept', () => {
      const repo = one(T.repository, 'repo');
      assert.equal(repo.inputs.cleanupPolicyDryRun, false);
      assert.deepEqual(repo.inputs.cleanupPolicies, [
        {
          id: 'delete-old-untagged',
          action: 'DELETE',
          condition: { tagState: 'UNTAGGED', olderThan: '30d' },
        },
        { id: 'keep-newest', action: 'KEEP', mostRecentVersions: { keepCount: 5 } },
      ]);
    });
    for (const role of ['listener', 'sink'] as const) {
      it(`the ${role} image is built from ${role}/Dockerfile with the repository root as context, for linux/amd64`, () => {
        const img = one(T.image, `images-${role}`);
        assert.deepEqual(get(img.inputs, 'build'), {
          context: '.',
          dockerfile: `${role}/Dockerfile`,
          platform: 'linux/amd64',
        });
        assert.equal(img.inputs.imageName, `us-central1-docker.pkg.dev/${PROJECT}/pgcdc/${role}:latest`);
        const registry = img.wire.registry as Obj;
        assert.ok(isWireSecret(registry.password), 'the registry token is sent as a secret');
        assert.equal(reveal(registry.password), MOCK_ACCESS_TOKEN);
        assert.equal(registry.server, 'us-central1-docker.pkg.dev');
        assert.equal(registry.username, 'oauth2accesstoken');
      });
      it(`the ${role} job runs the pushed image by digest`, () => {
        const img = one(T.image, `images-${role}`);
        assert.equal(container(jobNamed(role)).image, img.state.repoDigest);
        assert.match(String(img.state.repoDigest), /@sha256:/);
      });
    }
  });

  describe('jobs', () => {
    it('the listener reaches Cloud SQL through Direct VPC egress on our subnet, tagged for the firewall', () => {
      const vpc = get(jobNamed('listener').inputs, 'template', 'template', 'vpcAccess') as Obj;
      assert.deepEqual(vpc.networkInterfaces, [
        { network: one(T.network, 'vpc').id, subnetwork: one(T.subnet, 'jobs').id, tags: ['pgcdc-job'] },
      ]);
      assert.equal(vpc.egress, 'PRIVATE_RANGES_ONLY');
      assert.equal(vpc.connector, undefined);
    });
    it("the listener logs in as the replicator, its password from the replicator's secret, never as a value", () => {
      const pw = envOf(jobNamed('listener')).get('PGPASSWORD');
      assert.equal(pw?.value, undefined);
      assert.deepEqual(pw?.valueSource, {
        secretKeyRef: { secret: 'pgcdc-replicator-password', version: '1' },
      });
      assert.equal(plainEnv(jobNamed('listener'), 'PGUSER'), 'pgcdc_replicator');
      assert.equal(envOf(jobNamed('listener')).has(ADMIN_ENV.adminPassword), false);
    });
    it('the admin job: listener image, own account, admin and replicator passwords from their secrets (decision 1)', () => {
      const admin = jobNamed('admin');
      assert.equal(container(admin).image, container(jobNamed('listener')).image);
      assert.equal(get(admin.inputs, 'template', 'template', 'serviceAccount'), email('admin'));
      const env = envOf(admin);
      assert.equal(plainEnv(admin, ADMIN_ENV.adminUser), 'postgres');
      assert.equal(plainEnv(admin, ADMIN_ENV.replicationUser), 'pgcdc_replicator');
      assert.deepEqual(env.get(ADMIN_ENV.adminPassword)?.valueSource, {
        secretKeyRef: { secret: 'pgcdc-admin-password', version: '1' },
      });
      assert.deepEqual(env.get(ADMIN_ENV.replicatorPassword)?.valueSource, {
        secretKeyRef: { secret: 'pgcdc-replicator-password', version: '1' },
      });
      assert.equal(plainEnv(admin, ADMIN_ENV.replicaIdentityFull), '');
      for (const name of [
        'PGHOST',
        'PGPORT',
        'PGDATABASE',
        'PGSSLMODE',
        ENV.sslRootCert,
        ENV.tables,
        ENV.decoder,
        ENV.slot,
        ENV.publication,
      ])
        assert.equal(plainEnv(admin, name), plainEnv(jobNamed('listener'), name), name);
      assert.equal(env.has('PGUSER'), false, 'no libpq default login: the admin modes log in explicitly');
      assert.equal(env.has('PGPASSWORD'), false);
    });
    it('the admin job runs only when the CLI starts it (no schedule), once per execution, read-only by default', () => {
      const admin = jobNamed('admin');
      assert.deepEqual(container(admin).args, ['check']);
      assert.equal(get(admin.inputs, 'template', 'template', 'maxRetries'), 0);
      assert.equal(get(admin.inputs, 'template', 'taskCount'), 1);
      assert.deepEqual(
        ofType(T.schedulerJob)
          .map((j) => j.inputs.name)
          .sort(),
        ['pgcdc-listener', 'pgcdc-sink'],
      );
      assert.deepEqual(
        get(admin.inputs, 'template', 'template', 'vpcAccess'),
        get(jobNamed('listener').inputs, 'template', 'template', 'vpcAccess'),
      );
    });
    it("each job's V8 heap cap is sized for its container: in the dev stack's 512Mi, the images' own defaults", () => {
      for (const role of ['listener', 'sink', 'admin'] as const) {
        const limits = get(container(jobNamed(role)), 'resources', 'limits') as Obj;
        assert.equal(limits.memory, '512Mi', role);
      }
      assert.equal(plainEnv(jobNamed('sink'), 'NODE_OPTIONS'), SINK_NODE_OPTIONS);
      assert.equal(plainEnv(jobNamed('listener'), 'NODE_OPTIONS'), LISTENER_NODE_OPTIONS);
      // The admin job runs the listener's image with the listener's resources.
      assert.equal(plainEnv(jobNamed('admin'), 'NODE_OPTIONS'), LISTENER_NODE_OPTIONS);
    });
    it('the listener can run `verify`: it knows the dataset and its project', () => {
      assert.equal(plainEnv(jobNamed('listener'), ENV.dataset), 'pgcdc_dev');
      assert.equal(plainEnv(jobNamed('listener'), ENV.bigQueryProject), PROJECT);
    });
    it('the listener connects by the PSC DNS name with TLS verified against the instance CA, no file involved', () => {
      const l = jobNamed('listener');
      const instance = one(T.instance, 'instance');
      assert.equal(plainEnv(l, 'PGHOST'), String(instance.state.dnsName).replace(/\.$/, ''));
      assert.equal(plainEnv(l, 'PGPORT'), '5432');
      assert.equal(plainEnv(l, 'PGSSLMODE'), 'verify-ca');
      assert.equal(plainEnv(l, 'PGDATABASE'), 'app');
      assert.equal(plainEnv(l, 'PGUSER'), 'pgcdc_replicator');
      // Every server CA listServerCas lists (the current one, which is also the instance's serverCaCerts, and
      // the upcoming one of a rotation), once each, as one PEM bundle.
      assert.equal(
        plainEnv(l, ENV.sslRootCert),
        '-----BEGIN CERTIFICATE-----\nMIIDcurrent\n-----END CERTIFICATE-----\n' +
          '-----BEGIN CERTIFICATE-----\nMIIDupcoming\n-----END CERTIFICATE-----\n',
      );
      assert.equal(envOf(l).has('PGHOSTADDR'), false);
    });
    it('the listener reads slot pgcdc_slot with pgoutput (the default decoder) for public.customers and publishes to the topic', () => {
      const l = jobNamed('listener');
      assert.equal(plainEnv(l, ENV.slot), 'pgcdc_slot');
      assert.equal(plainEnv(l, ENV.publication), 'pgcdc_pub');
      assert.equal(plainEnv(l, ENV.decoder), 'pgoutput');
      assert.equal(plainEnv(l, ENV.tables), 'public.customers');
      assert.equal(plainEnv(l, ENV.topic), 'pgcdc-changes');
      assert.equal(plainEnv(l, ENV.project), PROJECT);
    });
    it('the sink drains the change subscription and the dead-letter subscription, outside the VPC', () => {
      const s = jobNamed('sink');
      assert.equal(plainEnv(s, ENV.subscription), 'pgcdc-changes-sink');
      assert.equal(plainEnv(s, ENV.deadLetterSubscription), 'pgcdc-changes-dead-letter');
      assert.equal(get(s.inputs, 'template', 'template', 'vpcAccess'), undefined);
      assert.equal(envOf(s).has('PGPASSWORD'), false);
    });
    it('one listener task at a time (one slot, one reader); timeouts, retries and run bounds from the config', () => {
      for (const role of ['listener', 'sink'] as const) {
        const j = jobNamed(role);
        assert.equal(get(j.inputs, 'template', 'taskCount'), 1, role);
        // The listener's run may take 2 × its 300 s window inside one long transaction, plus a minute.
        assert.equal(
          get(j.inputs, 'template', 'template', 'timeout'),
          role === 'listener' ? '660s' : '600s',
          role,
        );
        assert.equal(get(j.inputs, 'template', 'template', 'maxRetries'), 1, role);
        assert.equal(plainEnv(j, ENV.maxRunSeconds), '300', role);
        assert.equal(plainEnv(j, ENV.mode), 'once', role);
      }
    });
    it('every variable a job gets is one the contract, libpq or Node defines', () => {
      const known = new Set<string>([
        ...Object.values(ENV),
        'PGHOST',
        'PGPORT',
        'PGDATABASE',
        'PGUSER',
        'PGPASSWORD',
        'PGSSLMODE',
        // The heap cap for the job's memory (infra/jobs.ts).
        'NODE_OPTIONS',
        ...Object.values(ADMIN_ENV),
      ]);
      for (const role of ['listener', 'sink', 'admin'] as const) {
        for (const name of envOf(jobNamed(role)).keys()) assert.ok(known.has(name), `${role}: ${name}`);
      }
    });
    it("the scheduler targets the listener job's run URL every 12 minutes with the invoker's OAuth token", () => {
      const s = one(T.schedulerJob, 'listener-schedule');
      assert.equal(s.inputs.schedule, '*/12 * * * *');
      assert.equal(s.inputs.timeZone, 'Etc/UTC');
      assert.equal(s.inputs.region, 'us-central1');
      const target = s.inputs.httpTarget as Obj;
      assert.equal(target.httpMethod, 'POST');
      assert.equal(
        target.uri,
        `https://run.googleapis.com/v2/projects/${PROJECT}/locations/us-central1/jobs/pgcdc-listener:run`,
      );
      assert.deepEqual(target.oauthToken, {
        serviceAccountEmail: email('invoker'),
        scope: 'https://www.googleapis.com/auth/cloud-platform',
      });
      assert.equal(target.oidcToken, undefined);
    });
    it("the scheduler starts the sink on the sink's schedule (dev: 6 minutes after each listener run)", () => {
      const s = one(T.schedulerJob, 'sink-schedule');
      assert.equal(s.inputs.schedule, '6-59/12 * * * *');
      assert.equal(
        get(s.inputs, 'httpTarget', 'uri'),
        `https://run.googleapis.com/v2/projects/${PROJECT}/locations/us-central1/jobs/pgcdc-sink:run`,
      );
    });
    it('a scheduler job is created only after its invoker may run the job', () => {
      for (const role of ['listener', 'sink']) {
        assert.ok(dependsOn(one(T.schedulerJob, `${role}-schedule`), one(T.jobIam, `${role}-invoker`)), role);
      }
    });
    it('each database job is created only after its account may read the secrets it reads', () => {
      assert.ok(dependsOn(jobNamed('listener'), one(T.secretIam, 'listener-reads-replicator-password')));
      assert.ok(dependsOn(jobNamed('admin'), one(T.secretIam, 'admin-reads-admin-password')));
      assert.ok(dependsOn(jobNamed('admin'), one(T.secretIam, 'admin-reads-replicator-password')));
    });
  });

  describe('identity', () => {
    it('each job runs as its own account, and the scheduler uses a fourth', () => {
      assert.equal(
        get(jobNamed('listener').inputs, 'template', 'template', 'serviceAccount'),
        email('listener'),
      );
      assert.equal(get(jobNamed('sink').inputs, 'template', 'template', 'serviceAccount'), email('sink'));
      assert.deepEqual(
        ofType(T.account)
          .map((a) => a.inputs.accountId)
          .sort(),
        ['pgcdc-admin', 'pgcdc-invoker', 'pgcdc-listener', 'pgcdc-sink'],
      );
    });
    it("the listener account holds exactly: topic publisher, the replicator's secret, dataset viewer, BigQuery job user", () => {
      const mine = grants().filter((g) => g.member === member('listener'));
      assert.deepEqual(
        mine.map((g) => [g.level, g.role, g.on]).sort(),
        [
          ['dataset', 'roles/bigquery.dataViewer', 'pgcdc_dev'],
          ['project', 'roles/bigquery.jobUser', PROJECT],
          ['secret', 'roles/secretmanager.secretAccessor', one(T.secret, 'replicator-password').id],
          ['topic', 'roles/pubsub.publisher', 'pgcdc-changes'],
        ].sort(),
      );
    });
    it('the listener account cannot read the admin password, edit BigQuery or consume subscriptions', () => {
      const adminSecret = one(T.secret, 'admin-password').id;
      for (const g of grants().filter((x) => x.member === member('listener'))) {
        assert.notEqual(g.on, adminSecret, g.role);
        assert.doesNotMatch(g.role, /dataEditor|subscriber|owner|editor|admin/, g.role);
      }
    });
    it('only the admin account may read the admin password; it reads nothing else but the replicator password', () => {
      const adminSecret = one(T.secret, 'admin-password').id;
      assert.deepEqual(
        grants()
          .filter((g) => g.on === adminSecret)
          .map((g) => [g.member, g.role]),
        [[member('admin'), 'roles/secretmanager.secretAccessor']],
      );
      assert.deepEqual(
        grants()
          .filter((g) => g.member === member('admin'))
          .map((g) => [g.level, g.role, g.on])
          .sort(),
        [
          ['secret', 'roles/secretmanager.secretAccessor', adminSecret],
          ['secret', 'roles/secretmanager.secretAccessor', one(T.secret, 'replicator-password').id],
        ].sort(),
      );
    });
    it('no identity holds a Cloud SQL role, at any level (the jobs connect directly with a password)', () => {
      for (const g of grants()) assert.doesNotMatch(g.role, /cloudsql/i, `${g.member} ${g.role}`);
    });
    it('the sink account holds exactly: subscriber on its two subscriptions, data editor on the dataset, job user', () => {
      const mine = grants().filter((g) => g.member === member('sink'));
      assert.deepEqual(
        mine.map((g) => [g.level, g.role, g.on]).sort(),
        [
          ['dataset', 'roles/bigquery.dataEditor', 'pgcdc_dev'],
          ['project', 'roles/bigquery.jobUser', PROJECT],
          ['subscription', 'roles/pubsub.subscriber', 'pgcdc-changes-dead-letter'],
          ['subscription', 'roles/pubsub.subscriber', 'pgcdc-changes-sink'],
        ].sort(),
      );
    });
    it('the sink account cannot read the database password, publish changes or reach Cloud SQL', () => {
      for (const g of grants().filter((x) => x.member === member('sink'))) {
        assert.doesNotMatch(g.role, /secretmanager|publisher|cloudsql/, g.role);
      }
    });
    it('the invoker may only run the two jobs', () => {
      const mine = grants().filter((g) => g.member === member('invoker'));
      assert.deepEqual(mine.map((g) => [g.level, g.role, g.on]).sort(), [
        ['job', 'roles/run.invoker', 'pgcdc-listener'],
        ['job', 'roles/run.invoker', 'pgcdc-sink'],
      ]);
    });
    it('no grant is a basic role or an admin role', () => {
      for (const g of grants())
        assert.doesNotMatch(g.role, /^roles\/(owner|editor|viewer)$|admin/i, `${g.member} ${g.role}`);
    });
  });

  describe('monitoring', () => {
    const filters = (id: string) =>
      (one(T.alert, id).inputs.conditions as Obj[]).map((c) =>
        String(get(c, 'conditionThreshold', 'filter')),
      );
    it('a failed execution of either job raises an alert', () => {
      const f = filters('job-failed');
      for (const job of ['pgcdc-listener', 'pgcdc-sink']) {
        assert.ok(
          f.some(
            (x) =>
              x.includes(`job_name = "${job}"`) &&
              x.includes('completed_execution_count') &&
              x.includes('result = "failed"'),
          ),
          job,
        );
      }
    });
    it('a dead-lettered message on the sink subscription raises an alert', () => {
      const [f] = filters('dead-letters');
      assert.match(f!, /subscription_id = "pgcdc-changes-sink"/);
      assert.match(f!, /dead_letter_message_count/);
    });
    const logCondition = (id: string) => {
      const p = one(T.alert, id);
      const conditions = p.inputs.conditions as Obj[];
      assert.equal(conditions.length, 1, `${id}: a log-based policy has exactly one condition`);
      assert.equal(
        get(p.inputs, 'alertStrategy', 'notificationRateLimit', 'period'),
        LOG_ALERT_RATE_LIMIT,
        id,
      );
      return String(get(conditions[0], 'conditionMatchedLog', 'filter'));
    };
    const listenerSummary =
      'resource.type = "cloud_run_job" AND resource.labels.job_name = "pgcdc-listener" AND jsonPayload.command = "listen"';
    it("replication slot lag above the threshold raises an alert, from the listener's summary line", () =>
      assert.equal(logCondition('slot-lag'), `${listenerSummary} AND jsonPayload.lagBytes > ${1024 ** 3}`));
    it('a run stuck inside a transaction raises an alert (summary stuckTransaction not null)', () =>
      assert.equal(
        logCondition('stuck-transaction'),
        `${listenerSummary} AND jsonPayload.stuckTransaction.xid:*`,
      ));
    it('a lost slot raises an alert: the ERROR line the listener exits with, or a summary slotWalStatus "lost"', () => {
      // The listener refuses a lost slot before printing a summary (listener/run.ts checkSlot → lostSlotError),
      // so the ERROR line is what a real loss produces; its message names the state.
      const filter = logCondition('slot-lost');
      assert.ok(filter.includes(`(${listenerSummary} AND jsonPayload.slotWalStatus = "lost")`), filter);
      assert.match(
        filter,
        /job_name = "pgcdc-listener" AND severity >= ERROR AND jsonPayload\.message : "wal_status = lost"\)$/,
      );
      assert.match(lostSlotError('pgcdc_slot').message, /wal_status = lost/);
    });
    it('a run stopped by a blocked TOAST lookup or snapshot raises an alert, one per table (labels extracted from the summary)', () => {
      assert.equal(
        logCondition('lookup-blocked'),
        `${listenerSummary} AND (jsonPayload.stoppedBy = "lookup-blocked" OR jsonPayload.snapshot.stoppedBy = "blocked")`,
      );
      const [c] = one(T.alert, 'lookup-blocked').inputs.conditions as Obj[];
      assert.deepEqual(get(c, 'conditionMatchedLog', 'labelExtractors'), {
        table: 'EXTRACT(jsonPayload.blockedLookup.table)',
        snapshotTable: 'EXTRACT(jsonPayload.snapshot.blocked.table)',
      });
    });
    it("captured tables the listener skips raise an alert, from its WARNING line (the summary's array is not matched)", () =>
      assert.equal(
        logCondition('tables-skipped'),
        'resource.type = "cloud_run_job" AND resource.labels.job_name = "pgcdc-listener" AND severity = WARNING AND jsonPayload.message : "not captured"',
      ));
    it('the alerts for a blocked lookup and skipped tables say what to do', () => {
      const doc = (id: string) => String(get(one(T.alert, id).inputs, 'documentation', 'content'));
      assert.match(doc('lookup-blocked'), /pg_terminate_backend/);
      assert.match(doc('lookup-blocked'), /pgcdc status/);
      assert.match(doc('tables-skipped'), /pgcdc sql init/);
      assert.match(doc('tables-skipped'), /SET LOGGED/);
    });
    it('an ERROR line of the listener raises an alert', () =>
      assert.match(logCondition('listener-errors'), /job_name = "pgcdc-listener" AND severity >= ERROR$/));
    it('the first `pulumi up` cannot race a new log-based metric: no alert condition names one', () => {
      // An alert on a log-based metric created in the same update fails with "Cannot find metric(s)" for up
      // to ~10 minutes (hashicorp/terraform-provider-google#11102).
      const metric = one(T.logMetric, 'slot-lag');
      for (const p of ofType(T.alert)) {
        assert.doesNotMatch(JSON.stringify(p.inputs), /logging\.googleapis\.com\/user\//, p.name);
        assert.ok(!dependsOn(p, metric), `${p.name} waits for no metric`);
      }
      // The metric itself stays, for charts.
      assert.equal(metric.inputs.valueExtractor, 'EXTRACT(jsonPayload.lagBytes)');
    });
    it('failed executions of all three jobs raise an alert', () => {
      const f = filters('job-failed');
      for (const job of ['pgcdc-listener', 'pgcdc-sink', 'pgcdc-admin'])
        assert.ok(
          f.some((x) => x.includes(`job_name = "${job}"`)),
          job,
        );
    });
    it('a filling database disk raises an alert', () => {
      const [f] = filters('disk-filling');
      assert.match(f!, /cloudsql.googleapis.com\/database\/disk\/utilization/);
      assert.match(f!, new RegExp(`database_id = "${PROJECT}:${one(T.instance, 'instance').state.name}"`));
    });
  });

  describe('project', () => {
    it('every API the stack uses is enabled, and none is disabled on destroy', () => {
      const services = ofType(T.service);
      assert.deepEqual(services.map((s) => s.inputs.service).sort(), [...REQUIRED_APIS].sort());
      for (const s of services) assert.equal(s.inputs.disableOnDestroy, false, String(s.inputs.service));
    });
    it('every grant to a Google service agent waits for a ServiceIdentity of that agent', () => {
      // The agent domain each Google service's project-level agent uses (https://cloud.google.com/iam/docs/service-agents).
      const serviceOfDomain: Record<string, string> = {
        'gcp-sa-pubsub': 'pubsub.googleapis.com',
        'gcp-sa-cloudscheduler': 'cloudscheduler.googleapis.com',
        'serverless-robot-prod': 'run.googleapis.com',
      };
      const toAgents = grants().filter((g) =>
        /^serviceAccount:service-\d+@[a-z0-9-]+\.iam\.gserviceaccount\.com$/.test(g.member),
      );
      assert.ok(toAgents.length > 0, 'the stack grants at least one service agent something');
      for (const g of toAgents) {
        const domain = g.member.replace(/^.*@([a-z0-9-]+)\.iam\.gserviceaccount\.com$/, '$1');
        const service = serviceOfDomain[domain];
        assert.ok(service, `${g.r.name}: add the service of agent domain ${domain} to this test`);
        const identities = ofType(T.serviceIdentity).filter(
          (i) => i.inputs.service === service && dependsOn(g.r, i),
        );
        assert.equal(identities.length, 1, `${g.r.name} (${g.member}) waits for its ServiceIdentity`);
      }
    });
    it('every ServiceIdentity is of an API the stack enables', () => {
      for (const i of ofType(T.serviceIdentity))
        assert.ok((REQUIRED_APIS as readonly string[]).includes(String(i.inputs.service)), i.name);
    });
    it('every other cloud resource waits for the APIs to be enabled', () => {
      const cloud = recorded.filter((r) => r.type.startsWith('gcp:') && r.type !== T.service);
      assert.ok(cloud.length > 30);
      for (const r of cloud) assert.ok(dependsOnType(r, T.service), `${r.type} ${r.name}`);
    });
  });

  describe('secrets', () => {
    it('no secret value appears in plain text in any resource input', () => {
      const leaks: string[] = [];
      const walk = (v: unknown, where: string): void => {
        if (isWireSecret(v)) return; // encrypted in state, masked in output
        if (typeof v === 'string') {
          if (v.includes(MOCK_PASSWORD)) leaks.push(`${where}: the replication password`);
          if (v.includes(MOCK_ACCESS_TOKEN)) leaks.push(`${where}: the deployer's access token`);
        } else if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${where}[${i}]`));
        else if (typeof v === 'object' && v !== null)
          for (const [k, x] of Object.entries(v)) walk(x, `${where}.${k}`);
      };
      for (const r of recorded) walk(r.wire, `${r.type} ${r.name}`);
      assert.deepEqual(leaks, []);
      // And the check itself sees the values where they legitimately are.
      assert.ok(recorded.some((r) => JSON.stringify(r.inputs).includes(MOCK_PASSWORD)));
      assert.ok(recorded.some((r) => JSON.stringify(r.inputs).includes(MOCK_ACCESS_TOKEN)));
    });
  });

  describe('outputs', () => {
    it('the stack exports everything the CLI reads', async () => {
      const { promiseOf } = await import('./harness');
      const pulumi = await import('@pulumi/pulumi');
      const resolved: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(outputs)) {
        resolved[k] = pulumi.Output.isInstance(v)
          ? await promiseOf(v as import('@pulumi/pulumi').Output<unknown>)
          : v;
      }
      const instance = one(T.instance, 'instance').state;
      assert.deepEqual(resolved, {
        project: PROJECT,
        region: 'us-central1',
        sourceMode: 'new',
        listenerJobName: 'pgcdc-listener',
        sinkJobName: 'pgcdc-sink',
        adminJobName: 'pgcdc-admin',
        listenerJobId: `projects/${PROJECT}/locations/us-central1/jobs/pgcdc-listener`,
        sinkJobId: `projects/${PROJECT}/locations/us-central1/jobs/pgcdc-sink`,
        adminJobId: `projects/${PROJECT}/locations/us-central1/jobs/pgcdc-admin`,
        topic: 'pgcdc-changes',
        subscription: 'pgcdc-changes-sink',
        deadLetterTopic: 'pgcdc-changes-dead-letter',
        deadLetterSubscription: 'pgcdc-changes-dead-letter',
        dataset: 'pgcdc_dev',
        failedTable: '_failed',
        instanceConnectionName: instance.connectionName,
        databaseHost: String(instance.dnsName).replace(/\.$/, ''),
        databaseName: 'app',
        adminUser: 'postgres',
        replicationUser: 'pgcdc_replicator',
        adminSecretId: one(T.secret, 'admin-password').id,
        replicatorSecretId: one(T.secret, 'replicator-password').id,
        passwordSecretId: one(T.secret, 'replicator-password').id,
        slotName: 'pgcdc_slot',
        publicationName: 'pgcdc_pub',
        listenerImage: one(T.image, 'images-listener').state.repoDigest,
        sinkImage: one(T.image, 'images-sink').state.repoDigest,
        tables: ['public.customers'],
      });
    });
  });
});

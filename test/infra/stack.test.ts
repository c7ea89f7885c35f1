// Policy tests of the whole stack: the real index.ts, the dev stack's config, Pulumi's mocks.
import assert from 'node:assert/strict';
import { ENV } from '../../contract/env';
import { FAILED_TABLE_SCHEMA } from '../../infra/warehouse';
import { REQUIRED_APIS } from '../../infra/apis';
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

function jobNamed(role: 'listener' | 'sink'): Recorded {
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
    it('a stuck slot can retain at most maxSlotWalKeepSizeMb of WAL (dev: 4096 MB)', () =>
      assert.equal(flags().get('max_slot_wal_keep_size'), '4096'));
    it('the edition is explicit, so a shared-core tier is accepted on POSTGRES_16', () => {
      assert.equal(instance().inputs.databaseVersion, 'POSTGRES_16');
      assert.equal(get(instance().inputs, 'settings', 'tier'), 'db-g1-small');
      assert.equal(get(instance().inputs, 'settings', 'edition'), 'ENTERPRISE');
    });
    it('deletion protection follows the config (dev: off, so the stack can be destroyed)', () => {
      assert.equal(instance().inputs.deletionProtection, false);
      assert.equal(get(instance().inputs, 'settings', 'deletionProtectionEnabled'), false);
    });
    it('the database and the replication user exist on the instance', () => {
      assert.equal(one(T.database, 'db').inputs.name, 'app');
      const user = one(T.user, 'replication-user');
      assert.equal(user.inputs.name, 'pgcdc_replicator');
      assert.equal(user.inputs.instance, instance().state.name);
    });
    it('the generated password is stored in Secret Manager and handed to Cloud SQL, both as secrets', () => {
      const version = one(T.secretVersion, 'replication-password');
      assert.ok(isWireSecret(version.wire.secretData), 'secretData is sent as a secret');
      assert.equal(reveal(version.inputs.secretData), MOCK_PASSWORD);
      assert.ok(
        isWireSecret(one(T.user, 'replication-user').wire.password),
        'the user password is sent as a secret',
      );
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
    it("the instance's DNS name resolves to the endpoint, inside the VPC only", () => {
      const zone = one(T.zone, 'sql-dns');
      assert.equal(zone.inputs.visibility, 'private');
      assert.equal(zone.inputs.dnsName, 'us-central1.sql.goog.');
      assert.deepEqual(get(zone.inputs, 'privateVisibilityConfig', 'networks'), [
        { networkUrl: one(T.network, 'vpc').id },
      ]);
      const record = one(T.record, 'sql-dns');
      assert.equal(record.inputs.name, one(T.instance, 'instance').state.dnsName);
      assert.equal(record.inputs.type, 'A');
      assert.deepEqual(record.inputs.rrdatas, ['10.10.0.5']);
    });
    it('no firewall rule admits ingress', () => {
      for (const fw of ofType(T.firewall)) {
        assert.ok(
          fw.inputs.direction !== 'INGRESS' || fw.inputs.allows === undefined,
          `${fw.name} allows ingress`,
        );
      }
    });
    it('jobs may reach the database endpoint on 5432/3307 and nothing else in the VPC', () => {
      const allows = ofType(T.firewall).filter((f) => f.inputs.allows !== undefined);
      assert.equal(allows.length, 1);
      const allow = allows[0]!;
      assert.equal(allow.inputs.direction, 'EGRESS');
      assert.deepEqual(allow.inputs.destinationRanges, ['10.10.0.5/32']);
      assert.deepEqual(allow.inputs.allows, [{ protocol: 'tcp', ports: ['5432', '3307'] }]);
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
    it('dead letters are kept in a subscription of their own', () =>
      assert.equal(one(T.subscription, 'msg-dead-letter').inputs.topic, dlTopic().id));
    it("Pub/Sub's service agent may publish dead letters and acknowledge the source subscription", () => {
      const agent = `serviceAccount:service-${PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com`;
      const agentGrants = grants().filter((g) => g.member === agent);
      assert.deepEqual(
        agentGrants.map((g) => [g.level, g.role, g.on]).sort(),
        [
          ['subscription', 'roles/pubsub.subscriber', 'pgcdc-changes-sink'],
          ['topic', 'roles/pubsub.publisher', 'pgcdc-changes-dead-letter'],
        ].sort(),
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
    it('the listener gets its password from Secret Manager, never as a value', () => {
      const pw = envOf(jobNamed('listener')).get('PGPASSWORD');
      assert.equal(pw?.value, undefined);
      assert.deepEqual(pw?.valueSource, {
        secretKeyRef: { secret: one(T.secret, 'replication-password').inputs.secretId, version: '1' },
      });
    });
    it('the listener connects by the PSC DNS name with TLS verified against the instance CA, no file involved', () => {
      const l = jobNamed('listener');
      const instance = one(T.instance, 'instance');
      assert.equal(plainEnv(l, 'PGHOST'), String(instance.state.dnsName).replace(/\.$/, ''));
      assert.equal(plainEnv(l, 'PGPORT'), '5432');
      assert.equal(plainEnv(l, 'PGSSLMODE'), 'verify-ca');
      assert.equal(plainEnv(l, 'PGDATABASE'), 'app');
      assert.equal(plainEnv(l, 'PGUSER'), 'pgcdc_replicator');
      assert.equal(plainEnv(l, ENV.sslRootCert), get(instance.state, 'serverCaCerts', 0, 'cert'));
    });
    it('the listener reads slot pgcdc_slot with wal2json for public.customers and publishes to the topic', () => {
      const l = jobNamed('listener');
      assert.equal(plainEnv(l, ENV.slot), 'pgcdc_slot');
      assert.equal(plainEnv(l, ENV.publication), 'pgcdc_pub');
      assert.equal(plainEnv(l, ENV.decoder), 'wal2json');
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
        assert.equal(get(j.inputs, 'template', 'template', 'timeout'), '900s', role);
        assert.equal(get(j.inputs, 'template', 'template', 'maxRetries'), 1, role);
        assert.equal(plainEnv(j, ENV.maxRunSeconds), '300', role);
        assert.equal(plainEnv(j, ENV.mode), 'once', role);
      }
    });
    it('every variable a job gets is one the contract or libpq defines', () => {
      const known = new Set<string>([
        ...Object.values(ENV),
        'PGHOST',
        'PGPORT',
        'PGDATABASE',
        'PGUSER',
        'PGPASSWORD',
        'PGSSLMODE',
      ]);
      for (const role of ['listener', 'sink'] as const) {
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
    it('the listener job is created only after its account may read the password', () =>
      assert.ok(dependsOn(jobNamed('listener'), one(T.secretIam, 'listener-reads-password'))));
  });

  describe('identity', () => {
    it('each job runs as its own account, and the scheduler uses a third', () => {
      assert.equal(
        get(jobNamed('listener').inputs, 'template', 'template', 'serviceAccount'),
        email('listener'),
      );
      assert.equal(get(jobNamed('sink').inputs, 'template', 'template', 'serviceAccount'), email('sink'));
      assert.deepEqual(
        ofType(T.account)
          .map((a) => a.inputs.accountId)
          .sort(),
        ['pgcdc-invoker', 'pgcdc-listener', 'pgcdc-sink'],
      );
    });
    it('the listener account holds exactly: topic publisher, secret accessor, Cloud SQL client on our instance', () => {
      const mine = grants().filter((g) => g.member === member('listener'));
      assert.deepEqual(
        mine.map((g) => [g.level, g.role]).sort(),
        [
          ['project', 'roles/cloudsql.client'],
          ['secret', 'roles/secretmanager.secretAccessor'],
          ['topic', 'roles/pubsub.publisher'],
        ].sort(),
      );
      const sqlClient = mine.find((g) => g.role === 'roles/cloudsql.client')!;
      const instanceName = String(one(T.instance, 'instance').state.name);
      assert.match(
        String(get(sqlClient.r.inputs, 'condition', 'expression')),
        new RegExp(`instances/${instanceName}"`),
      );
      assert.equal(mine.find((g) => g.level === 'secret')!.on, one(T.secret, 'replication-password').id);
      assert.equal(mine.find((g) => g.level === 'topic')!.on, 'pgcdc-changes');
    });
    it('the listener account cannot read BigQuery or consume subscriptions', () => {
      for (const g of grants().filter((x) => x.member === member('listener'))) {
        assert.doesNotMatch(g.role, /bigquery|subscriber|owner|editor|viewer/, g.role);
      }
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
    it("replication slot lag above the threshold raises an alert, from the listener's reported lag", () => {
      const metric = one(T.logMetric, 'slot-lag');
      assert.match(String(metric.inputs.filter), /job_name = "pgcdc-listener"/);
      assert.match(String(metric.inputs.filter), /jsonPayload.command = "listen"/);
      assert.equal(metric.inputs.valueExtractor, 'EXTRACT(jsonPayload.lagBytes)');
      const cond = get(one(T.alert, 'slot-lag').inputs, 'conditions', 0, 'conditionThreshold') as Obj;
      assert.match(String(cond.filter), new RegExp(`logging.googleapis.com/user/${metric.state.name}`));
      assert.equal(cond.thresholdValue, 1024 ** 3);
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
        listenerJobName: 'pgcdc-listener',
        sinkJobName: 'pgcdc-sink',
        listenerJobId: `projects/${PROJECT}/locations/us-central1/jobs/pgcdc-listener`,
        sinkJobId: `projects/${PROJECT}/locations/us-central1/jobs/pgcdc-sink`,
        topic: 'pgcdc-changes',
        subscription: 'pgcdc-changes-sink',
        deadLetterTopic: 'pgcdc-changes-dead-letter',
        deadLetterSubscription: 'pgcdc-changes-dead-letter',
        dataset: 'pgcdc_dev',
        failedTable: '_failed',
        instanceConnectionName: instance.connectionName,
        databaseName: 'app',
        replicationUser: 'pgcdc_replicator',
        passwordSecretId: one(T.secret, 'replication-password').inputs.secretId,
        slotName: 'pgcdc_slot',
        publicationName: 'pgcdc_pub',
        listenerImage: one(T.image, 'images-listener').state.repoDigest,
        sinkImage: one(T.image, 'images-sink').state.repoDigest,
        tables: ['public.customers'],
      });
    });
  });
});

// Runs the real Pulumi program (index.ts) against Pulumi's mock monitor and records every resource it
// registers: the inputs as the mocks see them (secrets unwrapped), the inputs exactly as they would be sent
// to the engine (secrets still wrapped), and the resource's dependencies. No Pulumi CLI, no network.
import * as pulumi from '@pulumi/pulumi';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { load as loadYaml } from 'js-yaml';

export const PROJECT = 'pgcdc-test-project';
export const PROJECT_NUMBER = '123456789012';
/** What the mocked random password resolves to; it must never be seen outside a secret. */
export const MOCK_PASSWORD = 'MockReplicationPassw0rdNeverInPlainText';
/** What the mocked getClientConfig returns as the deployer's access token. */
export const MOCK_ACCESS_TOKEN = 'ya29.mock-deployer-access-token';

/** Environment variable carrying config overrides (JSON) into a variant run of the program. */
export const VARIANT_ENV = 'PGCDC_TEST_STACK_CONFIG';
/** Environment variable carrying overrides (JSON) of the existing instance getDatabaseInstance returns. */
export const INSTANCE_ENV = 'PGCDC_TEST_CLOUDSQL_INSTANCE';

/** The existing Cloud SQL instance the mocked data source describes (sourceMode cloudsql variants). */
export function existingInstance(): Record<string, unknown> {
  const base = {
    name: 'prod-db',
    project: 'their-project',
    region: 'us-central1',
    connectionName: 'their-project:us-central1:prod-db',
    databaseVersion: 'POSTGRES_15',
    dnsName: 'abcdef.123456.us-central1.sql.goog.',
    pscServiceAttachmentLink: 'projects/tp-producer/regions/us-central1/serviceAttachments/a-prod-db',
    ipAddresses: [{ ipAddress: '10.20.0.3', type: 'PRIVATE', timeToRetire: '' }],
    // The provider's serverCaCerts is the instance's serverCaCert only: the CA of the certificate in use.
    serverCaCerts: [{ cert: '-----BEGIN CERTIFICATE-----\nMIIcurrent\n-----END CERTIFICATE-----' }],
    settings: [
      {
        databaseFlags: [
          { name: 'cloudsql.logical_decoding', value: 'on' },
          { name: 'max_connections', value: '200' },
        ],
        ipConfigurations: [
          {
            privateNetwork: 'projects/their-project/global/networks/prod',
            pscConfigs: [{ pscEnabled: true, allowedConsumerProjects: [PROJECT] }],
          },
        ],
      },
    ],
  };
  const override = process.env[INSTANCE_ENV];
  return override ? { ...base, ...(JSON.parse(override) as Record<string, unknown>) } : base;
}

/**
 * What listServerCas (gcp.sql.getCaCerts) returns for an instance in the middle of a CA rotation: the CA in
 * use and the one added for the next rotation.
 */
export function listedServerCas(): Array<{ cert: string }> {
  return [
    { cert: '-----BEGIN CERTIFICATE-----\nMIIcurrent\n-----END CERTIFICATE-----' },
    { cert: '-----BEGIN CERTIFICATE-----\nMIIupcoming\n-----END CERTIFICATE-----' },
  ];
}

/** Pulumi's wire marker of a secret value (sdk/nodejs/runtime/rpc.ts specialSigKey / specialSecretSig). */
const SIG_KEY = '4dabf18193072939515e22adb298388d';
const SECRET_SIG = '1b47061264138c4ac30d75fd1eb44270';

export interface Recorded {
  type: string;
  name: string;
  id: string;
  /** Inputs as the mock monitor hands them over (top-level secret values may still be in their envelope). */
  inputs: Record<string, unknown>;
  /** Inputs as serialized for the engine, secrets still wrapped in Pulumi's secret marker. */
  wire: Record<string, unknown>;
  /** URNs this resource explicitly or implicitly depends on. */
  dependencies: string[];
  /** The retainOnDelete resource option as sent to the engine (undefined when not set). */
  retainOnDelete: boolean | undefined;
  state: Record<string, unknown>;
}

export const recorded: Recorded[] = [];
/** Data-source calls the program made (token and arguments). */
export const invokes: Array<{ token: string; inputs: Record<string, unknown> }> = [];

/** The repository root (where Pulumi.yaml is), from the compiled test's location dist-x/test/infra. */
export const REPO_ROOT = findUp(__dirname, 'Pulumi.yaml');
/** The tsc output directory this test was compiled into (dist, dist-infra...). */
export const OUT_DIR = path.resolve(__dirname, '..', '..');

export function findUp(start: string, file: string): string {
  let dir = start;
  for (;;) {
    try {
      readFileSync(path.join(dir, file));
      return dir;
    } catch {
      const parent = path.dirname(dir);
      if (parent === dir) throw new Error(`no ${file} above ${start}`);
      dir = parent;
    }
  }
}

export function promiseOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply((v) => resolve(v)));
}

/** True when a wire value is Pulumi's secret envelope. */
export function isWireSecret(v: unknown): boolean {
  return typeof v === 'object' && v !== null && (v as Record<string, unknown>)[SIG_KEY] === SECRET_SIG;
}

/** The value inside a secret envelope (or the value itself): for reading, not for judging secrecy. */
export function reveal(v: unknown): unknown {
  return isWireSecret(v) ? (v as Record<string, unknown>).value : v;
}

/** The dev stack's configuration as Pulumi would hand it to the program, with a usable project id. */
export function devStackConfig(): Record<string, string> {
  const doc = loadYaml(readFileSync(path.join(REPO_ROOT, 'Pulumi.dev.yaml'), 'utf8')) as {
    config: Record<string, unknown>;
  };
  const config: Record<string, string> = {};
  for (const [k, v] of Object.entries(doc.config)) config[k] = typeof v === 'string' ? v : JSON.stringify(v);
  config['gcp:project'] = PROJECT;
  // A variant run (variants.test.ts) overrides keys in a child process: `null` removes a key.
  const override = process.env[VARIANT_ENV];
  if (override) {
    for (const [k, v] of Object.entries(JSON.parse(override) as Record<string, string | null>)) {
      if (v === null) delete config[k];
      else config[k] = v;
    }
  }
  // As Pulumi does before the program runs (mergeConfig, sdk/go/common/workspace): every project key the
  // stack does not set gets its Pulumi.yaml default, primitives as text, structured values as JSON.
  const project = loadYaml(readFileSync(path.join(REPO_ROOT, 'Pulumi.yaml'), 'utf8')) as {
    config: Record<string, { default?: unknown }>;
  };
  for (const [key, decl] of Object.entries(project.config)) {
    const full = `pgcdc:${key}`;
    if (full in config || decl.default === undefined) continue;
    config[full] = typeof decl.default === 'object' ? JSON.stringify(decl.default) : String(decl.default);
  }
  return config;
}

function stateFor(
  type: string,
  name: string,
  inputs: Record<string, unknown>,
): { id: string; state: Record<string, unknown> } {
  const project = (inputs.project as string | undefined) ?? PROJECT;
  const region =
    (inputs.region as string | undefined) ?? (inputs.location as string | undefined) ?? 'us-central1';
  switch (type) {
    case 'gcp:sql/databaseInstance:DatabaseInstance': {
      const instance = (inputs.name as string | undefined) ?? `${name}-a1b2c3d`;
      return {
        id: instance,
        state: {
          ...inputs,
          name: instance,
          connectionName: `${project}:${region}:${instance}`,
          dnsName: `0123456789ab.cdef01234567.${region}.sql.goog.`,
          pscServiceAttachmentLink: `projects/producer-tp/regions/${region}/serviceAttachments/a-${instance}`,
          // The CA of the certificate in use only (getCaCerts below lists the upcoming one too).
          serverCaCerts: [{ cert: '-----BEGIN CERTIFICATE-----\nMIIDcurrent\n-----END CERTIFICATE-----\n' }],
        },
      };
    }
    case 'gcp:serviceaccount/account:Account': {
      const email = `${inputs.accountId}@${project}.iam.gserviceaccount.com`;
      return {
        id: `projects/${project}/serviceAccounts/${email}`,
        state: { ...inputs, email, member: `serviceAccount:${email}` },
      };
    }
    case 'gcp:compute/network:Network':
      return { id: `projects/${project}/global/networks/${name}`, state: { ...inputs, name } };
    case 'gcp:compute/subnetwork:Subnetwork':
      return { id: `projects/${project}/regions/${region}/subnetworks/${name}`, state: { ...inputs, name } };
    case 'gcp:compute/address:Address':
      return {
        id: `projects/${project}/regions/${region}/addresses/${name}`,
        state: {
          ...inputs,
          name,
          address: '10.10.0.5',
          selfLink: `https://www.googleapis.com/compute/v1/projects/${project}/regions/${region}/addresses/${name}`,
        },
      };
    case 'gcp:dns/managedZone:ManagedZone':
      return { id: `projects/${project}/managedZones/${name}`, state: { ...inputs, name } };
    case 'gcp:pubsub/topic:Topic':
      return { id: `projects/${project}/topics/${inputs.name}`, state: inputs };
    case 'gcp:pubsub/subscription:Subscription':
      return { id: `projects/${project}/subscriptions/${inputs.name}`, state: inputs };
    case 'gcp:secretmanager/secret:Secret':
      return {
        id: `projects/${project}/secrets/${inputs.secretId}`,
        state: { ...inputs, name: `projects/${PROJECT_NUMBER}/secrets/${inputs.secretId}` },
      };
    case 'gcp:secretmanager/secretVersion:SecretVersion':
      return {
        id: `${inputs.secret}/versions/1`,
        state: { ...inputs, version: '1', name: `${inputs.secret}/versions/1` },
      };
    case 'random:index/randomPassword:RandomPassword':
      return { id: 'none', state: { ...inputs, result: MOCK_PASSWORD } };
    case 'docker:index/image:Image': {
      const repo = String(inputs.imageName).replace(/:[^:/]+$/, '');
      return { id: `${name}-id`, state: { ...inputs, repoDigest: `${repo}@sha256:${'0'.repeat(64)}` } };
    }
    case 'gcp:cloudrunv2/job:Job':
      return { id: `projects/${project}/locations/${region}/jobs/${inputs.name}`, state: inputs };
    default:
      return { id: `${name}-id`, state: { ...inputs, name: (inputs.name as string | undefined) ?? name } };
  }
}

let loaded: Promise<Record<string, unknown>> | undefined;

/**
 * Sets the mocks and the dev stack's config, then loads index.ts once (a Pulumi program registers its
 * resources once per process) and waits until every resource is registered. Returns the program's exports.
 */
export function runProgram(): Promise<Record<string, unknown>> {
  loaded ??= load();
  return loaded;
}

async function load(): Promise<Record<string, unknown>> {
  // Capture each registration's wire form and dependencies before the mock monitor unwraps the secrets.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { MockMonitor } = require('@pulumi/pulumi/runtime/mocks') as {
    MockMonitor: { prototype: { registerResource: RegisterResource } };
  };
  const original = MockMonitor.prototype.registerResource;
  const pending = new Map<
    string,
    { wire: Record<string, unknown>; dependencies: string[]; retainOnDelete: boolean | undefined }
  >();
  MockMonitor.prototype.registerResource = function (this: unknown, req, callback) {
    const key = `${req.getType()}::${req.getName()}`;
    pending.set(key, {
      wire: req.getObject()?.toJavaScript() ?? {},
      dependencies: req.getDependenciesList(),
      // The SDK sets it on the request only when the option is given (runtime/resource.js).
      retainOnDelete: req.hasRetainondelete() ? req.getRetainondelete() : undefined,
    });
    return original.call(this, req, callback);
  };

  await pulumi.runtime.setMocks(
    {
      newResource(args: pulumi.runtime.MockResourceArgs) {
        const inputs = args.inputs as Record<string, unknown>;
        const { id, state } = stateFor(args.type, args.name, inputs);
        const key = `${args.type}::${args.name}`;
        const raw = pending.get(key) ?? { wire: {}, dependencies: [], retainOnDelete: undefined };
        recorded.push({ type: args.type, name: args.name, id, inputs, state, ...raw });
        return { id, state };
      },
      call(args: pulumi.runtime.MockCallArgs) {
        switch (args.token) {
          case 'gcp:organizations/getClientConfig:getClientConfig':
            return {
              accessToken: MOCK_ACCESS_TOKEN,
              project: PROJECT,
              region: 'us-central1',
              zone: '',
              id: 'client',
            };
          case 'gcp:organizations/getProject:getProject':
            return { projectId: PROJECT, number: PROJECT_NUMBER };
          case 'gcp:sql/getDatabaseInstance:getDatabaseInstance':
            invokes.push({ token: args.token, inputs: args.inputs as Record<string, unknown> });
            return existingInstance();
          case 'gcp:sql/getCaCerts:getCaCerts': {
            invokes.push({ token: args.token, inputs: args.inputs as Record<string, unknown> });
            // The created instance (sourceMode new) lists its own current and upcoming CA.
            const created = args.inputs.instance !== existingInstance().name;
            return {
              certs: created
                ? [
                    { cert: '-----BEGIN CERTIFICATE-----\nMIIDcurrent\n-----END CERTIFICATE-----\n' },
                    { cert: '-----BEGIN CERTIFICATE-----\nMIIDupcoming\n-----END CERTIFICATE-----' },
                  ]
                : listedServerCas(),
              activeVersion: 'sha1-of-current',
              instance: args.inputs.instance,
              project: args.inputs.project,
              id: `projects/${args.inputs.project}/instance/${args.inputs.instance}`,
            };
          }
          default:
            throw new Error(`unexpected invoke ${args.token}`);
        }
      },
    },
    'pgcdc',
    'dev',
    false,
  );
  pulumi.runtime.setAllConfig(devStackConfig());

  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const program = require(path.join(OUT_DIR, 'index')) as
    Record<string, unknown> | (() => Promise<Record<string, unknown>>);
  // Pulumi calls an exported function and awaits it (its result is the stack's outputs).
  const stack = typeof program === 'function' ? await program() : program;
  // Every output resolves only after the resources behind it are registered; then drain the RPC queue.
  await Promise.all(
    Object.values(stack).map((v) =>
      pulumi.Output.isInstance(v) ? promiseOf(v as pulumi.Output<unknown>) : v,
    ),
  );
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const settings = require('@pulumi/pulumi/runtime/settings') as { waitForRPCs(): Promise<void> };
  await settings.waitForRPCs();
  return stack;
}

type RegisterResource = (
  req: {
    getType(): string;
    getName(): string;
    getObject(): { toJavaScript(): Record<string, unknown> } | undefined;
    getDependenciesList(): string[];
    hasRetainondelete(): boolean;
    getRetainondelete(): boolean | undefined;
  },
  callback: (err: unknown, resp: unknown) => void,
) => Promise<void>;

// --- queries ---

export function ofType(type: string): Recorded[] {
  return recorded.filter((r) => r.type === type);
}

export function one(type: string, nameIncludes: string): Recorded {
  const found = ofType(type).filter((r) => r.name.includes(nameIncludes));
  if (found.length !== 1) {
    throw new Error(
      `expected one ${type} named *${nameIncludes}*, found ${found.map((r) => r.name).join(', ') || 'none'}`,
    );
  }
  return found[0]!;
}

/** Does `r` depend, directly, on a resource of `type`? */
export function dependsOnType(r: Recorded, type: string): boolean {
  return r.dependencies.some((urn) => urn.includes(`::${type}::`) || urn.includes(`$${type}::`));
}

/** Does `r` depend, directly, on the given resource? */
export function dependsOn(r: Recorded, target: Recorded): boolean {
  return r.dependencies.some(
    (urn) =>
      urn.endsWith(`::${target.type}::${target.name}`) || urn.endsWith(`$${target.type}::${target.name}`),
  );
}

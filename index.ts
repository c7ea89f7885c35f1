// The pgcdc stack: composes the infra components and exports what the CLI reads. Nothing else lives here.
//
// The program is an async function (Pulumi awaits an exported function and takes its result as the stack
// outputs, @pulumi/pulumi cmd/run/run.ts) because with sourceMode cloudsql the resources depend on what the
// existing instance is (PSC or private IP), read once through a data source before anything is declared.
import * as gcp from '@pulumi/gcp';
import * as pulumi from '@pulumi/pulumi';
import { ENV } from './contract/env';
import { ProjectApis } from './infra/apis';
import { ConfigError, loadConfig } from './infra/config';
import { Credentials } from './infra/credentials';
import { Database } from './infra/database';
import { Identity } from './infra/identity';
import { Images } from './infra/images';
import { ADMIN_ENV, Jobs, type JobVpc } from './infra/jobs';
import { Messaging } from './infra/messaging';
import { Monitoring } from './infra/monitoring';
import { Network } from './infra/network';
import { commonLabels } from './infra/options';
import { cloudSqlEndpoint, cloudSqlWarnings, hostEndpoint, type SourceEndpoint } from './infra/source';
import { Warehouse } from './infra/warehouse';

export = async () => {
  const config = loadConfig();
  const { project, region, namePrefix: prefix, source } = config;
  const labels = commonLabels(prefix);

  const apis = new ProjectApis(`${prefix}-apis`, { project });
  const waitFor = apis.services;
  // The project number names Google's service agents (Pub/Sub's). Read after the APIs are enabled: on a
  // fresh project the Resource Manager API may not be on when the program starts.
  const projectNumber = gcp.organizations
    .getProjectOutput({ projectId: project }, { dependsOn: waitFor })
    .apply((p) => p.number ?? '');

  const credentials = new Credentials(
    `${prefix}-secrets`,
    { project, namePrefix: prefix, source, labels },
    { waitFor },
  );

  // --- the source database and how the jobs reach it ---
  let database: Database | undefined;
  let endpoint: SourceEndpoint;
  if (source.mode === 'new') {
    database = new Database(
      `${prefix}-db`,
      {
        project,
        region,
        settings: config.database,
        adminPassword: credentials.adminPassword!,
        deletionProtection: config.deletionProtection,
        labels,
      },
      { waitFor },
    );
    endpoint = {
      host: database.hostName,
      port: 5432,
      sslMode: 'verify-ca',
      caCert: database.serverCaCert,
      path: {
        kind: 'psc',
        serviceAttachment: database.instance.pscServiceAttachmentLink,
        dnsName: database.instance.dnsName,
      },
      monitoredDatabaseId: pulumi.interpolate`${project}:${database.instance.name}`,
      connectionName: database.connectionName,
    };
  } else if (source.mode === 'cloudsql') {
    // Data sources, not resources: the user's instance is read, never created, changed or deleted. The
    // network path depends on what is read, so both are read before anything is declared; the deploying
    // credentials' project must have the Cloud SQL Admin and Resource Manager APIs on (the provider's error
    // says so, with the link to enable them).
    const instance = await gcp.sql.getDatabaseInstance({
      project: source.instanceProject,
      name: source.instanceName,
    });
    // Every server CA the instance lists (listServerCas: the one in use, the next one added for a rotation,
    // the one rotated out); the instance's own `serverCaCerts` has the first only (infra/server-ca.ts).
    const listedCas = await gcp.sql.getCaCerts({
      project: source.instanceProject,
      instance: source.instanceName,
    });
    // A PSC consumer list may name our project by id or by number.
    const number = (await gcp.organizations.getProject({ projectId: project })).number ?? '';
    let warnings: string[];
    try {
      ({ warnings, ...endpoint } = cloudSqlEndpoint(instance, listedCas.certs, source, project, number));
    } catch (e) {
      // The same form as every other configuration error, so `pulumi up` says which key to fix and how.
      if (e instanceof ConfigError) throw new Error(e.message, { cause: e });
      throw e;
    }
    for (const warning of [...warnings, ...cloudSqlWarnings(instance, source)]) pulumi.log.warn(warning);
  } else {
    endpoint = hostEndpoint(source);
  }

  let vpc: JobVpc;
  if (endpoint.path.kind === 'psc') {
    const network = new Network(
      `${prefix}-net`,
      {
        project,
        region,
        subnetCidr: config.network.subnetCidr,
        serviceAttachment: endpoint.path.serviceAttachment,
        instanceDnsName: endpoint.path.dnsName,
        jobTag: `${prefix}-job`,
      },
      { waitFor },
    );
    vpc = { network: network.network.id, subnetwork: network.subnetwork.id, tags: [network.jobTag] };
  } else {
    // The user's subnet: nothing is created in their network (no rule, no route); the tag lets them write
    // firewall rules for pgcdc's traffic.
    vpc = { subnetwork: endpoint.path.subnet.id, tags: [`${prefix}-job`] };
  }

  const messaging = new Messaging(
    `${prefix}-msg`,
    { project, namePrefix: prefix, projectNumber, settings: config.messaging, labels },
    { waitFor },
  );

  const warehouse = new Warehouse(
    `${prefix}-bq`,
    {
      project,
      datasetId: config.warehouse.datasetId,
      location: config.warehouse.location,
      deletionProtection: config.deletionProtection,
      labels,
    },
    { waitFor },
  );

  const images = new Images(
    `${prefix}-images`,
    {
      project,
      region,
      repositoryId: prefix,
      prebuilt: { listener: config.listener.image, sink: config.sink.image },
      labels,
    },
    { waitFor },
  );

  const identity = new Identity(
    `${prefix}-iam`,
    {
      project,
      namePrefix: prefix,
      topic: messaging.topic.name,
      subscription: messaging.subscription.name,
      deadLetterSubscription: messaging.deadLetterSubscription.name,
      datasetId: warehouse.dataset.datasetId,
      adminSecret: credentials.admin,
      replicatorSecret: credentials.replicator,
    },
    { waitFor },
  );

  const tables = config.tables.map((t) => t.qualified);
  const databaseName = source.mode === 'new' ? database!.database.name : config.database.name;

  const jobs = new Jobs(
    `${prefix}-jobs`,
    {
      project,
      region,
      namePrefix: prefix,
      timeZone: config.timeZone,
      listener: config.listener,
      sink: config.sink,
      listenerImage: images.listenerImage,
      sinkImage: images.sinkImage,
      listenerServiceAccount: identity.listener.email,
      sinkServiceAccount: identity.sink.email,
      adminServiceAccount: identity.admin.email,
      invokerServiceAccount: identity.invoker.email,
      vpc,
      databaseEnv: {
        // libpq; TLS verified against the server's CA (public certificates, passed as a value: no file).
        PGHOST: endpoint.host,
        // libpq's PGHOSTADDR: the private IP to dial while PGHOST is the name verify-full checks.
        ...(endpoint.hostAddr ? { PGHOSTADDR: endpoint.hostAddr } : {}),
        PGPORT: String(endpoint.port),
        PGDATABASE: databaseName,
        PGSSLMODE: endpoint.sslMode,
        [ENV.sslRootCert]: endpoint.caCert,
        [ENV.slot]: config.database.slotName,
        [ENV.publication]: config.database.publicationName,
        [ENV.decoder]: config.database.decoder,
        [ENV.tables]: tables.join(','),
        [ENV.replicationUser]: config.database.replicationUser,
      },
      listenerEnv: {
        PGUSER: config.database.replicationUser,
        [ENV.project]: project,
        [ENV.topic]: messaging.topic.name,
        // `pgcdc verify` runs as an execution of this job and reads the replicas.
        [ENV.bigQueryProject]: project,
        [ENV.dataset]: warehouse.dataset.datasetId,
        [ENV.bigQueryLocation]: config.warehouse.location,
      },
      adminEnv: {
        [ADMIN_ENV.adminUser]: config.database.adminUser,
        [ADMIN_ENV.replicaIdentityFull]: config.replicaIdentityFull.join(','),
      },
      sinkEnv: {
        [ENV.project]: project,
        [ENV.subscription]: messaging.subscription.name,
        [ENV.deadLetterSubscription]: messaging.deadLetterSubscription.name,
        [ENV.bigQueryProject]: project,
        [ENV.dataset]: warehouse.dataset.datasetId,
        [ENV.bigQueryLocation]: config.warehouse.location,
        [ENV.maxStalenessMinutes]: String(config.warehouse.maxStalenessMinutes),
      },
      adminPassword: { secret: credentials.admin.secretKeyRef, version: credentials.admin.version },
      replicatorPassword: {
        secret: credentials.replicator.secretKeyRef,
        version: credentials.replicator.version,
      },
      listenerGrants: identity.listenerGrants,
      sinkGrants: identity.sinkGrants,
      adminGrants: identity.adminGrants,
    },
    { waitFor },
  );

  new Monitoring(
    `${prefix}-mon`,
    {
      project,
      namePrefix: prefix,
      listenerJobName: jobs.listener.name,
      sinkJobName: jobs.sink.name,
      adminJobName: jobs.admin.name,
      subscriptionName: messaging.subscription.name,
      databaseId: endpoint.monitoredDatabaseId,
      slotLagAlertBytes: config.monitoring.slotLagAlertBytes,
      diskUtilizationAlertPercent: config.monitoring.diskUtilizationAlertPercent,
      alertEmail: config.monitoring.alertEmail,
    },
    { waitFor },
  );

  // --- what the CLI reads (names are a contract: see cli/) ---
  return {
    project,
    region,
    sourceMode: source.mode,
    listenerJobName: jobs.listener.name,
    sinkJobName: jobs.sink.name,
    adminJobName: jobs.admin.name,
    listenerJobId: jobs.listenerJobId,
    sinkJobId: jobs.sinkJobId,
    adminJobId: jobs.adminJobId,
    topic: messaging.topic.name,
    subscription: messaging.subscription.name,
    deadLetterTopic: messaging.deadLetterTopic.name,
    deadLetterSubscription: messaging.deadLetterSubscription.name,
    dataset: warehouse.dataset.datasetId,
    failedTable: warehouse.failedTable.tableId,
    instanceConnectionName: endpoint.connectionName ?? '',
    databaseHost: endpoint.host,
    databaseName,
    adminUser: config.database.adminUser,
    replicationUser: config.database.replicationUser,
    adminSecretId: credentials.admin.id,
    replicatorSecretId: credentials.replicator.id,
    /** @deprecated the replicator's secret under its former name (CLI versions before the role split). */
    passwordSecretId: credentials.replicator.id,
    slotName: config.database.slotName,
    publicationName: config.database.publicationName,
    listenerImage: images.listenerImage,
    sinkImage: images.sinkImage,
    tables,
  };
};

// The pgcdc stack: composes the infra components and exports what the CLI reads. Nothing else lives here.
import * as pulumi from '@pulumi/pulumi';
import { ENV } from './contract/env';
import { ProjectApis } from './infra/apis';
import { loadConfig } from './infra/config';
import { Database } from './infra/database';
import { Identity } from './infra/identity';
import { Images } from './infra/images';
import { Jobs } from './infra/jobs';
import { Messaging } from './infra/messaging';
import { Monitoring } from './infra/monitoring';
import { Network } from './infra/network';
import { commonLabels } from './infra/options';
import { Warehouse } from './infra/warehouse';

const config = loadConfig();
const { project, region, namePrefix: prefix } = config;
const labels = commonLabels(prefix);

const apis = new ProjectApis(`${prefix}-apis`, { project });
const waitFor = apis.services;

const database = new Database(
  `${prefix}-db`,
  { project, region, settings: config.database, deletionProtection: config.deletionProtection, labels },
  { waitFor },
);

const network = new Network(
  `${prefix}-net`,
  {
    project,
    region,
    subnetCidr: config.network.subnetCidr,
    serviceAttachment: database.instance.pscServiceAttachmentLink,
    instanceDnsName: database.instance.dnsName,
    jobTag: `${prefix}-job`,
  },
  { waitFor },
);

const messaging = new Messaging(
  `${prefix}-msg`,
  { project, namePrefix: prefix, settings: config.messaging, labels },
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
    passwordSecretId: database.passwordSecret.id,
    instanceName: database.instance.name,
  },
  { waitFor },
);

const tables = config.tables.map((t) => t.qualified);

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
    invokerServiceAccount: identity.invoker.email,
    network: network.network.id,
    subnetwork: network.subnetwork.id,
    jobTag: network.jobTag,
    listenerEnv: {
      // libpq: through the PSC endpoint's private DNS name, TLS required (the instance accepts nothing else).
      PGHOST: database.hostName,
      PGPORT: '5432',
      PGDATABASE: database.database.name,
      PGUSER: database.replicationUser.name,
      // TLS verified against the instance's own server CA (a public certificate, passed as a value).
      PGSSLMODE: 'verify-ca',
      [ENV.sslRootCert]: database.serverCaCert,
      [ENV.slot]: config.database.slotName,
      [ENV.publication]: config.database.publicationName,
      [ENV.decoder]: config.database.decoder,
      [ENV.tables]: tables.join(','),
      [ENV.project]: project,
      [ENV.topic]: messaging.topic.name,
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
    passwordSecret: database.passwordSecret.secretId,
    passwordSecretVersion: database.passwordSecretVersion.version,
    listenerGrants: identity.listenerGrants,
    sinkGrants: identity.sinkGrants,
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
    subscriptionName: messaging.subscription.name,
    databaseId: pulumi.interpolate`${project}:${database.instance.name}`,
    slotLagAlertBytes: config.monitoring.slotLagAlertBytes,
    diskUtilizationAlertPercent: config.monitoring.diskUtilizationAlertPercent,
    alertEmail: config.monitoring.alertEmail,
  },
  { waitFor },
);

// --- what the CLI reads (names are a contract: see cli/) ---
export { project, region };
export const listenerJobName = jobs.listener.name;
export const sinkJobName = jobs.sink.name;
export const listenerJobId = jobs.listenerJobId;
export const sinkJobId = jobs.sinkJobId;
export const topic = messaging.topic.name;
export const subscription = messaging.subscription.name;
export const deadLetterTopic = messaging.deadLetterTopic.name;
export const deadLetterSubscription = messaging.deadLetterSubscription.name;
export const dataset = warehouse.dataset.datasetId;
export const failedTable = warehouse.failedTable.tableId;
export const instanceConnectionName = database.connectionName;
export const databaseName = database.database.name;
export const replicationUser = database.replicationUser.name;
export const passwordSecretId = database.passwordSecret.secretId;
export const slotName = config.database.slotName;
export const publicationName = config.database.publicationName;
export const listenerImage = images.listenerImage;
export const sinkImage = images.sinkImage;
export { tables };

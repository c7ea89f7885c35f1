// The Google clients the sink uses. In the cloud they authenticate with the job's service account
// (Application Default Credentials); against local emulators they must not look for credentials at all.

import { BigQuery } from '@google-cloud/bigquery';
import { managedwriter } from '@google-cloud/bigquery-storage';
import { v1 } from '@google-cloud/pubsub';
import * as grpc from '@grpc/grpc-js';
// A dependency of @google-cloud/bigquery; its PassThroughClient adds no Authorization header.
import { PassThroughClient } from 'google-auth-library';
import { ENV } from '../contract/env';
import type { SinkConfig } from './config';

// gax asks the auth library for the universe domain before connecting, which probes for credentials (and
// the GCE metadata server) unless the domain is given; against an emulator there is nothing to probe.
const EMULATOR_UNIVERSE = 'googleapis.com';

function hostPort(text: string): { host: string; port: number } {
  const stripped = text.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  const i = stripped.lastIndexOf(':');
  return { host: stripped.slice(0, i), port: Number(stripped.slice(i + 1)) };
}

export function bigQueryClient(cfg: SinkConfig, env: NodeJS.ProcessEnv = process.env): BigQuery {
  const emulator = env[ENV.bigQueryEmulatorHost];
  if (!emulator) return new BigQuery({ projectId: cfg.bigQueryProject, location: cfg.location });
  const bq = new BigQuery({
    projectId: cfg.bigQueryProject,
    location: cfg.location,
    authClient: new PassThroughClient(),
  });
  // The library uses BIGQUERY_EMULATOR_HOST verbatim as its base URL; accept "host:port" too.
  bq.baseUrl = (/^https?:\/\//.test(emulator) ? emulator : `http://${emulator}`).replace(/\/+$/, '');
  return bq;
}

// grpc-js shares connections between clients through a process-wide pool; a connection that failed sits
// in reconnect backoff and fails new clients' calls at once. A run's own pool starts fresh.
const OWN_CONNECTIONS = { 'grpc.use_local_subchannel_pool': 1 };

export function storageWriteClient(cfg: SinkConfig): managedwriter.WriterClient {
  if (!cfg.bigQueryStorageEmulatorHost) {
    return new managedwriter.WriterClient({ projectId: cfg.bigQueryProject, ...OWN_CONNECTIONS });
  }
  const { host, port } = hostPort(cfg.bigQueryStorageEmulatorHost);
  return new managedwriter.WriterClient({
    projectId: cfg.bigQueryProject,
    apiEndpoint: host,
    port,
    sslCreds: grpc.credentials.createInsecure(),
    universeDomain: EMULATOR_UNIVERSE,
    ...OWN_CONNECTIONS,
  });
}

export function subscriberClient(env: NodeJS.ProcessEnv = process.env): v1.SubscriberClient {
  const emulator = env[ENV.pubsubEmulatorHost];
  if (!emulator) return new v1.SubscriberClient();
  const { host, port } = hostPort(emulator);
  return new v1.SubscriberClient({
    servicePath: host,
    port,
    sslCreds: grpc.credentials.createInsecure(),
    universeDomain: EMULATOR_UNIVERSE,
  });
}

/** Shared setup: an emulator on free ports and the real Google clients pointed at it. */
import { BigQuery } from '@google-cloud/bigquery';
import { adapt, managedwriter, protos } from '@google-cloud/bigquery-storage';
import * as grpc from '@grpc/grpc-js';
import { PassThroughClient } from 'google-auth-library';
import { startBigQueryEmulator, type RunningBigQueryEmulator } from '../../local/bigquery-emulator';

export const PROJECT = 'pgcdc-test';

export interface Harness {
  emulator: RunningBigQueryEmulator;
  bigquery: BigQuery;
  writer: managedwriter.WriterClient;
  stop(): Promise<void>;
}

/** BigQuery REST client with no credentials: PassThroughClient adds no auth header and never looks for ADC. */
export function restClient(emulator: Pick<RunningBigQueryEmulator, 'restHost'>): BigQuery {
  return new BigQuery({
    projectId: PROJECT,
    apiEndpoint: `http://${emulator.restHost}`,
    authClient: new PassThroughClient(),
  });
}

/** Storage Write client over insecure gRPC; with sslCreds given, gax sends no Google credentials. */
export function writerClient(
  emulator: Pick<RunningBigQueryEmulator, 'grpcHost'>,
): managedwriter.WriterClient {
  const [host, port] = emulator.grpcHost.split(':');
  return new managedwriter.WriterClient({
    projectId: PROJECT,
    apiEndpoint: host,
    port: Number(port),
    sslCreds: grpc.credentials.createInsecure(),
    // Without an explicit universe domain, google-gax asks Application Default Credentials for one, which
    // probes the GCE metadata server (a MetadataLookupWarning and a delay off Google Cloud).
    universeDomain: 'googleapis.com',
  });
}

export async function startHarness(): Promise<Harness> {
  const emulator = await startBigQueryEmulator();
  const bigquery = restClient(emulator);
  const writer = writerClient(emulator);
  return {
    emulator,
    bigquery,
    writer,
    async stop() {
      writer.close();
      await emulator.stop();
    },
  };
}

export const tablePath = (datasetId: string, tableId: string): string =>
  `projects/${PROJECT}/datasets/${datasetId}/tables/${tableId}`;

/**
 * Opens a JSONWriter on the table's _default stream with a descriptor built from the stream's table schema
 * (view FULL), optionally with the CDC pseudo-columns, as pgcdc's sink does.
 */
export async function openJsonWriter(
  writer: managedwriter.WriterClient,
  datasetId: string,
  tableId: string,
  cdc: { changeType: boolean; sequence: boolean } = { changeType: false, sequence: false },
): Promise<managedwriter.JSONWriter> {
  const destinationTable = tablePath(datasetId, tableId);
  const connection = await writer.createStreamConnection({
    streamId: managedwriter.DefaultStream,
    destinationTable,
  });
  const stream = await writer.getWriteStream({
    streamId: connection.getStreamId(),
    view: protos.google.cloud.bigquery.storage.v1.WriteStreamView.FULL,
  });
  const options = [
    ...(cdc.changeType ? [adapt.withChangeType()] : []),
    ...(cdc.sequence ? [adapt.withChangeSequenceNumber()] : []),
  ];
  const protoDescriptor = adapt.convertStorageSchemaToProto2Descriptor(
    stream.tableSchema!,
    'root',
    ...options,
  );
  return new managedwriter.JSONWriter({ connection, protoDescriptor });
}

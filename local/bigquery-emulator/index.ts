/**
 * pgcdc's local BigQuery emulator: the v2 REST API on one port and the Storage Write API (gRPC) on another,
 * sharing one in-memory store. See README.md for how to point the Google clients at it.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import {
  dataDirFiles,
  dataFileFiles,
  Journal,
  loadStore,
  type DataFiles,
  type JournalStats,
} from './journal';
import { createRestHandler } from './rest';
import { Store } from './store';
import { createWriteApiServer, DEFAULT_MAX_WRITE_CONNECTIONS } from './write-api';

export interface BigQueryEmulatorOptions {
  restPort?: number;
  grpcPort?: number;
  /** Defaults to 127.0.0.1. */
  host?: string;
  /**
   * Durable state in this directory (state.json + journal.jsonl): every acknowledged change is synced to disk
   * before the answer, and loaded again at start. Without it (and without dataFile) the state is in memory only.
   */
  dataDir?: string;
  /** The older single-file form: snapshot at this path, its journal at `${dataFile}.journal`. */
  dataFile?: string;
  /**
   * How long (ms, on the emulator clock) a table schema change takes to reach the Storage Write API; writes
   * naming a column added more recently are refused as BigQuery refuses them. Default 0 (at once).
   */
  schemaPropagationMs?: number;
  /** Open AppendRows connections allowed per project (BigQuery's "Concurrent connections" quota). */
  maxWriteConnections?: number;
}

export interface RunningBigQueryEmulator {
  /** "127.0.0.1:PORT"; BIGQUERY_EMULATOR_HOST wants it with the scheme: `http://${restHost}`. */
  restHost: string;
  /** "127.0.0.1:PORT" of the Storage Write API. */
  grpcHost: string;
  /** Moves the emulator clock forward by `ms` (also `POST /emulator/v1/clock:advance {"ms": N}`). */
  advanceClock(ms: number): number;
  /** What durability cost so far (null without a data directory); benchmarks print it. */
  journalStats(): JournalStats | null;
  stop(): Promise<void>;
}

export async function startBigQueryEmulator(
  opts: BigQueryEmulatorOptions = {},
): Promise<RunningBigQueryEmulator> {
  const host = opts.host ?? '127.0.0.1';
  const files: DataFiles | undefined = opts.dataDir
    ? dataDirFiles(opts.dataDir)
    : opts.dataFile
      ? dataFileFiles(opts.dataFile)
      : undefined;
  const store = files ? loadStore(files) : new Store();
  const journal = files ? new Journal(files, store) : undefined;

  const httpServer = http.createServer(createRestHandler(store));
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(opts.restPort ?? 0, host, () => resolve());
  });
  const restPort = (httpServer.address() as AddressInfo).port;

  const grpcServer = createWriteApiServer(store, {
    schemaPropagationMs: opts.schemaPropagationMs ?? 0,
    maxConnectionsPerProject: opts.maxWriteConnections ?? DEFAULT_MAX_WRITE_CONNECTIONS,
  });
  let grpcPort: number;
  try {
    grpcPort = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync(
        `${host}:${opts.grpcPort ?? 0}`,
        grpc.ServerCredentials.createInsecure(),
        (err, port) => (err ? reject(err) : resolve(port)),
      ),
    );
  } catch (err) {
    httpServer.close();
    throw err;
  }

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      // Open AppendRows streams would keep tryShutdown waiting forever; forceShutdown cancels them.
      grpcServer.forceShutdown();
      journal?.close();
    })();
    return stopped;
  };

  return {
    restHost: `${host}:${restPort}`,
    grpcHost: `${host}:${grpcPort}`,
    advanceClock: (ms) => store.advanceClock(ms),
    journalStats: () => (journal ? { ...journal.stats } : null),
    stop,
  };
}

/**
 * pgcdc's local BigQuery emulator: the v2 REST API on one port and the Storage Write API (gRPC) on another,
 * sharing one in-memory store. See README.md for how to point the Google clients at it.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { createRestHandler } from './rest';
import { Store } from './store';
import { createWriteApiServer } from './write-api';

export interface BigQueryEmulatorOptions {
  restPort?: number;
  grpcPort?: number;
  /** Defaults to 127.0.0.1. */
  host?: string;
  /** Optional JSON persistence: loaded at start, saved after changes (debounced) and at stop. */
  dataFile?: string;
}

export interface RunningBigQueryEmulator {
  /** "127.0.0.1:PORT"; BIGQUERY_EMULATOR_HOST wants it with the scheme: `http://${restHost}`. */
  restHost: string;
  /** "127.0.0.1:PORT" of the Storage Write API. */
  grpcHost: string;
  stop(): Promise<void>;
}

/** Saving waits at least this long after a change so a burst of appends costs one write. */
const SAVE_DEBOUNCE_MS = 200;
/**
 * Saving a big store takes a while (the whole state is serialized); waiting this many times the last save's
 * duration keeps persistence under about a tenth of the emulator's time during long write runs.
 */
const SAVE_COST_FACTOR = 10;

function loadStore(dataFile: string | undefined): Store {
  if (!dataFile || !fs.existsSync(dataFile)) return new Store();
  return Store.fromJSON(JSON.parse(fs.readFileSync(dataFile, 'utf8')));
}

function saveStore(store: Store, dataFile: string): void {
  // Write-then-rename so a crash mid-write never leaves a truncated file behind.
  const tmp = `${dataFile}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(store));
  fs.renameSync(tmp, dataFile);
}

export async function startBigQueryEmulator(
  opts: BigQueryEmulatorOptions = {},
): Promise<RunningBigQueryEmulator> {
  const host = opts.host ?? '127.0.0.1';
  const store = loadStore(opts.dataFile);

  let saveTimer: NodeJS.Timeout | undefined;
  let lastSaveMs = 0;
  if (opts.dataFile) {
    const dataFile = opts.dataFile;
    store.onChange(() => {
      if (saveTimer) return;
      saveTimer = setTimeout(
        () => {
          saveTimer = undefined;
          const started = Date.now();
          saveStore(store, dataFile);
          lastSaveMs = Date.now() - started;
        },
        Math.max(SAVE_DEBOUNCE_MS, lastSaveMs * SAVE_COST_FACTOR),
      );
    });
  }

  const httpServer = http.createServer(createRestHandler(store));
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(opts.restPort ?? 0, host, () => resolve());
  });
  const restPort = (httpServer.address() as AddressInfo).port;

  const grpcServer = createWriteApiServer(store);
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
      if (saveTimer) clearTimeout(saveTimer);
      saveTimer = undefined;
      if (opts.dataFile) saveStore(store, opts.dataFile);
    })();
    return stopped;
  };

  return { restHost: `${host}:${restPort}`, grpcHost: `${host}:${grpcPort}`, stop };
}

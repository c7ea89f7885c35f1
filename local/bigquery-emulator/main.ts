/**
 * Process entry of the BigQuery emulator:
 *   node dist/local/bigquery-emulator/main.js --rest-port N --grpc-port M [--host H]
 *     [--data-dir D | --data-file F] [--schema-propagation-ms MS] [--max-write-connections N]
 * Each option also reads an environment variable when the flag is absent: BQ_EMULATOR_DATA_DIR,
 * BQ_EMULATOR_SCHEMA_PROPAGATION_MS, BQ_EMULATOR_MAX_WRITE_CONNECTIONS.
 * Prints one line `{"restHost":"...","grpcHost":"..."}` on stdout when ready; stops cleanly on SIGTERM/SIGINT.
 * Killed any other way it loses nothing it acknowledged (see journal.ts).
 */
import { parseArgs } from 'node:util';
import { startBigQueryEmulator } from './index';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'rest-port': { type: 'string', default: '0' },
      'grpc-port': { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      'data-file': { type: 'string' },
      'data-dir': { type: 'string', default: process.env.BQ_EMULATOR_DATA_DIR },
      'schema-propagation-ms': {
        type: 'string',
        default: process.env.BQ_EMULATOR_SCHEMA_PROPAGATION_MS ?? '0',
      },
      'max-write-connections': {
        type: 'string',
        default: process.env.BQ_EMULATOR_MAX_WRITE_CONNECTIONS ?? '10000',
      },
    },
  });
  const count = (name: string, text: string, min: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min)
      throw new Error(`--${name} must be a whole number ≥ ${min}, got "${text}"`);
    return n;
  };
  const port = (name: string, text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 0 || n > 65535)
      throw new Error(`--${name} must be a port number, got "${text}"`);
    return n;
  };
  if (values['data-file'] && values['data-dir']) {
    throw new Error('give --data-dir or --data-file (or BQ_EMULATOR_DATA_DIR), not both');
  }
  const emulator = await startBigQueryEmulator({
    restPort: port('rest-port', values['rest-port']),
    grpcPort: port('grpc-port', values['grpc-port']),
    host: values.host,
    dataFile: values['data-file'],
    dataDir: values['data-dir'] || undefined,
    schemaPropagationMs: count('schema-propagation-ms', values['schema-propagation-ms'], 0),
    maxWriteConnections: count('max-write-connections', values['max-write-connections'], 1),
  });
  process.stdout.write(`${JSON.stringify({ restHost: emulator.restHost, grpcHost: emulator.grpcHost })}\n`);
  const shutdown = (): void => {
    emulator.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`bigquery-emulator: stop failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

main().catch((err: unknown) => {
  process.stderr.write(`bigquery-emulator: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});

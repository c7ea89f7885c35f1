/**
 * Process entry of the BigQuery emulator:
 *   node dist/local/bigquery-emulator/main.js --rest-port N --grpc-port M [--host H] [--data-file F]
 * Prints one line `{"restHost":"...","grpcHost":"..."}` on stdout when ready; stops cleanly on SIGTERM/SIGINT.
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
    },
  });
  const port = (name: string, text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 0 || n > 65535)
      throw new Error(`--${name} must be a port number, got "${text}"`);
    return n;
  };
  const emulator = await startBigQueryEmulator({
    restPort: port('rest-port', values['rest-port']),
    grpcPort: port('grpc-port', values['grpc-port']),
    host: values.host,
    dataFile: values['data-file'],
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

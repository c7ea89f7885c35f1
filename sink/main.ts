#!/usr/bin/env node
// `node dist/sink/main.js`: one sink run configured by the environment (contract/env.ts). Prints one JSON
// summary line on stdout. Exit codes: 0 ok, 2 configuration, 5 Pub/Sub, 6 BigQuery, 1 anything else.

import { ConfigError, loadSinkConfig } from './config';
import { BigQueryError, PubSubError, runSink } from './run';

async function main(): Promise<number> {
  let cfg;
  try {
    cfg = loadSinkConfig(process.env);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`pgcdc sink: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  // SIGTERM (Cloud Run stopping the task, or Ctrl-C): finish the batch in hand, ack it, stop pulling.
  const stop = new AbortController();
  process.once('SIGTERM', () => stop.abort());
  process.once('SIGINT', () => stop.abort());
  try {
    const summary = await runSink(cfg, {
      signal: stop.signal,
      log: (l) => process.stderr.write(`pgcdc sink: ${l}\n`),
    });
    process.stdout.write(JSON.stringify(summary) + '\n');
    return 0;
  } catch (e) {
    process.stderr.write(`pgcdc sink: ${(e as Error).message}\n`);
    if (e instanceof PubSubError) return 5;
    if (e instanceof BigQueryError) return 6;
    return 1;
  }
}

// Only when started as the entry point: the image's build requires this file once to fill Node's compile
// cache (the Dockerfile's warm-up step), which must load every module and run nothing.
if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`pgcdc sink: ${(e as Error).stack ?? e}\n`);
      process.exit(1);
    },
  );
}

// `verify` as the listener container runs it in the cloud (the database is private): the CLI starts an
// execution of the listener job with args ["verify", ...verifyArgs()], the execution prints the report as
// one JSON line `{"command":"verify","verify":{...}}`, and the CLI reads it back from the job's logs.
// The job logs in as the replicator (SELECT on exactly the captured tables is all verify needs) and reads
// BigQuery as the listener's service account, which needs roles/bigquery.dataViewer on the dataset and
// roles/bigquery.jobUser on the project (see README "verify").

import { BigQuery } from '@google-cloud/bigquery';
import { PassThroughClient } from 'google-auth-library';
import { ENV } from '../contract/env';
import { pgConfigFromEnv } from '../listener/config';
import { runVerify, VerifyMode, VerifyReport } from './verify';

export interface VerifyJobArgs {
  project: string;
  dataset: string;
  tables: string[];
  mode: VerifyMode;
  chunkRows?: number;
  recheckSeconds?: number;
}

export function verifyArgs(a: VerifyJobArgs): string[] {
  return [
    'verify',
    '--project',
    a.project,
    '--dataset',
    a.dataset,
    ...a.tables.flatMap((t) => ['--table', t]),
    ...(a.mode.kind === 'full' ? ['--full'] : ['--sample', String(a.mode.rows)]),
    ...(a.chunkRows ? ['--chunk-rows', String(a.chunkRows)] : []),
    ...(a.recheckSeconds !== undefined ? ['--recheck-seconds', String(a.recheckSeconds)] : []),
  ];
}

/** Parses what verifyArgs wrote (argv without the leading "verify"). */
export function parseVerifyArgs(argv: string[]): VerifyJobArgs {
  const value = (flag: string): string | undefined => {
    const i = argv.lastIndexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const project = value('--project');
  const dataset = value('--dataset');
  if (!project || !dataset) throw new Error('verify needs --project and --dataset (the replica dataset)');
  const sample = value('--sample');
  const num = (flag: string) => (value(flag) === undefined ? undefined : Number(value(flag)));
  return {
    project,
    dataset,
    tables: argv.flatMap((a, i) => (argv[i - 1] === '--table' ? [a] : [])),
    mode:
      argv.includes('--full') || sample === undefined
        ? { kind: 'full' }
        : { kind: 'sample', rows: Number(sample) },
    chunkRows: num('--chunk-rows'),
    recheckSeconds: num('--recheck-seconds'),
  };
}

/** The job's BigQuery client: the service account's credentials, or none against the local emulator. */
function bigQueryFor(project: string, env: NodeJS.ProcessEnv): BigQuery {
  const emulator = env[ENV.bigQueryEmulatorHost];
  if (!emulator) return new BigQuery({ projectId: project });
  const bq = new BigQuery({ projectId: project, authClient: new PassThroughClient() });
  bq.baseUrl = (/^https?:\/\//.test(emulator) ? emulator : `http://${emulator}`).replace(/\/+$/, '');
  return bq;
}

export async function runVerifyJob(
  argv: string[],
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<VerifyReport> {
  const a = parseVerifyArgs(argv);
  return runVerify({
    pg: pgConfigFromEnv(env),
    publication: env[ENV.publication] || 'pgcdc_pub',
    tables: a.tables,
    bigquery: bigQueryFor(a.project, env),
    project: a.project,
    dataset: a.dataset,
    mode: a.mode,
    chunkRows: a.chunkRows,
    recheckDelayMs: a.recheckSeconds === undefined ? undefined : a.recheckSeconds * 1000,
    progress: log,
  });
}

// Finding the programs the local stack runs, with errors that name the exact package to install.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

export class MissingPrerequisiteError extends Error {
  override name = 'MissingPrerequisiteError';
}

function which(cmd: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const PG_MAJOR = 15;

/** Directory of the PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_recvlogical). */
export function postgresBinDir(): string {
  const candidates = [process.env.PGCDC_PG_BINDIR, `/usr/lib/postgresql/${PG_MAJOR}/bin`].filter(
    (d): d is string => !!d,
  );
  for (const dir of candidates) {
    if (existsSync(path.join(dir, 'initdb')) && existsSync(path.join(dir, 'pg_ctl'))) return dir;
  }
  throw new MissingPrerequisiteError(
    `PostgreSQL ${PG_MAJOR} server binaries not found (looked in ${candidates.join(', ')}). ` +
      `Install them with: apt-get install -y postgresql-${PG_MAJOR} (or set PGCDC_PG_BINDIR).`,
  );
}

/** Fails unless the wal2json output plugin is installed for this server. */
export function requireWal2json(binDir: string): void {
  const pgConfig = path.join(binDir, 'pg_config');
  let libDir = `/usr/lib/postgresql/${PG_MAJOR}/lib`;
  if (existsSync(pgConfig)) {
    libDir = execFileSync(pgConfig, ['--pkglibdir'], { encoding: 'utf8' }).trim();
  }
  if (!existsSync(path.join(libDir, 'wal2json.so'))) {
    throw new MissingPrerequisiteError(
      `the wal2json output plugin is not installed (no ${libDir}/wal2json.so). ` +
        `Install it with: apt-get install -y postgresql-${PG_MAJOR}-wal2json`,
    );
  }
}

/** The gcloud CLI with the Pub/Sub emulator component, and Java to run it. */
export function requirePubSubEmulator(): string {
  const gcloud = which('gcloud');
  if (!gcloud) {
    throw new MissingPrerequisiteError(
      'gcloud not found. Install Google Cloud CLI and its Pub/Sub emulator: ' +
        'apt-get install -y google-cloud-cli google-cloud-cli-pubsub-emulator',
    );
  }
  const sdkRoot = path.resolve(
    path.dirname(execFileSync('readlink', ['-f', gcloud], { encoding: 'utf8' }).trim()),
    '..',
  );
  const emulatorDirs = [
    path.join(sdkRoot, 'platform', 'pubsub-emulator'),
    '/usr/lib/google-cloud-sdk/platform/pubsub-emulator',
  ];
  if (!emulatorDirs.some((d) => existsSync(d))) {
    throw new MissingPrerequisiteError(
      'the Pub/Sub emulator is not installed. Install it with: apt-get install -y google-cloud-cli-pubsub-emulator',
    );
  }
  if (!which('java')) {
    throw new MissingPrerequisiteError(
      'Java is needed by the Pub/Sub emulator. Install it with: apt-get install -y default-jre-headless',
    );
  }
  return gcloud;
}

// Configuration of the admin job modes (sql-init, sql-teardown, check), read from the environment the admin
// job gets (BRIEF decision 1): the admin login, the replicator it creates, what to capture.

import { ClientConfig } from 'pg';
import { ENV } from '../contract/env';
import { pgConfigFromEnv, tableListVar } from './config';
import { ConfigError } from './errors';

export interface AdminConfig {
  /** The admin's connection (PGCDC_ADMIN_USER / PGCDC_ADMIN_PASSWORD over the PG* host settings). */
  pg: ClientConfig;
  slot: string;
  publication: string;
  decoder: 'wal2json' | 'pgoutput';
  replicationUser: string;
  replicatorPassword?: string;
  tables: string[];
  replicaIdentityFull: string[];
  /** Connection retries stop after this long (the run's budget: PGCDC_MAX_RUN_SECONDS, default 300). */
  connectBudgetMs: number;
}

const IDENTIFIER = /^[a-z_][a-z0-9_$]{0,62}$/;

export function loadAdminConfig(env: NodeJS.ProcessEnv): AdminConfig {
  const base = pgConfigFromEnv(env);
  const adminUser = env[ENV.adminUser] || env.PGUSER;
  if (!adminUser)
    throw new ConfigError(`${ENV.adminUser} is required: the admin login (Cloud SQL: postgres)`);
  const replicationUser = env[ENV.replicationUser] || '';
  if (!IDENTIFIER.test(replicationUser))
    throw new ConfigError(
      `${ENV.replicationUser}=${JSON.stringify(replicationUser)} must name the replicator role (lower-case letters, digits, _)`,
    );
  if (replicationUser === adminUser)
    throw new ConfigError(
      `${ENV.replicationUser} must differ from the admin login ${adminUser}: the listener runs with least privilege`,
    );
  const slot = env[ENV.slot] || 'pgcdc_slot';
  const publication = env[ENV.publication] || 'pgcdc_pub';
  for (const [name, v] of [
    [ENV.slot, slot],
    [ENV.publication, publication],
  ])
    if (!IDENTIFIER.test(v))
      throw new ConfigError(`${name}=${v}: lower-case letters, digits and _ (at most 63)`);
  const decoder = env[ENV.decoder] || 'pgoutput';
  if (decoder !== 'pgoutput' && decoder !== 'wal2json')
    throw new ConfigError(`${ENV.decoder}=${decoder} must be "pgoutput" or "wal2json"`);
  const seconds = Number(env[ENV.maxRunSeconds] || 300);
  return {
    pg: {
      ...base,
      user: adminUser,
      // Without PGCDC_ADMIN_USER the PG* login is the admin (its password is PGPASSWORD).
      password: env[ENV.adminUser] ? env[ENV.adminPassword] : env.PGPASSWORD,
      application_name: 'pgcdc-admin',
    },
    slot,
    publication,
    decoder,
    replicationUser,
    replicatorPassword: env[ENV.replicatorPassword] || undefined,
    tables: tableListVar(env, ENV.tables),
    replicaIdentityFull: tableListVar(env, ENV.replicaIdentityFull),
    connectBudgetMs: Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 300_000,
  };
}

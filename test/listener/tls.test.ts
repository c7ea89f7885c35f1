// PGSSLMODE verify-ca / verify-full as the jobs run them: the pg options pgConfigFromEnv builds, against a
// real PostgreSQL serving a certificate from a generated CA hierarchy (root → intermediate → server), shaped
// like a CAS-based Cloud SQL instance's: the instance's DNS name in the SAN, "project:instance" in the CN,
// no IP address in it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, type ClientConfig } from 'pg';
import { ENV } from '../../contract/env';
import { pgConfigFromEnv, verifyingTls } from '../../listener/config';
import { classifyPgError, ConfigError, DatabaseUnreachableError } from '../../listener/errors';
import { startPostgres, type PostgresCluster } from '../../local/postgres';

const NAME = 'prod-db.abcdef.us-central1.sql.goog';

/** Root CA, an intermediate it signs, a server certificate the intermediate signs, and an unrelated CA. */
function makeCertificates(dir: string): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const key = (name: string) => ssl('genrsa', '-out', `${name}.key`, '2048');
  writeFileSync(
    path.join(dir, 'ca.ext'),
    'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n',
  );
  writeFileSync(
    path.join(dir, 'server.ext'),
    `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:${NAME}\n`,
  );
  for (const root of ['root', 'other']) {
    key(root);
    ssl(
      'req',
      '-x509',
      '-new',
      '-key',
      `${root}.key`,
      '-out',
      `${root}.pem`,
      '-days',
      '2',
      '-subj',
      `/CN=${root} CA`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    );
  }
  const signed = (name: string, subject: string, issuer: string, ext: string) => {
    key(name);
    ssl('req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${issuer}.pem`,
      '-CAkey',
      `${issuer}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-extfile',
      ext,
    );
  };
  signed('intermediate', '/CN=regional server CA', 'root', 'ca.ext');
  signed('server', '/CN=their-project:prod-db', 'intermediate', 'server.ext');
  // The server sends its certificate and the intermediate; the client holds the root (or only the intermediate).
  writeFileSync(
    path.join(dir, 'chain.pem'),
    readFileSync(path.join(dir, 'server.pem'), 'utf8') +
      readFileSync(path.join(dir, 'intermediate.pem'), 'utf8'),
  );
}

describe('TLS to the database with the options the jobs build (real PostgreSQL, generated CAs)', function () {
  let dir: string;
  let cluster: PostgresCluster;
  const pem = (name: string) => readFileSync(path.join(dir, `${name}.pem`), 'utf8');

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'pgcdc-tls-'));
    chmodSync(dir, 0o755);
    makeCertificates(dir);
    // PostgreSQL refuses a key others can read, and runs as the postgres user when we are root.
    chmodSync(path.join(dir, 'server.key'), 0o600);
    if (process.getuid?.() === 0) {
      const id = (flag: string) =>
        Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
      for (const f of ['server.key', 'chain.pem']) chownSync(path.join(dir, f), id('-u'), id('-g'));
    }
    cluster = await startPostgres({
      dir: path.join(dir, 'pg'),
      settings: {
        ssl: 'on',
        ssl_cert_file: path.join(dir, 'chain.pem'),
        ssl_key_file: path.join(dir, 'server.key'),
      },
    });
  });
  after(() => {
    cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const env = (vars: Record<string, string>): NodeJS.ProcessEnv => ({
    PGPORT: String(cluster.port),
    PGUSER: cluster.user,
    PGDATABASE: 'postgres',
    ...vars,
  });
  /** Connects with `config`; resolves to whether the session is encrypted, or to the TLS error's code. */
  async function connect(config: ClientConfig): Promise<string> {
    const client = new Client(config);
    try {
      await client.connect();
      const r = await client.query<{ ssl: boolean }>(
        'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
      );
      return r.rows[0]!.ssl ? 'encrypted' : 'plain';
    } catch (e) {
      return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  it('verify-full dials PGHOSTADDR and accepts the certificate that names PGHOST', async () => {
    const config = pgConfigFromEnv(
      env({
        PGHOST: NAME,
        PGHOSTADDR: '127.0.0.1',
        PGSSLMODE: 'verify-full',
        [ENV.sslRootCert]: pem('root'),
      }),
    );
    assert.equal(config.host, '127.0.0.1');
    assert.equal(await connect(config), 'encrypted');
  });

  it('verify-full refuses a certificate that does not name PGHOST, whatever address answered', async () => {
    const wrongName = pgConfigFromEnv(
      env({
        PGHOST: 'other-db.abcdef.us-central1.sql.goog',
        PGHOSTADDR: '127.0.0.1',
        PGSSLMODE: 'verify-full',
        [ENV.sslRootCert]: pem('root'),
      }),
    );
    assert.equal(await connect(wrongName), 'ERR_TLS_CERT_ALTNAME_INVALID');
    // By IP alone: the certificate names no IP address (as Cloud SQL's need not).
    const byIp = pgConfigFromEnv(
      env({ PGHOST: '127.0.0.1', PGSSLMODE: 'verify-full', [ENV.sslRootCert]: pem('root') }),
    );
    assert.equal(await connect(byIp), 'ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('verify-ca checks the chain only: any host name passes, another CA does not', async () => {
    const byIp = env({ PGHOST: '127.0.0.1', PGSSLMODE: 'verify-ca', [ENV.sslRootCert]: pem('root') });
    assert.equal(await connect(pgConfigFromEnv(byIp)), 'encrypted');
    const otherCa = { ...byIp, [ENV.sslRootCert]: pem('other') };
    assert.equal(await connect(pgConfigFromEnv(otherCa)), 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY');
  });

  it('a bundle of several CAs (a rotation) verifies against whichever signed the server', async () => {
    const bundle = pem('other') + pem('root');
    const config = pgConfigFromEnv(
      env({ PGHOST: NAME, PGHOSTADDR: '127.0.0.1', PGSSLMODE: 'verify-full', [ENV.sslRootCert]: bundle }),
    );
    assert.equal(await connect(config), 'encrypted');
  });

  it('a listed CA that is an intermediate (a subordinate chained to a root elsewhere) is a trust anchor', async () => {
    const config = pgConfigFromEnv(
      env({
        PGHOST: NAME,
        PGHOSTADDR: '127.0.0.1',
        PGSSLMODE: 'verify-full',
        [ENV.sslRootCert]: pem('intermediate'),
      }),
    );
    assert.equal(await connect(config), 'encrypted');
    // What Node does without allowPartialTrustChain: the chain must reach a self-signed root.
    const strict = { ...config, ssl: { ...(config.ssl as object), allowPartialTrustChain: false } };
    assert.equal(await connect(strict), 'UNABLE_TO_GET_ISSUER_CERT');
  });

  it('a refused certificate ends the run with exit 3 and says what to do', async () => {
    const refused = async (vars: Record<string, string>) => {
      const client = new Client(pgConfigFromEnv(env(vars)));
      const e = await client.connect().then(
        () => assert.fail('connected'),
        (err: unknown) => err,
      );
      await client.end().catch(() => undefined);
      return classifyPgError(e, { slot: 's', host: '127.0.0.1' });
    };
    const wrongCa = await refused({
      PGHOST: '127.0.0.1',
      PGSSLMODE: 'verify-ca',
      [ENV.sslRootCert]: pem('other'),
    });
    assert.ok(wrongCa instanceof DatabaseUnreachableError);
    assert.equal(wrongCa.exitCode, 3);
    assert.match(
      wrongCa.message,
      /TLS certificate was refused \(UNABLE_TO_GET_ISSUER_CERT_LOCALLY\).*run pgcdc deploy/,
    );
    const wrongName = await refused({
      PGHOST: 'other-db.abcdef.us-central1.sql.goog',
      PGHOSTADDR: '127.0.0.1',
      PGSSLMODE: 'verify-full',
      [ENV.sslRootCert]: pem('root'),
    });
    assert.ok(wrongName instanceof DatabaseUnreachableError);
    assert.match(wrongName.message, /does not name the host in PGHOST .*other-db\.abcdef/);
  });
});

describe('PGHOST, PGHOSTADDR and PGSSLMODE as pgConfigFromEnv reads them', () => {
  it('PGHOSTADDR must be an IP address: a host name there is a configuration error', () =>
    assert.throws(
      () => pgConfigFromEnv({ PGHOST: NAME, PGHOSTADDR: 'db.internal' }),
      (e: Error) =>
        e instanceof ConfigError && /PGHOSTADDR=db.internal must be a numeric IP address/.test(e.message),
    ));
  it('verify-full sends the host name as SNI (not an IP address, RFC 6066) and checks it', () => {
    const byName = verifyingTls('verify-full', NAME, 'CA');
    assert.equal(byName.servername, NAME);
    const byIp = verifyingTls('verify-full', '10.20.0.3', 'CA');
    assert.equal('servername' in byIp, false);
    assert.equal(typeof byIp.checkServerIdentity, 'function');
  });
  it('without a CA the verifying modes use Node’s default roots, still rejecting what they cannot verify', () => {
    const ssl = pgConfigFromEnv({ PGSSLMODE: 'verify-full', PGHOST: NAME }).ssl as Record<string, unknown>;
    assert.equal(ssl.rejectUnauthorized, true);
    assert.equal('ca' in ssl, false);
    assert.equal('allowPartialTrustChain' in ssl, false);
  });
});

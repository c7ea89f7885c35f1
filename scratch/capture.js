// scratch: capture wal2json records of bench:listener's large workload into /tmp/w2j.txt (one per line)
const { startPostgres } = require('../dist/local/postgres');
const { Client } = require('pg'); const { execFileSync } = require('child_process');
const fs = require('fs'); const path = require('path'); const os=require('os');
const { Wal2JsonDecoder } = require('../dist/listener/decoders/wal2json'); const { emptyCatalog } = require('../dist/listener/catalog');
(async () => {
  const dir = fs.mkdtempSync('/tmp/cap-'); fs.chmodSync(dir, 0o755);
  const cluster = await startPostgres({ dir: path.join(dir, 'pg') });
  try {
    const db = new Client(cluster.connection()); await db.connect();
    await db.query('CREATE TABLE bench (id int PRIMARY KEY, name text, amount numeric(12,2), at timestamptz)');
    await db.query("SELECT pg_create_logical_replication_slot('cap', 'wal2json')");
    for (const s of ["INSERT INTO bench SELECT g, 'name ' || g, g * 1.5, now() FROM generate_series(1, 500000) g",
      "UPDATE bench SET name = name || ' updated', amount = amount + 1 WHERE id <= 250000", 'DELETE FROM bench WHERE id > 450000']) await db.query(s);
    const lsn = (await db.query('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn; await db.end();
    const opts = Object.entries(new Wal2JsonDecoder(emptyCatalog(), []).pluginOptions).flatMap(([k, v]) => ['-o', `${k}=${v}`]);
    fs.writeFileSync('/tmp/w2j.txt',''); fs.chmodSync('/tmp/w2j.txt',0o666);
    execFileSync('runuser', ['-u','postgres','--',path.join(cluster.binDir, 'pg_recvlogical'), '-h', cluster.host, '-p', String(cluster.port), '-U', cluster.user, '-d', 'postgres', '--slot', 'cap', '--start', '--endpos', lsn, '--no-loop', '-f', '/tmp/w2j.txt', ...opts], { stdio: 'inherit' });
  } finally { cluster.stop(); fs.rmSync(dir, { recursive: true, force: true }); }
})();

-- pgcdc database setup, part 1: run by the ADMIN login (Cloud SQL: `postgres`, a member of
-- cloudsqlsuperuser; elsewhere a role with CREATEROLE). One transaction: it either all happens or nothing.
-- Idempotent: every step checks before it acts and says (NOTICE) what it did or found. Part 2
-- (0-init-slot.sql) creates the replication slot over a session of the replicator.
--
-- Parameters come from session settings the runner sets (psql: SELECT set_config('pgcdc.x', '...', false);):
--   pgcdc.replication_user      the replicator role: created LOGIN REPLICATION if missing (empty: no role,
--                               no grants — only for a superuser test setup)
--   pgcdc.replicator_password   its password (set on create, updated on every run when given)
--   pgcdc.replicator_by_bootstrap  'on' when the role's REPLICATION attribute and password were already set
--                               by another session (the local Cloud-SQL-like mode, see listener/sql-init.ts)
--   pgcdc.tables                comma list of schema.table to capture; empty: every ordinary, logged table
--                               outside the system schemas at the time of this run
--   pgcdc.replica_identity_full comma list of captured schema.table the user allows pgcdc to set
--                               REPLICA IDENTITY FULL on (keyless tables that should get updates/deletes)
--   Both lists are in PostgreSQL's identifier syntax: either part may be double-quoted ("my.schema"."My, table"),
--   a bare part is folded to lower case. (pgcdc sql init passes each table's exact name, quoted where needed.)
--   pgcdc.decoder               pgoutput (default) | wal2json
--   pgcdc.publication           publication name (default pgcdc_pub); keyless tables go to <name>_inserts
--   pgcdc.publish_all_tables    'on': FOR ALL TABLES instead (superuser test fixtures only, which create their
--                               tables after the init; it breaks UPDATE/DELETE on keyless tables — never
--                               set by the CLI or the admin job)
--
-- What it does to the database (nothing else):
--   * the replicator role (LOGIN REPLICATION, no other attribute, no role membership);
--   * GRANT USAGE on the captured tables' schemas and SELECT on exactly the captured tables (partitions
--     included); REVOKE SELECT from tables it captured before but no longer does;
--   * schema pgcdc with table snapshot_progress, which the replicator may read and write;
--   * pgoutput only: publication <pub> (insert, update, delete, truncate) with the captured tables that have
--     a replica identity, and <pub>_inserts (insert, truncate) with the keyless ones, so the application's
--     UPDATE/DELETE on a keyless table never fails ("cannot update table ... because it does not have a
--     replica identity and publishes updates"); wal2json reads no publication: none is kept;
--   * REPLICA IDENTITY FULL on the tables named in pgcdc.replica_identity_full, nothing else is altered.
--
-- Rights: adding a table to a publication, setting its replica identity and granting SELECT on it need the
-- table owner's rights. The admin takes them by joining the owner role for the length of this transaction
-- only (GRANT owner TO admin ... REVOKE at the end; the grants stay recorded as made by the owner).
-- PostgreSQL 15 lets a CREATEROLE role grant membership in any non-superuser role
-- (https://www.postgresql.org/docs/15/sql-grant.html: "roles having CREATEROLE privilege can grant or revoke
-- membership in any role that is not a superuser"); Cloud SQL's postgres user has CREATEROLE
-- (https://cloud.google.com/sql/docs/postgres/users: "The postgres user is part of the cloudsqlsuperuser
-- role, and has the following attributes (privileges): CREATEROLE, CREATEDB, and LOGIN. It does not have the
-- SUPERUSER or REPLICATION attributes."). Creating the replicator WITH REPLICATION is what cloudsqlsuperuser
-- may do and a plain CREATEROLE role on PostgreSQL 15 may not (same page: cloudsqlsuperuser "has some
-- superuser privileges, including: [...] Creating replication users. Creating replication publications and
-- subscriptions.").

DO $init$
DECLARE
  repl text := nullif(current_setting('pgcdc.replication_user', true), '');
  pw text := nullif(current_setting('pgcdc.replicator_password', true), '');
  by_bootstrap boolean := coalesce(current_setting('pgcdc.replicator_by_bootstrap', true), '') = 'on';
  decoder text := coalesce(nullif(current_setting('pgcdc.decoder', true), ''), 'pgoutput');
  pub text := coalesce(nullif(current_setting('pgcdc.publication', true), ''), 'pgcdc_pub');
  pub_ins text := pub || '_inserts';
  -- Split at the commas outside double quotes (a quoted name may hold commas, periods and spaces).
  listed text[] := ARRAY(SELECT btrim(m[1]) FROM regexp_matches(coalesce(current_setting('pgcdc.tables', true), ''),
                           '((?:[^,"]|"(?:[^"]|"")*")+)', 'g') AS m WHERE btrim(m[1]) <> '');
  ri_full text[] := ARRAY(SELECT btrim(m[1]) FROM regexp_matches(coalesce(current_setting('pgcdc.replica_identity_full', true), ''),
                            '((?:[^,"]|"(?:[^"]|"")*")+)', 'g') AS m WHERE btrim(m[1]) <> '');
  -- ri_full as SQL names ("schema"."table"), filled below.
  ri_sql text[] := '{}';
  parts text[];
  role_row record;
  item text;
  rel record;
  -- Publication entries (a partitioned table is one entry covering its partitions) and every relation read.
  entries oid[] := '{}';
  readable oid[] := '{}';
  keyed oid[] := '{}';
  keyless oid[] := '{}';
  owners text[] := '{}';
  joined text[] := '{}';
  o text;
  target oid[];
  current_members oid[];
  p text;
  all_tables boolean := coalesce(current_setting('pgcdc.publish_all_tables', true), '') = 'on';
BEGIN
  -- Every name below is schema-qualified; an empty search_path (for this transaction only) also makes
  -- regclass print schema.table in every message.
  PERFORM set_config('search_path', '', true);
  IF decoder NOT IN ('pgoutput', 'wal2json') THEN
    RAISE EXCEPTION 'pgcdc.decoder is "%": use pgoutput or wal2json', decoder;
  END IF;
  IF current_setting('wal_level') <> 'logical' THEN
    RAISE EXCEPTION 'wal_level is "%", logical decoding needs wal_level=logical', current_setting('wal_level')
      USING HINT = 'Cloud SQL: set the database flag cloudsql.logical_decoding=on (the instance restarts). Self-managed: wal_level = logical in postgresql.conf, then restart.';
  END IF;

  -- 1. The replicator role.
  IF repl IS NOT NULL THEN
    SELECT r.rolsuper, r.rolreplication, r.rolcanlogin,
           EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                    WHERE m.member = r.oid) AS is_member
      INTO role_row FROM pg_roles r WHERE r.rolname = repl;
    IF NOT FOUND THEN
      IF by_bootstrap THEN
        RAISE EXCEPTION 'replicator role % was to be created by the bootstrap step and does not exist', repl;
      END IF;
      EXECUTE format('CREATE ROLE %I LOGIN REPLICATION', repl) ||
              CASE WHEN pw IS NULL THEN '' ELSE format(' PASSWORD %L', pw) END;
      RAISE NOTICE 'created role % (LOGIN REPLICATION)', repl;
    ELSE
      IF role_row.rolsuper THEN
        RAISE EXCEPTION 'role % is a superuser: the replicator must be a least-privilege role', repl
          USING HINT = 'Choose another PGCDC_REPLICATION_USER; pgcdc creates it LOGIN REPLICATION.';
      END IF;
      IF role_row.is_member THEN
        RAISE EXCEPTION 'role % is a member of other roles (e.g. cloudsqlsuperuser): the replicator must hold only the grants pgcdc gives it', repl
          USING HINT = 'Users created through the Cloud SQL API are cloudsqlsuperuser members. Choose a new PGCDC_REPLICATION_USER name: pgcdc creates it in SQL.';
      END IF;
      IF NOT by_bootstrap THEN
        IF NOT role_row.rolreplication OR NOT role_row.rolcanlogin THEN
          EXECUTE format('ALTER ROLE %I WITH LOGIN REPLICATION', repl);
          RAISE NOTICE 'gave role % LOGIN REPLICATION', repl;
        END IF;
        IF pw IS NOT NULL THEN
          EXECUTE format('ALTER ROLE %I PASSWORD %L', repl, pw);
          RAISE NOTICE 'role % exists; its password was set', repl;
        ELSE
          RAISE NOTICE 'role % exists', repl;
        END IF;
      ELSIF NOT role_row.rolreplication THEN
        RAISE EXCEPTION 'role % has no REPLICATION attribute after the bootstrap step', repl;
      ELSE
        RAISE NOTICE 'role % exists (LOGIN REPLICATION)', repl;
      END IF;
    END IF;
  ELSE
    RAISE NOTICE 'no pgcdc.replication_user given: no replicator role, no grants';
  END IF;

  -- parse_ident: "Splits qualified_identifier into an array of identifiers, removing any quoting of individual
  -- identifiers" (https://www.postgresql.org/docs/15/functions-string.html); bare ones are folded to lower case.
  FOREACH item IN ARRAY ri_full LOOP
    parts := parse_ident(item);
    IF array_length(parts, 1) <> 2 THEN
      RAISE EXCEPTION 'PGCDC_REPLICA_IDENTITY_FULL entry % must be schema.table', item;
    END IF;
    ri_sql := ri_sql || format('%I.%I', parts[1], parts[2]);
  END LOOP;

  -- 2. The captured tables.
  IF coalesce(array_length(listed, 1), 0) = 0 THEN
    -- Every ordinary logged table outside the system schemas, partitions included (changes arrive under the
    -- partitions' names: publish_via_partition_root is off). Unlogged and temporary tables are never in the
    -- WAL: skipped, and said so.
    FOR rel IN
      SELECT c.oid, c.relpersistence, format('%I.%I', n.nspname, c.relname) AS name
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgcdc')
         AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
       ORDER BY 3
    LOOP
      IF rel.relpersistence = 'u' THEN
        RAISE NOTICE 'unlogged table % is not captured: its changes are never written to the WAL', rel.name;
      ELSIF rel.relpersistence = 'p' THEN
        entries := entries || rel.oid;
        readable := readable || rel.oid;
      END IF;
    END LOOP;
    RAISE NOTICE 'no table list given: capturing every table present now (% tables); run sql init again after creating tables', coalesce(array_length(entries, 1), 0);
  ELSE
    FOREACH item IN ARRAY listed LOOP
      parts := parse_ident(item);
      IF array_length(parts, 1) <> 2 THEN
        RAISE EXCEPTION 'table list entry % must be schema.table', item
          USING HINT = 'A name with a period, comma, space or upper case goes in double quotes: "my.schema"."My table".';
      END IF;
      SELECT c.oid, c.relkind, c.relpersistence INTO rel
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = parts[1] AND c.relname = parts[2]
         AND n.nspname NOT LIKE 'pg\_temp\_%';
      IF NOT FOUND THEN
        RAISE EXCEPTION 'table % does not exist', item
          USING HINT = 'Create it, or remove it from the table list (pgcdc:tables / PGCDC_TABLES).';
      ELSIF rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table (relkind %): only tables can be captured', item, rel.relkind;
      ELSIF rel.relpersistence = 'u' THEN
        RAISE EXCEPTION 'table % is unlogged: its changes are never written to the WAL, pgcdc cannot capture it', item
          USING HINT = format('ALTER TABLE %I.%I SET LOGGED; or remove it from the table list.', parts[1], parts[2]);
      END IF;
      entries := entries || rel.oid;
      IF rel.relkind = 'p' THEN
        -- A partitioned table: the publication entry covers its partitions (also future ones); the
        -- replicator reads the partitions, each a table of its own.
        readable := readable || rel.oid ||
          ARRAY(SELECT relid FROM pg_partition_tree(rel.oid) t JOIN pg_class c ON c.oid = t.relid
                 WHERE t.isleaf AND c.relkind = 'r');
      ELSE
        readable := readable || rel.oid;
      END IF;
    END LOOP;
  END IF;

  FOREACH item IN ARRAY ri_sql LOOP
    IF NOT EXISTS (SELECT 1 FROM unnest(entries) e WHERE e = to_regclass(item)) THEN
      RAISE EXCEPTION 'PGCDC_REPLICA_IDENTITY_FULL names %, which is not a captured table', item;
    END IF;
  END LOOP;

  -- 3. Take the owners' rights for this transaction (tables, their partitions, their schemas).
  SELECT array_agg(DISTINCT r.rolname) INTO owners FROM (
      SELECT c.relowner AS owner FROM pg_class c WHERE c.oid = ANY (readable)
      UNION SELECT n.nspowner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY (readable)
    ) x JOIN pg_roles r ON r.oid = x.owner;
  FOREACH o IN ARRAY coalesce(owners, '{}') LOOP
    IF NOT pg_has_role(current_user, o, 'USAGE') THEN
      IF (SELECT rolsuper FROM pg_roles WHERE rolname = o) THEN
        RAISE EXCEPTION 'captured tables or their schemas are owned by superuser %, whose rights the admin % cannot take', o, current_user
          USING HINT = format('As %s: ALTER TABLE ... OWNER TO an application role, or run the grants yourself.', o);
      END IF;
      EXECUTE format('GRANT %I TO %I', o, current_user);
      joined := joined || o;
    END IF;
  END LOOP;

  -- 4. Keyed or keyless; REPLICA IDENTITY FULL where the user allowed it.
  FOREACH item IN ARRAY ri_sql LOOP
    FOR rel IN
      SELECT c.oid, c.oid::regclass::text AS name FROM pg_class c
       WHERE c.oid = ANY (readable) AND c.relkind IN ('r', 'p')
         AND (c.oid = to_regclass(item) OR c.oid IN (SELECT relid FROM pg_partition_tree(to_regclass(item))))
         AND c.relreplident <> 'f'
    LOOP
      IF NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = rel.oid AND (i.indisprimary OR i.indisreplident))
         OR (SELECT relreplident FROM pg_class WHERE oid = rel.oid) = 'n' THEN
        EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', rel.name);
        RAISE NOTICE 'set REPLICA IDENTITY FULL on % (allowed by PGCDC_REPLICA_IDENTITY_FULL): its updates and deletes now log the whole old row', rel.name;
      ELSE
        RAISE NOTICE '% has a replica identity already: REPLICA IDENTITY left as it is', rel.name;
      END IF;
    END LOOP;
  END LOOP;
  FOR rel IN
    SELECT e AS oid, e::regclass::text AS name,
           bool_and(c.relreplident = 'f'
                    OR (c.relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
                    OR (c.relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident))) AS has_identity
      FROM unnest(entries) e
      JOIN pg_class c ON c.oid = e OR (c.relkind = 'r' AND c.oid IN (SELECT relid FROM pg_partition_tree(e) WHERE isleaf))
     GROUP BY e
  LOOP
    IF rel.has_identity THEN
      keyed := keyed || rel.oid;
    ELSE
      keyless := keyless || rel.oid;
      IF decoder = 'pgoutput' THEN
        RAISE NOTICE '% has no primary key or replica identity: history only (inserts and truncates; its updates and deletes are not captured). Allow REPLICA IDENTITY FULL with PGCDC_REPLICA_IDENTITY_FULL=% to capture them', rel.name, rel.name;
      ELSE
        RAISE NOTICE '% has no primary key or replica identity: history only (no replica table)', rel.name;
      END IF;
    END IF;
  END LOOP;

  -- 5. Grants: SELECT on exactly the captured tables, USAGE on their schemas. Tables are named in DDL by
  -- oid::regclass::text, which quotes a name holding a period, comma, space, quote or upper case (regclassout
  -- prints quote_identifier's form; test/listener/odd-names.test.ts grants and publishes "a.b"."c.d" this way).
  IF repl IS NOT NULL THEN
    FOR rel IN
      SELECT DISTINCT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.oid = ANY (readable) AND NOT has_schema_privilege(repl, n.oid, 'USAGE')
    LOOP
      EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', rel.nspname, repl);
      RAISE NOTICE 'granted USAGE on schema % to %', rel.nspname, repl;
    END LOOP;
    FOR rel IN
      SELECT c.oid::regclass::text AS name FROM pg_class c
       WHERE c.oid = ANY (readable) AND NOT has_table_privilege(repl, c.oid, 'SELECT') ORDER BY 1
    LOOP
      EXECUTE format('GRANT SELECT ON %s TO %I', rel.name, repl);
      RAISE NOTICE 'granted SELECT on % to %', rel.name, repl;
    END LOOP;
    -- Tables captured before and not any more: their SELECT grant goes (taking the owner's rights as above).
    FOR rel IN
      SELECT c.oid, c.oid::regclass::text AS name, r.rolname AS owner
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles r ON r.oid = c.relowner
       WHERE n.nspname <> 'pgcdc' AND NOT (c.oid = ANY (readable))
         AND EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = repl))
    LOOP
      IF NOT pg_has_role(current_user, rel.owner, 'USAGE') AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = rel.owner) THEN
        EXECUTE format('GRANT %I TO %I', rel.owner, current_user);
        joined := joined || rel.owner;
      END IF;
      EXECUTE format('REVOKE ALL ON %s FROM %I', rel.name, repl);
      RAISE NOTICE 'revoked SELECT on % from % (no longer captured)', rel.name, repl;
    END LOOP;
  END IF;

  -- 6. Snapshot progress: which tables' existing rows were sent, up to which key (resumable after a crash).
  -- The listener ignores changes to its own schema.
  IF to_regnamespace('pgcdc') IS NULL THEN
    CREATE SCHEMA pgcdc;
    RAISE NOTICE 'created schema pgcdc';
  END IF;
  IF to_regclass('pgcdc.snapshot_progress') IS NULL THEN
    CREATE TABLE pgcdc.snapshot_progress (
      table_name     text PRIMARY KEY,
      last_key       jsonb,
      rows_done      bigint NOT NULL DEFAULT 0,
      rows_estimate  bigint,
      done           boolean NOT NULL DEFAULT false,
      requested_at   timestamptz NOT NULL DEFAULT now(),
      updated_at     timestamptz NOT NULL DEFAULT now()
    );
    RAISE NOTICE 'created table pgcdc.snapshot_progress';
  END IF;
  IF repl IS NOT NULL THEN
    EXECUTE format('GRANT USAGE ON SCHEMA pgcdc TO %I', repl);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON pgcdc.snapshot_progress TO %I', repl);
    RAISE NOTICE 'granted % the use of pgcdc.snapshot_progress', repl;
  END IF;

  -- 7. Publications.
  IF decoder = 'wal2json' THEN
    FOREACH p IN ARRAY ARRAY[pub, pub_ins] LOOP
      IF EXISTS (SELECT 1 FROM pg_publication WHERE pubname = p) THEN
        EXECUTE format('DROP PUBLICATION %I', p);
        RAISE NOTICE 'dropped publication % (wal2json reads no publication)', p;
      END IF;
    END LOOP;
  ELSE
    -- A FOR ALL TABLES publication (what earlier pgcdc versions created) publishes keyless tables too and
    -- makes their UPDATE/DELETE fail: replaced under the same name, so decoding of older WAL still finds it.
    IF all_tables THEN
      IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = pub) THEN
        EXECUTE format('CREATE PUBLICATION %I FOR ALL TABLES', pub);
        RAISE NOTICE 'created publication % FOR ALL TABLES (test fixture setting pgcdc.publish_all_tables)', pub;
      END IF;
    ELSIF EXISTS (SELECT 1 FROM pg_publication WHERE pubname = pub AND puballtables) THEN
      EXECUTE format('DROP PUBLICATION %I', pub);
      RAISE WARNING 'publication % was FOR ALL TABLES (keyless tables could not be updated): replaced by one listing the captured tables', pub;
    END IF;
    FOREACH p IN ARRAY CASE WHEN all_tables THEN ARRAY[pub_ins] ELSE ARRAY[pub, pub_ins] END LOOP
      IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = p) THEN
        EXECUTE format('CREATE PUBLICATION %I WITH (publish = %L)', p,
                       CASE WHEN p = pub THEN 'insert, update, delete, truncate' ELSE 'insert, truncate' END);
        RAISE NOTICE 'created publication % (%)', p, CASE WHEN p = pub THEN 'insert, update, delete, truncate' ELSE 'insert, truncate: tables without a replica identity' END;
      ELSE
        EXECUTE format('ALTER PUBLICATION %I SET (publish = %L, publish_via_partition_root = false)', p,
                       CASE WHEN p = pub THEN 'insert, update, delete, truncate' ELSE 'insert, truncate' END);
      END IF;
      target := CASE WHEN all_tables THEN '{}'::oid[] WHEN p = pub THEN keyed ELSE keyless END;
      current_members := ARRAY(SELECT pr.prrelid FROM pg_publication_rel pr JOIN pg_publication pb ON pb.oid = pr.prpubid
                                WHERE pb.pubname = p);
      FOR rel IN SELECT m AS oid, m::regclass::text AS name, r.rolname AS owner
                   FROM unnest(current_members) m JOIN pg_class c ON c.oid = m JOIN pg_roles r ON r.oid = c.relowner
                  WHERE NOT (m = ANY (target)) LOOP
        IF NOT pg_has_role(current_user, rel.owner, 'USAGE') AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = rel.owner) THEN
          EXECUTE format('GRANT %I TO %I', rel.owner, current_user);
          joined := joined || rel.owner;
        END IF;
        EXECUTE format('ALTER PUBLICATION %I DROP TABLE %s', p, rel.name);
        RAISE NOTICE 'removed % from publication %', rel.name, p;
      END LOOP;
      FOR rel IN SELECT t AS oid, t::regclass::text AS name FROM unnest(target) t
                  WHERE NOT (t = ANY (current_members)) ORDER BY 2 LOOP
        EXECUTE format('ALTER PUBLICATION %I ADD TABLE %s', p, rel.name);
        RAISE NOTICE 'added % to publication %', rel.name, p;
      END LOOP;
    END LOOP;
  END IF;

  -- 8. Give the owners' rights back.
  FOREACH o IN ARRAY joined LOOP
    IF pg_has_role(current_user, o, 'MEMBER') THEN
      EXECUTE format('REVOKE %I FROM %I', o, current_user);
    END IF;
  END LOOP;
END
$init$;

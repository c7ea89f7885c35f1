-- pgcdc replication setup: publication, logical replication slot, replication user grants.
-- Idempotent: every statement checks before it acts and says (NOTICE) what it did or found.
-- Parameters come from session settings the runner sets (psql: SET pgcdc.slot = '...'; before \i):
--   pgcdc.slot (default pgcdc_slot), pgcdc.publication (default pgcdc_pub),
--   pgcdc.decoder (wal2json | pgoutput, default wal2json), pgcdc.replication_user (default: none).
-- Each statement runs in its own transaction: a logical slot cannot be created in a transaction that wrote.

DO $$
BEGIN
  IF current_setting('wal_level') <> 'logical' THEN
    RAISE EXCEPTION 'wal_level is "%", logical decoding needs wal_level=logical', current_setting('wal_level')
      USING HINT = 'Cloud SQL: set the database flag cloudsql.logical_decoding=on. Self-managed: wal_level = logical in postgresql.conf, then restart.';
  END IF;
END $$;

DO $$
DECLARE
  pub text := coalesce(nullif(current_setting('pgcdc.publication', true), ''), 'pgcdc_pub');
BEGIN
  IF EXISTS (SELECT 1 FROM pg_publication WHERE pubname = pub) THEN
    RAISE NOTICE 'publication % already exists', pub;
  ELSE
    -- FOR ALL TABLES so tables created later are published too (pgoutput reads only published tables).
    EXECUTE format('CREATE PUBLICATION %I FOR ALL TABLES', pub);
    RAISE NOTICE 'created publication %', pub;
  END IF;
END $$;

DO $$
DECLARE
  slot text := coalesce(nullif(current_setting('pgcdc.slot', true), ''), 'pgcdc_slot');
  decoder text := coalesce(nullif(current_setting('pgcdc.decoder', true), ''), 'wal2json');
  existing text;
BEGIN
  SELECT plugin INTO existing FROM pg_replication_slots WHERE slot_name = slot;
  IF existing IS NULL THEN
    PERFORM pg_create_logical_replication_slot(slot, decoder);
    RAISE NOTICE 'created logical replication slot % (plugin %)', slot, decoder;
  ELSIF existing <> decoder THEN
    RAISE EXCEPTION 'replication slot % exists with plugin %, not %', slot, existing, decoder
      USING HINT = format('Use decoder %s, or drop the slot: SELECT pg_drop_replication_slot(%L);', existing, slot);
  ELSE
    RAISE NOTICE 'replication slot % already exists (plugin %)', slot, decoder;
  END IF;
END $$;

-- Snapshot progress: which tables' existing rows were sent, up to which key (resumable after a crash).
-- The listener ignores changes to its own schema.
CREATE SCHEMA IF NOT EXISTS pgcdc;

CREATE TABLE IF NOT EXISTS pgcdc.snapshot_progress (
  table_name     text PRIMARY KEY,
  last_key       jsonb,
  rows_done      bigint NOT NULL DEFAULT 0,
  rows_estimate  bigint,
  done           boolean NOT NULL DEFAULT false,
  requested_at   timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE
  repl_user text := nullif(current_setting('pgcdc.replication_user', true), '');
BEGIN
  IF repl_user IS NULL THEN
    RAISE NOTICE 'no pgcdc.replication_user given: grants skipped';
    RETURN;
  END IF;
  IF NOT (SELECT rolreplication FROM pg_roles WHERE rolname = repl_user) THEN
    EXECUTE format('ALTER ROLE %I WITH REPLICATION', repl_user);
    RAISE NOTICE 'granted REPLICATION to %', repl_user;
  ELSE
    RAISE NOTICE '% already has REPLICATION', repl_user;
  END IF;
  -- The snapshot reads existing rows; the listener reads catalog metadata for pgoutput.
  EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', repl_user);
  EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA public TO %I', repl_user);
  EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO %I', repl_user);
  EXECUTE format('GRANT USAGE ON SCHEMA pgcdc TO %I', repl_user);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON pgcdc.snapshot_progress TO %I', repl_user);
  RAISE NOTICE 'granted SELECT on schema public tables and snapshot progress to %', repl_user;
END $$;

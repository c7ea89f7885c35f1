-- pgcdc database setup, part 2: the logical replication slot, run over a session of the REPLICATOR (it has
-- REPLICATION; the Cloud SQL admin `postgres` does not). Three statements, each its own transaction: a
-- logical slot cannot be created in a transaction that has written.
--
-- Parameters (session settings): pgcdc.slot (default pgcdc_slot), pgcdc.decoder (pgoutput | wal2json,
-- default pgoutput). A slot whose WAL was removed (pg_replication_slots.wal_status = 'lost') can never be
-- read again: it is dropped, created anew, and the snapshot progress is reset so that every captured
-- table's existing rows are sent again.

DO $$
DECLARE
  slot text := coalesce(nullif(current_setting('pgcdc.slot', true), ''), 'pgcdc_slot');
  s record;
BEGIN
  PERFORM set_config('pgcdc.slot_recreated', '', false);
  SELECT plugin, wal_status, database, active_pid INTO s FROM pg_replication_slots WHERE slot_name = slot;
  IF FOUND AND s.wal_status = 'lost' THEN
    IF s.active_pid IS NOT NULL THEN
      RAISE EXCEPTION 'replication slot % is lost and still in use by process %', slot, s.active_pid
        USING HINT = 'Wait for the running listener to end (it exits on a lost slot), then run sql init again.';
    END IF;
    PERFORM pg_drop_replication_slot(slot);
    PERFORM set_config('pgcdc.slot_recreated', 'on', false);
    RAISE WARNING 'replication slot % was lost (wal_status = lost: the server removed WAL it still needed); dropped, to be created anew', slot;
  ELSIF FOUND AND s.wal_status = 'unreserved' THEN
    RAISE WARNING 'replication slot % is about to be lost (wal_status = unreserved): run the listener now', slot;
  END IF;
END $$;

DO $$
DECLARE
  slot text := coalesce(nullif(current_setting('pgcdc.slot', true), ''), 'pgcdc_slot');
  decoder text := coalesce(nullif(current_setting('pgcdc.decoder', true), ''), 'pgoutput');
  s record;
BEGIN
  SELECT plugin, database INTO s FROM pg_replication_slots WHERE slot_name = slot;
  IF NOT FOUND THEN
    PERFORM pg_create_logical_replication_slot(slot, decoder);
    RAISE NOTICE 'created logical replication slot % (plugin %)', slot, decoder;
  ELSIF s.database IS DISTINCT FROM current_database() THEN
    RAISE EXCEPTION 'replication slot % belongs to database %, not %', slot, s.database, current_database()
      USING HINT = 'Choose another slot name (PGCDC_SLOT), or drop that slot in its database.';
  ELSIF s.plugin <> decoder THEN
    RAISE EXCEPTION 'replication slot % exists with plugin %, not %', slot, s.plugin, decoder
      USING HINT = format('Use decoder %s, or drop the slot (pgcdc sql teardown, or SELECT pg_drop_replication_slot(%L);).', s.plugin, slot);
  ELSE
    RAISE NOTICE 'replication slot % already exists (plugin %)', slot, decoder;
  END IF;
END $$;

DO $$
DECLARE
  slot text := coalesce(nullif(current_setting('pgcdc.slot', true), ''), 'pgcdc_slot');
  n bigint;
BEGIN
  IF coalesce(current_setting('pgcdc.slot_recreated', true), '') = 'on' THEN
    DELETE FROM pgcdc.snapshot_progress;
    GET DIAGNOSTICS n = ROW_COUNT;
    RAISE WARNING 'slot % recreated: snapshot progress reset (% tables), so the next listener runs send every captured table''s existing rows again. Changes made between the loss of the slot and now are recovered only through that re-snapshot: rows deleted in that time stay in the BigQuery replica, and the history has no events for them', slot, n;
  END IF;
END $$;

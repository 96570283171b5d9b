/* test_shm_mq_ext--1.3--1.4.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION test_shm_mq_ext UPDATE TO '1.4'" to load this file. \quit

-- test_shm_mq_bench() now says, per process, how the ring waited.  A new
-- row type means a new function; what was granted on the old one is
-- granted on the new.
CREATE TEMPORARY TABLE test_shm_mq_bench_grants AS
SELECT a.grantee, a.is_grantable
FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
WHERE p.oid = 'test_shm_mq_bench(pg_catalog.int8, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.text, pg_catalog.text)'::pg_catalog.regprocedure
  AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner;

DROP FUNCTION test_shm_mq_bench(pg_catalog.int8, pg_catalog.int4,
								pg_catalog.int4, pg_catalog.int4,
								pg_catalog.text, pg_catalog.text);

CREATE FUNCTION test_shm_mq_bench(queue_size pg_catalog.int8,
					   message_size pg_catalog.int4,
					   repeat_count pg_catalog.int4,
					   num_workers pg_catalog.int4,
					   mode pg_catalog.text default 'pingpong',
					   wait_strategy pg_catalog.text default null,
					   OUT setup_ms pg_catalog.float8,
					   OUT run_ms pg_catalog.float8,
					   OUT messages pg_catalog.int8,
					   OUT bytes pg_catalog.int8,
					   OUT msgs_per_sec pg_catalog.float8,
					   OUT mb_per_sec pg_catalog.float8,
					   OUT us_per_round_trip pg_catalog.float8,
					   OUT leader_cpu_ms pg_catalog.float8,
					   OUT waits pg_catalog.int8[],
					   OUT waits_polled pg_catalog.int8[],
					   OUT sleeps pg_catalog.int8[],
					   OUT yields pg_catalog.int8[],
					   OUT contended_yields pg_catalog.int8[],
					   OUT ring_sleeps pg_catalog.int8[],
					   OUT bytes_by_reference pg_catalog.int8,
					   OUT most_in_flight pg_catalog.int4)
    RETURNS record
    AS 'MODULE_PATHNAME'
    LANGUAGE C;

COMMENT ON FUNCTION test_shm_mq_bench(pg_catalog.int8, pg_catalog.int4,
									  pg_catalog.int4, pg_catalog.int4,
									  pg_catalog.text, pg_catalog.text) IS
'time one ring under a wait strategy: mode pingpong (one message in flight), pipelined (many) or idle (repeat_count ms with nothing in flight); a null strategy means test_shm_mq_ext.wait_strategy; the wait counts are per process, the leader first; most_in_flight is the most copies out at once';

REVOKE EXECUTE ON FUNCTION test_shm_mq_bench(pg_catalog.int8, pg_catalog.int4,
											 pg_catalog.int4, pg_catalog.int4,
											 pg_catalog.text, pg_catalog.text)
	FROM PUBLIC;

DO $$
DECLARE
	grant_row record;
BEGIN
	FOR grant_row IN SELECT * FROM test_shm_mq_bench_grants LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION test_shm_mq_bench(pg_catalog.int8, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.text, pg_catalog.text) TO %s%s',
			CASE WHEN grant_row.grantee = 0 THEN 'PUBLIC'
				 ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(grant_row.grantee)) END,
			CASE WHEN grant_row.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
	END LOOP;
END
$$;

DROP TABLE test_shm_mq_bench_grants;

-- The cluster-wide state (PostgreSQL 17 and later, or with the library in
-- shared_preload_libraries): one row per live ring, and counters since the
-- server started or they were reset.  Like pg_stat_activity, anyone may
-- look; a role sees only the rings of roles whose privileges it has, unless
-- it is a superuser or a member of pg_read_all_stats.
CREATE FUNCTION test_shm_mq_rings(OUT leader_pid pg_catalog.int4,
					   OUT role pg_catalog.oid,
					   OUT database pg_catalog.oid,
					   OUT workers pg_catalog.int4,
					   OUT worker_pids pg_catalog.int4[],
					   OUT queue_size pg_catalog.int8,
					   OUT wait_strategy pg_catalog.text,
					   OUT state pg_catalog.text,
					   OUT calls pg_catalog.int8,
					   OUT messages pg_catalog.int8,
					   OUT bytes pg_catalog.int8,
					   OUT bytes_by_reference pg_catalog.int8,
					   OUT started pg_catalog.timestamptz,
					   OUT last_call pg_catalog.timestamptz,
					   OUT kept_until pg_catalog.timestamptz)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME'
    LANGUAGE C STRICT VOLATILE;

COMMENT ON FUNCTION test_shm_mq_rings() IS
'the rows of the test_shm_mq_rings view, with the role and database as OIDs';

CREATE VIEW test_shm_mq_rings AS
SELECT r.leader_pid,
       pg_catalog.pg_get_userbyid(r.role) AS role,
       d.datname AS database,
       r.workers, r.worker_pids, r.queue_size, r.wait_strategy, r.state,
       r.calls, r.messages, r.bytes, r.bytes_by_reference,
       r.started, r.last_call, r.kept_until
FROM test_shm_mq_rings() r
     LEFT JOIN pg_catalog.pg_database d ON d.oid = r.database;

COMMENT ON VIEW test_shm_mq_rings IS
'one row per live ring in the cluster: its leader, workers, shape, state and what it has carried';

CREATE FUNCTION test_shm_mq_stats(OUT calls_cold pg_catalog.int8,
					   OUT calls_warm pg_catalog.int8,
					   OUT calls_failed pg_catalog.int8,
					   OUT calls_failed_by_class pg_catalog.text,
					   OUT workers_started pg_catalog.int8,
					   OUT workers_failed pg_catalog.int8,
					   OUT slot_waits pg_catalog.int8,
					   OUT slot_wait_ms pg_catalog.int8,
					   OUT slot_timeouts pg_catalog.int8,
					   OUT rings_kept pg_catalog.int8,
					   OUT rings_claimed pg_catalog.int8,
					   OUT rings_expired pg_catalog.int8,
					   OUT rings_stood_down pg_catalog.int8,
					   OUT rings_lost pg_catalog.int8,
					   OUT rings_ended pg_catalog.int8,
					   OUT messages pg_catalog.int8,
					   OUT bytes pg_catalog.int8,
					   OUT bytes_by_reference pg_catalog.int8,
					   OUT waits pg_catalog.int8,
					   OUT waits_polled pg_catalog.int8,
					   OUT sleeps pg_catalog.int8,
					   OUT yields pg_catalog.int8,
					   OUT contended_yields pg_catalog.int8,
					   OUT ring_sleeps pg_catalog.int8,
					   OUT stats_reset pg_catalog.timestamptz)
    RETURNS record
    AS 'MODULE_PATHNAME'
    LANGUAGE C STRICT VOLATILE;

COMMENT ON FUNCTION test_shm_mq_stats() IS
'the row of the test_shm_mq_stats view, with the failures by class as text';

CREATE VIEW test_shm_mq_stats AS
SELECT calls_cold, calls_warm, calls_failed,
       calls_failed_by_class::pg_catalog.jsonb AS calls_failed_by_class,
       workers_started, workers_failed,
       slot_waits, slot_wait_ms, slot_timeouts,
       rings_kept, rings_claimed, rings_expired, rings_stood_down,
       rings_lost, rings_ended,
       messages, bytes, bytes_by_reference,
       waits, waits_polled, sleeps, yields, contended_yields, ring_sleeps,
       stats_reset
FROM test_shm_mq_stats();

COMMENT ON VIEW test_shm_mq_stats IS
'what the cluster''s rings have counted since the server started, or test_shm_mq_stats_reset()';

CREATE FUNCTION test_shm_mq_stats_reset()
    RETURNS pg_catalog.void
    AS 'MODULE_PATHNAME'
    LANGUAGE C STRICT VOLATILE;

COMMENT ON FUNCTION test_shm_mq_stats_reset() IS
'set every counter of test_shm_mq_stats back to zero';

-- Like pg_stat_activity, anyone may look: test_shm_mq_rings() shows each
-- role the rings of the roles whose privileges it has.  Resetting what
-- everyone counted is for superusers and granted roles.
GRANT SELECT ON test_shm_mq_rings, test_shm_mq_stats TO PUBLIC;
REVOKE EXECUTE ON FUNCTION test_shm_mq_stats_reset() FROM PUBLIC;

-- A kept ring ends as its function goes or its role may no longer execute
-- it, in whichever session of its database that happens.
CREATE FUNCTION test_shm_mq_end_unwanted_rings()
    RETURNS pg_catalog.event_trigger
    AS 'MODULE_PATHNAME'
    LANGUAGE C;

COMMENT ON FUNCTION test_shm_mq_end_unwanted_rings() IS
'event trigger: end the kept rings of this database whose function is being dropped, or whose role may no longer execute it';

CREATE EVENT TRIGGER test_shm_mq_ext_drop_extension
    ON ddl_command_start WHEN TAG IN ('DROP EXTENSION')
    EXECUTE FUNCTION test_shm_mq_end_unwanted_rings();

CREATE EVENT TRIGGER test_shm_mq_ext_revoke
    ON ddl_command_end WHEN TAG IN ('REVOKE', 'DROP OWNED')
    EXECUTE FUNCTION test_shm_mq_end_unwanted_rings();

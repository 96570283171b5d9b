--
-- The cluster-wide state: the views test_shm_mq_rings and test_shm_mq_stats,
-- and test_shm_mq_stats_reset().  They need the extension's shared state,
-- which exists from PostgreSQL 17 on, and before only if the library is in
-- shared_preload_libraries; without it each fails with 55000.  The first
-- query says which case this is, so that the two expected outputs cannot be
-- swapped.
--
SELECT current_setting('server_version_num')::int >= 170000
       OR 'test_shm_mq_ext' = ANY (string_to_array(
              replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
       AS has_shared_state;

-- Without the shared state, reading it fails with 55000.
\set VERBOSITY sqlstate
SELECT count(*) = 1 AS readable FROM test_shm_mq_stats;
SELECT count(*) >= 0 AS readable FROM test_shm_mq_rings;
\set VERBOSITY default

-- The views' columns, the same everywhere.
SELECT attname, format_type(atttypid, atttypmod) AS type
FROM pg_attribute
WHERE attrelid = 'test_shm_mq_rings'::regclass AND attnum > 0
ORDER BY attnum;
SELECT attname, format_type(atttypid, atttypmod) AS type
FROM pg_attribute
WHERE attrelid = 'test_shm_mq_stats'::regclass AND attnum > 0
ORDER BY attnum;

-- Counting from zero: a reset, then a known workload.  3 calls of 10 trips
-- each through 2 workers carry 30 messages of 5 bytes round; every one of
-- them builds its ring (cold), whose 2 workers start.
SELECT test_shm_mq_stats_reset();
SELECT stats_reset > now() - interval '1 minute' AS just_reset,
       calls_cold, calls_warm, calls_failed, messages
FROM test_shm_mq_stats;
SELECT test_shm_mq(1024, 'hello', 10, 2) FROM generate_series(1, 3);
SELECT calls_cold, calls_warm, calls_failed, calls_failed_by_class,
       workers_started, workers_failed, messages, bytes, bytes_by_reference,
       waits > 0 AS waited, waits >= waits_polled AS polled_within_waits
FROM test_shm_mq_stats;

-- Pipelined, 20 copies of 8 bytes each.
SELECT test_shm_mq_pipelined(1024, 'pipeline', 20, 1);
SELECT calls_cold, messages, bytes FROM test_shm_mq_stats;

-- A call that fails counts, by the class of its SQLSTATE: here a statement
-- timeout (57014), long after the ring is up.  Checks that fail before a
-- ring is asked for count no call.
SET statement_timeout = '500ms';
\set VERBOSITY terse
SELECT test_shm_mq(1024, 'x', 2000000000, 1);
RESET statement_timeout;
SELECT test_shm_mq(1, 'x', 1, 1);
\set VERBOSITY default
SELECT calls_cold, calls_failed, calls_failed_by_class FROM test_shm_mq_stats;

-- No ring outlives its call.
SELECT count(*) AS rings FROM test_shm_mq_rings;

-- The reset again.
SELECT test_shm_mq_stats_reset();
SELECT calls_cold, calls_failed, calls_failed_by_class, messages
FROM test_shm_mq_stats;

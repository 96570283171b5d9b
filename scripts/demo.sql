-- The demo's SQL part: scripts/demo runs it against a throw-away cluster.
CREATE EXTENSION test_shm_mq_ext;

\echo
\echo == the segment for 4 workers with 64 kB queues: estimate, then layout
SELECT test_shm_mq_estimate(65536, 4) AS bytes_for_dsm_create;
SELECT * FROM test_shm_mq_layout(65536, 4) ORDER BY offset_bytes;

\echo == one message, 10 000 times round a ring of 4 workers, timed
\timing on
SELECT test_shm_mq(65536, 'hello, ring', 10000, 4);
\echo == 100 000 copies of a 100-byte message pipelined through 4 workers
SELECT test_shm_mq_pipelined(65536, repeat('x', 100), 100000, 4);
\echo == a 1 MB message, larger than every queue, 100 times round
SELECT test_shm_mq(65536, repeat('m', 1048576), 100, 4);
\timing off

\echo == setup per call: 100 cold calls, then 100 calls on a kept ring
\timing on
DO $$ BEGIN FOR i IN 1..100 LOOP PERFORM test_shm_mq(1024, 'a', 1, 4); END LOOP; END $$;
SET test_shm_mq_ext.ring_keepalive = '10s';
DO $$ BEGIN FOR i IN 1..100 LOOP PERFORM test_shm_mq(1024, 'a', 1, 4); END LOOP; END $$;
\timing off
\echo == the kept ring, idle between calls, and its workers
SELECT pg_sleep(0.1) \g /dev/null
SELECT leader_pid, workers, state, calls, kept_until FROM test_shm_mq_rings;
SELECT application_name, state, query
FROM pg_stat_activity WHERE backend_type = 'test_shm_mq_ext' ORDER BY application_name;
SELECT test_shm_mq_release_ring();
RESET test_shm_mq_ext.ring_keepalive;

\echo == the same trips timed by test_shm_mq_bench under each wait strategy
SELECT strategy, workers,
       round(us_per_round_trip::numeric, 2) AS us_per_round_trip,
       round(msgs_per_sec) AS round_trips_per_sec,
       round(setup_ms::numeric, 1) AS setup_ms
FROM (VALUES ('block'), ('adaptive')) s(strategy), (VALUES (1), (4)) w(workers),
     LATERAL test_shm_mq_bench(65536, 100, 5000, workers, 'pingpong', strategy)
ORDER BY workers, strategy DESC;

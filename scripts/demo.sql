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

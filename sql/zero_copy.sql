--
-- test_shm_mq_ext.zero_copy_min_bytes: large messages travel the ring by
-- reference, through the ring's dynamic shared memory area.
--

-- Off by default: every message is copied, as in core's module.
LOAD 'test_shm_mq_ext';
SHOW test_shm_mq_ext.zero_copy_min_bytes;

-- Its range is checked with the others' in extension.sql.
SET test_shm_mq_ext.zero_copy_min_bytes = '64kB';
SHOW test_shm_mq_ext.zero_copy_min_bytes;

-- Every ring's segment holds the area, whether or not it is used.
SELECT toc_key, role, size_bytes FROM test_shm_mq_layout(65536, 2)
WHERE role LIKE 'dynamic%';

-- One byte short of the setting, a message is copied; at it and above, it
-- travels by reference.  Each call checks the message that comes back.
SELECT test_shm_mq(1024, repeat('a', 65535), 3, 2);
SELECT test_shm_mq(1024, repeat('b', 65536), 3, 2);
SELECT test_shm_mq(1024, repeat('c', 4 * 1024 * 1024), 20, 3);
SELECT test_shm_mq_pipelined(1024, repeat('d', 65536), 50, 3, true);
SELECT test_shm_mq_pipelined(65536, repeat('e', 1024 * 1024), 20, 1, true);

-- The leader alone: its queue loops back to itself.
SELECT test_shm_mq_pipelined(1024, repeat('f', 100000), 20, 0, true);

-- Nothing sent: nothing placed.
SELECT test_shm_mq(1024, repeat('g', 100000), 0, 1);
SELECT test_shm_mq_pipelined(1024, repeat('g', 100000), 0, 1);

-- The leader keeps no more in flight than the queues hold together, or two
-- messages if that is more: 5 queues of 64 kB hold four messages of 80 kB,
-- and three of one byte more; of 1 MB, two.  test_shm_mq_bench runs the same
-- pipeline, and says how many were out at once.
SELECT test_shm_mq_pipelined(65536, repeat('h', 81920), 200, 4, true);
SELECT test_shm_mq_pipelined(65536, repeat('h', 81921), 200, 4, true);
SELECT test_shm_mq_pipelined(65536, repeat('h', 1024 * 1024), 50, 4, true);
SELECT size, b.most_in_flight, b.messages, b.bytes_by_reference = b.bytes AS all_by_reference
FROM (VALUES (81920), (81921), (1048576)) s(size),
     LATERAL test_shm_mq_bench(65536, size, 200, 4, 'pipelined') b
ORDER BY size;

-- The benchmark's ping-pong goes by reference too; below the threshold,
-- nothing does.
SELECT messages, bytes, bytes_by_reference, most_in_flight
FROM test_shm_mq_bench(65536, 1048576, 10, 2, 'pingpong');
SELECT bytes_by_reference
FROM test_shm_mq_bench(65536, 65535, 10, 2, 'pipelined');

RESET test_shm_mq_ext.zero_copy_min_bytes;

SELECT count(*) AS workers_left
FROM pg_stat_activity WHERE backend_type = 'test_shm_mq_ext';

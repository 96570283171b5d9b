--
-- test_shm_mq_pipelined(): many copies in flight at once.
--

-- With no workers the leader's one queue loops back to itself, even for a
-- message far larger than the queue.
SELECT test_shm_mq_pipelined(16384, repeat('z', 200000), 10, 0);
SELECT test_shm_mq_pipelined(1024, '', 1000, 0);

-- One and three workers, with and without checking every copy.
SELECT test_shm_mq_pipelined(16384, repeat('z', 200000), 10, 1);
SELECT test_shm_mq_pipelined(16384, 'small', 10000, 3);
SELECT test_shm_mq_pipelined(1024, repeat('y', 5000), 200, 3, false);
SELECT test_shm_mq_pipelined(1024, repeat('y', 5000), 200, 3, true);
SELECT test_shm_mq_pipelined(1024, 'defaults');

-- No copies at all.
SELECT test_shm_mq_pipelined(1024, 'none', 0, 2);

SELECT count(*) AS workers_left
FROM pg_stat_activity WHERE backend_type = 'test_shm_mq_ext';

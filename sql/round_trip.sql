--
-- test_shm_mq(): one message at a time round the ring, checked byte for byte
-- when it comes back.
--

-- An empty message, and a single byte, many times over.
SELECT test_shm_mq(1024, '', 2000, 1);
SELECT test_shm_mq(1024, 'a', 2001, 1);

-- A message that nearly fills the queue, and the default arguments.
SELECT test_shm_mq(1024, repeat('q', 1000), 100, 2);
SELECT test_shm_mq(1024, 'defaults: one trip, one worker');

-- Messages much larger than the queue wrap round it many times.
SELECT test_shm_mq(100, repeat('w', 300), 50, 2);
SELECT test_shm_mq(16384,
                   (SELECT string_agg(md5(i::text), '')
                    FROM generate_series(1, 8438) i),   -- 270 016 bytes
                   10, 3);

-- Rings of one through seven workers: all that a server with the default
-- max_worker_processes (8) has free beside the logical replication launcher.
-- Larger rings are in t/130_large_rings.pl.
SELECT n AS workers, test_shm_mq(1024, 'ring of ' || n, 100, n)
FROM generate_series(1, 7) n;

-- Thousands of trips through a ring of four.
SELECT test_shm_mq(32768, repeat('x', 200), 10000, 4);

-- No trips at all: the ring is set up and taken down.
SELECT test_shm_mq(1024, 'never sent', 0, 2);

-- A call that returns has waited for its workers: none is left, at once.
SELECT count(*) AS workers_left
FROM pg_stat_activity WHERE backend_type = 'test_shm_mq_ext';

--
-- Both wait strategies must deliver every message intact.  The other files
-- run the default, "adaptive"; run each shape of round trip here under
-- "block", and under "adaptive" with no polling budget, where it sleeps at
-- once but still batches.  Seven workers at most, as round_trip.sql;
-- t/130_large_rings.pl runs a ring of eight under each.
--
SELECT current_setting('test_shm_mq_ext.wait_strategy') AS strategy,
       current_setting('test_shm_mq_ext.spin_budget_us') AS budget,
       test_shm_mq(1024, '', 500, 1) AS empty,
       test_shm_mq(1024, repeat('q', 1000), 100, 2) AS near_queue_size,
       test_shm_mq(100, repeat('w', 300), 50, 2) AS wrapping,
       test_shm_mq(16384, repeat(md5('x'), 8438), 5, 3) AS large,
       test_shm_mq(4096, 'seven', 500, 7) AS seven_workers,
       test_shm_mq_pipelined(16384, repeat('z', 200000), 10, 0) AS self_loop,
       test_shm_mq_pipelined(1024, 'small', 10000, 1) AS pipelined_1,
       test_shm_mq_pipelined(1024, repeat('y', 5000), 200, 3) AS pipelined_3,
       test_shm_mq_pipelined(65536, repeat('v', 9000), 2000, 4) AS unheld
FROM (VALUES ('block', 100), ('adaptive', 0), ('adaptive', 100))
         settings(strategy, budget),
     LATERAL set_config('test_shm_mq_ext.wait_strategy', strategy, false)
         set_strategy,
     LATERAL set_config('test_shm_mq_ext.spin_budget_us', budget::text, false)
         set_budget;

RESET test_shm_mq_ext.spin_budget_us;
RESET test_shm_mq_ext.wait_strategy;

-- The benchmark reports what it moved: every mode and strategy.
SELECT mode, strategy, workers, messages, bytes,
       run_ms > 0 AS ran, setup_ms > 0 AS set_up,
       msgs_per_sec > 0 AND mb_per_sec > 0 AND us_per_round_trip > 0
           AS rates, leader_cpu_ms >= 0 AS cpu
FROM (VALUES ('pingpong', 1), ('pingpong', 3), ('pipelined', 0),
             ('pipelined', 2)) cases(mode, workers),
     (VALUES ('block'), ('adaptive')) strategies(strategy),
     LATERAL test_shm_mq_bench(4096, 1000, 300, workers, mode, strategy)
ORDER BY mode, workers, strategy;

-- Idle: one trip, 50 ms with nothing in flight, one more trip.
SELECT messages, bytes, run_ms >= 50 AS stayed_idle
FROM test_shm_mq_bench(1024, 10, 50, 2, 'idle', 'adaptive');

-- No messages at all: setup alone, and no rates to divide by.
SELECT messages, bytes, msgs_per_sec, us_per_round_trip
FROM test_shm_mq_bench(1024, 10, 0, 1);

-- Its own bad input.
\set SHOW_CONTEXT never
SELECT * FROM test_shm_mq_bench(1024, 10, 10, 1, 'sideways');
SELECT * FROM test_shm_mq_bench(1024, 10, 10, 1, 'pingpong', 'spin');
SELECT * FROM test_shm_mq_bench(1024, -1, 10, 1);
SELECT * FROM test_shm_mq_bench(1024, 1073741824, 10, 1);
SELECT * FROM test_shm_mq_bench(1024, 10, -1, 1);
SELECT * FROM test_shm_mq_bench(1024, 10, 10, 0, 'pingpong');
SELECT * FROM test_shm_mq_bench(32, 10, 10, 1);
SELECT * FROM test_shm_mq_bench(NULL, 10, 10, 1);
SELECT * FROM test_shm_mq_bench(1024, 10, 10, 1, NULL);

SELECT count(*) AS workers_left
FROM pg_stat_activity WHERE backend_type = 'test_shm_mq_ext';

--
-- test_shm_mq_ext.ring_keepalive: a successful call keeps its ring for the
-- session's next call of the same shape.
--

-- The workers of this session's ring: how many, how many idle, and whether
-- they are the ones seen last.  Kept workers go idle just after the call
-- returns, so allow them a moment.
CREATE TEMP TABLE seen (pid int);
CREATE FUNCTION kept_workers(OUT workers int, OUT idle int, OUT same bool)
LANGUAGE plpgsql AS $$
DECLARE
    pids int[];
    deadline timestamptz := clock_timestamp() + interval '10 seconds';
BEGIN
    LOOP
        PERFORM pg_stat_clear_snapshot();
        SELECT array_agg(pid ORDER BY pid),
               count(*) FILTER (WHERE state = 'idle')
          INTO pids, idle
        FROM pg_stat_activity
        WHERE backend_type = 'test_shm_mq_ext'
          AND application_name LIKE '% for PID ' || pg_backend_pid();
        workers := coalesce(array_length(pids, 1), 0);
        EXIT WHEN idle = workers OR clock_timestamp() > deadline;
        PERFORM pg_sleep(0.01);
    END LOOP;
    same := pids IS NOT DISTINCT FROM (SELECT array_agg(pid ORDER BY pid) FROM seen);
    DELETE FROM seen;
    INSERT INTO seen SELECT unnest(pids);
END
$$;

-- Off by default: nothing stays after a call.
SELECT test_shm_mq(1024, 'not kept', 1, 2);
SHOW test_shm_mq_ext.ring_keepalive;
SELECT * FROM kept_workers();

-- Kept: the workers stay, idle, and the next calls of the same shape, from
-- any of the functions, use them.
SET test_shm_mq_ext.ring_keepalive = '1min';
SELECT test_shm_mq(1024, 'kept', 1, 2);
SELECT * FROM kept_workers();
SELECT test_shm_mq(1024, 'the same ring', 100, 2);
SELECT * FROM kept_workers();
SELECT test_shm_mq_pipelined(1024, 'the same ring', 1000, 2);
SELECT * FROM kept_workers();
SELECT messages FROM test_shm_mq_bench(1024, 100, 10, 2);
SELECT * FROM kept_workers();

-- A call that fails its checks leaves the ring alone.
\set VERBOSITY terse
SELECT test_shm_mq(10, 'too small', 1, 2);
SELECT test_shm_mq(1024, 'bad repeat count', -1, 2);
\set VERBOSITY default
SELECT * FROM kept_workers();

-- Another shape: another ring, and the old one gone.
SELECT test_shm_mq(2048, 'another queue size', 1, 2);
SELECT * FROM kept_workers();
SELECT test_shm_mq(2048, 'another worker count', 1, 3);
SELECT * FROM kept_workers();
SET test_shm_mq_ext.wait_strategy = 'block';
SELECT test_shm_mq(2048, 'another wait strategy', 1, 3);
SELECT * FROM kept_workers();
RESET test_shm_mq_ext.wait_strategy;

-- Without workers there is nothing to keep.
SELECT test_shm_mq_pipelined(1024, 'no workers', 10, 0);
SELECT * FROM kept_workers();

-- A rolled-back transaction or savepoint takes down the ring it used; a
-- committed one, or a released savepoint, keeps it.
BEGIN;
SELECT test_shm_mq(1024, 'in a transaction', 1, 2);
ROLLBACK;
SELECT * FROM kept_workers();
BEGIN;
SELECT test_shm_mq(1024, 'in a transaction', 1, 2);
COMMIT;
SELECT * FROM kept_workers();
BEGIN;
SAVEPOINT s;
SELECT test_shm_mq(1024, 'in a savepoint', 1, 2);
ROLLBACK TO s;
SELECT * FROM kept_workers();
SAVEPOINT s;
SELECT test_shm_mq(1024, 'in a savepoint', 1, 2);
RELEASE s;
COMMIT;
SELECT * FROM kept_workers();

-- A rollback of a transaction that did not use the ring leaves it alone.
BEGIN;
SELECT 1 AS unrelated;
ROLLBACK;
SELECT * FROM kept_workers();

-- test_shm_mq_release_ring() takes it down at once.
SELECT test_shm_mq_release_ring();
SELECT * FROM kept_workers();
SELECT test_shm_mq_release_ring();

-- With the keepalive back at 0, the next call takes a kept ring down first,
-- and keeps nothing itself.
SELECT test_shm_mq(1024, 'kept', 1, 2);
RESET test_shm_mq_ext.ring_keepalive;
SELECT test_shm_mq(1024, 'not kept', 1, 2);
SELECT * FROM kept_workers();

DROP FUNCTION kept_workers();
DROP TABLE seen;

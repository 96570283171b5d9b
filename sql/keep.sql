--
-- test_shm_mq_ext.ring_keepalive: a successful call keeps its ring for the
-- session's next call of the same shape.  Keeping needs the extension's
-- shared state, which exists from PostgreSQL 17 on, and before only if the
-- library is in shared_preload_libraries; without it no ring is kept, and a
-- WARNING says so once per session.  The first query says which case this
-- is, so that the two expected outputs cannot be swapped.
--
SELECT current_setting('server_version_num')::int >= 170000
       OR 'test_shm_mq_ext' = ANY (string_to_array(
              replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
       AS has_shared_state;

-- Whether this server keeps rings at all: the first query's answer.
CREATE TEMP TABLE keeping AS
SELECT current_setting('server_version_num')::int >= 170000
       OR 'test_shm_mq_ext' = ANY (string_to_array(
              replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
       AS rings_kept;

-- The workers of this session's ring: how many, how many idle, and whether
-- they are the ones seen last.  Kept workers go idle, and show in
-- pg_stat_activity, just after the call returns, so where rings are kept
-- wait until the expected number of them do; where they are not, look once.
CREATE TEMP TABLE seen (pid int);
CREATE FUNCTION kept_workers(expected int, OUT workers int, OUT idle int,
                             OUT same bool)
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
        EXIT WHEN NOT (SELECT rings_kept FROM keeping)
            OR (idle = expected AND workers = expected)
            OR clock_timestamp() > deadline;
        PERFORM pg_sleep(0.01);
    END LOOP;
    same := pids IS NOT DISTINCT FROM (SELECT array_agg(pid ORDER BY pid) FROM seen);
    DELETE FROM seen;
    INSERT INTO seen SELECT unnest(pids);
END
$$;

-- How many of this session's workers are left once those leaving have gone:
-- waits up to 10 s for them.
CREATE FUNCTION workers_left() RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    left_now int;
    deadline timestamptz := clock_timestamp() + interval '10 seconds';
BEGIN
    LOOP
        PERFORM pg_stat_clear_snapshot();
        SELECT count(*) INTO left_now
        FROM pg_stat_activity
        WHERE backend_type = 'test_shm_mq_ext'
          AND application_name LIKE '% for PID ' || pg_backend_pid();
        EXIT WHEN left_now = 0 OR clock_timestamp() > deadline;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN left_now;
END
$$;

-- Off by default: nothing stays after a call.
SELECT test_shm_mq(1024, 'not kept', 1, 2);
SHOW test_shm_mq_ext.ring_keepalive;
SELECT * FROM kept_workers(0);

-- Kept: the workers stay, idle, and the next calls of the same shape, from
-- any of the functions, use them.
SET test_shm_mq_ext.ring_keepalive = '1min';
SELECT test_shm_mq(1024, 'kept', 1, 2);
SELECT * FROM kept_workers(2);
SELECT test_shm_mq(1024, 'the same ring', 100, 2);
SELECT * FROM kept_workers(2);
SELECT test_shm_mq_pipelined(1024, 'the same ring', 1000, 2);
SELECT * FROM kept_workers(2);
SELECT messages FROM test_shm_mq_bench(1024, 100, 10, 2);
SELECT * FROM kept_workers(2);

-- A call that fails its checks leaves the ring alone.
\set VERBOSITY terse
SELECT test_shm_mq(10, 'too small', 1, 2);
SELECT test_shm_mq(1024, 'bad repeat count', -1, 2);
\set VERBOSITY default
SELECT * FROM kept_workers(2);

-- Another shape: another ring, and the old one gone.
SELECT test_shm_mq(2048, 'another queue size', 1, 2);
SELECT * FROM kept_workers(2);
SELECT test_shm_mq(2048, 'another worker count', 1, 3);
SELECT * FROM kept_workers(3);
SET test_shm_mq_ext.wait_strategy = 'block';
SELECT test_shm_mq(2048, 'another wait strategy', 1, 3);
SELECT * FROM kept_workers(3);
RESET test_shm_mq_ext.wait_strategy;

-- Without workers there is nothing to keep.
SELECT test_shm_mq_pipelined(1024, 'no workers', 10, 0);
SELECT * FROM kept_workers(0);

-- A rolled-back transaction or savepoint takes down the ring it used; a
-- committed one, or a released savepoint, keeps it.
BEGIN;
SELECT test_shm_mq(1024, 'in a transaction', 1, 2);
ROLLBACK;
SELECT * FROM kept_workers(0);
BEGIN;
SELECT test_shm_mq(1024, 'in a transaction', 1, 2);
COMMIT;
SELECT * FROM kept_workers(2);
BEGIN;
SAVEPOINT s;
SELECT test_shm_mq(1024, 'in a savepoint', 1, 2);
ROLLBACK TO s;
SELECT * FROM kept_workers(0);
SAVEPOINT s;
SELECT test_shm_mq(1024, 'in a savepoint', 1, 2);
RELEASE s;
COMMIT;
SELECT * FROM kept_workers(2);

-- A rollback of a transaction that did not use the ring leaves it alone.
BEGIN;
SELECT 1 AS unrelated;
ROLLBACK;
SELECT * FROM kept_workers(2);

-- test_shm_mq_release_ring() takes it down at once.
SELECT test_shm_mq_release_ring();
SELECT * FROM kept_workers(0);
SELECT test_shm_mq_release_ring();

-- The keepalive back at 0, by any means, takes the kept ring down at once,
-- while the session does nothing more: RESET, SET, and the end of the
-- transaction that SET LOCAL it.
SELECT test_shm_mq(1024, 'kept', 1, 2);
SELECT * FROM kept_workers(2);
RESET test_shm_mq_ext.ring_keepalive;
SELECT workers_left();
SET test_shm_mq_ext.ring_keepalive = '1min';
SELECT test_shm_mq(1024, 'kept', 1, 2);
SELECT * FROM kept_workers(2);
SET test_shm_mq_ext.ring_keepalive = 0;
SELECT workers_left();
BEGIN;
SET LOCAL test_shm_mq_ext.ring_keepalive = '1min';
SELECT test_shm_mq(1024, 'kept until the commit', 1, 2);
SELECT * FROM kept_workers(2);
COMMIT;
SELECT workers_left();
SELECT test_shm_mq(1024, 'not kept', 1, 2);
SELECT * FROM kept_workers(0);

DROP FUNCTION workers_left();
DROP FUNCTION kept_workers(int);
DROP TABLE keeping;
DROP TABLE seen;

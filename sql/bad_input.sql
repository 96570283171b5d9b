--
-- Every bad argument gets an error with SQLSTATE 22023, or 53000 when
-- resources run short, and leaves nothing behind.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Queue size: below the minimum, negative, zero, and too large.
SELECT test_shm_mq(10, 'x');
SELECT test_shm_mq(-1, 'x');
SELECT test_shm_mq_pipelined(0, 'x', 1, 0);
SELECT test_shm_mq_estimate(-1024);
SELECT * FROM test_shm_mq_layout(8);
SELECT test_shm_mq(9223372036854775807, 'x', 1, 3);
SELECT test_shm_mq_estimate(4611686018427387904, 1);

-- Worker count: none for a blocking round trip, negative anywhere.
SELECT test_shm_mq(1024, 'x', 1, 0);
SELECT test_shm_mq(1024, 'x', 1, -1);
SELECT test_shm_mq_pipelined(1024, 'x', 1, -1);
SELECT test_shm_mq_estimate(1024, -1);
SELECT * FROM test_shm_mq_layout(1024, -1);

-- Repeat count.
SELECT test_shm_mq(1024, 'x', -1, 1);
SELECT test_shm_mq_pipelined(1024, 'x', -5, 0);

-- The functions are strict.
SELECT test_shm_mq(NULL, 'x') IS NULL AS null_queue_size,
       test_shm_mq(1024, NULL) IS NULL AS null_message,
       test_shm_mq_pipelined(1024, 'x', 1, 1, NULL) IS NULL AS null_verify,
       test_shm_mq_estimate(1024, NULL) IS NULL AS null_workers;

-- The two errors below carry the server's own limits in their text; report
-- them with those numbers masked, so the output holds on any server.
CREATE FUNCTION report_error(call text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    state text;
    message text;
    detail text;
    hint text;
BEGIN
    EXECUTE call;
    RAISE NOTICE 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            detail = PG_EXCEPTION_DETAIL,
                            hint = PG_EXCEPTION_HINT;
    RAISE NOTICE 'SQLSTATE %: %', state, regexp_replace(message, '\d+', 'N', 'g');
    RAISE NOTICE 'DETAIL: %', coalesce(regexp_replace(nullif(detail, ''), '\d+', 'N', 'g'), '(none)');
    RAISE NOTICE 'HINT: %', hint;
END
$$;

-- More workers than max_worker_processes allows.
SELECT report_error(format('SELECT test_shm_mq(1024, %L, 1, %s)', 'x',
                           current_setting('max_worker_processes')::int + 1));

-- As many workers as max_worker_processes: other background workers (the
-- logical replication launcher at least) hold some of the slots, so one of
-- ours finds none free.
SELECT report_error(format('SELECT test_shm_mq(1024, %L, 1, %s)', 'x',
                           current_setting('max_worker_processes')));

DROP FUNCTION report_error(text);

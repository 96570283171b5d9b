--
-- Queue sizes at the edges of int8.  A segment must fit in a Size, an int8
-- and an off_t; every queue size / worker count whose segment would not gets
-- 22023 "queue size ... is too large" from every function, with the largest
-- size that fits in the detail.  No estimate is ever negative.
--

-- How a call ends: "ok", or its SQLSTATE and message.
CREATE FUNCTION outcome(call text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE call;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- The largest queue size for a worker count, as the error for a queue of
-- 2^63 - 1 bytes states it.
CREATE FUNCTION largest_queue_size(workers int) RETURNS int8
LANGUAGE plpgsql AS $$
DECLARE
    detail text;
BEGIN
    PERFORM test_shm_mq_estimate(9223372036854775807, workers);
    RAISE 'a queue of 2^63 - 1 bytes was accepted';
EXCEPTION WHEN invalid_parameter_value THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN substring(detail FROM 'the largest queue size is (\d+) bytes')::int8;
END
$$;

-- The sizes in the report that came with this issue: all too large.
SELECT queue_size, workers,
       outcome(format('SELECT test_shm_mq_estimate(%s, %s)', queue_size, workers))
FROM (VALUES (9223372036854775807, 0), (4611686018427387903, 1),
             (3074457345618258602, 2)) v(queue_size, workers);

-- For 0, 1, 2 and 8 workers: the largest size is aligned, its estimate is
-- positive and within one alignment step per queue of the int8 limit, and one
-- byte more is refused.
SELECT workers, largest,
       largest % 32 = 0 AS aligned,
       test_shm_mq_estimate(largest, workers) > 0 AS positive,
       test_shm_mq_estimate(largest, workers) >
           9223372036854775807 - 32 * (workers + 1) AS tight,
       outcome(format('SELECT test_shm_mq_estimate(%s, %s)',
                      largest + 1, workers)) AS one_more
FROM (SELECT workers, largest_queue_size(workers) AS largest
      FROM unnest(ARRAY[0, 1, 2, 8]) workers) l
ORDER BY workers;

-- Every function that takes a queue size refuses one byte more than the
-- largest, and 2^63 - 1, before creating anything.
SELECT f.function, l.workers, s.size,
       outcome(format(f.call, CASE s.size WHEN 'largest + 1'
                                  THEN l.largest + 1
                                  ELSE 9223372036854775807 END,
                      l.workers)) AS outcome
FROM (VALUES ('test_shm_mq', 'SELECT test_shm_mq(%s, ''x'', 1, %s)', 1),
             ('test_shm_mq_pipelined',
              'SELECT test_shm_mq_pipelined(%s, ''x'', 1, %s)', 0),
             ('test_shm_mq_layout',
              'SELECT * FROM test_shm_mq_layout(%s, %s)', 0),
             ('test_shm_mq_bench',
              'SELECT * FROM test_shm_mq_bench(%s, 10, 1, %s)', 1))
         f(function, call, min_workers),
     LATERAL (SELECT workers, largest_queue_size(workers) AS largest
              FROM unnest(ARRAY[0, 2]) workers
              WHERE workers >= f.min_workers) l,
     (VALUES ('largest + 1'), ('2^63 - 1')) s(size)
ORDER BY f.function, l.workers, s.size;

-- Powers of two from 2^6 to 2^62, and one byte less and more, for 0 to 8
-- workers: each is estimated, positively, or refused as too small or too
-- large, and nothing else.
SELECT count(*) AS sizes_tried,
       count(*) FILTER (WHERE outcome = 'ok') AS estimated,
       count(*) FILTER (WHERE outcome LIKE '22023: queue size must be at least %')
           AS too_small,
       count(*) FILTER (WHERE outcome LIKE '22023: queue size % is too large')
           AS too_large,
       count(*) FILTER (WHERE outcome <> 'ok'
                          AND outcome NOT LIKE '22023: queue size must be at least %'
                          AND outcome NOT LIKE '22023: queue size % is too large')
           AS other_outcomes,
       count(*) FILTER (WHERE estimate <= 0) AS not_positive
FROM (SELECT power(2::numeric, e)::int8 + d AS queue_size, workers
      FROM generate_series(6, 62) e, generate_series(-1, 1) d,
           generate_series(0, 8) workers) sizes,
     LATERAL outcome(format('SELECT test_shm_mq_estimate(%s, %s)',
                            queue_size, workers)) outcome,
     LATERAL (SELECT CASE WHEN outcome = 'ok'
                          THEN test_shm_mq_estimate(queue_size, workers)
                     END AS estimate) e;

DROP FUNCTION largest_queue_size(int), outcome(text);

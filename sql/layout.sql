--
-- test_shm_mq_estimate() and test_shm_mq_layout(): how a ring's segment is
-- sized and laid out.  The table of contents grows up from the start of the
-- segment while chunks are taken from the end, so the header, allocated
-- first, sits last.
--
SELECT * FROM test_shm_mq_layout(1024, 1) ORDER BY offset_bytes;
SELECT * FROM test_shm_mq_layout(1024, 3) ORDER BY offset_bytes;

-- Keys are allocated in order, so each chunk sits below the one before it.
SELECT bool_and(offset_bytes < previous_offset) AS chunks_grow_down
FROM (SELECT offset_bytes,
             lag(offset_bytes) OVER (ORDER BY toc_key) AS previous_offset
      FROM test_shm_mq_layout(1024, 3)
      WHERE toc_key IS NOT NULL) chunks
WHERE previous_offset IS NOT NULL;

-- Data queues are rounded up to the buffer alignment of 32 bytes.
SELECT role, size_bytes FROM test_shm_mq_layout(1000, 2)
WHERE role LIKE 'data queue%' ORDER BY toc_key;

-- For every shape, the rows tile the segment without gaps, and their sizes
-- add up to exactly what the estimate says dsm_create is asked for.
WITH shapes(queue_size, workers) AS (
    VALUES (64, 0), (1024, 0), (1024, 1), (1000, 2), (1024, 3), (100000, 5),
           (16384, 8)
), entries AS (
    SELECT queue_size, workers, l.*,
           lag(offset_bytes + size_bytes, 1, 0::int8)
               OVER (PARTITION BY queue_size, workers
                     ORDER BY offset_bytes) AS end_of_previous
    FROM shapes, LATERAL test_shm_mq_layout(queue_size, workers) l
)
SELECT queue_size, workers,
       count(toc_key) AS toc_entries,
       test_shm_mq_estimate(queue_size, workers) AS estimate,
       sum(size_bytes) = test_shm_mq_estimate(queue_size, workers)
           AS sizes_add_up,
       bool_and(offset_bytes = end_of_previous) AS contiguous
FROM entries
GROUP BY queue_size, workers
ORDER BY workers, queue_size;

-- The default is one worker.
SELECT test_shm_mq_estimate(1024) = test_shm_mq_estimate(1024, 1) AS same;

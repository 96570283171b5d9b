--
-- Last: after everything above, including the calls that failed while their
-- workers were starting, no worker of ours remains.  A worker terminated
-- during an error exits on its own time, so allow it a moment.
--
DO $$
DECLARE
    deadline timestamptz := clock_timestamp() + interval '30 seconds';
BEGIN
    WHILE EXISTS (SELECT FROM pg_stat_activity
                  WHERE backend_type = 'test_shm_mq_ext')
          AND clock_timestamp() < deadline
    LOOP
        PERFORM pg_sleep(0.01);
        PERFORM pg_stat_clear_snapshot();
    END LOOP;
END
$$;

SELECT count(*) AS workers_left
FROM pg_stat_activity WHERE backend_type = 'test_shm_mq_ext';

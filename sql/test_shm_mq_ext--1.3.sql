/* test_shm_mq_ext--1.3.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION test_shm_mq_ext" to load this file. \quit

CREATE FUNCTION test_shm_mq(queue_size pg_catalog.int8,
					   message pg_catalog.text,
					   repeat_count pg_catalog.int4 default 1,
					   num_workers pg_catalog.int4 default 1)
    RETURNS pg_catalog.void
    AS 'MODULE_PATHNAME'
    LANGUAGE C STRICT;

COMMENT ON FUNCTION test_shm_mq(pg_catalog.int8, pg_catalog.text,
								pg_catalog.int4, pg_catalog.int4) IS
'send a message round a ring of workers repeat_count times, one trip at a time, and check that it comes back intact';

CREATE FUNCTION test_shm_mq_pipelined(queue_size pg_catalog.int8,
					   message pg_catalog.text,
					   repeat_count pg_catalog.int4 default 1,
					   num_workers pg_catalog.int4 default 1,
					   verify pg_catalog.bool default true)
    RETURNS pg_catalog.void
    AS 'MODULE_PATHNAME'
    LANGUAGE C STRICT;

COMMENT ON FUNCTION test_shm_mq_pipelined(pg_catalog.int8, pg_catalog.text,
										  pg_catalog.int4, pg_catalog.int4,
										  pg_catalog.bool) IS
'send repeat_count copies of a message round a ring of workers while receiving them back, checking each when verify is set; zero workers loop the leader back to itself';

CREATE FUNCTION test_shm_mq_estimate(queue_size pg_catalog.int8,
					   num_workers pg_catalog.int4 default 1)
    RETURNS pg_catalog.int8
    AS 'MODULE_PATHNAME'
    LANGUAGE C STRICT;

COMMENT ON FUNCTION test_shm_mq_estimate(pg_catalog.int8, pg_catalog.int4) IS
'bytes a ring of num_workers workers with queues of queue_size bytes asks dsm_create for';

CREATE FUNCTION test_shm_mq_layout(queue_size pg_catalog.int8,
					   num_workers pg_catalog.int4 default 1)
    RETURNS TABLE (toc_key pg_catalog.int8,
				   role pg_catalog.text,
				   offset_bytes pg_catalog.int8,
				   size_bytes pg_catalog.int8)
    AS 'MODULE_PATHNAME'
    LANGUAGE C STRICT;

COMMENT ON FUNCTION test_shm_mq_layout(pg_catalog.int8, pg_catalog.int4) IS
'build a ring''s segment without starting workers and list its table of contents: key, role, offset and size of each chunk';

CREATE FUNCTION test_shm_mq_bench(queue_size pg_catalog.int8,
					   message_size pg_catalog.int4,
					   repeat_count pg_catalog.int4,
					   num_workers pg_catalog.int4,
					   mode pg_catalog.text default 'pingpong',
					   wait_strategy pg_catalog.text default null,
					   OUT setup_ms pg_catalog.float8,
					   OUT run_ms pg_catalog.float8,
					   OUT messages pg_catalog.int8,
					   OUT bytes pg_catalog.int8,
					   OUT msgs_per_sec pg_catalog.float8,
					   OUT mb_per_sec pg_catalog.float8,
					   OUT us_per_round_trip pg_catalog.float8,
					   OUT leader_cpu_ms pg_catalog.float8)
    RETURNS record
    AS 'MODULE_PATHNAME'
    LANGUAGE C;

COMMENT ON FUNCTION test_shm_mq_bench(pg_catalog.int8, pg_catalog.int4,
									  pg_catalog.int4, pg_catalog.int4,
									  pg_catalog.text, pg_catalog.text) IS
'time one ring under a wait strategy: mode pingpong (one message in flight), pipelined (many) or idle (repeat_count ms with nothing in flight); a null strategy means test_shm_mq_ext.wait_strategy';

-- Creating a segment and starting workers takes memory and background worker
-- slots that the whole server shares, so only superusers, and roles granted
-- EXECUTE, may do it.  The estimate allocates nothing and stays public.
REVOKE EXECUTE ON FUNCTION test_shm_mq(pg_catalog.int8, pg_catalog.text,
									   pg_catalog.int4, pg_catalog.int4)
	FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION test_shm_mq_pipelined(pg_catalog.int8,
												 pg_catalog.text,
												 pg_catalog.int4,
												 pg_catalog.int4,
												 pg_catalog.bool)
	FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION test_shm_mq_layout(pg_catalog.int8, pg_catalog.int4)
	FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION test_shm_mq_bench(pg_catalog.int8, pg_catalog.int4,
											 pg_catalog.int4, pg_catalog.int4,
											 pg_catalog.text, pg_catalog.text)
	FROM PUBLIC;

-- A session's own kept ring is all it can take down, so anyone may.
CREATE FUNCTION test_shm_mq_release_ring()
    RETURNS pg_catalog.bool
    AS 'MODULE_PATHNAME'
    LANGUAGE C STRICT;

COMMENT ON FUNCTION test_shm_mq_release_ring() IS
'take down the ring this session keeps under test_shm_mq_ext.ring_keepalive, if any; returns whether there was one';

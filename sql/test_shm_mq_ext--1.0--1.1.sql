/* test_shm_mq_ext--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION test_shm_mq_ext UPDATE TO '1.1'" to load this file. \quit

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

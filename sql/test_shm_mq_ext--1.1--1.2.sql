/* test_shm_mq_ext--1.1--1.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION test_shm_mq_ext UPDATE TO '1.2'" to load this file. \quit

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

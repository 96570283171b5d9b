/* test_shm_mq_ext--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION test_shm_mq_ext UPDATE TO '1.3'" to load this file. \quit

-- A session's own kept ring is all it can take down, so anyone may.
CREATE FUNCTION test_shm_mq_release_ring()
    RETURNS pg_catalog.bool
    AS 'MODULE_PATHNAME'
    LANGUAGE C STRICT;

COMMENT ON FUNCTION test_shm_mq_release_ring() IS
'take down the ring this session keeps under test_shm_mq_ext.ring_keepalive, if any; returns whether there was one';

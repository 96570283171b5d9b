--
-- Who may run what, since 1.2.  Creating a segment or starting workers takes
-- memory and background worker slots that the whole server shares, so those
-- functions are not executable by PUBLIC; the estimate allocates nothing and
-- is, and so is taking down one's own kept ring (1.3).  Since 1.4 anyone may
-- read the cluster-wide views, as anyone may read pg_stat_activity, but only
-- superusers and granted roles may reset the counters.  Both a fresh install
-- and an update from 1.1 get there, a grant made before an update included.
--
CREATE ROLE regress_tsmq_plain;
CREATE ROLE regress_tsmq_granted;

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
GRANT EXECUTE ON FUNCTION outcome(text) TO PUBLIC;

-- Who may execute each function of the extension.
CREATE VIEW function_privileges AS
SELECT p.proname,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public,
       has_function_privilege('regress_tsmq_plain', p.oid, 'EXECUTE')
           AS plain_role,
       has_function_privilege('regress_tsmq_granted', p.oid, 'EXECUTE')
           AS granted_role
FROM pg_proc p
     JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
     JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass
                        AND d.refobjid = e.oid AND d.deptype = 'e'
WHERE e.extname = 'test_shm_mq_ext';

-- One call of every function.
CREATE TABLE calls (function text, call text);
INSERT INTO calls VALUES
    ('test_shm_mq', 'SELECT test_shm_mq(1024, ''x'', 10, 2)'),
    ('test_shm_mq_pipelined', 'SELECT test_shm_mq_pipelined(1024, ''x'', 10, 0)'),
    ('test_shm_mq_layout', 'SELECT * FROM test_shm_mq_layout(1024, 1)'),
    ('test_shm_mq_bench', 'SELECT * FROM test_shm_mq_bench(1024, 10, 10, 1)'),
    ('test_shm_mq_estimate', 'SELECT test_shm_mq_estimate(1024, 1)'),
    ('test_shm_mq_release_ring', 'SELECT test_shm_mq_release_ring()');
GRANT SELECT ON calls TO PUBLIC;

SELECT extversion FROM pg_extension WHERE extname = 'test_shm_mq_ext';
SELECT * FROM function_privileges ORDER BY proname;

-- Who may read each view: everyone.
CREATE VIEW view_privileges AS
SELECT c.relname,
       has_table_privilege('public', c.oid, 'SELECT') AS public,
       has_table_privilege('regress_tsmq_plain', c.oid, 'SELECT') AS plain_role
FROM pg_class c
     JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
     JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass
                        AND d.refobjid = e.oid AND d.deptype = 'e'
WHERE e.extname = 'test_shm_mq_ext' AND c.relkind = 'v';
SELECT * FROM view_privileges ORDER BY relname;

-- A role without a grant: 42501 for all but the estimate.
SET ROLE regress_tsmq_plain;
SELECT function, outcome(call) FROM calls ORDER BY function;
RESET ROLE;

-- A role granted EXECUTE runs them all.
GRANT EXECUTE ON FUNCTION
    test_shm_mq(int8, text, int4, int4),
    test_shm_mq_pipelined(int8, text, int4, int4, bool),
    test_shm_mq_layout(int8, int4),
    test_shm_mq_bench(int8, int4, int4, int4, text, text)
    TO regress_tsmq_granted;
SET ROLE regress_tsmq_granted;
SELECT function, outcome(call) FROM calls ORDER BY function;
RESET ROLE;

-- What an installation looks like: each function's definition and who may
-- execute it, the grant above included, and who may read each view.
CREATE FUNCTION installation() RETURNS text
LANGUAGE sql AS $$
SELECT (SELECT string_agg(format('%s(%s) %s public:%s plain:%s granted:%s',
                                 p.proname, pg_get_function_arguments(p.oid),
                                 md5(pg_get_functiondef(p.oid)), f.public,
                                 f.plain_role, f.granted_role), E'\n'
                          ORDER BY p.proname)
        FROM pg_proc p JOIN function_privileges f USING (proname))
       || E'\n' ||
       (SELECT string_agg(format('%s public:%s plain:%s',
                                 relname, public, plain_role), E'\n'
                          ORDER BY relname)
        FROM view_privileges)
$$;
CREATE TABLE fresh AS SELECT installation() AS installation;

-- Version 1.1 let PUBLIC run everything.  Updating to 1.2 revokes that, and
-- keeps a grant made before the update; 1.3 adds test_shm_mq_release_ring();
-- 1.4 the cluster-wide views and their functions.
DROP EXTENSION test_shm_mq_ext;
CREATE EXTENSION test_shm_mq_ext VERSION '1.1';
GRANT EXECUTE ON FUNCTION
    test_shm_mq(int8, text, int4, int4),
    test_shm_mq_pipelined(int8, text, int4, int4, bool),
    test_shm_mq_layout(int8, int4),
    test_shm_mq_bench(int8, int4, int4, int4, text, text)
    TO regress_tsmq_granted;
SELECT * FROM function_privileges ORDER BY proname;
ALTER EXTENSION test_shm_mq_ext UPDATE TO '1.2';
SELECT extversion FROM pg_extension WHERE extname = 'test_shm_mq_ext';
SELECT * FROM function_privileges ORDER BY proname;
SET ROLE regress_tsmq_plain;
SELECT function, outcome(call) FROM calls ORDER BY function;
SET ROLE regress_tsmq_granted;
SELECT function, outcome(call) FROM calls ORDER BY function;
RESET ROLE;
ALTER EXTENSION test_shm_mq_ext UPDATE TO '1.3';
SELECT * FROM function_privileges ORDER BY proname;

-- 1.4 makes test_shm_mq_bench() anew, with more columns; the grant on the
-- old one carries over.
ALTER EXTENSION test_shm_mq_ext UPDATE TO '1.4';
SELECT * FROM function_privileges ORDER BY proname;
SELECT * FROM view_privileges ORDER BY relname;

-- The updated installation is the fresh one.
SELECT installation() = (SELECT installation FROM fresh) AS same_as_fresh;

-- Who may keep a ring, and for how long: ring_keepalive is for superusers
-- to set, or to grant with ALTER ROLE ... SET or a SECURITY DEFINER
-- function's SET clause; max_kept_workers belongs to the server's
-- configuration.  Out of range is 22023 (core's wording varies by major).
SELECT name, context, min_val, max_val, boot_val FROM pg_settings
WHERE name IN ('test_shm_mq_ext.ring_keepalive',
               'test_shm_mq_ext.max_kept_workers')
ORDER BY name;
SET ROLE regress_tsmq_granted;
SELECT outcome('SET test_shm_mq_ext.ring_keepalive = ''1s''');
SELECT outcome('SET test_shm_mq_ext.max_kept_workers = 2');
RESET ROLE;
SELECT left(outcome('SET test_shm_mq_ext.ring_keepalive = ''11min'''), 5) AS sqlstate;
SELECT left(outcome('SET test_shm_mq_ext.ring_keepalive = -1'), 5) AS sqlstate;
SELECT outcome('SET test_shm_mq_ext.max_kept_workers = 2');
SELECT outcome('SET test_shm_mq_ext.ring_keepalive = ''10min''');
ALTER ROLE regress_tsmq_granted SET test_shm_mq_ext.ring_keepalive = '1s';
SELECT setconfig FROM pg_db_role_setting
WHERE setrole = 'regress_tsmq_granted'::regrole;
ALTER ROLE regress_tsmq_granted RESET ALL;
RESET test_shm_mq_ext.ring_keepalive;

DROP TABLE fresh, calls;
DROP VIEW function_privileges, view_privileges;
DROP FUNCTION installation(), outcome(text);
DROP EXTENSION test_shm_mq_ext;
DROP ROLE regress_tsmq_plain, regress_tsmq_granted;
CREATE EXTENSION test_shm_mq_ext;

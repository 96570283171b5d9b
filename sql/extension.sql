--
-- The extension installs the SQL API of PostgreSQL's test_shm_mq, plus more.
--
CREATE EXTENSION test_shm_mq_ext;

-- Every function, with its arguments, result, strictness and comment.
SELECT p.proname,
       pg_get_function_arguments(p.oid) AS arguments,
       pg_get_function_result(p.oid) AS result,
       p.proisstrict AS strict,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
FROM pg_proc p
     JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
     JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass
                        AND d.refobjid = e.oid AND d.deptype = 'e'
WHERE e.extname = 'test_shm_mq_ext'
ORDER BY p.proname;

-- The extension is relocatable, and works from any schema.
CREATE SCHEMA ring;
ALTER EXTENSION test_shm_mq_ext SET SCHEMA ring;
SELECT ring.test_shm_mq(1024, 'from another schema');
ALTER EXTENSION test_shm_mq_ext SET SCHEMA public;
DROP SCHEMA ring;

-- Its settings, and the prefix it reserves.
SHOW test_shm_mq_ext.worker_slot_wait;
SET test_shm_mq_ext.no_such_setting = 1;

--
-- The extension installs the SQL API of PostgreSQL's test_shm_mq, plus more.
--
-- Version 1.0 has the API of PostgreSQL's test_shm_mq, plus the estimate and
-- the layout; 1.1 adds the benchmark.  Install 1.0 and update.
CREATE EXTENSION test_shm_mq_ext VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'test_shm_mq_ext';
SELECT count(*) AS functions_in_1_0
FROM pg_depend WHERE refobjid = (SELECT oid FROM pg_extension
                                 WHERE extname = 'test_shm_mq_ext')
                 AND classid = 'pg_proc'::regclass AND deptype = 'e';
ALTER EXTENSION test_shm_mq_ext UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'test_shm_mq_ext';
SELECT (SELECT default_version FROM pg_available_extensions
        WHERE name = 'test_shm_mq_ext') AS default_version;

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

-- Its settings: default, unit, range and who may change them, as pg_settings
-- reports them.
SELECT name, setting, unit, vartype, min_val, max_val, enumvals, context
FROM pg_settings WHERE name LIKE 'test_shm_mq_ext.%' ORDER BY name;

-- Values outside those ranges are refused.  How core words the refusal varies
-- between majors (16 added units to the range), so report its SQLSTATE and
-- whether it names the setting.
CREATE FUNCTION report_refusal(setting text, value text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config(setting, value, true);
    RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
    RETURN format('SQLSTATE %s, names the setting: %s', SQLSTATE,
                  strpos(SQLERRM, setting) > 0);
END
$$;
SELECT setting, value, report_refusal(setting, value) AS outcome
FROM (VALUES ('test_shm_mq_ext.wait_strategy', 'spin'),
             ('test_shm_mq_ext.spin_budget_us', '-1'),
             ('test_shm_mq_ext.spin_budget_us', '1000001'),
             ('test_shm_mq_ext.worker_slot_wait', '-1ms'),
             ('test_shm_mq_ext.worker_slot_wait', '1000ms'),
             ('test_shm_mq_ext.zero_copy_min_bytes', '-1'),
             ('test_shm_mq_ext.zero_copy_min_bytes', '2GB'),
             ('test_shm_mq_ext.zero_copy_min_bytes', '1GB'),
             ('test_shm_mq_ext.worker_connect_delay', '-1'),
             ('test_shm_mq_ext.worker_connect_delay', '11s'),
             ('test_shm_mq_ext.worker_connect_delay', '0')) v(setting, value);
DROP FUNCTION report_refusal(text, text);

-- The prefix is reserved.
SET test_shm_mq_ext.no_such_setting = 1;

/*-------------------------------------------------------------------------
 *
 * compat.h
 *		Every PostgreSQL version check of test_shm_mq_ext, and nothing else.
 *
 * The rest of the code is written against the PostgreSQL 15 API; the shims
 * below let it build unchanged on 13 through 19.
 *
 * IDENTIFICATION
 *		src/compat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TEST_SHM_MQ_EXT_COMPAT_H
#define TEST_SHM_MQ_EXT_COMPAT_H

#include "fmgr.h"
#include "postmaster/bgworker.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "catalog/pg_proc.h"
#include "utils/acl.h"
#include "utils/guc.h"

/* PostgreSQL 14 moved the wait event definitions out of pgstat.h. */
#if PG_VERSION_NUM >= 140000
#include "utils/wait_event.h"
#else
#include "pgstat.h"
#endif

/*
 * PostgreSQL 15 gave shm_mq_send() a force_flush argument; before that every
 * send was flushed at once.
 */
#if PG_VERSION_NUM >= 150000
#define test_shm_mq_send(mqh, nbytes, data, nowait, force_flush) \
	shm_mq_send((mqh), (nbytes), (data), (nowait), (force_flush))
#else
#define test_shm_mq_send(mqh, nbytes, data, nowait, force_flush) \
	shm_mq_send((mqh), (nbytes), (data), (nowait))
#endif

/*
 * PostgreSQL 18 replaced the trailing pg_attribute_noreturn() with a leading
 * pg_noreturn; the older attribute works in the leading position too.
 */
#if PG_VERSION_NUM < 180000 && !defined(pg_noreturn)
#define pg_noreturn pg_attribute_noreturn()
#endif

/* PostgreSQL 15 renamed the placeholder check and made it reserve a prefix. */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

/*
 * PostgreSQL 17 lets a background worker connect as a role that lacks
 * LOGIN, as parallel workers do.
 */
#ifdef BGWORKER_BYPASS_ROLELOGINCHECK
#define TEST_SHM_MQ_CONNECTION_FLAGS \
	(BGWORKER_BYPASS_ALLOWCONN | BGWORKER_BYPASS_ROLELOGINCHECK)
#define TEST_SHM_MQ_WORKERS_NEED_LOGIN false
#else
#define TEST_SHM_MQ_CONNECTION_FLAGS BGWORKER_BYPASS_ALLOWCONN
#define TEST_SHM_MQ_WORKERS_NEED_LOGIN true
#endif



/* PostgreSQL 16 replaced the per-object ACL checks with object_aclcheck(). */
#if PG_VERSION_NUM >= 160000
#define test_shm_mq_function_aclcheck(function_oid, role_oid, mode) \
	object_aclcheck(ProcedureRelationId, (function_oid), (role_oid), (mode))
#else
#define test_shm_mq_function_aclcheck(function_oid, role_oid, mode) \
	pg_proc_aclcheck((function_oid), (role_oid), (mode))
#endif

/*
 * PostgreSQL 17 lets an extension name its wait events, so that
 * pg_stat_activity.wait_event says what a process waits for; before, every
 * one of them shows as "Extension".
 */
#if PG_VERSION_NUM >= 170000
#define test_shm_mq_wait_event_new(name) WaitEventExtensionNew(name)
#else
#define test_shm_mq_wait_event_new(name) ((void) (name), PG_WAIT_EXTENSION)
#endif

/*
 * PostgreSQL 18 lets a module give its name and version, which
 * pg_get_loaded_modules() shows.
 */
#ifdef PG_MODULE_MAGIC_EXT
#define TEST_SHM_MQ_MODULE_MAGIC \
	PG_MODULE_MAGIC_EXT(.name = "test_shm_mq_ext", .version = TEST_SHM_MQ_VERSION)
#else
#define TEST_SHM_MQ_MODULE_MAGIC PG_MODULE_MAGIC
#endif

/*
 * PostgreSQL 15 added shmem_request_hook, where a preloaded library asks for
 * shared memory; before, it asked in _PG_init().
 */
#if PG_VERSION_NUM >= 150000
#define TEST_SHM_MQ_HAVE_SHMEM_REQUEST_HOOK 1
#endif

/*
 * PostgreSQL 17 added the dynamic shared memory registry, where a library
 * that is not preloaded can find shared memory of its own by name; 19 gave
 * the init callback an argument.
 */
#if PG_VERSION_NUM >= 170000
#include "storage/dsm_registry.h"
#endif
#if PG_VERSION_NUM >= 190000
#define TEST_SHM_MQ_HAVE_DSM_REGISTRY 1
#define test_shm_mq_get_named_dsm_segment(name, size, init, found) \
	GetNamedDSMSegment((name), (size), (init), (found), NULL)
#define TEST_SHM_MQ_DSM_REGISTRY_INIT_ARGS(ptr) void *ptr, void *arg
#elif PG_VERSION_NUM >= 170000
#define TEST_SHM_MQ_HAVE_DSM_REGISTRY 1
#define test_shm_mq_get_named_dsm_segment(name, size, init, found) \
	GetNamedDSMSegment((name), (size), (init), (found))
#define TEST_SHM_MQ_DSM_REGISTRY_INIT_ARGS(ptr) void *ptr
#endif

/*
 * PostgreSQL 19 names an LWLock tranche once, for the whole cluster, as it
 * allocates it, and keeps only a few such names; before, the number was
 * allocated alone and every process that wanted its name shown registered
 * the name itself.
 */
#if PG_VERSION_NUM >= 190000
#define test_shm_mq_new_tranche(name) LWLockNewTrancheId(name)
#define test_shm_mq_name_tranche(id, name) ((void) (id), (void) (name))
#else
#define test_shm_mq_new_tranche(name) ((void) (name), LWLockNewTrancheId())
#define test_shm_mq_name_tranche(id, name) LWLockRegisterTranche((id), (name))
#endif

/*
 * How many PGPROCs backends and background workers can have, numbered from
 * 0.  PostgreSQL 15 has MaxBackends set by the time shmem_request_hook runs;
 * before, a preloaded library asks for memory in _PG_init(), when it is not
 * set yet, and adds up its parts itself.
 */
#if PG_VERSION_NUM >= 150000
#define TEST_SHM_MQ_MAX_BACKENDS	MaxBackends
#else
#define TEST_SHM_MQ_MAX_BACKENDS \
	(MaxConnections + autovacuum_max_workers + 1 + max_worker_processes + \
	 max_wal_senders)
#endif

/*
 * A PGPROC's number: PostgreSQL 17 computes it from the address, before it
 * was a field.
 */
#if PG_VERSION_NUM >= 170000
#define test_shm_mq_proc_number(proc) ((int) GetNumberFromPGProc(proc))
#else
#define test_shm_mq_proc_number(proc) ((proc)->pgprocno)
#endif

/* PostgreSQL 16 declares the module load callback in fmgr.h. */
#if PG_VERSION_NUM < 160000
extern PGDLLEXPORT void _PG_init(void);
#endif

#endif							/* TEST_SHM_MQ_EXT_COMPAT_H */

/*-------------------------------------------------------------------------
 *
 * module.c
 *		Loading test_shm_mq_ext: the module magic, which on PostgreSQL 18 also
 *		gives the module's name and version, and its settings.
 *
 * The library is loaded in the leader by the first call of one of its SQL
 * functions, in each worker as the postmaster starts it, and, when listed in
 * shared_preload_libraries, in the postmaster, which then also makes the
 * cluster-wide state.  A ring worker reads no setting until its ring idles
 * kept, and then only two, after a reload (keep_idle.c): it is handed all it
 * needs to relay, so it defines the settings only then, not as it starts.
 *
 * IDENTIFICATION
 *		src/module.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "postmaster/postmaster.h"
#include "utils/guc.h"

#include "cluster_state.h"
#include "keep.h"
#include "test_shm_mq_ext.h"

TEST_SHM_MQ_MODULE_MAGIC;

/* test_shm_mq_ext.ring_keepalive: ms a kept ring waits for the next call */
int			test_shm_mq_ring_keepalive = 0;

/*
 * The longest keepalive: ten minutes.  Keeping a ring saves a call the
 * milliseconds it takes to build one, which matters only to calls that
 * follow one another closely; a ring idle for longer saves nothing worth the
 * worker slots it holds from everyone else.
 */
#define MAX_RING_KEEPALIVE_MS	(10 * 60 * 1000)

/*
 * test_shm_mq_ext.max_kept_workers: workers that idle kept rings may hold,
 * cluster-wide.  The default, 4, is half of max_worker_processes' default of
 * 8: with the logical replication launcher's slot, that leaves 3 for
 * parallel query, more than max_parallel_workers_per_gather's default of 2.
 */
int			test_shm_mq_max_kept_workers = 4;

/* test_shm_mq_ext.worker_slot_wait: ms to wait for a free worker slot */
int			test_shm_mq_worker_slot_wait = 0;

/* test_shm_mq_ext.wait_strategy */
int			test_shm_mq_default_wait_strategy = TEST_SHM_MQ_WAIT_ADAPTIVE;

/* test_shm_mq_ext.zero_copy_min_bytes: messages this long go by reference */
int			test_shm_mq_zero_copy_min_bytes = 0;

/* test_shm_mq_ext.spin_budget_us */
int			test_shm_mq_spin_budget_us = 100;

/*
 * test_shm_mq_ext.worker_connect_delay: how long a ring worker runs before it
 * connects, and so shows in pg_stat_activity.  A call through a few workers
 * takes a few milliseconds, and connecting a worker about as long again: a
 * worker of a call that ends within the default never pays for it, while a
 * ring that runs longer is worth showing.
 */
int			test_shm_mq_worker_connect_delay = 100;

/*
 * The longest worker_connect_delay: ten seconds.  Workers that long out of
 * pg_stat_activity are still in ps and test_shm_mq_rings, but a DBA looking
 * only at pg_stat_activity should not wait longer to see who holds the
 * slots.
 */
#define MAX_WORKER_CONNECT_DELAY_MS	(10 * 1000)

/*
 * Module load callback: define our settings, except in a ring worker, and,
 * while shared_preload_libraries is loaded, ask for the cluster-wide state.
 */
void
_PG_init(void)
{
	if (MyBgworkerEntry != NULL &&
		strcmp(MyBgworkerEntry->bgw_function_name,
			   TEST_SHM_MQ_WORKER_FUNCTION) == 0)
		return;

	test_shm_mq_define_settings();

	if (process_shared_preload_libraries_in_progress)
		test_shm_mq_cluster_preload();
}

/*
 * Define our settings and reserve their prefix, once per process: by
 * _PG_init(), or by a ring worker as its ring first idles kept.  A process
 * forked from a postmaster that preloaded the library has them already.
 */
void
test_shm_mq_define_settings(void)
{
	static bool defined = false;

	if (defined)
		return;
	defined = true;

	DefineCustomIntVariable("test_shm_mq_ext.ring_keepalive",
							"Sets how long a successful call's ring is kept for the next call.",
							"Zero takes every ring down when its call ends.",
							&test_shm_mq_ring_keepalive,
							0, 0, MAX_RING_KEEPALIVE_MS,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, test_shm_mq_keep_keepalive_assign, NULL);

	DefineCustomIntVariable("test_shm_mq_ext.max_kept_workers",
							"Sets how many background workers idle kept rings may hold across the server.",
							"A ring whose workers would exceed it is taken down when its call ends. Zero keeps no ring.",
							&test_shm_mq_max_kept_workers,
							4, 0, MAX_BACKENDS,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("test_shm_mq_ext.worker_slot_wait",
							"Sets how long to wait for a free background worker slot.",
							"Zero means fail at once when all slots set by \"max_worker_processes\" are in use.",
							&test_shm_mq_worker_slot_wait,
							0, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("test_shm_mq_ext.wait_strategy",
							 "Sets how ring processes wait when a queue can make no progress.",
							 "\"adaptive\" polls first, within test_shm_mq_ext.spin_budget_us; \"block\" sleeps on the latch at once.",
							 &test_shm_mq_default_wait_strategy,
							 TEST_SHM_MQ_WAIT_ADAPTIVE,
							 test_shm_mq_wait_strategies,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("test_shm_mq_ext.spin_budget_us",
							"Sets the adaptive wait strategy's polling budget per process of a ring.",
							"No wait polls longer than this times the ring's processes; within that, the budget is learnt from the ring's waits.",
							&test_shm_mq_spin_budget_us,
							100, 0, 1000000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("test_shm_mq_ext.zero_copy_min_bytes",
							"Sets the smallest message sent round the ring by reference rather than by copying.",
							"Messages at least this long are copied once into the ring's dynamic shared memory area, and only a reference travels the queues. Zero turns this off.",
							&test_shm_mq_zero_copy_min_bytes,
							0, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("test_shm_mq_ext.worker_connect_delay",
							"Sets how long a ring worker runs before it connects and shows in pg_stat_activity.",
							"A worker of a kept ring connects as soon as the ring is idle. Zero connects every worker at once.",
							&test_shm_mq_worker_connect_delay,
							100, 0, MAX_WORKER_CONNECT_DELAY_MS,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("test_shm_mq_ext");
}

/*-------------------------------------------------------------------------
 *
 * cluster_state.c
 *		The extension's own shared memory, found the way each major allows:
 *		set aside at start-up when the library is preloaded, or through the
 *		dynamic shared memory registry from PostgreSQL 17 on.
 *
 * Listed in shared_preload_libraries, the library asks for its state in
 * shmem_request_hook and makes it in shmem_startup_hook, on any major, and
 * every process inherits it at one address.  Otherwise, from PostgreSQL 17
 * on, the first process to ask makes it in a segment of the dynamic shared
 * memory registry, and every process that asks after finds it there, mapped
 * where it happens to map it.  On 15 and 16 without preloading there is no
 * shared state, and whatever needs it says so.
 *
 * IDENTIFICATION
 *		src/cluster_state.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "cluster_state.h"
#include "compat.h"

/*
 * The state's name, in the main shared memory's index or the registry: its
 * layout's version is part of it, raised whenever test_shm_mq_cluster
 * changes.
 */
#define CLUSTER_STATE_NAME	"test_shm_mq_ext cluster state, layout 1"

/* The name the areas' LWLocks show in pg_stat_activity's wait events. */
#define AREA_TRANCHE_NAME	"test_shm_mq_ext area"

/* This process's view of the state, once found. */
static test_shm_mq_cluster *cluster = NULL;

#ifdef TEST_SHM_MQ_HAVE_SHMEM_REQUEST_HOOK
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool preloaded = false;

static void request_shmem(void);
static void startup_shmem(void);
static void init_state(test_shm_mq_cluster *state);
#ifdef TEST_SHM_MQ_HAVE_DSM_REGISTRY
static void init_registry_state(TEST_SHM_MQ_DSM_REGISTRY_INIT_ARGS(ptr));
#endif

/*
 * Called from _PG_init() while shared_preload_libraries is being loaded:
 * ask for the state's shared memory, and make the state at start-up.
 */
void
test_shm_mq_cluster_preload(void)
{
	preloaded = true;
#ifdef TEST_SHM_MQ_HAVE_SHMEM_REQUEST_HOOK
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = request_shmem;
#else
	request_shmem();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = startup_shmem;
}

/* shmem_request_hook: the state's size. */
static void
request_shmem(void)
{
#ifdef TEST_SHM_MQ_HAVE_SHMEM_REQUEST_HOOK
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(MAXALIGN(sizeof(test_shm_mq_cluster)));
}

/*
 * shmem_startup_hook: make the state, or, in a process that starts after
 * the postmaster made it (EXEC_BACKEND), find it.
 */
static void
startup_shmem(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	cluster = ShmemInitStruct(CLUSTER_STATE_NAME, sizeof(test_shm_mq_cluster),
							  &found);
	if (!found)
		init_state(cluster);
	LWLockRelease(AddinShmemInitLock);
}

/*
 * The state, found in this process if need be; NULL where there is none:
 * on PostgreSQL 15 and 16, unless the library was preloaded.
 */
test_shm_mq_cluster *
test_shm_mq_cluster_state(void)
{
#ifdef TEST_SHM_MQ_HAVE_DSM_REGISTRY
	if (cluster == NULL && !preloaded)
	{
		bool		found;

		cluster = test_shm_mq_get_named_dsm_segment(CLUSTER_STATE_NAME,
													sizeof(test_shm_mq_cluster),
													init_registry_state,
													&found);
	}
#endif
	return cluster;
}

/*
 * Fill in a new state, once for the cluster.
 */
static void
init_state(test_shm_mq_cluster *state)
{
	memset(state, 0, sizeof(*state));
	state->area_tranche = test_shm_mq_new_tranche(AREA_TRANCHE_NAME);
}

#ifdef TEST_SHM_MQ_HAVE_DSM_REGISTRY
/* The registry's init callback: see init_state(). */
static void
init_registry_state(TEST_SHM_MQ_DSM_REGISTRY_INIT_ARGS(ptr))
{
	init_state((test_shm_mq_cluster *) ptr);
}
#endif

/*
 * The LWLock tranche for the rings' areas, named in this process.
 *
 * With a shared state, the cluster allocated it once.  Without one (15 and
 * 16 without preloading), each process that needs it allocates its own,
 * which those majors allow without limit.
 */
int
test_shm_mq_area_tranche(void)
{
	static int	tranche = 0;

	if (tranche == 0)
	{
		test_shm_mq_cluster *state = test_shm_mq_cluster_state();

		tranche = state != NULL ? state->area_tranche :
			test_shm_mq_new_tranche(AREA_TRANCHE_NAME);
		test_shm_mq_name_tranche(tranche, AREA_TRANCHE_NAME);
	}
	return tranche;
}

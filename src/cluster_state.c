/*-------------------------------------------------------------------------
 *
 * cluster_state.c
 *		The extension's own shared memory, found the way each major allows:
 *		set aside at start-up when the library is preloaded, or through the
 *		dynamic shared memory registry from PostgreSQL 17 on; and the
 *		counting into it.
 *
 * Listed in shared_preload_libraries, the library asks for its state in
 * shmem_request_hook and makes it in shmem_startup_hook, on any major, and
 * every process inherits it at one address.  Otherwise, from PostgreSQL 17
 * on, the first process to ask makes it in a segment of the dynamic shared
 * memory registry, and every process that asks after finds it there, mapped
 * where it happens to map it: so nothing in it points anywhere, and
 * processes are named by their PGPROC numbers.  On 15 and 16 without
 * preloading there is no shared state, and whatever needs it says so.
 *
 * Either way the state lives as long as the server's shared memory: a crash
 * and restart makes it anew, counters at zero.
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
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/elog.h"

#include "cluster_state.h"
#include "compat.h"

/*
 * The state's name, in the main shared memory's index or the registry: its
 * layout's version is part of it, raised whenever test_shm_mq_cluster or
 * test_shm_mq_entry changes.
 */
#define CLUSTER_STATE_NAME	"test_shm_mq_ext cluster state, layout 2"

/*
 * The names the LWLocks show in pg_stat_activity's wait events: the state's
 * own, and the rings' areas'.
 */
#define CLUSTER_TRANCHE_NAME	"test_shm_mq_ext"
#define AREA_TRANCHE_NAME		"test_shm_mq_ext area"

/* This process's view of the state, once found. */
static test_shm_mq_cluster *cluster = NULL;

/* What this process has counted and not yet added to the state. */
static uint64 pending[TEST_SHM_MQ_COUNTERS];
static bool anything_pending = false;

#ifdef TEST_SHM_MQ_HAVE_SHMEM_REQUEST_HOOK
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool preloaded = false;

static Size state_size(void);
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

/*
 * The state's size: an entry for every PGPROC a backend or a background
 * worker can have.
 */
static Size
state_size(void)
{
	return add_size(offsetof(test_shm_mq_cluster, entries),
					mul_size(TEST_SHM_MQ_MAX_BACKENDS,
							 sizeof(test_shm_mq_entry)));
}

/* shmem_request_hook: the state's size, and its LWLock's. */
static void
request_shmem(void)
{
#ifdef TEST_SHM_MQ_HAVE_SHMEM_REQUEST_HOOK
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(state_size());
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
	cluster = ShmemInitStruct(CLUSTER_STATE_NAME, state_size(), &found);
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
													state_size(),
													init_registry_state,
													&found);
	}
#endif
	return cluster;
}

/*
 * The state, for what cannot do without it, with its LWLock named in this
 * process; fails, with a hint, where there is none.
 */
test_shm_mq_cluster *
test_shm_mq_cluster_required(void)
{
	static bool named = false;
	test_shm_mq_cluster *state = test_shm_mq_cluster_state();

	if (state != NULL && !named)
	{
		test_shm_mq_name_tranche(state->lock.tranche, CLUSTER_TRANCHE_NAME);
		named = true;
	}
	if (state == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("test_shm_mq_ext has no shared state in this server"),
				 errdetail("Before PostgreSQL 17, its shared state exists only if the library is loaded at server start."),
				 errhint("Add test_shm_mq_ext to \"shared_preload_libraries\" and restart the server.")));
	return state;
}

/*
 * Fill in a new state, once for the cluster.
 */
static void
init_state(test_shm_mq_cluster *state)
{
	int			i;

	memset(state, 0, state_size());
	state->nentries = TEST_SHM_MQ_MAX_BACKENDS;
	state->area_tranche = test_shm_mq_new_tranche(AREA_TRANCHE_NAME);
	LWLockInitialize(&state->lock,
					 test_shm_mq_new_tranche(CLUSTER_TRANCHE_NAME));
	pg_atomic_init_u64(&state->slots_wanted_until, 0);
	pg_atomic_init_u64(&state->stats_reset,
					   (uint64) GetCurrentTimestamp());
	for (i = 0; i < TEST_SHM_MQ_COUNTERS; i++)
		pg_atomic_init_u64(&state->counters[i], 0);
	for (i = 0; i < TEST_SHM_MQ_SQLSTATE_CLASSES; i++)
		pg_atomic_init_u64(&state->failures[i], 0);
	for (i = 0; i < state->nentries; i++)
	{
		SpinLockInit(&state->entries[i].mutex);
		state->entries[i].leader_procno = -1;
		state->entries[i].wake_procno = -1;
	}
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

/*
 * The entry of the process whose PGPROC this is; NULL without a shared
 * state, or for a process that is neither a backend nor a background worker.
 */
test_shm_mq_entry *
test_shm_mq_entry_of(PGPROC *proc)
{
	test_shm_mq_cluster *state = test_shm_mq_cluster_state();
	int			procno = test_shm_mq_proc_number(proc);

	if (state == NULL || procno < 0 || procno >= state->nentries)
		return NULL;
	return &state->entries[procno];
}

/* This process's entry, as test_shm_mq_entry_of() finds it. */
test_shm_mq_entry *
test_shm_mq_my_entry(void)
{
	return test_shm_mq_entry_of(MyProc);
}

/* The PGPROC whose number an entry names. */
PGPROC *
test_shm_mq_proc_of(int procno)
{
	return GetPGProcByNumber(procno);
}

/*
 * Count n more of counter, in this process, until the next
 * test_shm_mq_stats_flush().
 */
void
test_shm_mq_count(test_shm_mq_counter counter, uint64 n)
{
	pending[counter] += n;
	anything_pending = true;
}

/* Count what a process's waits came to, since last counted. */
void
test_shm_mq_count_waits(const test_shm_mq_wait_counts *counts)
{
	const uint64 *values = (const uint64 *) counts;
	int			i;

	for (i = 0; i < TEST_SHM_MQ_WAIT_COUNTS; i++)
		pending[TEST_SHM_MQ_WAITS + i] += values[i];
	anything_pending = true;
}

/*
 * Count a failed call, by the class of its SQLSTATE, at once: called while
 * the error is raised, it takes no lock, and cannot fail.
 */
void
test_shm_mq_count_failure(int sqlstate)
{
	if (cluster == NULL)
		return;
	pg_atomic_fetch_add_u64(&cluster->counters[TEST_SHM_MQ_CALLS_FAILED], 1);
	pg_atomic_fetch_add_u64(&cluster->failures[test_shm_mq_sqlstate_class(sqlstate)],
							1);
}

/*
 * The class of a SQLSTATE, as a number below TEST_SHM_MQ_SQLSTATE_CLASSES:
 * its first two characters in base 36.
 */
int
test_shm_mq_sqlstate_class(int sqlstate)
{
	const char *code = unpack_sql_state(sqlstate);
	int			digits[2];
	int			i;

	for (i = 0; i < 2; i++)
		digits[i] = code[i] <= '9' ? code[i] - '0' : code[i] - 'A' + 10;
	return digits[0] * 36 + digits[1];
}

/*
 * Add what this process has counted to the cluster's counters, and start
 * counting afresh.  Without a shared state, the counts are dropped.  Cannot
 * fail, since it runs on the way out of calls, failed ones too: so it adds
 * only to a state this process has found already, as every process that
 * takes part in a ring has, the moment it does.
 */
void
test_shm_mq_stats_flush(void)
{
	test_shm_mq_cluster *state = cluster;
	int			i;

	if (!anything_pending)
		return;
	if (state != NULL)
	{
		for (i = 0; i < TEST_SHM_MQ_COUNTERS; i++)
		{
			if (pending[i] != 0)
				pg_atomic_fetch_add_u64(&state->counters[i], pending[i]);
		}
	}
	memset(pending, 0, sizeof(pending));
	anything_pending = false;
}

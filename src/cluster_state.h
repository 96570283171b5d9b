/*-------------------------------------------------------------------------
 *
 * cluster_state.h
 *		The extension's own shared memory: what every process of the
 *		cluster sees alike.  Every ring's row for test_shm_mq_rings, the
 *		counters behind test_shm_mq_stats, and the kept rings' bookkeeping.
 *
 * Each process that takes part in a ring, leader or worker, has one entry,
 * found by its PGPROC number, and it alone fills the entry in, but for the
 * few fields marked otherwise.  Counters are counted locally and added to
 * the shared ones at the end of a call, as a kept worker goes idle, and as
 * a worker leaves (test_shm_mq_stats_flush()), as pgstat's pending counts
 * are: the message loops never touch shared memory to count.
 *
 * IDENTIFICATION
 *		src/cluster_state.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TEST_SHM_MQ_EXT_CLUSTER_STATE_H
#define TEST_SHM_MQ_EXT_CLUSTER_STATE_H

#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "wait.h"

/* What a ring is doing, as test_shm_mq_rings says it. */
typedef enum test_shm_mq_ring_phase
{
	TEST_SHM_MQ_PHASE_NONE,		/* the entry holds no ring */
	TEST_SHM_MQ_PHASE_STARTING, /* its workers are being started */
	TEST_SHM_MQ_PHASE_RUNNING,	/* it carries a call */
	TEST_SHM_MQ_PHASE_KEPT,		/* idle between calls */
	TEST_SHM_MQ_PHASE_CLOSING,	/* taken down: its workers are leaving */
	TEST_SHM_MQ_PHASE_LOST		/* kept, and a worker left it */
} test_shm_mq_ring_phase;

/*
 * What test_shm_mq_stats counts, in its columns' order.  The wait policy's
 * decisions come last, in test_shm_mq_wait_counts' order.
 */
typedef enum test_shm_mq_counter
{
	TEST_SHM_MQ_CALLS_COLD,		/* calls that built their ring */
	TEST_SHM_MQ_CALLS_WARM,		/* calls that used a kept ring */
	TEST_SHM_MQ_CALLS_FAILED,	/* calls that failed, by any error */
	TEST_SHM_MQ_WORKERS_STARTED,	/* workers that became ready */
	TEST_SHM_MQ_WORKERS_FAILED, /* workers that stopped before */
	TEST_SHM_MQ_SLOT_WAITS,		/* calls that waited for a worker slot */
	TEST_SHM_MQ_SLOT_WAIT_MS,	/* ... for this long in all */
	TEST_SHM_MQ_SLOT_TIMEOUTS,	/* ... and found none in time */
	TEST_SHM_MQ_RINGS_KEPT,		/* rings kept after their call */
	TEST_SHM_MQ_RINGS_CLAIMED,	/* kept rings a call used again */
	TEST_SHM_MQ_RINGS_EXPIRED,	/* kept rings whose keepalive passed */
	TEST_SHM_MQ_RINGS_STOOD_DOWN,	/* ... that gave their slots to a waiter */
	TEST_SHM_MQ_RINGS_LOST,		/* ... that lost a worker while idle */
	TEST_SHM_MQ_RINGS_ENDED,	/* ... taken down by their owner's settings,
								 * privileges or role, or the server's */
	TEST_SHM_MQ_MESSAGES,		/* messages the leaders sent round */
	TEST_SHM_MQ_BYTES,			/* ... and their bytes */
	TEST_SHM_MQ_BYTES_BY_REFERENCE, /* ... of which went by reference */
	TEST_SHM_MQ_WAITS,			/* test_shm_mq_wait_counts, in its order */
	TEST_SHM_MQ_WAITS_POLLED,
	TEST_SHM_MQ_WAITS_SLEPT,
	TEST_SHM_MQ_YIELDS,
	TEST_SHM_MQ_CONTENDED_YIELDS,
	TEST_SHM_MQ_RING_SLEEPS
} test_shm_mq_counter;

#define TEST_SHM_MQ_COUNTERS (TEST_SHM_MQ_RING_SLEEPS + 1)

/*
 * Why a kept ring was ended early (test_shm_mq_entry.end_reason), before its
 * keepalive passed.
 */
typedef enum test_shm_mq_end_reason
{
	TEST_SHM_MQ_END_NONE,
	TEST_SHM_MQ_END_UNWANTED	/* its function dropped or revoked, its role
								 * dropped, the keepalive or the cap reloaded */
} test_shm_mq_end_reason;

/*
 * SQLSTATE classes: two characters, each a digit or an upper-case letter
 * (test_shm_mq_sqlstate_class()).
 */
#define TEST_SHM_MQ_SQLSTATE_CLASSES	(36 * 36)

/*
 * One process's entry.  mutex protects every field but the atomics; the
 * process whose entry it is writes it, except as marked: [W] a worker of the
 * leader's kept ring, [A] any process.
 */
typedef struct test_shm_mq_entry
{
	slock_t		mutex;
	pid_t		pid;			/* 0: the entry is free */

	/* A leader's ring, while phase is not NONE. */
	test_shm_mq_ring_phase phase;	/* [W] KEPT -> CLOSING or LOST */
	uint64		ring_number;
	Oid			role;
	Oid			database;
	int			nworkers;
	int64		queue_size;
	int			strategy;		/* test_shm_mq_wait_strategy */
	TimestampTz started;
	TimestampTz last_call;
	int64		calls;
	int64		messages;
	int64		bytes;
	int64		bytes_by_reference;

	/* A leader's kept ring. */
	TimestampTz keep_until;		/* [A] shortened, never lengthened, by
								 * others' ends */
	Oid			keeper_function;	/* whose EXECUTE keeps it wanted */
	int			kept_workers;	/* [W] how many of the cluster's
								 * kept_workers it holds */
	int			wake_procno;	/* a worker to wake, to make the ring look
								 * at this entry; -1 if none */
	test_shm_mq_end_reason end_reason;	/* [A] why it is to end early */

	/* A worker's place. */
	int			leader_procno;	/* -1 unless this is a worker */
	int			worker_number;
} test_shm_mq_entry;

/*
 * What the cluster shares.  Its layout is named in its name
 * (CLUSTER_STATE_NAME), so that a library of another layout, loaded into a
 * running server, finds its own and never reads this one.
 */
typedef struct test_shm_mq_cluster
{
	int			area_tranche;	/* the LWLock tranche of the rings' areas */
	int			nentries;		/* one per PGPROC number a process that
								 * takes part in a ring can have */
	LWLock		lock;			/* kept_workers, and entries' kept_workers */
	int			kept_workers;	/* workers that idle kept rings hold */
	pg_atomic_uint64 slots_wanted_until;	/* until when some session waits
											 * for a worker slot, as
											 * TimestampTz */
	pg_atomic_uint64 stats_reset;	/* as TimestampTz */
	pg_atomic_uint64 counters[TEST_SHM_MQ_COUNTERS];
	pg_atomic_uint64 failures[TEST_SHM_MQ_SQLSTATE_CLASSES];	/* failed
																 * calls, by
																 * class */

	test_shm_mq_entry entries[FLEXIBLE_ARRAY_MEMBER];
} test_shm_mq_cluster;

/* cluster_state.c: finding the state */
extern void test_shm_mq_cluster_preload(void);
extern test_shm_mq_cluster *test_shm_mq_cluster_state(void);
extern test_shm_mq_cluster *test_shm_mq_cluster_required(void);
extern int	test_shm_mq_area_tranche(void);
extern test_shm_mq_entry *test_shm_mq_my_entry(void);
extern test_shm_mq_entry *test_shm_mq_entry_of(PGPROC *proc);
extern PGPROC *test_shm_mq_proc_of(int procno);

/* cluster_state.c: counting */
extern void test_shm_mq_count(test_shm_mq_counter counter, uint64 n);
extern void test_shm_mq_count_waits(const test_shm_mq_wait_counts *counts);
extern void test_shm_mq_count_failure(int sqlstate);
extern int	test_shm_mq_sqlstate_class(int sqlstate);
extern void test_shm_mq_stats_flush(void);

#endif							/* TEST_SHM_MQ_EXT_CLUSTER_STATE_H */

/*-------------------------------------------------------------------------
 *
 * stats.c
 *		The round trip's side of the cluster-wide state: each ring's row,
 *		kept by its leader and its workers, and each call's counts.
 *
 * A leader's entry holds its ring's row from the moment the ring starts
 * until its workers have gone; a worker's entry names its leader and place
 * from the moment it joins until it exits.  What a call counts is counted
 * in the leader, and added to the cluster's counters as the call ends,
 * failed or not; a worker adds its own as it goes idle and as it leaves.
 *
 * A call's failure is counted by an error context callback, installed for
 * the call's length, from the moment it asks for a ring: the one place that
 * sees the error that fails it, whoever raised it, before any exception
 * handler has it.
 *
 * IDENTIFICATION
 *		src/stats.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "utils/timestamp.h"

#include "stats.h"

/* What a worker needs to count its waits, and leave its entry. */
typedef struct worker_place
{
	test_shm_mq_entry *entry;	/* NULL without a shared state */
	test_shm_mq_wait_counts *counts;	/* in the segment */
	test_shm_mq_wait_counts counted;	/* ... counted so far */
} worker_place;

static worker_place my_place;

/* The call under way in this process, if any: its failure watch. */
static ErrorContextCallback failure_watch;
static bool call_watched = false;
static bool call_failed = false;

static void note_failure(void *arg);
static void count_wait_delta(test_shm_mq_wait_counts *counted,
							 const test_shm_mq_wait_counts *counts);
static void leaving_ring(dsm_segment *segment, Datum arg);
static void leaving_entry(int code, Datum arg);

/*
 * [L] A call asks for a ring: from now on, the error that fails it is
 * counted.  Ended by test_shm_mq_stats_call_done(), or by the error.
 */
void
test_shm_mq_stats_call_starts(void)
{
	(void) test_shm_mq_cluster_state();
	call_failed = false;
	failure_watch.callback = note_failure;
	failure_watch.arg = NULL;
	failure_watch.previous = error_context_stack;
	error_context_stack = &failure_watch;
	call_watched = true;
}

/*
 * [L] A new ring starts, for a cold call: its row shows it starting.
 */
void
test_shm_mq_stats_ring_starting(test_shm_mq_ring *ring)
{
	test_shm_mq_entry *entry = test_shm_mq_my_entry();

	test_shm_mq_count(TEST_SHM_MQ_CALLS_COLD, 1);
	if (entry == NULL)
		return;
	SpinLockAcquire(&entry->mutex);
	entry->pid = MyProcPid;
	entry->phase = TEST_SHM_MQ_PHASE_STARTING;
	entry->ring_number = ring->ring_number;
	entry->role = ring->owner_role;
	entry->database = MyDatabaseId;
	entry->nworkers = ring->nworkers;
	entry->queue_size = (int64) ring->queue_size;
	entry->strategy = ring->wait.strategy;
	entry->started = GetCurrentTimestamp();
	entry->last_call = 0;
	entry->calls = 0;
	entry->messages = 0;
	entry->bytes = 0;
	entry->bytes_by_reference = 0;
	entry->keep_until = 0;
	entry->kept_workers = 0;
	entry->end_reason = TEST_SHM_MQ_END_NONE;
	entry->wake_procno = -1;
	entry->leader_procno = -1;
	SpinLockRelease(&entry->mutex);
}

/*
 * [L] The messages of a call begin on a ring ready for them, new or kept
 * (warm): its row shows it running, and its workers learn the call's number.
 */
void
test_shm_mq_stats_call_begins(test_shm_mq_ring *ring, bool warm)
{
	test_shm_mq_entry *entry = test_shm_mq_my_entry();

	pg_atomic_fetch_add_u64(&ring->header->call_number, 1);
	if (warm)
		test_shm_mq_count(TEST_SHM_MQ_CALLS_WARM, 1);
	ring->messages = 0;
	ring->bytes = 0;
	ring->bytes_by_reference = 0;
	ring->most_in_flight = 0;

	if (entry == NULL)
		return;
	SpinLockAcquire(&entry->mutex);
	entry->phase = TEST_SHM_MQ_PHASE_RUNNING;
	SpinLockRelease(&entry->mutex);
}

/*
 * Error context callback for the length of a call: an error raised while it
 * runs fails it, so count the failure, by the error's SQLSTATE, once.
 * Notices and warnings pass by; they have codes of the classes below.
 */
static void
note_failure(void *arg)
{
	int			sqlstate = geterrcode();
	int			category = ERRCODE_TO_CATEGORY(sqlstate);

	if (call_failed ||
		category == ERRCODE_SUCCESSFUL_COMPLETION ||
		category == ERRCODE_WARNING ||
		category == ERRCODE_NO_DATA)
		return;
	call_failed = true;
	test_shm_mq_count_failure(sqlstate);
}

/*
 * [L] A call ends well: stop watching for its failure, count what it sent,
 * and show it in the ring's row.  Before the ring is kept or released.
 */
void
test_shm_mq_stats_call_done(test_shm_mq_ring *ring)
{
	test_shm_mq_entry *entry = test_shm_mq_my_entry();

	Assert(call_watched && error_context_stack == &failure_watch);
	error_context_stack = failure_watch.previous;
	call_watched = false;

	test_shm_mq_count(TEST_SHM_MQ_MESSAGES, ring->messages);
	test_shm_mq_count(TEST_SHM_MQ_BYTES, ring->bytes);
	test_shm_mq_count(TEST_SHM_MQ_BYTES_BY_REFERENCE, ring->bytes_by_reference);
	test_shm_mq_stats_count_leader_waits(ring);

	if (entry == NULL)
		return;
	SpinLockAcquire(&entry->mutex);
	entry->calls++;
	entry->messages += ring->messages;
	entry->bytes += ring->bytes;
	entry->bytes_by_reference += ring->bytes_by_reference;
	entry->last_call = GetCurrentTimestamp();
	SpinLockRelease(&entry->mutex);
}

/*
 * [L] Count the leader's waits since last counted; while the ring's segment
 * is mapped.
 */
void
test_shm_mq_stats_count_leader_waits(test_shm_mq_ring *ring)
{
	if (ring->waiter.counts != NULL)
		count_wait_delta(&ring->counted, ring->waiter.counts);
}

/*
 * Count what counts has come to since counted, and remember it as counted.
 */
static void
count_wait_delta(test_shm_mq_wait_counts *counted,
				 const test_shm_mq_wait_counts *counts)
{
	test_shm_mq_wait_counts delta;
	uint64	   *d = (uint64 *) &delta;
	const uint64 *now = (const uint64 *) counts;
	uint64	   *before = (uint64 *) counted;
	int			i;

	for (i = 0; i < TEST_SHM_MQ_WAIT_COUNTS; i++)
	{
		d[i] = now[i] - before[i];
		before[i] = now[i];
	}
	test_shm_mq_count_waits(&delta);
}

/*
 * [L] The call's ring is kept: what the call counted is added to the
 * cluster's counters now, as a released ring's is as it goes.
 */
void
test_shm_mq_stats_ring_kept(void)
{
	test_shm_mq_stats_flush();
}

/*
 * [L] The ring is being taken down: its row shows it closing while its
 * workers leave.  Runs during aborts too, so cannot fail.
 */
void
test_shm_mq_stats_ring_closing(test_shm_mq_ring *ring)
{
	test_shm_mq_entry *entry = test_shm_mq_my_entry();

	if (entry == NULL)
		return;
	SpinLockAcquire(&entry->mutex);
	if (entry->phase != TEST_SHM_MQ_PHASE_NONE)
		entry->phase = TEST_SHM_MQ_PHASE_CLOSING;
	SpinLockRelease(&entry->mutex);
}

/*
 * [L] The ring's workers are gone: its row goes, and what the leader has
 * counted, a failed call included, is added to the cluster's counters.
 * Runs during aborts too, so cannot fail.
 */
void
test_shm_mq_stats_ring_gone(test_shm_mq_ring *ring)
{
	test_shm_mq_entry *entry = test_shm_mq_my_entry();

	if (entry != NULL)
	{
		SpinLockAcquire(&entry->mutex);
		entry->phase = TEST_SHM_MQ_PHASE_NONE;
		entry->pid = 0;
		SpinLockRelease(&entry->mutex);
	}
	test_shm_mq_stats_flush();
}

/*
 * [W] A worker has joined its ring: its entry names its leader and place,
 * until it exits; what its waits come to, counted in counts, is added to the
 * cluster's counters as it goes idle and as it leaves the ring.
 */
void
test_shm_mq_stats_worker_joined(dsm_segment *segment,
								test_shm_mq_header *header,
								int worker_number,
								test_shm_mq_wait_counts *counts)
{
	test_shm_mq_entry *entry;

	(void) test_shm_mq_cluster_state();
	entry = test_shm_mq_my_entry();
	my_place.entry = entry;
	my_place.counts = counts;
	memset(&my_place.counted, 0, sizeof(my_place.counted));
	on_dsm_detach(segment, leaving_ring, (Datum) 0);

	if (entry == NULL)
		return;
	before_shmem_exit(leaving_entry, (Datum) 0);
	SpinLockAcquire(&entry->mutex);
	entry->pid = MyProcPid;
	entry->phase = TEST_SHM_MQ_PHASE_NONE;
	entry->leader_procno = test_shm_mq_proc_number(header->leader);
	entry->ring_number = header->ring_number;
	entry->worker_number = worker_number;
	SpinLockRelease(&entry->mutex);
}

/*
 * [W] Count this worker's waits since last counted, and add all it has
 * counted to the cluster's counters: as it goes idle, and as it leaves.
 */
void
test_shm_mq_stats_count_worker_waits(void)
{
	if (my_place.counts == NULL)
		return;
	count_wait_delta(&my_place.counted, my_place.counts);
	test_shm_mq_stats_flush();
}

/*
 * on_dsm_detach callback: the worker's counts are in the segment, so count
 * them before it goes.
 */
static void
leaving_ring(dsm_segment *segment, Datum arg)
{
	test_shm_mq_stats_count_worker_waits();
	my_place.counts = NULL;
}

/*
 * before_shmem_exit callback: the worker's entry goes with it, before the
 * postmaster can count it gone.
 */
static void
leaving_entry(int code, Datum arg)
{
	test_shm_mq_entry *entry = my_place.entry;

	SpinLockAcquire(&entry->mutex);
	entry->pid = 0;
	entry->leader_procno = -1;
	SpinLockRelease(&entry->mutex);
}

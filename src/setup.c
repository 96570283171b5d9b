/*-------------------------------------------------------------------------
 *
 * setup.c
 *		The second step of a round trip, on the leader's side: register one
 *		background worker per ring position, waiting for free slots where
 *		allowed, attach the leader's queues, and wait until every worker has
 *		attached its own.  Also attaching again to the segment of a ring the
 *		leader left up.
 *
 * From the first registration on, the segment's detach callback
 * (release.c) takes the workers down with it, whether the call succeeds or
 * fails.  The queues are attached with the workers' handles, so that a
 * worker that dies, before it has attached its end or after, shows up as a
 * detached queue rather than a hang; they are not attached to the segment,
 * so that a leader can detach without taking the ring down (release.c).
 *
 * IDENTIFICATION
 *		src/setup.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "keep.h"
#include "stats.h"

/* How often to look again for a free worker slot while allowed to wait. */
#define SLOT_POLL_INTERVAL_MS	10

/*
 * While test_shm_mq_ext.worker_slot_wait lets callers wait for worker slots,
 * one ring at a time registers its workers, under an advisory lock in no
 * database (so no SQL-level advisory lock can collide with it).  Otherwise
 * sessions that each hold some slots and wait for more could starve one
 * another until all of them time out.
 */
#define REGISTRATION_LOCK_KEY1	0x74736d71	/* "tsmq" */
#define REGISTRATION_LOCK_KEY2	0x72696e67	/* "ring" */
#define REGISTRATION_LOCK_FIELD4	3	/* SQL-level advisory locks use 1 and 2 */

/* A wait for worker slots, or for the registration lock. */
typedef struct slot_wait
{
	TimestampTz start;			/* zero until the first sleep */
} slot_wait;

static void register_workers(test_shm_mq_ring *ring);
static void fill_in_worker(BackgroundWorker *worker,
						   test_shm_mq_ring *ring);
static BackgroundWorkerHandle *register_worker(BackgroundWorker *worker,
											   int worker_number, int nworkers,
											   slot_wait *wait);
static bool wait_for_slot(slot_wait *wait);
pg_noreturn static void report_no_free_slot(int worker_number, int nworkers,
											 bool registration_busy,
											 slot_wait *wait);
static Oid	worker_role(void);
static void wait_for_workers_ready(test_shm_mq_ring *ring);
static void check_workers_alive(test_shm_mq_ring *ring);
pg_noreturn static void postmaster_died(void);

/*
 * Start the ring's workers, attach the leader's queues and wait until every
 * worker has attached its own.
 *
 * On return messages can flow.  From the first registration on, detaching
 * the segment, on success or on error, takes the workers down with it.
 */
void
test_shm_mq_ring_start(test_shm_mq_ring *ring)
{
	MemoryContext oldcontext;

	/* The workers' handles live as long as the ring, across calls too. */
	oldcontext = MemoryContextSwitchTo(ring->context);
	ring->workers = palloc0(mul_size(ring->nworkers,
									 sizeof(BackgroundWorkerHandle *)));
	test_shm_mq_ring_take_down_on_detach(ring, ring->segment);
	register_workers(ring);
	MemoryContextSwitchTo(oldcontext);

	test_shm_mq_ring_attach_queues(ring);
	wait_for_workers_ready(ring);
}

/*
 * Attach the leader's queues for one call, in the ring's call context, and
 * get ready to wait on them.
 *
 * They are attached with the workers' handles, so that a worker that dies,
 * before it has attached its end or after, shows up as a detached queue
 * rather than a hang.  They are not attached to the segment: see the top of
 * release.c.
 */
void
test_shm_mq_ring_attach_queues(test_shm_mq_ring *ring)
{
	int			nworkers = ring->nworkers;
	MemoryContext oldcontext;
	int			worker;

	oldcontext = MemoryContextSwitchTo(ring->call_context);

	ring->send_queue =
		shm_mq_attach(shm_toc_lookup(ring->toc, TEST_SHM_MQ_KEY_DATA_QUEUE(0),
									 false),
					  NULL, nworkers > 0 ? ring->workers[0] : NULL);
	ring->receive_queue =
		shm_mq_attach(shm_toc_lookup(ring->toc,
									 TEST_SHM_MQ_KEY_DATA_QUEUE(nworkers),
									 false),
					  NULL, nworkers > 0 ? ring->workers[nworkers - 1] : NULL);
	ring->error_queues = palloc0(mul_size(nworkers, sizeof(shm_mq_handle *)));
	for (worker = 1; worker <= nworkers; worker++)
		ring->error_queues[worker - 1] =
			shm_mq_attach(shm_toc_lookup(ring->toc,
										 TEST_SHM_MQ_KEY_ERROR_QUEUE(nworkers, worker),
										 false),
						  NULL, ring->workers[worker - 1]);

	test_shm_mq_waiter_init(&ring->waiter, &ring->header->wait,
							test_shm_mq_ring_wait_slot(ring, 0),
							nworkers + 1, true);
	memcpy(&ring->counted, ring->waiter.counts, sizeof(ring->counted));

	MemoryContextSwitchTo(oldcontext);
}

/*
 * The wait slot of one process of the ring, 0 the leader, k worker k.
 */
test_shm_mq_wait_slot *
test_shm_mq_ring_wait_slot(test_shm_mq_ring *ring, int process)
{
	return test_shm_mq_wait_slot_of(shm_toc_lookup(ring->toc,
													 TEST_SHM_MQ_KEY_WAIT_SLOTS(ring->nworkers),
													 false),
									  process);
}

/*
 * Let go of what test_shm_mq_ring_attach_queues() made, before the leader
 * detaches from a ring it leaves up.  The queues themselves stay attached
 * at the workers' ends.
 */
void
test_shm_mq_ring_detach_queues(test_shm_mq_ring *ring)
{
	MemoryContextReset(ring->call_context);
	ring->send_queue = NULL;
	ring->receive_queue = NULL;
	ring->error_queues = NULL;
}

/*
 * Attach the leader again, by its handle, to the segment of a ring it left
 * up.
 *
 * Returns false, attached to nothing, if the segment is gone (its workers
 * have all left) or the handle now names another segment.  Otherwise the
 * segment belongs to the current resource owner and, as after
 * test_shm_mq_ring_start(), detaching it takes the workers down; the queues
 * are not attached yet.
 */
bool
test_shm_mq_ring_attach(test_shm_mq_ring *ring)
{
	dsm_segment *segment;
	shm_toc    *toc;
	test_shm_mq_header *header;

	Assert(ring->segment == NULL);

	/*
	 * A handle this backend already has mapped names another segment by now
	 * (dsm_attach() would refuse it): ours is gone.
	 */
	if (dsm_find_mapping(ring->handle) != NULL)
		return false;
	segment = dsm_attach(ring->handle);
	if (segment == NULL)
		return false;
	toc = shm_toc_attach(TEST_SHM_MQ_MAGIC, dsm_segment_address(segment));
	header = toc != NULL ?
		shm_toc_lookup(toc, TEST_SHM_MQ_KEY_HEADER, true) : NULL;
	if (header == NULL || header->leader_pid != MyProcPid ||
		header->ring_number != ring->ring_number)
	{
		dsm_detach(segment);
		return false;
	}

	/*
	 * The callback first: should registering it fail, the ring must still
	 * read as not attached, its segment being detached by the abort.
	 */
	ring->toc = toc;
	ring->header = header;
	test_shm_mq_ring_take_down_on_detach(ring, segment);
	ring->segment = segment;
	return true;
}

/*
 * Register one dynamic background worker per ring position, each with its
 * number and the role to connect as in bgw_extra.
 */
static void
register_workers(test_shm_mq_ring *ring)
{
	BackgroundWorker worker;
	test_shm_mq_worker_args args;
	slot_wait	wait;
	LOCKTAG		tag;
	bool		serialize = test_shm_mq_worker_slot_wait > 0;
	int			worker_number;

	fill_in_worker(&worker, ring);
	memset(&args, 0, sizeof(args));
	args.user_id = worker_role();
	args.connect_delay_ms = test_shm_mq_worker_connect_delay;
	args.leader_pid = MyProcPid;
	args.ring_number = ring->ring_number;

	wait.start = 0;

	if (serialize)
	{
		SET_LOCKTAG_ADVISORY(tag, InvalidOid, REGISTRATION_LOCK_KEY1,
							 REGISTRATION_LOCK_KEY2, REGISTRATION_LOCK_FIELD4);
		while (LockAcquire(&tag, ExclusiveLock, false, true) ==
			   LOCKACQUIRE_NOT_AVAIL)
		{
			if (!wait_for_slot(&wait))
				report_no_free_slot(1, ring->nworkers, true, &wait);
		}
	}

	for (worker_number = 1; worker_number <= ring->nworkers; worker_number++)
	{
		snprintf(worker.bgw_name, BGW_MAXLEN,
				 TEST_SHM_MQ_WORKER_TITLE " for PID %d",
				 worker_number, ring->nworkers, MyProcPid);
		args.worker_number = worker_number;
		memcpy(worker.bgw_extra, &args, sizeof(args));

		ring->workers[worker_number - 1] =
			register_worker(&worker, worker_number, ring->nworkers, &wait);
	}

	if (wait.start != 0)
	{
		test_shm_mq_count(TEST_SHM_MQ_SLOT_WAITS, 1);
		test_shm_mq_count(TEST_SHM_MQ_SLOT_WAIT_MS,
						  (uint64) test_shm_mq_ms_since(wait.start));
	}
	if (serialize)
		LockRelease(&tag, ExclusiveLock, false);
}

/*
 * What every worker of the ring is registered with, whatever its number:
 * the library and entry point to start, the segment handle as its main
 * argument, and the leader as the process to notify when it starts or
 * stops.
 */
static void
fill_in_worker(BackgroundWorker *worker, test_shm_mq_ring *ring)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_ConsistentState;
	worker->bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker->bgw_library_name, TEST_SHM_MQ_LIBRARY_NAME, BGW_MAXLEN);
	strlcpy(worker->bgw_function_name, TEST_SHM_MQ_WORKER_FUNCTION, BGW_MAXLEN);
	strlcpy(worker->bgw_type, TEST_SHM_MQ_WORKER_TYPE, BGW_MAXLEN);
	worker->bgw_main_arg = UInt32GetDatum(dsm_segment_handle(ring->segment));
	worker->bgw_notify_pid = MyProcPid;
}

/*
 * The role a ring's workers connect as: the role that makes the call, so
 * that pg_stat_activity shows it and it may signal its own workers.
 *
 * Before PostgreSQL 17 a background worker can connect only as a role that
 * may log in; for one that may not, such as a group role after SET ROLE, the
 * workers connect as the session user instead, or, should that not log in
 * either (after SET SESSION AUTHORIZATION), as the authenticated user.
 */
static Oid
worker_role(void)
{
	Oid			candidates[2];
	int			i;

	if (!TEST_SHM_MQ_WORKERS_NEED_LOGIN)
		return GetUserId();

	candidates[0] = GetUserId();
	candidates[1] = GetSessionUserId();
	for (i = 0; i < lengthof(candidates); i++)
	{
		HeapTuple	tuple;
		bool		can_login;

		tuple = SearchSysCache1(AUTHOID, ObjectIdGetDatum(candidates[i]));
		if (!HeapTupleIsValid(tuple))
			continue;
		can_login = ((Form_pg_authid) GETSTRUCT(tuple))->rolcanlogin;
		ReleaseSysCache(tuple);
		if (can_login)
			return candidates[i];
	}
	return GetAuthenticatedUserId();
}

/*
 * Register one worker, waiting for a free slot as long as
 * test_shm_mq_ext.worker_slot_wait allows.
 */
static BackgroundWorkerHandle *
register_worker(BackgroundWorker *worker, int worker_number, int nworkers,
				slot_wait *wait)
{
	BackgroundWorkerHandle *handle;

	while (!RegisterDynamicBackgroundWorker(worker, &handle))
	{
		if (!wait_for_slot(wait))
			report_no_free_slot(worker_number, nworkers, false, wait);
	}

	return handle;
}

/*
 * Fail for want of a worker slot, once any allowed wait is over, counting
 * the wait.  registration_busy says the whole wait went on another session
 * registering its ring, so that we never got to look for a slot ourselves.
 */
static void
report_no_free_slot(int worker_number, int nworkers, bool registration_busy,
					slot_wait *wait)
{
	if (wait->start != 0)
	{
		test_shm_mq_count(TEST_SHM_MQ_SLOT_WAITS, 1);
		test_shm_mq_count(TEST_SHM_MQ_SLOT_WAIT_MS,
						  (uint64) test_shm_mq_ms_since(wait->start));
		test_shm_mq_count(TEST_SHM_MQ_SLOT_TIMEOUTS, 1);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
			 errmsg("no free background worker slot for worker %d of %d",
					worker_number, nworkers),
			 registration_busy ?
			 errdetail("Another session was registering its workers for the whole %d ms.",
					   test_shm_mq_worker_slot_wait) :
			 test_shm_mq_worker_slot_wait > 0 ?
			 errdetail("No slot became free within %d ms.",
					   test_shm_mq_worker_slot_wait) : 0,
			 test_shm_mq_worker_slot_wait > 0 ?
			 errhint("Raise \"max_worker_processes\" or \"test_shm_mq_ext.worker_slot_wait\".") :
			 errhint("Raise \"max_worker_processes\", or set \"test_shm_mq_ext.worker_slot_wait\" to wait for a free slot.")));
}

/*
 * Sleep briefly before looking again for a free worker slot.
 *
 * The wait is counted from the first call for this ring.  Returns false,
 * without sleeping, once test_shm_mq_ext.worker_slot_wait is used up; with the
 * setting at zero that is at once.  No one tells us when a slot frees up, so
 * we poll; each time, we tell other sessions' idle rings that we wait, so
 * that they stand down (keep.h).
 */
static bool
wait_for_slot(slot_wait *wait)
{
	double		waited_ms;
	long		sleep_ms;

	if (test_shm_mq_worker_slot_wait <= 0)
		return false;

	if (wait->start == 0)
		wait->start = GetCurrentTimestamp();
	waited_ms = test_shm_mq_ms_since(wait->start);
	if (waited_ms >= test_shm_mq_worker_slot_wait)
		return false;

	test_shm_mq_keep_announce_slot_wait();
	sleep_ms = Min(SLOT_POLL_INTERVAL_MS,
				   (long) (test_shm_mq_worker_slot_wait - waited_ms) + 1);
	test_shm_mq_sleep(TEST_SHM_MQ_WAIT_EVENT_SLOT, sleep_ms);
	return true;
}

/*
 * Wait until every worker has attached its queues.
 *
 * Workers set our latch when ready, and the postmaster does when one starts
 * or stops, since we are their bgw_notify_pid.  A worker that stops first
 * fails the call, with its own reason when it sent one.
 */
static void
wait_for_workers_ready(test_shm_mq_ring *ring)
{
	while (test_shm_mq_state_ready_workers(ring->header) < ring->nworkers)
	{
		test_shm_mq_forward_worker_errors(ring);
		check_workers_alive(ring);
		test_shm_mq_sleep(TEST_SHM_MQ_WAIT_EVENT_WORKER_STARTUP, -1);
	}

	ring->all_workers_ready = true;
	test_shm_mq_count(TEST_SHM_MQ_WORKERS_STARTED, ring->nworkers);
}

/*
 * Fail the call if a worker has stopped before the ring was ready, with its
 * own reason when it sent one.
 */
static void
check_workers_alive(test_shm_mq_ring *ring)
{
	int			worker;

	for (worker = 1; worker <= ring->nworkers; worker++)
	{
		pid_t		pid;

		switch (GetBackgroundWorkerPid(ring->workers[worker - 1], &pid))
		{
			case BGWH_STOPPED:
				test_shm_mq_worker_failed_to_start(ring, worker);
				break;
			case BGWH_POSTMASTER_DIED:
				postmaster_died();
				break;
			case BGWH_STARTED:
			case BGWH_NOT_YET_STARTED:
				break;
		}
	}
}

/*
 * Give up when the postmaster is gone: nothing can be cleaned up any more.
 */
static void
postmaster_died(void)
{
	ereport(FATAL,
			(errcode(ERRCODE_ADMIN_SHUTDOWN),
			 errmsg("postmaster exited while test_shm_mq_ext workers were running")));
}

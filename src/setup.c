/*-------------------------------------------------------------------------
 *
 * setup.c
 *		The leader's side of a ring: size and create the segment, lay it out
 *		with a table of contents, start the workers, wait until they are
 *		ready, and take everything down again.
 *
 * Cleanup follows the segment.  It belongs to the current resource owner, so
 * an error or cancel anywhere detaches it, and so does a successful call when
 * it is done.  Either way the segment's detach callback takes the workers
 * down before the call returns: it closes the ring and wakes every worker, so
 * that all leave at once; withdraws any worker the postmaster has not started
 * yet; and waits until every worker the ring registered is gone, so that the
 * slots are free again and no process is left.  A worker that lingers is
 * terminated, and one that outlives even that is reported and left; the wait
 * is bounded, because during an abort it cannot be interrupted.
 *
 * A ring kept between calls (keep.c) is held by its workers alone: the
 * leader detaches from its segment, without closing the ring, and attaches
 * again by handle for the next call.  The leader's queue handles therefore
 * do not belong to the segment: detaching must not tell the workers the
 * queues are gone.  The ring's state tells them when it is over.
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
#include "pgstat.h"
#include "port/atomics.h"
#include "portability/instr_time.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "ring.h"

/* How often to look again for a free worker slot while allowed to wait. */
#define SLOT_POLL_INTERVAL_MS	10

/*
 * Taking a ring down: how long a closed ring's workers may take to leave on
 * their own before they are terminated, and how long to wait for them in all.
 * A worker leaves within a millisecond of being woken, or as soon as it has
 * finished connecting; only one stuck, for instance on a lock, meets the
 * first limit, and only one that cannot run at all meets the second.
 */
#define WORKER_EXIT_GRACE_MS	100
#define WORKER_EXIT_TIMEOUT_MS	5000

/*
 * The largest segment a ring may ask for: dsm_create() takes a Size, the
 * size reaches SQL as an int8, and the operating system as an off_t.
 */
#define MAX_SEGMENT_SIZE \
	((uint64) PG_INT64_MAX < (uint64) SIZE_MAX ? \
	 (uint64) PG_INT64_MAX : (uint64) SIZE_MAX)

/*
 * While test_shm_mq_ext.worker_slot_wait lets callers wait for worker slots,
 * one ring at a time registers its workers, under an advisory lock in no
 * database (so no SQL-level advisory lock can collide with it).  Otherwise
 * sessions that each hold some slots and wait for more could starve one
 * another until all of them time out.
 */
#define REGISTRATION_LOCK_KEY1	0x74736d71	/* "tsmq" */
#define REGISTRATION_LOCK_KEY2	0x72696e67	/* "ring" */
#define REGISTRATION_LOCK_FIELD4	3	/* SQL-level advisory locks use 1 and 2;
										 * cluster.c uses 4 and 5 */

/*
 * A wait for worker slots, or for the registration lock: when it began, and
 * whether we have told other sessions that we wait (cluster.c).
 */
typedef struct slot_wait
{
	instr_time	start;			/* zero until the first sleep */
	bool		announced;		/* holding the slot-waiter lock */
} slot_wait;

static Size header_size(int nworkers);
static void estimate_segment(shm_toc_estimator *estimator, Size queue_size,
							 int nworkers);
static void register_workers(test_shm_mq_ring *ring);
static BackgroundWorkerHandle *register_worker(BackgroundWorker *worker,
											   int worker_number, int nworkers,
											   slot_wait *wait);
static bool wait_for_slot(slot_wait *wait);
pg_noreturn static void report_no_free_slot(int worker_number, int nworkers,
											 bool registration_busy);
static void wait_for_workers_ready(test_shm_mq_ring *ring);
static uint64 next_ring_number = 1;

static void release_workers(dsm_segment *segment, Datum arg);
static void close_ring(test_shm_mq_ring *ring);
static PGPROC *worker_proc(test_shm_mq_ring *ring, int worker);
static void wait_for_workers_to_exit(test_shm_mq_ring *ring);
pg_noreturn static void postmaster_died(void);

/*
 * Check a worker count given at the SQL level.
 *
 * min_workers is 1 where the leader talks to the ring with blocking calls, and
 * 0 where it can send to itself.
 */
void
test_shm_mq_check_worker_count(int nworkers, int min_workers)
{
	if (nworkers < min_workers)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("number of workers must be at least %d", min_workers)));
	if (nworkers > max_worker_processes)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("number of workers must not exceed \"max_worker_processes\""),
				 errdetail_plural("%d worker was requested, but \"max_worker_processes\" is %d.",
								  "%d workers were requested, but \"max_worker_processes\" is %d.",
								  nworkers, nworkers, max_worker_processes),
				 errhint("Request fewer workers, or raise \"max_worker_processes\" and restart the server.")));
}

/*
 * The exact number of bytes a ring of nworkers workers with queues of
 * queue_size bytes asks dsm_create() for.
 *
 * This is also where the queue size is checked, since a size is only too
 * large for a given number of queues.  Data queues are the only chunks whose
 * size the caller chooses, and each is rounded up to a multiple of
 * ALIGNOF_BUFFER, as is everything else; so the segment takes what the rest
 * of it takes, with zero-sized data queues, plus nworkers + 1 aligned queues.
 * That gives the largest queue size that fits, which is checked before the
 * estimator is asked for the whole, so that nothing can overflow.
 */
Size
test_shm_mq_segment_size(int64 queue_size, int nworkers)
{
	shm_toc_estimator estimator;
	Size		fixed_size;
	uint64		max_queue_size;
	Size		segment_size;

	if (queue_size < 0 || (uint64) queue_size < shm_mq_minimum_size)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queue size must be at least %zu bytes",
						shm_mq_minimum_size)));

	estimate_segment(&estimator, 0, nworkers);
	fixed_size = shm_toc_estimate(&estimator);
	max_queue_size = (MAX_SEGMENT_SIZE - fixed_size) / ((uint64) nworkers + 1);
	max_queue_size -= max_queue_size % ALIGNOF_BUFFER;
	if ((uint64) queue_size > max_queue_size)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queue size %lld is too large", (long long) queue_size),
				 errdetail_plural("With %d worker, the largest queue size is %llu bytes.",
								  "With %d workers, the largest queue size is %llu bytes.",
								  nworkers, nworkers,
								  (unsigned long long) max_queue_size)));

	estimate_segment(&estimator, (Size) queue_size, nworkers);
	segment_size = shm_toc_estimate(&estimator);
	Assert(segment_size ==
		   fixed_size + ((Size) nworkers + 1) * BUFFERALIGN(queue_size));
	Assert(segment_size <= MAX_SEGMENT_SIZE);

	return segment_size;
}

/*
 * Size of the shared header, which ends with one PID slot per worker.
 */
static Size
header_size(int nworkers)
{
	return add_size(offsetof(test_shm_mq_header, workers),
					mul_size(nworkers, sizeof(test_shm_mq_worker_slot)));
}

/*
 * Count every chunk and key of the segment, in the order
 * test_shm_mq_ring_create() allocates and inserts them.
 */
static void
estimate_segment(shm_toc_estimator *estimator, Size queue_size, int nworkers)
{
	int			queue;
	int			worker;

	shm_toc_initialize_estimator(estimator);

	shm_toc_estimate_chunk(estimator, header_size(nworkers));
	for (queue = 0; queue <= nworkers; queue++)
		shm_toc_estimate_chunk(estimator, queue_size);
	for (worker = 1; worker <= nworkers; worker++)
		shm_toc_estimate_chunk(estimator, TEST_SHM_MQ_ERROR_QUEUE_SIZE);

	shm_toc_estimate_keys(estimator, 1 + (nworkers + 1) + nworkers);
}

/*
 * Create a ring's segment and lay it out, without starting any worker.
 *
 * The caller either starts the ring with test_shm_mq_ring_start() or only
 * inspects it; either way it ends with test_shm_mq_ring_release(), or with
 * the (sub)transaction's cleanup if an error comes first.
 */
test_shm_mq_ring *
test_shm_mq_ring_create(int64 queue_size, int nworkers,
						test_shm_mq_wait_strategy strategy)
{
	Size		segment_size = test_shm_mq_segment_size(queue_size, nworkers);
	MemoryContext context;
	test_shm_mq_ring *ring;
	shm_toc    *toc;
	test_shm_mq_header *header;
	int			queue;
	int			worker;

	test_shm_mq_init_wait_events();

	context = AllocSetContextCreate(CurTransactionContext,
									"test_shm_mq_ext ring",
									ALLOCSET_SMALL_SIZES);
	ring = MemoryContextAllocZero(context, sizeof(test_shm_mq_ring));
	ring->context = context;
	ring->call_context = AllocSetContextCreate(context,
											   "test_shm_mq_ext ring queues",
											   ALLOCSET_SMALL_SIZES);
	ring->queue_size = (Size) queue_size;
	ring->nworkers = nworkers;
	ring->strategy = strategy;
	ring->spin_budget_us = test_shm_mq_spin_budget_us;
	ring->segment_size = segment_size;
	ring->ring_number = next_ring_number++;
	ring->kept_subid = InvalidSubTransactionId;
	ring->owner_role = GetUserId();
	ring->tickets = MemoryContextAllocZero(context,
										   mul_size(nworkers, sizeof(int)));

	ring->segment = dsm_create(segment_size, 0);
	ring->handle = dsm_segment_handle(ring->segment);
	toc = shm_toc_create(TEST_SHM_MQ_MAGIC,
						 dsm_segment_address(ring->segment), segment_size);
	ring->toc = toc;

	/* Allocate and insert in the order estimate_segment() counted. */
	header = shm_toc_allocate(toc, header_size(nworkers));
	SpinLockInit(&header->mutex);
	header->workers_total = nworkers;
	header->leader = MyProc;
	header->leader_pid = MyProcPid;
	header->ring_number = ring->ring_number;
	header->wait_strategy = strategy;
	header->spin_budget_us = ring->spin_budget_us;
	header->online_cpus = test_shm_mq_online_cpus();
	pg_atomic_init_u32(&header->state, TEST_SHM_MQ_RING_OPEN);
	pg_atomic_init_u64(&header->sleep_until, 0);
	header->keep_until = 0;
	header->workers_ready = 0;
	header->lost_worker = 0;
	memset(header->workers, 0,
		   mul_size(nworkers, sizeof(test_shm_mq_worker_slot)));
	shm_toc_insert(toc, TEST_SHM_MQ_KEY_HEADER, header);
	ring->header = header;

	for (queue = 0; queue <= nworkers; queue++)
	{
		shm_mq	   *mq;

		mq = shm_mq_create(shm_toc_allocate(toc, ring->queue_size),
						   ring->queue_size);

		/*
		 * The leader writes the first queue and reads the last; with no
		 * workers, that is one queue and the leader talks to itself.
		 */
		if (queue == 0)
			shm_mq_set_sender(mq, MyProc);
		if (queue == nworkers)
			shm_mq_set_receiver(mq, MyProc);
		shm_toc_insert(toc, TEST_SHM_MQ_KEY_DATA_QUEUE(queue), mq);
	}

	for (worker = 1; worker <= nworkers; worker++)
	{
		shm_mq	   *mq;

		mq = shm_mq_create(shm_toc_allocate(toc, TEST_SHM_MQ_ERROR_QUEUE_SIZE),
						   TEST_SHM_MQ_ERROR_QUEUE_SIZE);
		shm_mq_set_receiver(mq, MyProc);
		shm_toc_insert(toc, TEST_SHM_MQ_KEY_ERROR_QUEUE(nworkers, worker), mq);
	}

	return ring;
}

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

	/* The workers' handles live as long as the ring, kept or not. */
	oldcontext = MemoryContextSwitchTo(ring->context);
	ring->workers = palloc0(mul_size(ring->nworkers,
									 sizeof(BackgroundWorkerHandle *)));
	on_dsm_detach(ring->segment, release_workers, PointerGetDatum(ring));
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
 * this file.
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

	MemoryContextSwitchTo(oldcontext);

	test_shm_mq_waiter_init(&ring->waiter, ring->strategy,
							ring->spin_budget_us, nworkers + 1,
							ring->header->online_cpus,
							&ring->header->sleep_until, true);
}

/*
 * Attach the leader again to a kept ring's segment, by its handle.
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
	on_dsm_detach(segment, release_workers, PointerGetDatum(ring));
	ring->segment = segment;
	return true;
}

/*
 * Get a ring ready to be kept after a successful call.  Returns false if it
 * cannot be: a message is waiting that the call did not take.
 *
 * shm_mq makes what a receiver has read known to the sender only lazily, at
 * the receiver's next receive; a receive that finds the queue empty does it.
 * The leader's handles go when it detaches, and the next call's would read
 * again what the last one left unacknowledged, so make those receives now:
 * on the data queue, and, forwarding any notice, on the error queues.  After
 * a successful call nothing can be in flight, no part of a message either,
 * so a receive that would block means an empty queue.
 */
bool
test_shm_mq_ring_quiesce(test_shm_mq_ring *ring)
{
	Size		nbytes;
	void	   *data;

	test_shm_mq_forward_worker_errors(ring);
	return shm_mq_receive(ring->receive_queue, &nbytes, &data, true) ==
		SHM_MQ_WOULD_BLOCK;
}

/*
 * Detach the leader from a ring it keeps, leaving the workers and the
 * segment to each other: the inverse of test_shm_mq_ring_attach() and
 * test_shm_mq_ring_attach_queues().  test_shm_mq_ring_quiesce() must have
 * said yes.
 */
void
test_shm_mq_ring_detach(test_shm_mq_ring *ring)
{
	cancel_on_dsm_detach(ring->segment, release_workers,
						 PointerGetDatum(ring));
	MemoryContextReset(ring->call_context);
	ring->send_queue = NULL;
	ring->receive_queue = NULL;
	ring->error_queues = NULL;

	dsm_detach(ring->segment);
	ring->segment = NULL;
	ring->toc = NULL;
	ring->header = NULL;
}

/*
 * Register one dynamic background worker per ring position.
 *
 * Each gets the segment handle as its main argument, its number and the
 * role to connect as in bgw_extra, and the leader as the process to notify
 * when it starts or stops.
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

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, TEST_SHM_MQ_LIBRARY_NAME, BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, TEST_SHM_MQ_WORKER_FUNCTION, BGW_MAXLEN);
	strlcpy(worker.bgw_type, TEST_SHM_MQ_WORKER_TYPE, BGW_MAXLEN);
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(ring->segment));
	worker.bgw_notify_pid = MyProcPid;

	memset(&args, 0, sizeof(args));
	args.user_id = test_shm_mq_worker_role();
	args.leader_pid = MyProcPid;
	args.ring_number = ring->ring_number;

	INSTR_TIME_SET_ZERO(wait.start);
	wait.announced = false;

	if (serialize)
	{
		SET_LOCKTAG_ADVISORY(tag, InvalidOid, REGISTRATION_LOCK_KEY1,
							 REGISTRATION_LOCK_KEY2, REGISTRATION_LOCK_FIELD4);
		while (LockAcquire(&tag, ExclusiveLock, false, true) ==
			   LOCKACQUIRE_NOT_AVAIL)
		{
			if (!wait_for_slot(&wait))
				report_no_free_slot(1, ring->nworkers, true);
		}
	}

	for (worker_number = 1; worker_number <= ring->nworkers; worker_number++)
	{
		snprintf(worker.bgw_name, BGW_MAXLEN,
				 "test_shm_mq_ext worker %d of %d for PID %d",
				 worker_number, ring->nworkers, MyProcPid);
		args.worker_number = worker_number;
		memcpy(worker.bgw_extra, &args, sizeof(args));

		ring->workers[worker_number - 1] =
			register_worker(&worker, worker_number, ring->nworkers, &wait);
	}

	test_shm_mq_slot_wait_end(&wait.announced);
	if (serialize)
		LockRelease(&tag, ExclusiveLock, false);
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
Oid
test_shm_mq_worker_role(void)
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
			report_no_free_slot(worker_number, nworkers, false);
	}

	return handle;
}

/*
 * Fail for want of a worker slot, once any allowed wait is over.
 * registration_busy says the whole wait went on another session registering
 * its ring, so that we never got to look for a slot ourselves.
 */
static void
report_no_free_slot(int worker_number, int nworkers, bool registration_busy)
{
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
 * we poll; each time, we tell other sessions' idle kept rings that we wait,
 * so that they stand down (cluster.c).
 */
static bool
wait_for_slot(slot_wait *wait)
{
	instr_time	waited;
	double		waited_ms;
	long		sleep_ms;

	if (test_shm_mq_worker_slot_wait <= 0)
		return false;

	if (INSTR_TIME_IS_ZERO(wait->start))
		INSTR_TIME_SET_CURRENT(wait->start);
	INSTR_TIME_SET_CURRENT(waited);
	INSTR_TIME_SUBTRACT(waited, wait->start);
	waited_ms = INSTR_TIME_GET_MILLISEC(waited);
	if (waited_ms >= test_shm_mq_worker_slot_wait)
		return false;

	test_shm_mq_slot_wait_announce(&wait->announced);
	sleep_ms = Min(SLOT_POLL_INTERVAL_MS,
				   (long) (test_shm_mq_worker_slot_wait - waited_ms) + 1);
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 sleep_ms,
					 test_shm_mq_wait_event_info(TEST_SHM_MQ_WAIT_EVENT_SLOT));
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
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
	for (;;)
	{
		int			ready;
		int			worker;

		SpinLockAcquire(&ring->header->mutex);
		ready = ring->header->workers_ready;
		SpinLockRelease(&ring->header->mutex);
		if (ready == ring->nworkers)
			break;

		test_shm_mq_forward_worker_errors(ring);

		for (worker = 1; worker <= ring->nworkers; worker++)
		{
			pid_t		pid;

			switch (GetBackgroundWorkerPid(ring->workers[worker - 1], &pid))
			{
				case BGWH_STOPPED:

					/*
					 * A worker sends its error before it exits, so whatever
					 * it had to say is in its queue by now.
					 */
					test_shm_mq_forward_worker_errors(ring);
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
							 errmsg("one or more workers failed to start"),
							 errdetail("Worker %d of %d exited without reporting an error.",
									   worker, ring->nworkers)));
					break;
				case BGWH_POSTMASTER_DIED:
					postmaster_died();
					break;
				case BGWH_STARTED:
				case BGWH_NOT_YET_STARTED:
					break;
			}
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L,
						 test_shm_mq_wait_event_info(TEST_SHM_MQ_WAIT_EVENT_WORKER_STARTUP));
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	ring->workers_ready = true;
}

/*
 * on_dsm_detach callback of a ring with workers: take them all down before
 * the segment goes.
 *
 * It runs when the leader detaches the segment, after a successful call or
 * during the abort of a failed one, and at the latest when the leader's
 * process exits.  It must not fail, and during an abort it cannot be
 * interrupted, so every wait in it is bounded.  A segment that a lost
 * worker pinned is unpinned here, so that our detach destroys it, and any
 * kept-worker tickets go back.
 */
static void
release_workers(dsm_segment *segment, Datum arg)
{
	test_shm_mq_ring *ring = (test_shm_mq_ring *) DatumGetPointer(arg);
	bool		pinned;

	close_ring(ring);
	wait_for_workers_to_exit(ring);
	test_shm_mq_kept_tickets_give_back(ring);

	SpinLockAcquire(&ring->header->mutex);
	pinned = ring->header->lost_worker != 0;
	ring->header->lost_worker = 0;
	SpinLockRelease(&ring->header->mutex);
	if (pinned)
		dsm_unpin_segment(ring->handle);
}

/*
 * Close the ring, wake every worker that has joined it, so that all leave at
 * once rather than one after another round the ring, and withdraw every
 * other worker.
 *
 * A worker joins under the header's lock, and only while the ring is open,
 * so one that has not joined by the time we close the ring never will.  If
 * the postmaster has not started it, withdrawing it keeps it from starting.
 * If it has, the SIGTERM that withdrawing then sends stays blocked until
 * after it tries to join; it finds the ring closed and leaves without a
 * word.  A worker that has joined is not signalled: it finds the ring closed
 * at its next wait, or as soon as it has finished connecting.
 *
 * One that has exited since it joined may have left its PGPROC to another
 * process, which then gets a spurious wake-up; latches allow for those.
 */
static void
close_ring(test_shm_mq_ring *ring)
{
	int			worker;

	SpinLockAcquire(&ring->header->mutex);
	pg_atomic_write_u32(&ring->header->state, TEST_SHM_MQ_RING_CLOSED);
	SpinLockRelease(&ring->header->mutex);

	for (worker = 0; worker < ring->nworkers; worker++)
	{
		PGPROC	   *proc;

		if (ring->workers[worker] == NULL)
			continue;
		proc = worker_proc(ring, worker);
		if (proc != NULL)
			SetLatch(&proc->procLatch);
		else
			TerminateBackgroundWorker(ring->workers[worker]);
	}
}

/*
 * Wake every worker that has joined the ring, to look at its state.
 */
void
test_shm_mq_ring_wake_workers(test_shm_mq_ring *ring)
{
	int			worker;

	for (worker = 0; worker < ring->nworkers; worker++)
	{
		PGPROC	   *proc = worker_proc(ring, worker);

		if (proc != NULL)
			SetLatch(&proc->procLatch);
	}
}

/*
 * The PGPROC of a worker (numbered from 0 here), or NULL if it has not
 * joined the ring.
 */
static PGPROC *
worker_proc(test_shm_mq_ring *ring, int worker)
{
	PGPROC	   *proc;

	SpinLockAcquire(&ring->header->mutex);
	proc = ring->header->workers[worker].proc;
	SpinLockRelease(&ring->header->mutex);
	return proc;
}

/*
 * Wait until every worker the ring registered has exited, or has been
 * withdrawn before it started, so that its slot is free again.
 *
 * The postmaster sets our latch each time one of them stops.  Workers still
 * there after WORKER_EXIT_GRACE_MS are terminated; any still there after
 * WORKER_EXIT_TIMEOUT_MS are reported with a WARNING and left.
 */
static void
wait_for_workers_to_exit(test_shm_mq_ring *ring)
{
	instr_time	start;
	bool		terminated = false;
	int			worker;

	INSTR_TIME_SET_CURRENT(start);
	for (;;)
	{
		instr_time	elapsed;
		long		elapsed_ms;
		long		timeout_ms;
		int			running = 0;
		int			rc;

		for (worker = 0; worker < ring->nworkers; worker++)
		{
			pid_t		pid;

			if (ring->workers[worker] == NULL)
				continue;
			if (GetBackgroundWorkerPid(ring->workers[worker], &pid) ==
				BGWH_STOPPED)
				ring->workers[worker] = NULL;
			else
				running++;
		}
		if (running == 0)
			return;

		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, start);
		elapsed_ms = (long) INSTR_TIME_GET_MILLISEC(elapsed);

		if (elapsed_ms >= WORKER_EXIT_TIMEOUT_MS)
			break;
		if (elapsed_ms >= WORKER_EXIT_GRACE_MS && !terminated)
		{
			for (worker = 0; worker < ring->nworkers; worker++)
			{
				if (ring->workers[worker] != NULL)
					TerminateBackgroundWorker(ring->workers[worker]);
			}
			terminated = true;
		}

		timeout_ms = (terminated ? WORKER_EXIT_TIMEOUT_MS :
					  WORKER_EXIT_GRACE_MS) - elapsed_ms;
		/* Should the postmaster die, nothing runs any more to wait for. */
		rc = WaitLatch(MyLatch,
					   WL_LATCH_SET | WL_TIMEOUT | WL_POSTMASTER_DEATH,
					   Max(timeout_ms, 1),
					   test_shm_mq_wait_event_info(TEST_SHM_MQ_WAIT_EVENT_WORKER_EXIT));
		ResetLatch(MyLatch);
		if (rc & WL_POSTMASTER_DEATH)
			return;
	}

	for (worker = 0; worker < ring->nworkers; worker++)
	{
		BgwHandleStatus status;
		pid_t		pid;

		if (ring->workers[worker] == NULL)
			continue;
		status = GetBackgroundWorkerPid(ring->workers[worker], &pid);
		if (status != BGWH_STARTED && status != BGWH_NOT_YET_STARTED)
			continue;
		ereport(WARNING,
				(errmsg("test_shm_mq_ext worker %d of %d did not exit within %d ms",
						worker + 1, ring->nworkers, WORKER_EXIT_TIMEOUT_MS),
				 status == BGWH_STARTED ?
				 errdetail("Its process, PID %d, has been told to terminate, and is left to exit on its own.",
						   (int) pid) :
				 errdetail("It had not started, and the postmaster has not yet withdrawn it.")));
	}
}

/*
 * Take a ring down and free the leader's memory: after a successful call, or
 * when a kept ring is given up.
 *
 * Detaching the segment runs release_workers(), so on return every worker
 * has exited.  The leader of a kept ring first attaches again to close it;
 * if the segment is already gone, its workers have left it or are leaving,
 * and only their exits are waited for.  Should attaching fail, the ring is
 * untouched, and the current resource owner, whatever (sub)transaction or
 * exit this runs in, drops what the attempt left.  Interrupts are held
 * throughout: the wait is short and bounded, and an interrupt in the middle
 * of it would leave the workers to an abort that no longer knows them.
 */
void
test_shm_mq_ring_release(test_shm_mq_ring *ring)
{
	HOLD_INTERRUPTS();

	if (ring->segment == NULL && ring->workers != NULL &&
		!test_shm_mq_ring_attach(ring))
	{
		wait_for_workers_to_exit(ring);
		test_shm_mq_kept_tickets_give_back(ring);
	}
	if (ring->segment != NULL)
	{
		dsm_detach(ring->segment);
		ring->segment = NULL;
	}

	RESUME_INTERRUPTS();

	MemoryContextDelete(ring->context);
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

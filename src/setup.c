/*-------------------------------------------------------------------------
 *
 * setup.c
 *		The leader's side of a ring: size and create the segment, lay it out
 *		with a table of contents, start the workers, wait until they are
 *		ready, and take everything down again.
 *
 * Cleanup follows the segment.  It belongs to the current resource owner, so
 * an error or cancel anywhere detaches it, and detaching it detaches every
 * queue the leader holds.  Until all workers are ready, an on_dsm_detach
 * callback also terminates them: a worker still starting has not attached
 * its queues yet and would not notice ours going away.  Once all are ready,
 * a detached queue is enough to end each of them, so the callback is
 * cancelled, sparing them a SIGTERM on the way out.
 *
 * IDENTIFICATION
 *		src/setup.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "utils/memutils.h"

#include "ring.h"

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

static Size header_size(int nworkers);
static void estimate_segment(shm_toc_estimator *estimator, Size queue_size,
							 int nworkers);
static void register_workers(test_shm_mq_ring *ring);
static BackgroundWorkerHandle *register_worker(BackgroundWorker *worker,
											   int worker_number, int nworkers,
											   instr_time *wait_start);
static bool wait_for_slot(instr_time *wait_start);
pg_noreturn static void report_no_free_slot(int worker_number, int nworkers,
											 bool registration_busy);
static void wait_for_workers_ready(test_shm_mq_ring *ring);
static void terminate_workers(dsm_segment *segment, Datum arg);
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
 * large for a given number of queues.
 */
Size
test_shm_mq_segment_size(int64 queue_size, int nworkers)
{
	shm_toc_estimator estimator;

	if (queue_size < 0 || (uint64) queue_size < shm_mq_minimum_size)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queue size must be at least %zu bytes",
						shm_mq_minimum_size)));

	/*
	 * The estimator reports overflow as an internal limit.  Refuse first any
	 * queue size whose data queues alone would take half the address space;
	 * what remains is ample for the header, error queues and entries.
	 */
	if ((uint64) queue_size > (SIZE_MAX / 2) / ((Size) nworkers + 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queue size %lld is too large", (long long) queue_size),
				 errdetail_plural("%d queue of that size does not fit in a dynamic shared memory segment.",
								  "%d queues of that size do not fit in a dynamic shared memory segment.",
								  nworkers + 1, nworkers + 1)));

	estimate_segment(&estimator, (Size) queue_size, nworkers);
	return shm_toc_estimate(&estimator);
}

/*
 * Size of the shared header, which ends with one PID slot per worker.
 */
static Size
header_size(int nworkers)
{
	return add_size(offsetof(test_shm_mq_header, worker_pids),
					mul_size(nworkers, sizeof(pid_t)));
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

	context = AllocSetContextCreate(CurTransactionContext,
									"test_shm_mq_ext ring",
									ALLOCSET_SMALL_SIZES);
	ring = MemoryContextAllocZero(context, sizeof(test_shm_mq_ring));
	ring->context = context;
	ring->segment_size = segment_size;
	ring->queue_size = (Size) queue_size;
	ring->nworkers = nworkers;
	test_shm_mq_waiter_init(&ring->waiter, strategy,
							test_shm_mq_spin_budget_us, nworkers + 1);

	ring->segment = dsm_create(segment_size, 0);
	toc = shm_toc_create(TEST_SHM_MQ_MAGIC,
						 dsm_segment_address(ring->segment), segment_size);
	ring->toc = toc;

	/* Allocate and insert in the order estimate_segment() counted. */
	header = shm_toc_allocate(toc, header_size(nworkers));
	SpinLockInit(&header->mutex);
	header->workers_total = nworkers;
	header->leader = MyProc;
	header->wait_strategy = strategy;
	header->spin_budget_us = test_shm_mq_spin_budget_us;
	header->workers_ready = 0;
	memset(header->worker_pids, 0, mul_size(nworkers, sizeof(pid_t)));
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
 * On return messages can flow.  On error the workers already started are
 * terminated when the segment is detached.
 */
void
test_shm_mq_ring_start(test_shm_mq_ring *ring)
{
	int			nworkers = ring->nworkers;
	MemoryContext oldcontext;
	int			worker;

	oldcontext = MemoryContextSwitchTo(ring->context);

	ring->workers = palloc0(mul_size(nworkers, sizeof(BackgroundWorkerHandle *)));
	ring->error_queues = palloc0(mul_size(nworkers, sizeof(shm_mq_handle *)));

	on_dsm_detach(ring->segment, terminate_workers, PointerGetDatum(ring));
	register_workers(ring);

	/*
	 * Attach with the workers' handles, so that a worker that dies before
	 * attaching its end shows up as a detached queue rather than a hang.
	 */
	ring->send_queue =
		shm_mq_attach(shm_toc_lookup(ring->toc, TEST_SHM_MQ_KEY_DATA_QUEUE(0),
									 false),
					  ring->segment,
					  nworkers > 0 ? ring->workers[0] : NULL);
	ring->receive_queue =
		shm_mq_attach(shm_toc_lookup(ring->toc,
									 TEST_SHM_MQ_KEY_DATA_QUEUE(nworkers),
									 false),
					  ring->segment,
					  nworkers > 0 ? ring->workers[nworkers - 1] : NULL);
	for (worker = 1; worker <= nworkers; worker++)
		ring->error_queues[worker - 1] =
			shm_mq_attach(shm_toc_lookup(ring->toc,
										 TEST_SHM_MQ_KEY_ERROR_QUEUE(nworkers, worker),
										 false),
						  ring->segment, ring->workers[worker - 1]);

	MemoryContextSwitchTo(oldcontext);

	wait_for_workers_ready(ring);
	cancel_on_dsm_detach(ring->segment, terminate_workers,
						 PointerGetDatum(ring));
}

/*
 * Register one dynamic background worker per ring position.
 *
 * Each gets the segment handle as its main argument, its number and the
 * leader's database and user in bgw_extra, and the leader as the process to
 * notify when it starts or stops.
 */
static void
register_workers(test_shm_mq_ring *ring)
{
	BackgroundWorker worker;
	test_shm_mq_worker_args args;
	instr_time	wait_start;
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
	args.database_id = MyDatabaseId;
	args.user_id = GetAuthenticatedUserId();

	INSTR_TIME_SET_ZERO(wait_start);

	if (serialize)
	{
		SET_LOCKTAG_ADVISORY(tag, InvalidOid, REGISTRATION_LOCK_KEY1,
							 REGISTRATION_LOCK_KEY2, REGISTRATION_LOCK_FIELD4);
		while (LockAcquire(&tag, ExclusiveLock, false, true) ==
			   LOCKACQUIRE_NOT_AVAIL)
		{
			if (!wait_for_slot(&wait_start))
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
			register_worker(&worker, worker_number, ring->nworkers,
							&wait_start);
	}

	if (serialize)
		LockRelease(&tag, ExclusiveLock, false);
}

/*
 * Register one worker, waiting for a free slot as long as
 * test_shm_mq_ext.worker_slot_wait allows.
 */
static BackgroundWorkerHandle *
register_worker(BackgroundWorker *worker, int worker_number, int nworkers,
				instr_time *wait_start)
{
	BackgroundWorkerHandle *handle;

	while (!RegisterDynamicBackgroundWorker(worker, &handle))
	{
		if (!wait_for_slot(wait_start))
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
 * we poll.
 */
static bool
wait_for_slot(instr_time *wait_start)
{
	instr_time	waited;
	double		waited_ms;
	long		sleep_ms;

	if (test_shm_mq_worker_slot_wait <= 0)
		return false;

	if (INSTR_TIME_IS_ZERO(*wait_start))
		INSTR_TIME_SET_CURRENT(*wait_start);
	INSTR_TIME_SET_CURRENT(waited);
	INSTR_TIME_SUBTRACT(waited, *wait_start);
	waited_ms = INSTR_TIME_GET_MILLISEC(waited);
	if (waited_ms >= test_shm_mq_worker_slot_wait)
		return false;

	sleep_ms = Min(SLOT_POLL_INTERVAL_MS,
				   (long) (test_shm_mq_worker_slot_wait - waited_ms) + 1);
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 sleep_ms, PG_WAIT_EXTENSION);
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
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	ring->workers_ready = true;
}

/*
 * on_dsm_detach callback, registered until all workers are ready: make sure
 * none of them outlives the leader's interest in the ring.
 */
static void
terminate_workers(dsm_segment *segment, Datum arg)
{
	test_shm_mq_ring *ring = (test_shm_mq_ring *) DatumGetPointer(arg);
	int			worker;

	for (worker = 1; worker <= ring->nworkers; worker++)
	{
		if (ring->workers[worker - 1] != NULL)
			TerminateBackgroundWorker(ring->workers[worker - 1]);
	}
}

/*
 * Take a ring down after success: detach the segment, wait for every worker
 * to exit, and free the leader's memory.
 *
 * Detaching ends the ring on its own: worker 1 sees its input queue detach
 * and exits, which detaches worker 2's input, and so on round the ring.
 * Waiting for them means a call that returns has left no process behind.
 */
void
test_shm_mq_ring_release(test_shm_mq_ring *ring)
{
	int			worker;

	dsm_detach(ring->segment);
	ring->segment = NULL;

	if (ring->workers != NULL)
	{
		for (worker = 1; worker <= ring->nworkers; worker++)
		{
			if (WaitForBackgroundWorkerShutdown(ring->workers[worker - 1]) ==
				BGWH_POSTMASTER_DIED)
				postmaster_died();
		}
	}

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

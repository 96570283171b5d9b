/*-------------------------------------------------------------------------
 *
 * release.c
 *		The last step of a round trip, on the leader's side: close the ring,
 *		wake its workers, wait (for a bounded time) until every one has
 *		exited, and let the segment go.
 *
 * Cleanup follows the segment.  It belongs to the current resource owner, so
 * an error or cancel anywhere detaches it, and so does
 * test_shm_mq_ring_release() after a successful call.  Either way the
 * segment's detach callback takes the workers down before the detach
 * returns: it closes the ring and wakes every worker, so that all leave at
 * once; withdraws any worker the postmaster has not started yet; and waits
 * until every worker the ring registered is gone, so that the slots are free
 * again and no process is left.  A worker that lingers is terminated, and one
 * that outlives even that is reported and left; the wait is bounded, because
 * during an abort it cannot be interrupted.
 *
 * The leader's queue handles do not belong to the segment, so detaching
 * does not tell the workers the queues are gone: the ring's state does.
 * That lets a leader detach without taking the ring down (keep.h), with the
 * callback cancelled; and a worker may also close a ring itself
 * (ring_state.c), leaving the leader only their exits to wait for.
 *
 * IDENTIFICATION
 *		src/release.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "stats.h"

/*
 * How long a closed ring's workers may take to leave on their own before
 * they are terminated, and how long to wait for them in all.  A worker
 * leaves within a millisecond of being woken, or as soon as it has finished
 * connecting; only one stuck, for instance on a lock, meets the first limit,
 * and only one that cannot run at all meets the second.
 */
#define WORKER_EXIT_GRACE_MS	100
#define WORKER_EXIT_TIMEOUT_MS	5000

/*
 * How often to look again even if the postmaster has not told us that a
 * worker stopped.  Its signal is what normally ends each sleep; should one
 * come late, or be absorbed by someone else's use of our latch, this wait,
 * which nothing can interrupt, must not sleep on for seconds.
 */
#define WORKER_EXIT_POLL_MS		10

static void take_down_on_detach(dsm_segment *segment, Datum arg);
static void close_ring(test_shm_mq_ring *ring);
static void wait_for_workers_to_exit(test_shm_mq_ring *ring);
static int	count_running_workers(test_shm_mq_ring *ring);
static void terminate_workers(test_shm_mq_ring *ring);
static void report_lingering_workers(test_shm_mq_ring *ring);

/*
 * Take a ring down and free the leader's memory.
 *
 * If the leader is attached, detaching the segment runs
 * take_down_on_detach(), so on return every worker has exited.  If not, the
 * segment is gone: its workers have left it and are exiting, and only their
 * exits are waited for.  Interrupts are held throughout: the wait is short
 * and bounded, and an interrupt in the middle of it would leave the workers
 * to an abort that no longer knows them.
 */
void
test_shm_mq_ring_release(test_shm_mq_ring *ring)
{
	HOLD_INTERRUPTS();

	if (ring->segment != NULL)
	{
		dsm_detach(ring->segment);
		ring->segment = NULL;
	}
	else if (ring->workers != NULL)
	{
		wait_for_workers_to_exit(ring);
		test_shm_mq_stats_ring_gone(ring);
	}

	RESUME_INTERRUPTS();

	MemoryContextDelete(ring->context);
}

/*
 * From now on, detaching segment takes the ring's workers down with it.
 * Called as the ring's first worker is registered, and as a leader attaches
 * again to a ring it left up.
 */
void
test_shm_mq_ring_take_down_on_detach(test_shm_mq_ring *ring,
									 dsm_segment *segment)
{
	on_dsm_detach(segment, take_down_on_detach, PointerGetDatum(ring));
}

/*
 * Undo test_shm_mq_ring_take_down_on_detach(): the leader is about to
 * detach from a ring it leaves up, its workers running.
 */
void
test_shm_mq_ring_leave_up_on_detach(test_shm_mq_ring *ring)
{
	cancel_on_dsm_detach(ring->segment, take_down_on_detach,
						 PointerGetDatum(ring));
}

/*
 * on_dsm_detach callback of a ring with workers: take them all down before
 * the segment goes.
 *
 * It runs when the leader detaches the segment, after a successful call or
 * during the abort of a failed one, and at the latest when the leader's
 * process exits.  It must not fail, and during an abort it cannot be
 * interrupted, so every wait in it is bounded.
 */
static void
take_down_on_detach(dsm_segment *segment, Datum arg)
{
	test_shm_mq_ring *ring = (test_shm_mq_ring *) DatumGetPointer(arg);

	test_shm_mq_stats_ring_closing(ring);
	close_ring(ring);
	wait_for_workers_to_exit(ring);
	test_shm_mq_stats_count_leader_waits(ring);
	test_shm_mq_stats_ring_gone(ring);
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
 */
static void
close_ring(test_shm_mq_ring *ring)
{
	int			worker;

	test_shm_mq_state_close(ring->header);

	for (worker = 1; worker <= ring->nworkers; worker++)
	{
		PGPROC	   *proc;

		if (ring->workers[worker - 1] == NULL)
			continue;
		proc = test_shm_mq_state_worker(ring->header, worker).proc;
		if (proc != NULL)
			SetLatch(&proc->procLatch);
		else
			TerminateBackgroundWorker(ring->workers[worker - 1]);
	}
}

/*
 * Wait until every worker the ring registered has exited, or has been
 * withdrawn before it started, so that its slot is free again.
 *
 * The postmaster sets our latch each time one of them stops, and we look
 * every WORKER_EXIT_POLL_MS in any case.  Workers still there after
 * WORKER_EXIT_GRACE_MS are terminated; any still there after
 * WORKER_EXIT_TIMEOUT_MS are reported with a WARNING and left.  This wait
 * may not be interrupted, so it does not use test_shm_mq_sleep().
 */
static void
wait_for_workers_to_exit(test_shm_mq_ring *ring)
{
	TimestampTz start = GetCurrentTimestamp();
	bool		terminated = false;

	while (count_running_workers(ring) > 0)
	{
		long		elapsed_ms = (long) test_shm_mq_ms_since(start);
		long		timeout_ms;
		int			rc;

		if (elapsed_ms >= WORKER_EXIT_TIMEOUT_MS)
		{
			report_lingering_workers(ring);
			return;
		}
		if (elapsed_ms >= WORKER_EXIT_GRACE_MS && !terminated)
		{
			terminate_workers(ring);
			terminated = true;
		}

		timeout_ms = (terminated ? WORKER_EXIT_TIMEOUT_MS :
					  WORKER_EXIT_GRACE_MS) - elapsed_ms;
		timeout_ms = Min(timeout_ms, WORKER_EXIT_POLL_MS);
		/* Should the postmaster die, nothing runs any more to wait for. */
		rc = WaitLatch(MyLatch,
					   WL_LATCH_SET | WL_TIMEOUT | WL_POSTMASTER_DEATH,
					   Max(timeout_ms, 1),
					   test_shm_mq_wait_event_info(TEST_SHM_MQ_WAIT_EVENT_WORKER_EXIT));
		ResetLatch(MyLatch);
		if (rc & WL_POSTMASTER_DEATH)
			return;
	}
}

/*
 * How many of the ring's workers have not stopped yet; forget the handle of
 * each one that has.
 */
static int
count_running_workers(test_shm_mq_ring *ring)
{
	int			running = 0;
	int			worker;

	for (worker = 1; worker <= ring->nworkers; worker++)
	{
		pid_t		pid;

		if (ring->workers[worker - 1] == NULL)
			continue;
		if (GetBackgroundWorkerPid(ring->workers[worker - 1], &pid) ==
			BGWH_STOPPED)
			ring->workers[worker - 1] = NULL;
		else
			running++;
	}
	return running;
}

/*
 * Tell every worker that has not stopped to terminate.
 */
static void
terminate_workers(test_shm_mq_ring *ring)
{
	int			worker;

	for (worker = 1; worker <= ring->nworkers; worker++)
	{
		if (ring->workers[worker - 1] != NULL)
			TerminateBackgroundWorker(ring->workers[worker - 1]);
	}
}

/*
 * Warn about each worker still there once the wait for them is over.
 */
static void
report_lingering_workers(test_shm_mq_ring *ring)
{
	int			worker;

	for (worker = 1; worker <= ring->nworkers; worker++)
	{
		BgwHandleStatus status;
		pid_t		pid;

		if (ring->workers[worker - 1] == NULL)
			continue;
		status = GetBackgroundWorkerPid(ring->workers[worker - 1], &pid);
		if (status != BGWH_STARTED && status != BGWH_NOT_YET_STARTED)
			continue;
		ereport(WARNING,
				(errmsg(TEST_SHM_MQ_WORKER_TITLE " did not exit within %d ms",
						worker, ring->nworkers, WORKER_EXIT_TIMEOUT_MS),
				 status == BGWH_STARTED ?
				 errdetail("Its process, PID %d, has been told to terminate, and is left to exit on its own.",
						   (int) pid) :
				 errdetail("It had not started, and the postmaster has not yet withdrawn it.")));
	}
}

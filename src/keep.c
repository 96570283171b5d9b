/*-------------------------------------------------------------------------
 *
 * keep.c
 *		Keeping a ring between calls, the leader's side.  With
 *		test_shm_mq_ext.ring_keepalive set, a successful call leaves its ring
 *		up, and the session's next call of the same shape uses it again
 *		instead of building a new one.
 *
 * A session keeps at most one ring.  While kept, the ring is held by its
 * workers alone: the leader detaches from the segment, and the ring's memory
 * moves from the transaction to the session.  The workers sleep until the
 * keepalive has passed; then the first to wake closes the ring and all leave,
 * and the last to detach destroys the segment (keep_idle.c).  So an expired
 * ring leaves nothing behind, even while its session sits idle.
 *
 * Keeping needs the cluster-wide state: the leader's entry holds the
 * deadline, which others may shorten, and what the ring holds of the
 * cluster's cap on kept workers (keep_bounds.c).  Where there is none, no
 * ring is kept, and the session is told so once.
 *
 * A call claims a kept ring by attaching again and moving it from KEPT to
 * OPEN (ring_state.c) under the header's lock, which a worker also holds to
 * close it: the ring is either claimed or closed, never both.  A ring found
 * closed, or gone, is replaced quietly; one that lost a worker while it was
 * idle is replaced with a NOTICE saying what became of the worker, in its
 * own words if it sent any: the worker pinned the segment as it left, so
 * that its report is still there.  From the claim on, the ring belongs to
 * the call exactly as a new one does, so an error or cancel during the call
 * takes it down the same way.
 *
 * The kept ring ends with what owns it: a call of another shape, or by
 * another role, or after its function was dropped or revoked; the rollback
 * of the (sub)transaction that last used it; test_shm_mq_release_ring(); and
 * the end of the session.  What ends it from outside, while the session
 * sits idle, is keep_bounds.c's.
 *
 * IDENTIFICATION
 *		src/keep.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "keep.h"
#include "stats.h"

/* What the leader keeps about a ring while it is kept: ring->kept. */
typedef struct test_shm_mq_kept
{
	SubTransactionId subid;		/* the (sub)transaction whose rollback
								 * takes it down */
	Oid			keeper_function;	/* the SQL function whose call kept it */
} test_shm_mq_kept;

/* The ring this session keeps between calls, if any. */
static test_shm_mq_ring *kept_ring = NULL;

static bool callbacks_registered = false;

static bool may_keep(test_shm_mq_ring *ring);
static bool same_shape(test_shm_mq_ring *ring, int64 queue_size,
					   int nworkers, test_shm_mq_wait_strategy strategy);
static bool quiesce(test_shm_mq_ring *ring);
static void detach_leader(test_shm_mq_ring *ring);
static bool still_owned(test_shm_mq_ring *ring);
static test_shm_mq_ring *claim_kept_ring(void);
static bool report_loss(test_shm_mq_ring *ring);
static void keep_ring(test_shm_mq_ring *ring, Oid keeper_function);
static void end_kept_ring(test_shm_mq_ring *ring);
static void kept_ring_xact_callback(XactEvent event, void *arg);
static void kept_ring_subxact_callback(SubXactEvent event,
									   SubTransactionId subid,
									   SubTransactionId parent_subid,
									   void *arg);
static void kept_ring_at_exit(int code, Datum arg);

/*
 * The kept ring, claimed for a call of this shape, or NULL if there is none
 * that the call may use; a kept ring that it may not use is taken down.
 */
test_shm_mq_ring *
test_shm_mq_keep_claim(int64 queue_size, int nworkers,
					   test_shm_mq_wait_strategy strategy)
{
	if (kept_ring == NULL)
		return NULL;
	if (test_shm_mq_ring_keepalive > 0 &&
		same_shape(kept_ring, queue_size, nworkers, strategy) &&
		still_owned(kept_ring))
		return claim_kept_ring();
	(void) test_shm_mq_keep_release();
	return NULL;
}

/*
 * Keep a ring after a successful call of the SQL function keeper_function,
 * if test_shm_mq_ext.ring_keepalive says so.  Returns false, leaving the
 * ring as it was, if it may not be kept (may_keep()), or if the cluster's
 * cap on kept workers has no room for its workers.
 */
bool
test_shm_mq_keep_offer(test_shm_mq_ring *ring, Oid keeper_function)
{
	if (!may_keep(ring) || !test_shm_mq_keep_take_workers(ring->nworkers))
		return false;
	keep_ring(ring, keeper_function);
	return true;
}

/*
 * Take the kept ring down now, if there is one; returns whether there was.
 */
bool
test_shm_mq_keep_release(void)
{
	if (kept_ring == NULL)
		return false;

	/*
	 * Forget the ring only once it is gone: a release that fails leaves it
	 * as it was, to be released again.
	 */
	end_kept_ring(kept_ring);
	kept_ring = NULL;
	return true;
}

/*
 * May this ring be kept?  Not without a keepalive, nor a ring without
 * workers, since nothing but the leader holds its segment; nor one with a
 * message left over, which the next call would take for its own; nor while
 * a session waits for a worker slot; nor where there is no cluster-wide
 * state, which the session hears of once.
 */
static bool
may_keep(test_shm_mq_ring *ring)
{
	static bool warned = false;

	if (test_shm_mq_ring_keepalive <= 0 || ring->nworkers == 0)
		return false;
	if (test_shm_mq_my_entry() == NULL)
	{
		if (!warned)
			ereport(WARNING,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("no ring is kept: test_shm_mq_ext has no shared state in this server"),
					 errdetail("\"test_shm_mq_ext.ring_keepalive\" is ignored; every ring is taken down when its call ends."),
					 errhint("Add test_shm_mq_ext to \"shared_preload_libraries\" and restart the server.")));
		warned = true;
		return false;
	}
	return quiesce(ring) && !test_shm_mq_keep_slots_wanted();
}

/*
 * Can a call of this shape use the ring?  What it would wait by counts too,
 * since the workers read that when they start.
 */
static bool
same_shape(test_shm_mq_ring *ring, int64 queue_size, int nworkers,
		   test_shm_mq_wait_strategy strategy)
{
	test_shm_mq_wait_settings wait;

	test_shm_mq_wait_settings_now(&wait, strategy);
	return ring->queue_size == (Size) queue_size &&
		ring->nworkers == nworkers &&
		test_shm_mq_wait_settings_equal(&ring->wait, &wait);
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
static bool
quiesce(test_shm_mq_ring *ring)
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
 * test_shm_mq_ring_attach_queues() (setup.c).  quiesce() must have said
 * yes.
 */
static void
detach_leader(test_shm_mq_ring *ring)
{
	test_shm_mq_ring_leave_up_on_detach(ring);
	test_shm_mq_stats_count_leader_waits(ring);
	test_shm_mq_ring_detach_queues(ring);
	dsm_detach(ring->segment);
	ring->segment = NULL;
	ring->toc = NULL;
	ring->header = NULL;
}

/*
 * May the current call claim the ring?  Only a call from the role the ring
 * was made for, and only while the function that kept it still exists: after
 * DROP EXTENSION, and CREATE EXTENSION again, it does not.
 */
static bool
still_owned(test_shm_mq_ring *ring)
{
	return ring->owner_role == GetUserId() &&
		SearchSysCacheExists1(PROCOID,
							  ObjectIdGetDatum(ring->kept->keeper_function));
}

/*
 * Claim the kept ring for a call.  Returns NULL, having taken the ring down,
 * if it expired, stood down for a session waiting for a worker slot, was
 * ended from outside, or lost a worker while idle; the last with a NOTICE.
 *
 * The ring stays the session's until attaching to it again has succeeded:
 * should that fail, it is still kept, for the next call or the end of the
 * session to take down.  From then on the call owns it: the segment belongs
 * to the current resource owner, to be taken down as it detaches, and the
 * memory to the transaction, so that an error takes the ring down.
 */
static test_shm_mq_ring *
claim_kept_ring(void)
{
	test_shm_mq_ring *ring = kept_ring;
	uint32		state = TEST_SHM_MQ_RING_CLOSED;

	if (test_shm_mq_ring_attach(ring))
		state = test_shm_mq_state_claim(ring->header);

	kept_ring = NULL;
	MemoryContextSetParent(ring->context, CurTransactionContext);
	ring->kept->subid = InvalidSubTransactionId;

	if (state == TEST_SHM_MQ_RING_KEPT)
	{
		/* Claimed: it is no longer idle. */
		test_shm_mq_keep_give_back(test_shm_mq_my_entry());
		test_shm_mq_count(TEST_SHM_MQ_RINGS_CLAIMED, 1);
		test_shm_mq_ring_attach_queues(ring);
		if (!report_loss(ring))
			return ring;
	}
	else if (state == TEST_SHM_MQ_RING_LOST)
	{
		/* Take the pin over first: nothing after this can leave it. */
		if (test_shm_mq_state_end_kept(ring->header) == TEST_SHM_MQ_RING_LOST)
			dsm_unpin_segment(ring->handle);
		test_shm_mq_ring_attach_queues(ring);
		(void) report_loss(ring);
	}

	/* Closed and left by its workers, or lost: build another. */
	end_kept_ring(ring);
	return NULL;
}

/*
 * Report, with a NOTICE, that a kept ring lost a worker while it was idle,
 * saying what became of the worker that went first.  Returns false, saying
 * nothing, if it did not.
 */
static bool
report_loss(test_shm_mq_ring *ring)
{
	bool		silent;
	char	   *loss;

	loss = test_shm_mq_worker_departure(ring,
										test_shm_mq_state_lost_worker(ring->header),
										&silent);
	if (loss == NULL)
		return false;
	ereport(NOTICE,
			(errmsg_plural("kept ring of %d worker was lost, starting a new one",
						   "kept ring of %d workers was lost, starting a new one",
						   ring->nworkers, ring->nworkers),
			 errdetail_internal("%s", loss),
			 silent ? test_shm_mq_errhint_silent_exit() : 0));
	return true;
}

/*
 * Keep a ring after a successful call: mark it kept until the keepalive has
 * passed, wake the workers so that they go idle and start counting, and
 * leave it to them.  Its workers are counted against the cap already.
 */
static void
keep_ring(test_shm_mq_ring *ring, Oid keeper_function)
{
	TimestampTz keep_until;

	/* One call at a time can hold a ring; see test_shm_mq_ring_acquire(). */
	Assert(kept_ring == NULL);

	/* What can fail comes first, while the call still owns the ring. */
	if (!callbacks_registered)
	{
		RegisterXactCallback(kept_ring_xact_callback, NULL);
		RegisterSubXactCallback(kept_ring_subxact_callback, NULL);
		before_shmem_exit(kept_ring_at_exit, (Datum) 0);
		callbacks_registered = true;
	}
	if (ring->kept == NULL)
		ring->kept = MemoryContextAllocZero(ring->context,
											sizeof(test_shm_mq_kept));

	keep_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											 test_shm_mq_ring_keepalive);
	test_shm_mq_keep_publish(ring, keep_until, keeper_function);
	test_shm_mq_state_keep(ring->header);
	test_shm_mq_state_wake_workers(ring->header);
	test_shm_mq_count(TEST_SHM_MQ_RINGS_KEPT, 1);

	detach_leader(ring);
	MemoryContextSetParent(ring->context, TopMemoryContext);
	ring->kept->subid = GetCurrentSubTransactionId();
	ring->kept->keeper_function = keeper_function;
	kept_ring = ring;
}

/*
 * Take down a ring that was kept: attach again if need be, close it, taking
 * over the pin of a worker that lost it and giving back its place under the
 * cap if it was still kept, and release it, which waits until its workers
 * have exited.  If the segment is gone, its workers have all left it, and
 * only their exits are waited for.
 *
 * Interrupts are held throughout: an interrupt between attaching and
 * releasing would leave the workers to an abort that no longer knows them.
 */
static void
end_kept_ring(test_shm_mq_ring *ring)
{
	HOLD_INTERRUPTS();
	if (ring->segment == NULL)
		(void) test_shm_mq_ring_attach(ring);
	if (ring->segment != NULL)
	{
		switch (test_shm_mq_state_end_kept(ring->header))
		{
			case TEST_SHM_MQ_RING_KEPT:
				test_shm_mq_keep_give_back(test_shm_mq_my_entry());
				test_shm_mq_count(TEST_SHM_MQ_RINGS_ENDED, 1);
				break;
			case TEST_SHM_MQ_RING_LOST:
				dsm_unpin_segment(ring->handle);
				break;
		}
	}
	test_shm_mq_ring_release(ring);
	RESUME_INTERRUPTS();
}

/*
 * Transaction callback: a rollback takes down a ring kept during the
 * transaction; a commit hands it to the session, beyond any later rollback.
 */
static void
kept_ring_xact_callback(XactEvent event, void *arg)
{
	if (kept_ring == NULL ||
		kept_ring->kept->subid == InvalidSubTransactionId)
		return;

	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			(void) test_shm_mq_keep_release();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			kept_ring->kept->subid = InvalidSubTransactionId;
			break;
		default:
			break;
	}
}

/*
 * Subtransaction callback: rolling back to a savepoint takes down a ring
 * kept since; RELEASE SAVEPOINT hands it to the parent.
 */
static void
kept_ring_subxact_callback(SubXactEvent event, SubTransactionId subid,
						   SubTransactionId parent_subid, void *arg)
{
	if (kept_ring == NULL || kept_ring->kept->subid != subid)
		return;

	switch (event)
	{
		case SUBXACT_EVENT_ABORT_SUB:
			(void) test_shm_mq_keep_release();
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			kept_ring->kept->subid = parent_subid;
			break;
		default:
			break;
	}
}

/*
 * before_shmem_exit callback: the session is ending, so its ring goes too.
 */
static void
kept_ring_at_exit(int code, Datum arg)
{
	(void) test_shm_mq_keep_release();
}

/*
 * The ring this session keeps, if any: for keep_bounds.c, whose assign hook
 * shortens its keepalive.
 */
test_shm_mq_ring *
test_shm_mq_keep_current(void)
{
	return kept_ring;
}

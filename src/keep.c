/*-------------------------------------------------------------------------
 *
 * keep.c
 *		Keeping a ring between calls.  With test_shm_mq_ext.ring_keepalive
 *		set, a successful call leaves its ring up, and the session's next call
 *		of the same shape uses it again instead of building a new one.
 *
 * A session keeps at most one ring.  While kept, the ring is held by its
 * workers alone: the leader detaches from the segment, and the ring's memory
 * moves from the transaction to the session.  The workers sleep until the
 * keepalive has passed; then the first to wake closes the ring and all leave,
 * and the last to detach destroys the segment.  So an expired ring leaves
 * nothing behind, even while its session sits idle.
 *
 * A call claims a kept ring by attaching again and moving it from KEPT to
 * OPEN (ring_state.c) under the header's lock, which a worker also holds to
 * close it: the ring is either claimed or closed, never both.  A ring found closed, or
 * gone, is replaced quietly; one that lost a worker while it was idle is
 * replaced with a NOTICE saying what became of the worker, in its own words
 * if it sent any: the worker pinned the segment as it left, so that its
 * report is still there.  From the claim on, the ring belongs to the call
 * exactly as a new one does, so an error or cancel during the call takes it
 * down the same way.
 *
 * A ring is kept only while nobody waits for a worker slot, and only if the
 * cluster-wide cap test_shm_mq_ext.max_kept_workers has room for its workers
 * (cluster.c); otherwise it is taken down as its call ends.  Idle kept
 * workers stand down by themselves when a session starts to wait.
 *
 * The kept ring ends with what owns it.  A call of another shape, or one
 * made with ring_keepalive at 0, or by another role, takes it down; so do the
 * rollback of the (sub)transaction that last used it, test_shm_mq_release_ring()
 * and the end of the session.  And the commit of every transaction checks
 * that the ring is still wanted: that ring_keepalive, as it will be once the
 * transaction is over, is above 0 (so SET, RESET, RESET ALL, DISCARD ALL or
 * the end of a SET LOCAL take it down), and that the function whose call kept
 * it still exists and may still be executed by its role (so DROP EXTENSION
 * and REVOKE do).  A call never claims a ring whose function is gone, so a
 * CREATE EXTENSION after another session's DROP builds a new one.
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
#include "utils/guc_tables.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "ring.h"

/* The ring this session keeps between calls, if any. */
static test_shm_mq_ring *kept_ring = NULL;

static bool callbacks_registered = false;

static bool same_shape(test_shm_mq_ring *ring, int64 queue_size,
					   int nworkers, test_shm_mq_wait_strategy strategy);
static bool quiesce(test_shm_mq_ring *ring);
static void detach_leader(test_shm_mq_ring *ring);
static bool still_owned(test_shm_mq_ring *ring);
static bool wanted_after_commit(test_shm_mq_ring *ring);
static int	keepalive_after_commit(void);
static test_shm_mq_ring *claim_kept_ring(void);
static void keep_ring(test_shm_mq_ring *ring, Oid keeper_function);
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
test_shm_mq_claim_kept_ring(int64 queue_size, int nworkers,
							test_shm_mq_wait_strategy strategy)
{
	if (kept_ring == NULL)
		return NULL;
	if (test_shm_mq_ring_keepalive > 0 &&
		same_shape(kept_ring, queue_size, nworkers, strategy) &&
		still_owned(kept_ring))
		return claim_kept_ring();
	(void) test_shm_mq_release_kept_ring();
	return NULL;
}

/*
 * Keep a ring after a successful call of the SQL function keeper_function,
 * if test_shm_mq_ext.ring_keepalive says so.  Returns false, leaving the
 * ring as it was, if it may not be kept: a ring without workers, since
 * nothing but the leader holds its segment; one with a message left over,
 * which the next call would take for its own; one whose slots another
 * session waits for, or whose workers the cluster-wide cap has no room for.
 */
bool
test_shm_mq_keep_ring(test_shm_mq_ring *ring, Oid keeper_function)
{
	if (test_shm_mq_ring_keepalive > 0 && ring->nworkers > 0 &&
		quiesce(ring) &&
		!test_shm_mq_slot_waiter_present() &&
		test_shm_mq_kept_tickets_take(ring))
	{
		keep_ring(ring, keeper_function);
		return true;
	}
	return false;
}

/*
 * Take the kept ring down now, if there is one; returns whether there was.
 */
bool
test_shm_mq_release_kept_ring(void)
{
	if (kept_ring == NULL)
		return false;

	/*
	 * Forget the ring only once it is gone: a release that fails leaves it
	 * as it was, to be released again.
	 */
	test_shm_mq_ring_release(kept_ring);
	kept_ring = NULL;
	return true;
}

/*
 * Can a call of this shape use the ring?  The wait strategy and the polling
 * budget count too, since the workers read them when they start.
 */
static bool
same_shape(test_shm_mq_ring *ring, int64 queue_size, int nworkers,
		   test_shm_mq_wait_strategy strategy)
{
	return ring->queue_size == (Size) queue_size &&
		ring->nworkers == nworkers &&
		ring->strategy == strategy &&
		ring->spin_budget_us == test_shm_mq_spin_budget_us;
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
	test_shm_mq_area_detach(ring);
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
 * May the current call claim the ring?  Only a call from the role the ring
 * was made for, and only while the function that kept it still exists: after
 * DROP EXTENSION, and CREATE EXTENSION again, it does not.
 */
static bool
still_owned(test_shm_mq_ring *ring)
{
	return ring->owner_role == GetUserId() &&
		SearchSysCacheExists1(PROCOID,
							  ObjectIdGetDatum(ring->keeper_function));
}

/*
 * Is the kept ring still wanted once the committing transaction is over?
 * Called before the commit, in the transaction, where the catalogs can still
 * be read and an error can still abort it.
 */
static bool
wanted_after_commit(test_shm_mq_ring *ring)
{
	return keepalive_after_commit() > 0 &&
		SearchSysCacheExists1(PROCOID,
							  ObjectIdGetDatum(ring->keeper_function)) &&
		test_shm_mq_function_aclcheck(ring->keeper_function, ring->owner_role,
									  ACL_EXECUTE) == ACLCHECK_OK;
}

/*
 * The value test_shm_mq_ext.ring_keepalive will have once the top-level
 * transaction now committing is over, read from the setting's stack of
 * saved values: a SET LOCAL ends with the transaction, which is after the
 * last transaction callback.  At that point only the transaction's own
 * entry can be left, and the commit keeps its value (SET), restores the
 * one from before the transaction (SET LOCAL), or restores the SET value
 * that a later SET LOCAL masked.
 */
static int
keepalive_after_commit(void)
{
	static struct config_generic *setting = NULL;
	GucStack   *stack;

	if (setting == NULL)
		setting = test_shm_mq_find_option("test_shm_mq_ext.ring_keepalive");
	if (setting == NULL || setting->stack == NULL)
		return test_shm_mq_ring_keepalive;

	stack = setting->stack;
	switch (stack->state)
	{
		case GUC_SET:
			return test_shm_mq_ring_keepalive;
		case GUC_SET_LOCAL:
			return stack->masked.val.intval;
		case GUC_SAVE:
		case GUC_LOCAL:
			return stack->prior.val.intval;
	}
	return test_shm_mq_ring_keepalive;
}

/*
 * Claim the kept ring for a call.  Returns NULL, having taken the ring down,
 * if it expired, stood down for a session waiting for a worker slot, or lost
 * a worker while idle; the last with a NOTICE.
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
	bool		attached;
	uint32		state;

	attached = test_shm_mq_ring_attach(ring);

	kept_ring = NULL;
	MemoryContextSetParent(ring->context, CurTransactionContext);
	ring->kept_subid = InvalidSubTransactionId;

	if (!attached)
	{
		/* Its workers closed it and left, or are leaving. */
		test_shm_mq_ring_release(ring);
		return NULL;
	}

	state = test_shm_mq_state_claim(ring->header);
	if (state != TEST_SHM_MQ_RING_KEPT)
	{
		if (state == TEST_SHM_MQ_RING_LOST)
		{
			test_shm_mq_ring_attach_queues(ring);
			(void) test_shm_mq_report_kept_ring_loss(ring);
		}
		test_shm_mq_ring_release(ring);
		return NULL;
	}

	test_shm_mq_ring_attach_queues(ring);
	if (test_shm_mq_report_kept_ring_loss(ring))
	{
		test_shm_mq_ring_release(ring);
		return NULL;
	}

	return ring;
}

/*
 * Keep a ring after a successful call: mark it kept until the keepalive has
 * passed, wake the workers so that they go idle and start counting, and
 * leave it to them.
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

	keep_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											 test_shm_mq_ring_keepalive);
	test_shm_mq_state_keep(ring->header, keep_until);
	test_shm_mq_state_wake_workers(ring->header);

	detach_leader(ring);
	MemoryContextSetParent(ring->context, TopMemoryContext);
	ring->kept_subid = GetCurrentSubTransactionId();
	ring->keeper_function = keeper_function;
	kept_ring = ring;
}

/*
 * Transaction callback: a rollback takes down a ring kept during the
 * transaction; a commit hands it to the session, beyond any later rollback,
 * if it is still wanted once the transaction is over, and takes it down, as
 * the last thing before the commit, if not.
 */
static void
kept_ring_xact_callback(XactEvent event, void *arg)
{
	if (kept_ring == NULL)
		return;

	if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PRE_PREPARE)
	{
		if (!wanted_after_commit(kept_ring))
			(void) test_shm_mq_release_kept_ring();
		return;
	}

	if (kept_ring->kept_subid == InvalidSubTransactionId)
		return;

	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			(void) test_shm_mq_release_kept_ring();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			kept_ring->kept_subid = InvalidSubTransactionId;
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
	if (kept_ring == NULL || kept_ring->kept_subid != subid)
		return;

	switch (event)
	{
		case SUBXACT_EVENT_ABORT_SUB:
			(void) test_shm_mq_release_kept_ring();
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			kept_ring->kept_subid = parent_subid;
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
	(void) test_shm_mq_release_kept_ring();
}

/*-------------------------------------------------------------------------
 *
 * ring.c
 *		Where every call's ring comes from and goes to: acquire one, new or
 *		kept, before the messages, and be done with it after them.
 *
 * With test_shm_mq_ext.ring_keepalive at 0, the default, every call builds
 * its ring (segment.c, setup.c) and takes it down (release.c).  With a
 * keepalive, a successful call may leave its ring up for the session's next
 * call of the same shape (keep.h).  Either way the call sees only these two
 * functions, which also tell the cluster-wide state of the ring and of the
 * call (stats.h).
 *
 * IDENTIFICATION
 *		src/ring.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "keep.h"
#include "stats.h"

/*
 * A ring for one call: the kept ring, if it has the call's shape and is still
 * there, otherwise a new one, started.  End the call with
 * test_shm_mq_ring_done() on success; on error, the (sub)transaction's
 * cleanup takes the ring down.
 */
test_shm_mq_ring *
test_shm_mq_ring_acquire(int64 queue_size, int nworkers,
						 test_shm_mq_wait_strategy strategy)
{
	test_shm_mq_ring *ring;

	/* A call with an invalid queue size must not cost the session its ring. */
	test_shm_mq_check_queue_size(queue_size, nworkers);

	test_shm_mq_stats_call_starts();
	ring = test_shm_mq_keep_claim(queue_size, nworkers, strategy);
	if (ring != NULL)
	{
		test_shm_mq_stats_call_begins(ring, true);
		return ring;
	}

	ring = test_shm_mq_ring_create(queue_size, nworkers, strategy);
	test_shm_mq_stats_ring_starting(ring);
	test_shm_mq_ring_start(ring);
	test_shm_mq_stats_call_begins(ring, false);
	return ring;
}

/*
 * End a successful call of the SQL function keeper_function: keep its ring
 * if it may be kept (keep.h), otherwise take it down.
 */
void
test_shm_mq_ring_done(test_shm_mq_ring *ring, Oid keeper_function)
{
	test_shm_mq_stats_call_done(ring);
	if (test_shm_mq_keep_offer(ring, keeper_function))
		test_shm_mq_stats_ring_kept();
	else
		test_shm_mq_ring_release(ring);
}

/*-------------------------------------------------------------------------
 *
 * keep_idle.c
 *		A kept ring's workers between calls: sleep until the next call's
 *		first message, and end the ring when it is no longer wanted.
 *
 * Between the calls of a kept ring each worker is idle and sleeps until the
 * next call's first message reaches it, or until the keepalive has passed;
 * then it closes the ring itself and leaves, and so do the others.  Woken
 * while idle, it looks whether a session waits for a worker slot, and if one
 * does, it closes the ring and wakes the others, so that the slots go to
 * that session.  A worker that leaves a kept ring for any other reason, an
 * error or a signal, marks it lost and pins its segment, so that the
 * leader's next call can say what became of it.  Every such move is
 * ring_state.c's.
 *
 * IDENTIFICATION
 *		src/keep_idle.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "utils/timestamp.h"

#include "keep.h"

/* What a worker's detach callback needs to know. */
typedef struct watched_worker
{
	test_shm_mq_header *header;
	int			worker_number;
} watched_worker;

static void leaving_kept_ring(dsm_segment *segment, Datum arg);
static bool stand_down(test_shm_mq_header *header);

/*
 * From now on, should this worker leave the ring while it is kept, mark the
 * ring lost (see leaving_kept_ring()).  Registered after the worker's queues
 * are attached, so that on the way out it runs before their detach
 * callbacks: the ring must read as lost before any neighbour sees a queue
 * go.
 */
void
test_shm_mq_keep_watch_worker(dsm_segment *segment,
							  test_shm_mq_header *header, int worker_number)
{
	static watched_worker watched;

	watched.header = header;
	watched.worker_number = worker_number;
	on_dsm_detach(segment, leaving_kept_ring, PointerGetDatum(&watched));
}

/*
 * Is the ring kept, with no call?  Read without the lock: what the worker
 * then does is decided again, under it, by test_shm_mq_keep_idle().
 */
bool
test_shm_mq_keep_between_calls(test_shm_mq_header *header)
{
	return test_shm_mq_state_peek(header) == TEST_SHM_MQ_RING_KEPT;
}

/*
 * Sleep while the ring is kept between calls: until a call's first message
 * wakes us, the leader closes the ring, or keep_until passes.  Returns false
 * if the ring is closed, by us once keep_until has passed or, woken while
 * idle, for a session waiting for a worker slot; true when the worker is to
 * look at its queues again.  just_idle says the worker has only now gone
 * idle, and was not woken: a session waiting for a slot wakes every idle
 * worker, and one about to keep a ring looks for waiters itself.
 *
 * The leader claims a kept ring under the same lock, so it finds the ring
 * either still kept, and the workers staying, or closed, and builds another.
 */
bool
test_shm_mq_keep_idle(test_shm_mq_header *header, bool just_idle)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz keep_until;
	uint32		state;

	state = test_shm_mq_state_expire(header, now, &keep_until);
	if (state == TEST_SHM_MQ_RING_CLOSED || state == TEST_SHM_MQ_RING_LOST)
		return false;
	if (state != TEST_SHM_MQ_RING_KEPT)
		return true;			/* claimed meanwhile: look again */
	if (!just_idle && stand_down(header))
		return false;

	/* Round up, so as to wake no earlier than keep_until. */
	test_shm_mq_sleep(TEST_SHM_MQ_WAIT_EVENT_KEPT,
					  (long) ((keep_until - now + 999) / 1000));
	return !test_shm_mq_state_closed(header);
}

/*
 * If a session waits for a worker slot, close the ring, so that its
 * workers' slots go to that session, and wake the other workers to leave
 * too.  Returns whether we closed it.  The leader claims a kept ring under
 * the same lock, so the ring is either claimed or closed.
 */
static bool
stand_down(test_shm_mq_header *header)
{
	if (!test_shm_mq_slot_waiter_present() ||
		!test_shm_mq_state_stand_down(header))
		return false;

	elog(DEBUG1, "%s: kept ring stands down for a session waiting for a worker slot",
		 MyBgworkerEntry->bgw_name);
	test_shm_mq_state_wake_workers(header);
	return true;
}

/*
 * on_dsm_detach callback: leaving a ring that is still kept, before its
 * keepalive has passed, means something went wrong with us: mark the ring
 * lost, naming us, with the segment pinned so that our error report
 * outlives us, for the leader's next call to read.  The pin comes first, so
 * that it is there whenever the leader finds the ring lost, and only one
 * worker takes it; the leader takes it over.  After keep_until, the ring is
 * only closed, as if it had expired.
 */
static void
leaving_kept_ring(dsm_segment *segment, Datum arg)
{
	watched_worker *watched = (watched_worker *) DatumGetPointer(arg);

	if (!test_shm_mq_state_about_to_lose(watched->header,
										 watched->worker_number,
										 GetCurrentTimestamp()))
		return;
	dsm_pin_segment(segment);
	if (!test_shm_mq_state_lose(watched->header))
		dsm_unpin_segment(dsm_segment_handle(segment));
}

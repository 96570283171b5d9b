/*-------------------------------------------------------------------------
 *
 * ring.h
 *		The leader's view of a ring: its segment, its workers and the queues
 *		the leader holds, with the calls that build, drive, keep and take it
 *		down, grouped by the file that makes them.
 *
 * IDENTIFICATION
 *		src/ring.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TEST_SHM_MQ_EXT_RING_H
#define TEST_SHM_MQ_EXT_RING_H

#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"

#include "test_shm_mq_ext.h"

/*
 * Everything the leader keeps about one ring.  It lives in its own memory
 * context.  While a call uses the ring, that context is a child of the
 * transaction's, and the segment belongs to the current resource owner, so
 * that an error anywhere leaves nothing behind once the (sub)transaction is
 * cleaned up.  While the ring is kept between calls, the context belongs to
 * the session, and the leader is not attached to the segment at all.
 */
typedef struct test_shm_mq_ring
{
	MemoryContext context;		/* holds this struct and all below */
	MemoryContext call_context; /* the leader's queue handles, for one call */

	/* The ring's shape: a call of another shape cannot use it. */
	Size		queue_size;
	int			nworkers;
	test_shm_mq_wait_settings wait;

	Size		segment_size;	/* what was passed to dsm_create */
	dsm_handle	handle;
	uint64		ring_number;	/* as in the header */

	/* While the leader is attached; NULL while the ring is kept. */
	dsm_segment *segment;
	shm_toc    *toc;
	test_shm_mq_header *header;

	/* Set by test_shm_mq_ring_start(). */
	BackgroundWorkerHandle **workers;	/* by worker number - 1; NULL once
										 * the worker has stopped */
	bool		all_workers_ready;	/* every worker attached its queues */

	/* Set for each call, in call_context. */
	shm_mq_handle *send_queue;	/* leader -> worker 1 (or itself) */
	shm_mq_handle *receive_queue;	/* worker N (or itself) -> leader */
	shm_mq_handle **error_queues;	/* by worker number - 1; NULL once the
									 * worker has detached */
	test_shm_mq_waiter waiter;	/* how the leader waits on this ring */

	/* Who owns it: only a call from this role may use it again. */
	Oid			owner_role;

	/* What the current call counts (stats.h). */
	int64		messages;		/* sent round the ring */
	int64		bytes;
	int64		bytes_by_reference;
	int			most_in_flight; /* the most copies out at once */
	test_shm_mq_wait_counts counted;	/* the leader's waits counted so far */

	/* While kept between calls: keep.c's, which alone reads it. */
	struct test_shm_mq_kept *kept;
} test_shm_mq_ring;

/*
 * The round trip, file by file, in the order a call meets them.
 */

/* ring.c: where every call's ring comes from and goes to */
extern test_shm_mq_ring *test_shm_mq_ring_acquire(int64 queue_size,
												  int nworkers,
												  test_shm_mq_wait_strategy strategy);
extern void test_shm_mq_ring_done(test_shm_mq_ring *ring,
								  Oid keeper_function);

/* segment.c: size, create and lay out the segment */
extern void test_shm_mq_check_worker_count(int nworkers, int min_workers);
extern void test_shm_mq_check_queue_size(int64 queue_size, int nworkers);
extern Size test_shm_mq_segment_size(int64 queue_size, int nworkers);
extern test_shm_mq_ring *test_shm_mq_ring_create(int64 queue_size,
												 int nworkers,
												 test_shm_mq_wait_strategy strategy);

/* setup.c: register the workers, attach the queues, wait until ready */
extern void test_shm_mq_ring_start(test_shm_mq_ring *ring);
extern bool test_shm_mq_ring_attach(test_shm_mq_ring *ring);
extern void test_shm_mq_ring_attach_queues(test_shm_mq_ring *ring);
extern void test_shm_mq_ring_detach_queues(test_shm_mq_ring *ring);
extern test_shm_mq_wait_slot *test_shm_mq_ring_wait_slot(test_shm_mq_ring *ring,
														 int process);

/* messages.c: the leader's message loops */
extern void test_shm_mq_check_repeat_count(int repeat_count);
extern void test_shm_mq_ping_pong(test_shm_mq_ring *ring, Size message_size,
								  const char *message, int repeat_count);
extern void test_shm_mq_pipeline(test_shm_mq_ring *ring, Size message_size,
								 const char *message, int repeat_count,
								 bool verify);
extern void test_shm_mq_idle(test_shm_mq_ring *ring, int milliseconds);

/* area.c: the chunk of the segment that messages by reference use */
extern Size test_shm_mq_area_size(void);

/* worker_reports.c: the workers' error queues, read by the leader */
extern void test_shm_mq_forward_worker_errors(test_shm_mq_ring *ring);
extern char *test_shm_mq_worker_departure(test_shm_mq_ring *ring,
										  int known_worker, bool *silent);
extern int	test_shm_mq_errhint_silent_exit(void);
pg_noreturn extern void test_shm_mq_ring_broken(test_shm_mq_ring *ring,
												bool sending);
pg_noreturn extern void test_shm_mq_worker_failed_to_start(test_shm_mq_ring *ring,
														   int worker_number);

/* release.c: take the ring down */
extern void test_shm_mq_ring_release(test_shm_mq_ring *ring);
extern void test_shm_mq_ring_take_down_on_detach(test_shm_mq_ring *ring,
												 dsm_segment *segment);
extern void test_shm_mq_ring_leave_up_on_detach(test_shm_mq_ring *ring);

#endif							/* TEST_SHM_MQ_EXT_RING_H */

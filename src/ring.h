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
#include "utils/dsa.h"

#include "test_shm_mq_ext.h"
#include "wait.h"

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
	test_shm_mq_wait_strategy strategy;
	int			spin_budget_us;

	Size		segment_size;	/* what was passed to dsm_create */
	dsm_handle	handle;
	uint64		ring_number;	/* as in the header */

	/* While the leader is attached; NULL while the ring is kept. */
	dsm_segment *segment;
	shm_toc    *toc;
	test_shm_mq_header *header;
	dsa_area   *area;			/* while a call sends by reference, in
								 * call_context (area.c) */
	Size		area_bound;		/* the bytes in flight its limit allows */

	/* Set by test_shm_mq_ring_start(). */
	BackgroundWorkerHandle **workers;	/* by worker number - 1; NULL once
										 * the worker has stopped */
	bool		workers_ready;	/* all workers attached their queues */

	/* Set for each call, in call_context. */
	shm_mq_handle *send_queue;	/* leader -> worker 1 (or itself) */
	shm_mq_handle *receive_queue;	/* worker N (or itself) -> leader */
	shm_mq_handle **error_queues;	/* by worker number - 1; NULL once the
									 * worker has detached */
	test_shm_mq_waiter waiter;	/* how the leader waits on this ring */

	/* Who owns it: only a call from this role may claim it. */
	Oid			owner_role;

	/* While kept. */
	SubTransactionId kept_subid;	/* the (sub)transaction whose rollback
									 * takes it down */
	Oid			keeper_function;	/* the SQL function whose call kept it:
									 * gone, or no longer executable by
									 * owner_role, takes the ring down */

	/* Kept-worker tickets held (cluster.c), by number. */
	int		   *tickets;		/* nworkers entries */
	int			ntickets;
} test_shm_mq_ring;

/*
 * What travels the queues in place of a message sent without copies: where
 * the leader put it in the ring's area, and how long it is (area.c).
 */
typedef struct test_shm_mq_reference
{
	dsa_pointer payload;
	Size		nbytes;
} test_shm_mq_reference;

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
extern Size test_shm_mq_segment_size(int64 queue_size, int nworkers);
extern test_shm_mq_ring *test_shm_mq_ring_create(int64 queue_size,
												 int nworkers,
												 test_shm_mq_wait_strategy strategy);

/* setup.c: register the workers, attach the queues, wait until ready */
extern void test_shm_mq_ring_start(test_shm_mq_ring *ring);
extern bool test_shm_mq_ring_attach(test_shm_mq_ring *ring);
extern void test_shm_mq_ring_attach_queues(test_shm_mq_ring *ring);
extern Oid	test_shm_mq_worker_role(void);

/* messages.c: the leader's message loops */
extern void test_shm_mq_check_repeat_count(int repeat_count);
extern void test_shm_mq_ping_pong(test_shm_mq_ring *ring, Size message_size,
								  const char *message, int repeat_count);
extern void test_shm_mq_pipeline(test_shm_mq_ring *ring, Size message_size,
								 const char *message, int repeat_count,
								 bool verify);
extern void test_shm_mq_idle(test_shm_mq_ring *ring, int milliseconds);

/* area.c: large messages, sent by reference */
extern bool test_shm_mq_zero_copy(Size message_size);
extern Size test_shm_mq_zero_copy_bound(test_shm_mq_ring *ring,
										Size message_size);
extern Size test_shm_mq_area_size(void);
extern void test_shm_mq_area_open(test_shm_mq_ring *ring, Size bound);
extern void test_shm_mq_area_detach(test_shm_mq_ring *ring);
extern bool test_shm_mq_area_put(test_shm_mq_ring *ring, Size nbytes,
								 const char *data, int in_flight,
								 test_shm_mq_reference *reference);
extern const char *test_shm_mq_area_get(test_shm_mq_ring *ring, Size nbytes,
										const void *data,
										const test_shm_mq_reference *expected);
extern void test_shm_mq_area_free(test_shm_mq_ring *ring,
								  const test_shm_mq_reference *reference);

/* worker_reports.c: the workers' error queues, read by the leader */
extern void test_shm_mq_forward_worker_errors(test_shm_mq_ring *ring);
extern bool test_shm_mq_report_kept_ring_loss(test_shm_mq_ring *ring);
pg_noreturn extern void test_shm_mq_ring_broken(test_shm_mq_ring *ring,
												bool sending);
pg_noreturn extern void test_shm_mq_worker_failed_to_start(test_shm_mq_ring *ring,
														   int worker_number);

/* release.c: take the ring down */
extern void test_shm_mq_ring_release(test_shm_mq_ring *ring);
extern void test_shm_mq_ring_take_down_on_detach(test_shm_mq_ring *ring,
												 dsm_segment *segment);
extern void test_shm_mq_ring_leave_up_on_detach(test_shm_mq_ring *ring);

/* keep.c: keep the ring between calls */
extern test_shm_mq_ring *test_shm_mq_claim_kept_ring(int64 queue_size,
													 int nworkers,
													 test_shm_mq_wait_strategy strategy);
extern bool test_shm_mq_keep_ring(test_shm_mq_ring *ring,
								  Oid keeper_function);
extern bool test_shm_mq_release_kept_ring(void);

/* cluster.c: what kept rings share across sessions */
extern bool test_shm_mq_kept_tickets_take(test_shm_mq_ring *ring);
extern void test_shm_mq_kept_tickets_give_back(test_shm_mq_ring *ring);
extern void test_shm_mq_slot_wait_announce(bool *announced);
extern void test_shm_mq_slot_wait_end(bool *announced);

#endif							/* TEST_SHM_MQ_EXT_RING_H */

/*-------------------------------------------------------------------------
 *
 * ring.h
 *		The leader's view of a ring: its segment, its workers and the queues
 *		the leader holds, with the calls that build, drive and release it.
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
#include "wait.h"

/*
 * Everything the leader keeps about one ring.  It lives in its own memory
 * context, a child of the current transaction's, so that an error anywhere
 * leaves nothing behind once the (sub)transaction is cleaned up.
 */
typedef struct test_shm_mq_ring
{
	MemoryContext context;		/* holds this struct and all below */
	dsm_segment *segment;
	shm_toc    *toc;
	test_shm_mq_header *header;
	Size		segment_size;	/* what was passed to dsm_create */
	Size		queue_size;
	int			nworkers;

	/* Set by test_shm_mq_ring_start(). */
	BackgroundWorkerHandle **workers;	/* by worker number - 1 */
	shm_mq_handle *send_queue;	/* leader -> worker 1 (or itself) */
	shm_mq_handle *receive_queue;	/* worker N (or itself) -> leader */
	shm_mq_handle **error_queues;	/* by worker number - 1; NULL once the
									 * worker has detached */
	bool		workers_ready;	/* all workers attached their queues */
	test_shm_mq_waiter waiter;	/* how the leader waits on this ring */
} test_shm_mq_ring;

/* setup.c */
extern void test_shm_mq_check_worker_count(int nworkers, int min_workers);
extern Size test_shm_mq_segment_size(int64 queue_size, int nworkers);
extern test_shm_mq_ring *test_shm_mq_ring_create(int64 queue_size,
												 int nworkers,
												 test_shm_mq_wait_strategy strategy);
extern void test_shm_mq_ring_start(test_shm_mq_ring *ring);
extern void test_shm_mq_ring_release(test_shm_mq_ring *ring);

/* worker_errors.c */
extern void test_shm_mq_forward_worker_errors(test_shm_mq_ring *ring);
pg_noreturn extern void test_shm_mq_ring_broken(test_shm_mq_ring *ring,
												bool sending);

/* drive.c */
extern void test_shm_mq_check_repeat_count(int repeat_count);
extern void test_shm_mq_ring_wait(test_shm_mq_ring *ring);
extern void test_shm_mq_ping_pong(test_shm_mq_ring *ring, Size message_size,
								  const char *message, int repeat_count);
extern void test_shm_mq_pipeline(test_shm_mq_ring *ring, Size message_size,
								 const char *message, int repeat_count,
								 bool verify);
extern void test_shm_mq_idle(test_shm_mq_ring *ring, int milliseconds);

#endif							/* TEST_SHM_MQ_EXT_RING_H */

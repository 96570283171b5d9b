/*-------------------------------------------------------------------------
 *
 * keep.h
 *		Kept rings: with test_shm_mq_ext.ring_keepalive set, a successful
 *		call leaves its ring up for the session's next call of the same
 *		shape.  What the rest of the extension may ask of them.
 *
 * The leader's side is keep.c, the workers' keep_idle.c.  The round trip
 * reaches them only through the calls below, each named for what it asks.
 *
 * IDENTIFICATION
 *		src/keep.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TEST_SHM_MQ_EXT_KEEP_H
#define TEST_SHM_MQ_EXT_KEEP_H

#include "ring.h"

/* keep.c: the leader's side */
extern test_shm_mq_ring *test_shm_mq_keep_claim(int64 queue_size,
												int nworkers,
												test_shm_mq_wait_strategy strategy);
extern bool test_shm_mq_keep_offer(test_shm_mq_ring *ring,
								   Oid keeper_function);
extern bool test_shm_mq_keep_release(void);
extern void test_shm_mq_keep_announce_slot_wait(bool *announced);
extern void test_shm_mq_keep_end_slot_wait(bool *announced);

/* keep_idle.c: the workers' side */
extern void test_shm_mq_keep_watch_worker(dsm_segment *segment,
										  test_shm_mq_header *header,
										  int worker_number);
extern bool test_shm_mq_keep_between_calls(test_shm_mq_header *header);
extern bool test_shm_mq_keep_idle(test_shm_mq_header *header,
								  bool just_idle);

/* cluster.c: what kept rings share across sessions */
extern bool test_shm_mq_kept_tickets_take(int nworkers, int *tickets,
										  int *ntickets);
extern void test_shm_mq_kept_tickets_give_back(int *tickets, int *ntickets);
extern void test_shm_mq_slot_wait_announce(bool *announced);
extern void test_shm_mq_slot_wait_end(bool *announced);
extern bool test_shm_mq_slot_waiter_present(void);

#endif							/* TEST_SHM_MQ_EXT_KEEP_H */

/*-------------------------------------------------------------------------
 *
 * keep.h
 *		Kept rings: with test_shm_mq_ext.ring_keepalive set, a successful
 *		call leaves its ring up for the session's next call of the same
 *		shape.  What the rest of the extension may ask of them, and what
 *		their three files share.
 *
 * The leader's side is keep.c, the workers' keep_idle.c, and what bounds
 * kept rings across the cluster keep_bounds.c.  The round trip reaches them
 * only through the first group of calls below, each named for what it asks.
 *
 * IDENTIFICATION
 *		src/keep.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TEST_SHM_MQ_EXT_KEEP_H
#define TEST_SHM_MQ_EXT_KEEP_H

#include "cluster_state.h"
#include "ring.h"

/* For the round trip: the leader's side (keep.c, keep_bounds.c) */
extern test_shm_mq_ring *test_shm_mq_keep_claim(int64 queue_size,
												int nworkers,
												test_shm_mq_wait_strategy strategy);
extern bool test_shm_mq_keep_offer(test_shm_mq_ring *ring,
								   Oid keeper_function);
extern bool test_shm_mq_keep_release(void);
extern void test_shm_mq_keep_announce_slot_wait(void);
extern void test_shm_mq_keep_keepalive_assign(int newval, void *extra);

/* For the round trip: the workers' side (keep_idle.c) */
extern void test_shm_mq_keep_watch_worker(dsm_segment *segment,
										  test_shm_mq_header *header,
										  int worker_number);
extern bool test_shm_mq_keep_between_calls(test_shm_mq_header *header);
extern bool test_shm_mq_keep_idle(test_shm_mq_header *header,
								  int worker_number, bool just_idle);

/* Between keep's own files */
extern test_shm_mq_ring *test_shm_mq_keep_current(void);
extern bool test_shm_mq_keep_take_workers(int nworkers);
extern void test_shm_mq_keep_give_back(test_shm_mq_entry *leader);
extern bool test_shm_mq_keep_over_cap(test_shm_mq_entry *leader);
extern void test_shm_mq_keep_publish(test_shm_mq_ring *ring,
									 TimestampTz keep_until,
									 Oid keeper_function);
extern void test_shm_mq_keep_wake(test_shm_mq_entry *leader);
extern bool test_shm_mq_keep_slots_wanted(void);

#endif							/* TEST_SHM_MQ_EXT_KEEP_H */

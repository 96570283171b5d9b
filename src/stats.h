/*-------------------------------------------------------------------------
 *
 * stats.h
 *		What the round trip tells the cluster-wide state about itself: each
 *		ring's row in test_shm_mq_rings, as its leader and workers keep it,
 *		and what each call counts for test_shm_mq_stats.
 *
 * Where there is no shared state, these calls only count, locally, and the
 * counts are dropped.
 *
 * IDENTIFICATION
 *		src/stats.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TEST_SHM_MQ_EXT_STATS_H
#define TEST_SHM_MQ_EXT_STATS_H

#include "cluster_state.h"
#include "ring.h"

/* stats.c: the leader's ring, from start to gone */
extern void test_shm_mq_stats_call_starts(void);
extern void test_shm_mq_stats_ring_starting(test_shm_mq_ring *ring);
extern void test_shm_mq_stats_call_begins(test_shm_mq_ring *ring,
										  bool warm);
extern void test_shm_mq_stats_call_done(test_shm_mq_ring *ring);
extern void test_shm_mq_stats_ring_kept(void);
extern void test_shm_mq_stats_ring_closing(test_shm_mq_ring *ring);
extern void test_shm_mq_stats_ring_gone(test_shm_mq_ring *ring);
extern void test_shm_mq_stats_count_leader_waits(test_shm_mq_ring *ring);

/* stats.c: a worker's place in a ring */
extern void test_shm_mq_stats_worker_joined(dsm_segment *segment,
											test_shm_mq_header *header,
											int worker_number,
											test_shm_mq_wait_counts *counts);
extern void test_shm_mq_stats_count_worker_waits(void);

#endif							/* TEST_SHM_MQ_EXT_STATS_H */

/*-------------------------------------------------------------------------
 *
 * cluster_state.h
 *		The extension's own shared memory: what every process of the
 *		cluster sees alike.
 *
 * IDENTIFICATION
 *		src/cluster_state.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TEST_SHM_MQ_EXT_CLUSTER_STATE_H
#define TEST_SHM_MQ_EXT_CLUSTER_STATE_H

/*
 * What the cluster shares.  Its layout is named in its name
 * (CLUSTER_STATE_NAME), so that a library of another layout, loaded into a
 * running server, finds its own and never reads this one.
 */
typedef struct test_shm_mq_cluster
{
	int			area_tranche;	/* the LWLock tranche of the rings' areas:
								 * set once, when the state is made */
} test_shm_mq_cluster;

extern void test_shm_mq_cluster_preload(void);
extern test_shm_mq_cluster *test_shm_mq_cluster_state(void);
extern int	test_shm_mq_area_tranche(void);

#endif							/* TEST_SHM_MQ_EXT_CLUSTER_STATE_H */

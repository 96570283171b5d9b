/*-------------------------------------------------------------------------
 *
 * wait.h
 *		How leader and workers wait when a queue can make no progress.
 *
 * IDENTIFICATION
 *		src/wait.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TEST_SHM_MQ_EXT_WAIT_H
#define TEST_SHM_MQ_EXT_WAIT_H

#include "test_shm_mq_ext.h"

/*
 * One process's waiting state.  A loop calls test_shm_mq_wait() each time a
 * pass over its queues made no progress, and test_shm_mq_waiter_progress()
 * each time one did.
 */
typedef struct test_shm_mq_waiter
{
	test_shm_mq_wait_strategy strategy;
	int			spin_budget_us; /* adaptive: polling allowed per wait */
} test_shm_mq_waiter;

extern void test_shm_mq_waiter_init(test_shm_mq_waiter *waiter,
									test_shm_mq_wait_strategy strategy,
									int spin_budget_us);
extern bool test_shm_mq_wait(test_shm_mq_waiter *waiter);
extern void test_shm_mq_waiter_progress(test_shm_mq_waiter *waiter);

#endif							/* TEST_SHM_MQ_EXT_WAIT_H */
